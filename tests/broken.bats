#!/usr/bin/env bats
# Every failure explains itself: servers broken in the ways a
# participant most often breaks them (tests/broken/*.patch, each against
# the folder of the step it breaks, as tests/make-patch writes it: the same
# bug wherever its code lives, server.c or http.c) fail the steps' tests,
# and every failing test prints expected / but / try it / hint, with the
# signal when the server crashed.
#
# Run on its own: tests/bats tests/broken.bats   (make test runs it)

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# Builds the broken server NAME: its step's folder, patched, into
# build/broken/src/NAME/, then build/broken/NAME from all its .c files;
# prints its step.
build_broken() {
    local patch=$top/tests/broken/$1.patch dir=$top/build/broken folder step
    # The patch's first file names the step's folder: "--- steps/05-parse/http.c".
    folder=$(sed -n '1s|^--- \([^[:space:]]*\)/[^/[:space:]]*.*|\1|p' "$patch")
    if [ -z "$folder" ] || [ ! -d "$top/$folder" ]; then
        echo "tests/broken/$1.patch names no step's folder: '$folder'" >&2
        return 1
    fi
    step=$(basename "$folder" | cut -c1-2)
    mkdir -p "$dir"
    # Made again only when the patch or a file of its step changed since.
    if [ ! "$dir/$1" -nt "$patch" ] || [ -n "$(find "$top/$folder" -name '*.[ch]' -newer "$dir/$1")" ]; then
        rm -f "$dir/$1"
        "$top/tests/apply-patch" "$top/$folder" "$patch" "$dir/src/$1" >&2 || return 1
        ${CC:-cc} -std=c17 -O0 -g -w -o "$dir/$1" "$dir/src/$1"/*.c >&2 || return 1
    fi
    echo "$step"
}

# Runs the tests of the broken server's step whose names match FILTER (a
# regular expression without spaces), with a short wait; the TAP output
# goes to $BATS_TEST_TMPDIR/tap.
#   run_broken NAME FILTER
run_broken() {
    local step
    step=$(build_broken "$1") || return 1
    WAIT_SECONDS=2 ALL=1 BATS_FLAGS="--tap --filter $2" "$top/tests/check" "$step" "$top/build/broken/$1" \
        >"$BATS_TEST_TMPDIR/tap" 2>&1 3>&- || true
}

# Fails unless the TAP output has a failing test, and unless every failing
# test printed each of the four lines (and PATTERN, if given).
#   every_failure_explained [PATTERN]
every_failure_explained() {
    local tap=$BATS_TEST_TMPDIR/tap unexplained
    grep -q '^not ok ' "$tap" || {
        echo "the broken server passed every test it ran:" >&2
        cat "$tap" >&2
        return 1
    }
    unexplained=$(awk -v extra="${1:-}" '
        function check() {
            if (name == "") return
            missing = ""
            if (text !~ /\n# expected:  /) missing = missing " expected"
            if (text !~ /\n# but:       /) missing = missing " but"
            if (text !~ /\n# try it:    /) missing = missing " try-it"
            if (text !~ /\n# hint:      book\/[0-9a-z-]+\.md, section /) missing = missing " hint"
            if (extra != "" && text !~ extra) missing = missing " \"" extra "\""
            if (missing != "") print name ": no" missing
        }
        /^(ok|not ok) / { check(); name = ""; text = "" }
        /^not ok / { name = $0 }
        { text = text "\n" $0 }
        END { check() }' "$tap")
    [ -z "$unexplained" ] || {
        printf 'these failures do not explain themselves:\n%s\n\nthe whole output:\n' "$unexplained" >&2
        cat "$tap" >&2
        return 1
    }
    every_try_has_a_time_limit
}

# Fails unless every "try it" command gives its clients and its server a
# time limit: curl -m, nc -w (or timeout for nc -l), timeout for a server.
every_try_has_a_time_limit() {
    local line unlimited=''
    while IFS= read -r line; do
        line=${line#"# try it:    "}
        [[ $line != *"curl "* || $line == *"curl -m "* ]] || unlimited+="$line"$'\n'
        [[ $line != *" nc "* || $line =~ (nc\ -w\ [0-9]|timeout\ [0-9]+\ nc\ -l) ]] || unlimited+="$line"$'\n'
        [[ $line != *build/broken/* || $line == *"timeout 10 "*build/broken/* || $line == tests/check* ]] ||
            unlimited+="$line"$'\n'
    done < <(grep '^# try it:' "$BATS_TEST_TMPDIR/tap")
    [ -z "$unlimited" ] || {
        printf 'these "try it" commands could wait for ever:\n%s' "$unlimited" >&2
        return 1
    }
}

@test "no close: step 04's tests explain a server that never closes a connection" {
    run_broken no-close 'hangs.up|no.descriptor.leaks'
    every_failure_explained
}

@test "one read for the whole request: step 05's tests explain it" {
    run_broken one-read 'byte.by.byte|request.line.it.parsed'
    every_failure_explained
    grep -q 'it closed the connection after about' "$BATS_TEST_TMPDIR/tap"
}

@test "a crash on a long header: step 05's tests name the signal" {
    run_broken crash-on-long-header 'malformed.field.line|prints.the.header.fields'
    every_failure_explained
    grep -q '^# but: *the server was killed by SIGSEGV' "$BATS_TEST_TMPDIR/tap" || {
        echo "no 'the server was killed by SIGSEGV' in:" >&2
        cat "$BATS_TEST_TMPDIR/tap" >&2
        return 1
    }
}

@test "an answer before the head ends: steps 05's and 06's tests explain it" {
    run_broken answer-before-head-ends 'waits.for.a.head|GET./.answers.200'
    every_failure_explained
    [ "$(grep -c '^not ok ' "$BATS_TEST_TMPDIR/tap")" -eq 2 ]
}

@test "a wrong status: step 06's tests explain it" {
    run_broken wrong-status 'any.other.path.is.404'
    every_failure_explained '404 for /'
}

@test "a body taken on Content-Length's word, with one read: step 05's tests explain it" {
    run_broken body-read-once 'body.until.it.has.all'
    every_failure_explained "closed before the end of the request"
}

@test "field values not trimmed: step 05's tests explain it" {
    run_broken no-trim 'header.fields.it.parsed'
    every_failure_explained "without the spaces and tab around the value"
}

@test "a head whose lines end in LF alone: step 06's tests say CR LF first" {
    run_broken lf-head 'GET./.answers.200'
    every_failure_explained "every line of the response's head to end in CR LF"
}

@test "a plain close with bytes left unread: step 06's trace shows it" {
    run_broken plain-close 'shuts.down.its.side'
    every_failure_explained "SHUT_WR., then close"
}

@test "a loop that asks for EPOLLOUT with nothing to write: step 09's tests say it spins" {
    run_broken spin-on-epollout 'does.not.spin'
    every_failure_explained "it spins"
}

@test "a server that accepts and never answers: tests/check stops early, and says it hung" {
    local step
    step=$(build_broken never-answers) || return 1
    SECONDS=0
    # Three of step 09's tests: the third is skipped after the first two hang.
    WAIT_SECONDS=2 BATS_FLAGS="--filter one.process|does.not.spin|never.reads" \
        "$top/tests/check" "$step" "$top/build/broken/never-answers" >"$BATS_TEST_TMPDIR/tap" 2>&1 3>&- || true
    local took=$SECONDS
    grep -q '^It hung: ' "$BATS_TEST_TMPDIR/tap" && grep -q ' # skip the server hung in 2 tests in a row' "$BATS_TEST_TMPDIR/tap" && grep -q '^Not run, after the first file that failed: 01-socket ' "$BATS_TEST_TMPDIR/tap" || {
        echo "expected the verdict 'It hung:', the rest of step $step's tests skipped, and the earlier steps' files not run; tests/check printed:" >&2
        cat "$BATS_TEST_TMPDIR/tap" >&2
        return 1
    }
    ((took < 120)) || {
        echo "expected tests/check to end within 2 minutes; it took $took s" >&2
        return 1
    }
}

@test "a command that fails outside fail_because still explains itself" {
    local file=$BATS_TEST_TMPDIR/unexplained.bats at=@ # (bats would take "@test" here for a test)
    cat >"$file" <<EOF
load '$top/tests/helpers'
${at}test "a test that trips on its own command" {
    start_server listening 0
    raw_request 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >/dev/null
    false
}
EOF
    SERVER=$top/step05 SERVER_NAME=./step05 STEP=05 "$top/tests/bats" --tap "$file" \
        >"$BATS_TEST_TMPDIR/tap" 2>&1 3>&- || true
    grep -q "^# hint:      book/unexplained.md" "$BATS_TEST_TMPDIR/tap" # no such chapter: it is a test
    sed -i 's|book/unexplained.md|book/05-parse.md|' "$BATS_TEST_TMPDIR/tap"
    every_failure_explained "printf 'GET / HTTP/1.1"
}
