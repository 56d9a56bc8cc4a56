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

# Runs the filter over one markdown file, without the servers.
expand() {
    BOOK_NO_TRANSCRIPTS=1 pandoc "$1" --from markdown --lua-filter book/include.lua \
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

@test "a region is a whole function, from its comment to its closing brace" {
    local page=$BATS_TEST_TMPDIR/page.md out=$BATS_TEST_TMPDIR/out.txt
    printf '```{.c include="steps/04-accept/server.c" region="close_connection"}\n```\n' >"$page"
    BOOK_NO_TRANSCRIPTS=1 pandoc "$page" --lua-filter book/include.lua --to plain -o "$out"
    grep -q '/\* close(2) frees the descriptor' "$out"
    grep -q 'static void close_connection(int fd)' "$out"
    tail -n 1 "$out" | grep -q '^ *}$'
    if grep -q 'serve_forever' "$out"; then return 1; fi
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

@test "every transcript a chapter names is a scene of book/transcript" {
    local scenes missing=0 scene count=0
    scenes=$(book/transcript --list)
    while read -r scene; do
        count=$((count + 1))
        if ! grep -qx "$scene" <<<"$scenes"; then
            echo "no scene '$scene' in book/transcript" >&2
            missing=1
        fi
    done < <(sed -n 's/.*transcript="\([^"]*\)".*/\1/p' book/*.md | sort -u)
    [ "$count" -gt 0 ] || { echo "no chapter names a transcript: has their form changed?" >&2; return 1; }
    [ "$missing" -eq 0 ]
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
