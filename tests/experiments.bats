#!/usr/bin/env bats
# Every experiment the book proposes ("remove this call and see") is a
# patch in book/experiments/, shown in the book, that applies to its step's
# folder and builds under the steps' flags (-Werror: an unused function or
# variable left behind would stop the reader's build).
#
# Run on its own: tests/bats tests/experiments.bats

setup() {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
}

@test "every experiment applies to its step and builds under -Werror" {
    local patch name output failed=0 count=0
    for patch in book/experiments/*.diff; do
        [ -e "$patch" ] || continue
        count=$((count + 1))
        name=$(basename "$patch" .diff)
        # Made again from the patch: the program and its folder of sources.
        rm -rf "build/experiments/$name" "build/experiments/src/$name"
        if ! output=$(make -s "build/experiments/$name" 2>&1); then
            echo "expected:  $patch applies to its step, and the result builds" >&2
            echo "but:       $output" >&2
            echo "try it:    make build/experiments/$name" >&2
            echo "hint:      a patch that no longer applies: the recipe above repairs it; one that" >&2
            echo "           does not build: it must also remove what the change leaves unused" >&2
            failed=1
        fi
    done
    [ "$count" -gt 0 ] || { echo "no experiment in book/experiments/" >&2; return 1; }
    [ "$failed" -eq 0 ]
}

@test "the book shows every experiment" {
    local patch missing=0
    for patch in book/experiments/*.diff; do
        grep -qF "include=\"$patch\"" book/*.md || {
            echo "no chapter shows $patch: {.diff include=\"$patch\"}" >&2
            missing=1
        }
    done
    [ "$missing" -eq 0 ]
}
