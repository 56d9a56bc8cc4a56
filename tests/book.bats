#!/usr/bin/env bats
# The book (book/*.md, built by make book) never holds pasted code: code
# blocks name what to include, and include.lua fills them in at build
# time. These tests check that every reference resolves, that a broken
# one stops the build with a message naming it, and that no C block in
# the chapters was typed by hand.
#
# Run on its own: tests/bats tests/book.bats   (no SERVER needed)

# shellcheck disable=SC2016 # markdown in single quotes: its backticks are text
setup() {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
}

# Runs the filter over one markdown file.
expand() {
    pandoc "$1" --from markdown --lua-filter book/include.lua \
        --to markdown -o /dev/null 2>&1
}

@test "every chapter's includes, regions and diffs resolve" {
    local chapter output failed=0
    for chapter in book/[0-9][0-9]-*.md book/[a-z]-*.md; do
        if ! output=$(expand "$chapter"); then
            echo "$chapter: $output" >&2
            failed=1
        fi
    done
    [ "$failed" -eq 0 ]
}

# Expands a page that holds one code block with a broken reference, and
# checks that the build fails and names what is missing.
#   expect_failure_naming BLOCK-ATTRIBUTES MISSING
expect_failure_naming() {
    local page=$BATS_TEST_TMPDIR/page.md
    printf '```{%s}\n```\n' "$1" >"$page"
    local said
    if said=$(expand "$page"); then
        echo "the build succeeded, though $2 is missing" >&2
        return 1
    fi
    [[ $said == *"$2"* ]] || { echo "got: $said" >&2; return 1; }
}

@test "an include of a missing file fails and names it" {
    expect_failure_naming '.c include="steps/99-nothing/server.c"' steps/99-nothing/server.c
}

@test "an include of a missing function fails and names it" {
    expect_failure_naming '.c include="steps/04-accept/server.c" region="no_such_function"' no_such_function
}

@test "a diff against a missing file fails and names it" {
    expect_failure_naming '.diff diff="steps/03-listen/server.c book/answers/nothing/server.c"' \
        book/answers/nothing/server.c
}

# Renders a page of empty code blocks, one for each set of attributes,
# through the filter into $BATS_TEST_TMPDIR/out, as FORMAT (plain, html).
#   render FORMAT BLOCK-ATTRIBUTES...
render() {
    local format=$1 page=$BATS_TEST_TMPDIR/page.md
    shift
    printf '```{%s}\n```\n\n' "$@" >"$page"
    pandoc "$page" --lua-filter book/include.lua --to "$format" -o "$BATS_TEST_TMPDIR/out"
}

@test "a region is a whole function, from its comment to its closing brace" {
    render plain '.c include="steps/04-accept/server.c" region="close_connection"'
    local out=$BATS_TEST_TMPDIR/out
    grep -q '/\* close(2) frees the descriptor' "$out"
    grep -q 'static void close_connection(int fd)' "$out"
    tail -n 1 "$out" | grep -q '^ *}$'
    if grep -q 'serve_forever' "$out"; then return 1; fi
}

@test "a diff of a region shows that function's change, with where it goes" {
    render plain '.diff diff="steps/04-accept/server.c steps/05-parse/server.c" region="serve_forever"'
    local out=$BATS_TEST_TMPDIR/out
    grep -q 'in serve_forever: the − lines become the + lines' "$out"
    grep -Eq '^ *\+ +handle_connection\(fd\);' "$out"
    grep -Eq '^ *- +close_connection\(fd\);' "$out"
    if grep -q 'accept_connection(int listener' "$out"; then return 1; fi
}

# The place of new code is among what the reader has typed so far: code
# from the step before, and the listings above it in the chapter.
@test "several regions make one listing, and a new one says what it follows" {
    render plain '.c include="steps/05-parse/server.c" region="receive_more"' \
        '.c include="steps/05-parse/server.c" region="read_head, read_request"'
    local out=$BATS_TEST_TMPDIR/out
    # The captions, each on one line (plain text wraps them).
    local captions
    captions=$(grep -A1 '^new, ' "$out" | tr '\n' ' ' | tr -s ' ')
    # With the banner it brings, between the nearest things the reader has.
    grep -q 'new, with its banner, between close_connection and the banner /\* ==== Running the server ==== \*/' <<<"$captions"
    grep -q '/\* ==== Reading a request ==== \*/' "$out"
    grep -q 'new, between receive_more and the banner /\* ==== Running the server ==== \*/' <<<"$captions"
    grep -q 'static struct rejection read_head(' "$out"
    grep -q 'static struct rejection read_request(' "$out"
}

