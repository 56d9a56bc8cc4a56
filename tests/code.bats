#!/usr/bin/env bats
# The steps' code as a whole, read rather than run: the one list of steps
# and what reads it, the parser as a unit of its own, the copies of the
# same code in different steps, and inserting a step in the middle.
#
# Run on its own: tests/bats tests/code.bats   (no SERVER needed)

setup() {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
}

# Says what was expected, what was found, and how to see it again; fails.
#   explain EXPECTED FOUND TRY
explain() {
    echo "expected:  $1" >&2
    echo "but:" >&2
    printf '%s\n' "$2" | sed 's/^/    /' >&2
    echo "try it:    $3" >&2
    return 1
}

# The files git tracks (or all files, in a copy without .git).
tracked_files() {
    git ls-files --cached --others --exclude-standard 2>/dev/null || find . -type f -not -path './.git/*' -not -path './build/*' | sed 's|^\./||'
}

@test "steps/list names every step folder once, in order, each with a chapter and tests" {
    local listed folders n previous=00 missing=()
    listed=$(for n in $(tests/steps); do tests/steps --folder "$n"; done)
    folders=$(find steps -mindepth 1 -maxdepth 1 -type d -name '[0-9][0-9]-*' | sort)
    if [ "$listed" != "$folders" ]; then
        echo "expected:  steps/list to name every folder of steps/, and only those" >&2
        diff <(echo "$folders") <(echo "$listed") | sed 's/^/    /' >&2
        echo "try it:    tests/steps; ls steps" >&2
        return 1
    fi
    for n in $(tests/steps); do
        ((10#$n > 10#$previous)) || missing+=("step $n comes after step $previous")
        previous=$n
        compgen -G "book/$n-*.md" >/dev/null || missing+=("no chapter book/$n-*.md")
        compgen -G "tests/$n-*.bats" >/dev/null || missing+=("no tests tests/$n-*.bats")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        printf 'expected:  each step in order, with a chapter and tests\nbut:       %s\n' "${missing[@]}" >&2
        return 1
    fi
}

@test "no list or range of all the steps is typed outside steps/list" {
    # Three step numbers in a row ("05 06 07"), or a range of them in a
    # glob or a case ("0[5-9]", "1[01]"). Prose and data about one step
    # are fine: the chapters, transcripts, patches and results.
    local found
    found=$(tracked_files | grep -vE '^steps/|^book/transcripts/|\.(md|tsv|diff|patch|svg|txt)$|^tests/code\.bats$' |
        while IFS= read -r file; do
            [ -f "$file" ] && grep -HnE '\b(0[1-9]|1[0-9]) (0[1-9]|1[0-9]) (0[1-9]|1[0-9])\b|\b[01]\[[0-9]' "$file"
        done || true)
    [ -z "$found" ] ||
        explain "the steps read from steps/list (tests/steps), never typed" "$found" "cat steps/list; tests/steps parses"
}

@test "from the first step that parses, the parser is http.c and http.h, and server.c does not repeat it" {
    local n dir failed=0
    for n in $(tests/steps parses); do
        dir=$(tests/steps --folder "$n")
        for file in http.c http.h server.c; do
            [ -f "$dir/$file" ] || { echo "no $dir/$file" >&2; failed=1; }
        done
        if grep -nE '^[a-z].*\b(parse_head|find_head_end|parse_request_line|parse_field_line)\(' "$dir/server.c" >&2; then
            echo "$dir/server.c defines the parser's functions: they belong in http.c" >&2
            failed=1
        fi
        grep -q '^#include "http.h"' "$dir/server.c" || { echo "$dir/server.c does not include http.h" >&2; failed=1; }
    done
    [ "$failed" -eq 0 ]
}

@test "no C file of any step is longer than 1,800 lines" {
    local file lines failed=0
    for file in steps/*/*.c steps/*/*.h; do
        lines=$(wc -l <"$file")
        if [ "$lines" -gt 1800 ]; then
            echo "$file: $lines lines; split a unit of its own out of it, in the stage that creates it" >&2
            failed=1
        fi
    done
    [ "$failed" -eq 0 ]
}

@test "copies of the same code agree: no drift between steps, no step naming another's program" {
    run tests/code-drift
    [ "$status" -eq 0 ] ||
        explain "a function the same in steps N-1 and N+1 the same in step N (unless chapter N changes it), each step's parser files the step before's (unless its chapter shows the diff), no step naming another step's program" \
            "$output" "tests/code-drift"
}

@test "tests/insert-step makes room for a step in the middle: folders, list, chapters and tests follow, and the steps that moved build" {
    local copy=$BATS_TEST_TMPDIR/copy middle newest after
    read -ra all <<<"$(tests/steps)"
    middle=${all[$((${#all[@]} / 2))]}
    newest=${all[-1]}
    mkdir -p "$copy"
    tracked_files | tar -cf - -T - | tar -xf - -C "$copy"
    (cd "$copy" && git init -q && git add -A >/dev/null) || skip "git is needed to copy the repository"
    run "$copy/tests/insert-step" "$middle"
    [ "$status" -eq 0 ] || { echo "tests/insert-step $middle failed: $output" >&2; return 1; }
    after=$(printf '%02d' "$((10#$newest + 1))")
    cd "$copy"
    [ "$(tests/steps --newest)" = "$after" ] ||
        { echo "expected:  the newest step to be $after, but: $(tests/steps --newest)" >&2; return 1; }
    ! tests/steps --folder "$middle" >/dev/null 2>&1 ||
        { echo "expected:  no step $middle after making room for it" >&2; return 1; }
    [ -n "$(compgen -G "book/$after-*.md")" ] && [ -n "$(compgen -G "tests/$after-*.bats")" ] ||
        { echo "expected:  the newest chapter and tests renumbered to $after" >&2; return 1; }
    # Nothing names the old folders any more.
    local old
    old=$(cd "$BATS_TEST_DIRNAME/.." && tests/steps --folder "$middle")
    if grep -rnF --exclude-dir=.git "$old/" . | grep -v '^./book/transcripts/' >&2; then
        echo "expected:  no file to name $old/ after renumbering it" >&2
        return 1
    fi
    # Every include and diff of the chapters names a file that exists.
    local path absent=0
    while IFS= read -r path; do
        [ -e "$path" ] || { echo "a chapter names $path, which does not exist" >&2; absent=1; }
    done < <(grep -ohE '(include|diff)="[^"]*"' book/*.md | sed -E 's/^[a-z]+="//; s/"$//' | tr ' ' '\n' | grep '^steps/')
    [ "$absent" -eq 0 ]
    # Every answer that tests/answers.bats uses is a patch that exists.
    local answer
    while IFS= read -r answer; do
        [ -e "book/answers/$answer.diff" ] ||
            { echo "tests/answers.bats uses the answer $answer, and there is no book/answers/$answer.diff" >&2; absent=1; }
    done < <(sed -nE 's/^ *(use_answer|step_tests_pass) ([0-9]{2}-[a-z0-9-]+).*/\2/p' tests/answers.bats | sort -u)
    [ "$absent" -eq 0 ]
    # The steps that moved build under their new numbers.
    local moved
    moved=$(printf '%02d' "$((10#$middle + 1))")
    run make -s "step$moved" "step$after" CFLAGS=-O0
    [ "$status" -eq 0 ] || { echo "make step$moved step$after after renumbering: $output" >&2; return 1; }
    [ -x "./step$moved" ] && [ -x "./step$after" ]
}
