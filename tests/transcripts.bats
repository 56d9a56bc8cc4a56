#!/usr/bin/env bats
# The book's transcripts (book/transcripts/) are what the servers print
# now: every scene of book/transcript is played again, side by side
# (about 10 s: a 408 takes 5), and compared with the kept one. After a
# change to a server, `make transcripts` keeps the new ones, and
# `git diff book/transcripts` shows what changed in the book.
#
# Run on its own: make all && tests/bats tests/transcripts.bats

@test "the book's transcripts are what the servers print now" {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
    local now=$BATS_TEST_TMPDIR/now difference
    # Servers built with sanitizers (make test SANITIZE=1) print and close
    # more than the book's: the transcripts are of the plain build.
    if grep -q fsanitize build/compiler-flags 2>/dev/null; then
        skip "the steps are built with sanitizers (SANITIZE=1): the transcripts are of the plain build"
    fi
    # Another curl, strace or C library prints other lines: compare only
    # where the tools are those that made the transcripts (as in CI).
    if ! difference=$(diff book/transcripts/tools.txt <(book/transcript --tools)); then
        skip "the transcripts were made with other versions of curl, strace, ...: $(tr '\n' ' ' <<<"$difference")"
    fi
    local status=0
    book/transcript --all "$now" 2>"$BATS_TEST_TMPDIR/errors" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "expected:  every scene of book/transcript plays" >&2
        echo "but:       it exited with status $status: $(cat "$BATS_TEST_TMPDIR/errors")" >&2
        echo "try it:    make all && book/transcript SCENE" >&2
        return 1
    fi
    # The scenes play side by side, while make test runs other suites:
    # on a loaded machine, a scene that times something (step 07 waits
    # 2 s for an idle client) can take a second longer. A scene that
    # differs plays again, alone, once; it must match then.
    local scene replayed=()
    for scene in $(diff -rq book/transcripts "$now" | sed -n 's|^Files book/transcripts/\(.*\)\.txt and .* differ$|\1|p'); do
        book/transcript "$scene" >"$now/$scene.txt" 2>>"$BATS_TEST_TMPDIR/errors" || true
        replayed+=("$scene")
    done
    if ! difference=$(diff -ru book/transcripts "$now"); then
        echo "expected:  book/transcripts/ as the servers print it now" >&2
        [ "${#replayed[@]}" -eq 0 ] ||
            echo "           (played again alone, and still different: ${replayed[*]})" >&2
        echo "but:       the servers print (+) instead of (-):" >&2
        echo "$difference" >&2
        echo "try it:    make transcripts && git diff book/transcripts" >&2
        echo "hint:      if the change is meant, keep it with make transcripts, and read the" >&2
        echo "           chapter's sentences around each changed transcript: do they still hold?" >&2
        return 1
    fi
}