# A file that the step before lacks (step 05's http.h and http.c): its
# first piece says it is a new file, the later ones where they go in it.
@test "a new file's first listing says it is new, and the next ones where they go in it" {
    render plain '.c include="steps/05-parse/http.h" region="top, enum {"' \
        '.c include="steps/05-parse/http.h" region="parse_head"' \
        '.c include="steps/05-parse/http.c" region="find_head_end"' \
        '.c include="steps/05-parse/server.c" region="read_head"'
    local out=$BATS_TEST_TMPDIR/out captions
    captions=$(grep -A1 -e '^new' -e '^with its' "$out" | tr '\n' ' ' | tr -s ' ')
    grep -q 'new file steps/05-parse/http.h · steps/05-parse/http.h, lines 1–' <<<"$captions" ||
        { echo "no 'new file' caption for http.h in: $captions" >&2; return 1; }
    grep -q '#ifndef HTTP_H' "$out"
    grep -q 'new, in http.h, after enum {' <<<"$captions" ||
        { echo "no place in http.h for parse_head in: $captions" >&2; return 1; }
    grep -q 'struct rejection parse_head(char \*head, size_t length, struct request \*request);' "$out"
    # The first piece of http.c, though not its top, starts the file.
    grep -q 'new file steps/05-parse/http.c · steps/05-parse/http.c, lines' <<<"$captions"
    # server.c has a step before it: its captions are as they were.
    grep -q 'new, with its banner, between close_connection and' <<<"$captions"
}

@test "a diff of a missing region fails and names it" {
    expect_failure_naming '.diff diff="steps/04-accept/server.c steps/05-parse/server.c" region="no_such_function"' \
        no_such_function
}

@test "a diff of a region that is new everywhere fails and says to include it" {
    expect_failure_naming '.diff diff="steps/04-accept/server.c steps/05-parse/server.c" region="read_head"' \
        'include='
}

@test "the whole step's diff is a command and a page, not a listing" {
    render html '.diff diff="steps/03-listen/server.c steps/04-accept/server.c" show="command"'
    local out=$BATS_TEST_TMPDIR/out
    grep -q 'diff -u steps/03-listen/server.c steps/04-accept/server.c' "$out"
    grep -q 'href="diff-04.html"' "$out"
    if grep -q '<pre' "$out"; then return 1; fi
}

# From step 05 a step is a folder of files: its whole diff is the
# folders', and counts the lines of every file.
@test "the whole step's diff of two folders is diff -ruN, and counts every file" {
    render html '.diff diff="steps/04-accept steps/05-parse" show="command"'
    local out=$BATS_TEST_TMPDIR/out added
    grep -q 'diff -ruN steps/04-accept steps/05-parse' "$out"
    grep -q 'href="diff-05.html"' "$out"
    if grep -q '<pre' "$out"; then return 1; fi
    # More lines added than step 05's http.c and http.h have: those are
    # new, all added, and server.c adds some too.
    added=$(tr '\n' ' ' <"$out" | sed -n 's/.*: \([0-9]*\) lines added.*/\1/p')
    [ -n "$added" ] && [ "$added" -gt "$(cat steps/05-parse/http.[ch] | wc -l)" ] ||
        { echo "lines added: '$added', fewer than http.c and http.h have" >&2; return 1; }
}

@test "the page of a folder diff shows a new file all added, without dates" {
    render plain '.diff diff="steps/04-accept steps/05-parse"'
    local out=$BATS_TEST_TMPDIR/out
    grep -Eq '^ *\+\+\+ steps/05-parse/http\.c$' "$out"
    grep -Eq '^ *\+#ifndef HTTP_H$' "$out"
    grep -Eq '^ *\+\+\+ steps/05-parse/server\.c$' "$out"
}

@test "a diff of a region between two folders fails and says to name the files" {
    expect_failure_naming '.diff diff="steps/04-accept steps/05-parse" region="serve_forever"' \
        'name the two files'
}

# Prints the folder of the step before chapter NUMBER's (/dev/null for
# the first), then its own: steps/04-accept steps/05-parse.
chapter_steps() {
    local before previous=/dev/null
    before=$(tests/steps --previous "$1")
    [ -z "$before" ] || previous=$(tests/steps --folder "$before")
    echo "$previous" "$(tests/steps --folder "$1")"
}

# The chapters numbered like a step that teach no step of their own:
# none today (the benchmark is step 10's chapter). Named here, so that a
# step's chapter with a misspelt name is not skipped unseen.
CHAPTERS_WITHOUT_A_STEP=()

# Prints the chapters that teach a step: book/NN-NAME.md for steps/NN-NAME,
# for each step of steps/list.
step_chapters() {
    local number chapter
    for number in $(tests/steps); do
        chapter=book/$(basename "$(tests/steps --folder "$number")").md
        [ ! -f "$chapter" ] || echo "$chapter"
    done
}

@test "each chapter numbered like a step is named as its step, or is listed as teaching none" {
    local chapter listed other report='' numbers
    numbers=" $(tests/steps) "
    for chapter in book/[0-9][0-9]-*.md; do
        [[ $numbers == *" $(basename "$chapter" | cut -c1-2) "* ]] || continue
        [ -d "steps/$(basename "$chapter" .md)" ] && continue
        listed=0
        for other in "${CHAPTERS_WITHOUT_A_STEP[@]}"; do [ "$other" != "$chapter" ] || listed=1; done
        [ "$listed" -eq 1 ] || report+="    $chapter: no steps/$(basename "$chapter" .md)/"$'\n'
    done
    for chapter in "${CHAPTERS_WITHOUT_A_STEP[@]}"; do
        [ -f "$chapter" ] || report+="    $chapter: listed in CHAPTERS_WITHOUT_A_STEP, but there is no such file"$'\n'
    done
    [ -z "$report" ] || {
        printf 'a chapter numbered like a step is named as its folder in steps/, or listed in CHAPTERS_WITHOUT_A_STEP (tests/book.bats):\n%s' "$report" >&2
        return 1
    }
}

# Every chapter of a step (01 on) teaches its step the way STYLE.md asks: each
# line once (at most 15% of its code lines shown twice), and all of
# them (at least 98% of the lines the step adds, per diff). The numbers
# come from tests/book-lines, which says how it counts.
@test "each chapter shows its step's new lines once, and all of them" {
    local chapter number previous step numbers report=''
    local -i code twice added covered
    local chapters
    mapfile -t chapters < <(step_chapters)
    for chapter in "${chapters[@]}"; do
        pandoc "$chapter" --from markdown --lua-filter book/include.lua \
            --to markdown -o "$BATS_TEST_TMPDIR/$(basename "$chapter")" &
    done
    wait
    for chapter in "${chapters[@]}"; do
        number=$(basename "$chapter" | cut -c1-2)
        read -r previous step < <(chapter_steps "$number")
        numbers=$(tests/book-lines "$BATS_TEST_TMPDIR/$(basename "$chapter")" "$previous" "$step")
        read -r code twice _ added covered _ < <(head -n 1 <<<"$numbers" | sed 's/[a-z_]*=//g')
        if ((twice * 100 > code * 15)); then
            report+="$chapter shows $twice of its $code code lines twice, more than 15%: show a function"
            report+=" that changed as a diff of its region, and each piece once"$'\n'
        fi
        if ((covered * 100 < added * 98)); then
            report+="$chapter shows $covered of the $added lines that $step adds, fewer than 98%;"
            report+=" missing (file in $step:line: text):"$'\n'
            report+=$(grep '^missing: ' <<<"$numbers" | sed 's/^missing: /    /' | head -n 40)$'\n'
        fi
    done
    [ -z "$report" ] || { printf '%s' "$report" >&2; return 1; }
}

# From step 05 on a step is several files: the whole change a chapter
# points to is the two folders', or the reader would miss the new files.
@test "a chapter whose step has several files gives its whole diff as two folders" {
    local chapter number previous step files report=''
    while read -r chapter; do
        number=$(basename "$chapter" | cut -c1-2)
        read -r previous step < <(chapter_steps "$number")
        files=("$step"/*.[ch])
        [ "${#files[@]}" -gt 1 ] || continue
        grep -qF "{.diff diff=\"$previous $step\" show=\"command\"}" "$chapter" ||
            report+="    $chapter: {.diff diff=\"$previous $step\" show=\"command\"}"$'\n'
    done < <(step_chapters)
    [ -z "$report" ] || { printf 'these chapters do not show their whole change as:\n%s' "$report" >&2; return 1; }
}

# A step is a folder: tests/book-lines counts the lines of all its files,
# each against the same file in the step before, and every line of a
# file that step lacks.
@test "book-lines counts a new file's every line as added" {
    local page=$BATS_TEST_TMPDIR/page.md numbers code twice added covered
    printf '```{.c include="steps/05-parse/http.h"}\n```\n' >"$page"
    pandoc "$page" --from markdown --lua-filter book/include.lua --to markdown \
        -o "$BATS_TEST_TMPDIR/expanded.md"
    numbers=$(tests/book-lines "$BATS_TEST_TMPDIR/expanded.md" steps/04-accept steps/05-parse)
    read -r code twice _ added covered _ < <(head -n 1 <<<"$numbers" | sed 's/[a-z_]*=//g')
    local header code_lines
    header=$(grep -cv '^[[:space:]]*$' steps/05-parse/http.h)
    code_lines=$(cat steps/05-parse/http.[ch] | grep -cv '^[[:space:]]*$')
    # http.h is shown whole, and is all that is shown.
    [ "$covered" -eq "$header" ] && [ "$code" -eq "$header" ] && [ "$twice" -eq 0 ] ||
        { echo "http.h has $header lines; book-lines says: $(head -n 1 <<<"$numbers")" >&2; return 1; }
    # http.c and http.h are all added, and server.c adds more.
    [ "$added" -gt "$code_lines" ] ||
        { echo "added=$added, but http.c and http.h alone have $code_lines lines" >&2; return 1; }
    grep -q '^missing: http\.c:[0-9]*: static bool is_decimal' <<<"$numbers"
    grep -q '^missing: server\.c:[0-9]*: ' <<<"$numbers"
}

# Prints every fenced C block that holds code or includes nothing: such a
# block must be empty and say what to include.
hand_typed_c() {
    awk '
        FNR == 1 { fence = 0 }
        /^ *```/ {
            if (!fence) {
                fence = 1; lines = 0; start = FNR; info = $0
                is_c = (info ~ /^ *```+ *c *$/ || info ~ /[{ ]\.c[ }]/)
                next
            }
            if (is_c && (lines > 0 || info !~ /include=/))
                printf "%s:%d: a C block with code typed into the chapter; include it: {.c include=\"steps/...\" region=\"function\"}\n", FILENAME, start
            fence = 0; next
        }
        fence && $0 !~ /^ *$/ { lines++ }
    ' "$@"
}

@test "no C code block in the chapters is typed by hand" {
    run hand_typed_c book/*.md
    [ -z "$output" ] || { echo "$output" >&2; return 1; }
}

@test "a C block typed by hand is caught" {
    local page=$BATS_TEST_TMPDIR/page.md
    printf 'Text.\n\n```c\nint main(void) { return 0; }\n```\n\n```{.c include="x.c"}\n```\n' >"$page"
    run hand_typed_c "$page"
    [[ $output == *"page.md:3:"* ]] || { echo "got: $output" >&2; return 1; }
    [ "$(wc -l <<<"$output")" -eq 1 ]
}

# The scenes the chapters show, in the order they first show them.
scenes_in_chapters() {
    sed -n 's/.*transcript="\([^"]*\)".*/\1/p' book/[0-9][0-9]-*.md book/[a-z]-*.md | awk '!seen[$0]++'
}

@test "the chapters show every scene of book/transcript, in its order" {
    local shown
    shown=$(scenes_in_chapters)
    [ "$shown" = "$(book/transcript --list)" ] || {
        echo "the chapters show these scenes, in this order (left), book/transcript has (right):" >&2
        diff <(echo "$shown") <(book/transcript --list) >&2
        return 1
    }
}

@test "book/transcripts/ holds one transcript per scene, and the tools' versions" {
    diff <({ book/transcript --list | sed 's/$/.txt/'; echo tools.txt; } | sort) \
        <(cd book/transcripts && printf '%s\n' * | sort) >&2
}

@test "every exercise answer in book/answers/ is in the answers appendix" {
    local answers=(book/answers/*.diff) answer missing=0
    [ -e "${answers[0]}" ] || { echo "no answers in book/answers/*.diff" >&2; return 1; }
    for answer in "${answers[@]}"; do
        if ! grep -qF "{.diff include=\"$answer\"}" book/c-answers.md; then
            echo "book/c-answers.md does not show $answer: {.diff include=\"$answer\"}" >&2
            missing=1
        fi
    done
    [ "$missing" -eq 0 ]
}

@test "chapter 05's compiler command is what make -B -n step05 prints" {
    local shown printed
    shown=$(grep -m 1 '^cc .* -o step05 ' book/05-parse.md)
    # With the Makefile's defaults, and a flags stamp of the test's own, so
    # that the build's stamp (build/compiler-flags) is left as it is.
    printed=$(env -u MAKEFLAGS -u MAKELEVEL make -B -n step05 CC=cc CFLAGS='-O2 -g' SANITIZE= LDFLAGS= \
        FLAGS_STAMP="$BATS_TEST_TMPDIR/stamp")
    [ "$shown" = "$printed" ] || {
        echo "expected:  book/05-parse.md to show what make prints" >&2
        echo "but:       the book: $shown" >&2
        echo "           make:     $printed" >&2
        echo "try it:    make -B -n step05" >&2
        return 1
    }
}
