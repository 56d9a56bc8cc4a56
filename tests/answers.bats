#!/usr/bin/env bats
# The exercises' answers, stored as patches against their steps' folders
# (book/answers/NAME.diff), made by `make answers` into
# build/answers/src/NAME/ and built from its .c files into
# build/answers/NAME: each does what its exercise asks, and still passes
# the tests of its step and of the steps before it.
#
#   make test-answers            (or: tests/bats tests/answers.bats)
#
# ANSWERS_DIR names the binaries' folder (default build/answers). To see
# that the exercises' tests fail without the exercise, tests/answers
# points it at the plain steps, under the answers' names, and skips the
# steps' own tests with ANSWERS_SKIP_STEP_TESTS=1.

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
ANSWERS_DIR=${ANSWERS_DIR:-$top/build/answers}
ANSWERS=()
for answer in "$top"/book/answers/*.diff; do
    answer=${answer%.diff}
    ANSWERS+=("${answer##*/}")
done
# helpers.bash needs a SERVER when it loads; each test picks its own.
SERVER=${SERVER:-$ANSWERS_DIR/${ANSWERS[0]}}
load helpers

# Each answer against its step's tests: they take a while (they wait for
# timeouts), so they all start now, side by side, and the last tests
# below collect the results. 3>&- keeps bats's own output descriptor out
# of them, so that bats does not wait for them to close it.
setup_file() {
    [ "${ANSWERS_SKIP_STEP_TESTS:-}" != 1 ] || return 0
    local name
    for name in "${ANSWERS[@]}"; do
        (
            status=0
            BATS_FLAGS=--tap "$top/tests/check" "${name:0:2}" "$ANSWERS_DIR/$name" \
                >"$BATS_FILE_TMPDIR/$name.tap" 2>&1 || status=$?
            echo "$status" >"$BATS_FILE_TMPDIR/$name.status"
        ) 3>&- </dev/null &
    done
}

teardown_file() {
    wait
}

# Runs the tests as the answer NAME.
use_answer() {
    SERVER=$ANSWERS_DIR/$1
    SERVER_NAME=build/answers/$1
    [ -x "$SERVER" ] || fail_because "a program at $SERVER" "there is none" "make answers"
}

# bats test_tags=exercise
@test "01-socket-ipv6: creates an IPv6 socket too, and prints both descriptors" {
    use_answer 01-socket-ipv6
    start_traced_server socket socket
    local ipv4 ipv6
    ipv4=$(sed -n 's/^created socket fd \([0-9][0-9]*\) .*/\1/p' "$LOG" | head -n 1)
    ipv6=$(wait_for_log '^created IPv6 socket fd [0-9]+ in process [0-9]+$' |
        sed 's/.* fd \([0-9]*\) .*/\1/') || true
    [ -n "$ipv6" ] ||
        fail_because "a second line 'created IPv6 socket fd N in process PID'" \
            "$(grep -c created "$LOG") 'created' line(s)" "$SERVER_NAME" \
            "book/01-socket.md, section 'Exercises'"
    [ "$ipv6" != "$ipv4" ] ||
        fail_because "the IPv6 socket on a descriptor of its own, not $ipv4" "both on fd $ipv4" \
            "$SERVER_NAME" "book/01-socket.md, section 'Exercises'"
    grep -Eq "socket\(AF_INET6, SOCK_STREAM\|SOCK_CLOEXEC, [A-Z_]+\) = $ipv6\$" "$TRACE" ||
        fail_because "socket(AF_INET6, SOCK_STREAM|SOCK_CLOEXEC, 0) = $ipv6 in the trace" \
            "$(grep socket "$TRACE")" "strace -e trace=socket $SERVER_NAME"
    [[ $(readlink "/proc/$SERVER_PID/fd/$ipv6") == socket:* ]] ||
        fail_because "/proc/$SERVER_PID/fd/$ipv6 to be a socket" \
            "$(readlink "/proc/$SERVER_PID/fd/$ipv6" || echo 'no such descriptor')" \
            "$SERVER_NAME & ls -l /proc/\$!/fd"
}

# bats test_tags=exercise
@test "03-listen-ipv6: listens on [::1] too, on the port the IPv4 socket got" {
    use_answer 03-listen-ipv6
    start_server listening 0
    local line
    line=$(wait_for_log '^listening on http://\[::1\]:[0-9]+/$') || true
    [ "$line" = "listening on http://[::1]:$PORT/" ] ||
        fail_because "a line 'listening on http://[::1]:$PORT/', the IPv4 socket's port" \
            "${line:-no such line}" "$SERVER_NAME 0" "book/03-listen.md, section 'Exercises'"
    ss -ltnH "sport = :$PORT" | grep -q "\[::1\]:$PORT" ||
        fail_because "'ss -ltn' to list [::1]:$PORT in state LISTEN" "$(ss -ltnH "sport = :$PORT")" \
            "$SERVER_NAME 8080 & ss -ltn"
    nc -z -w "$WAIT_SECONDS" ::1 "$PORT" ||
        fail_because "a connection to [::1]:$PORT to succeed" "it failed" \
            "$SERVER_NAME 8080 & nc -v -z ::1 8080"
}

# bats test_tags=exercise
@test "03-listen-ipv6: the IPv6 socket is IPv6 only (IPV6_V6ONLY, strace)" {
    use_answer 03-listen-ipv6
    start_traced_server setsockopt listening 0
    grep -Eq 'setsockopt\([0-9]+, SOL_IPV6, IPV6_V6ONLY, \[1\], 4\) = 0' "$TRACE" ||
        fail_because "setsockopt(fd, SOL_IPV6, IPV6_V6ONLY, [1], 4) = 0 in the trace" \
            "$(grep setsockopt "$TRACE")" "strace -e trace=setsockopt $SERVER_NAME 0" \
            "ipv6(7), IPV6_V6ONLY"
}

# bats test_tags=exercise
@test "04-count-connections: numbers the connections from 1" {
    use_answer 04-count-connections
    start_server listening 0
    local count=$((3 + RANDOM % 5)) i fd line
    for ((i = 1; i <= count; i++)); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        exec {fd}>&-
    done
    wait_for_count '^accepted ' "$count" >/dev/null || true
    for ((i = 1; i <= count; i++)); do
        line=$(grep '^accepted ' "$LOG" | sed -n "${i}p")
        [[ $line =~ ^accepted\ 127\.0\.0\.1:[0-9]+\ on\ fd\ [0-9]+\ \(connection\ \#$i\)$ ]] ||
            fail_because "line $i of $count: 'accepted 127.0.0.1:PORT on fd N (connection #$i)'" \
                "'${line:-no such line}'" \
                "$SERVER_NAME 8080 & for i in 1 2 3; do nc -z 127.0.0.1 8080; done" \
                "book/04-accept.md, section 'Exercises'"
    done
}

# bats test_tags=exercise
@test "05-split-query: prints the path and the query of the target" {
    use_answer 05-split-query
    start_server listening 0
    local path query
    path=/$(random_word)/$(random_word)
    query="q=$(random_word)&n=$RANDOM"
    raw_request "GET $path?$query HTTP/1.1\r\nHost: x\r\n\r\n" >/dev/null
    wait_for_log '^body: ' >/dev/null || true
    local try
    try=$(raw_command "GET $path?$query HTTP/1.1\r\nHost: x\r\n\r\n")
    grep -qxF "path: $path" "$LOG" ||
        fail_because "a line 'path: $path'" "$(grep -E '^(request|path|query):' "$LOG" || echo 'neither')" \
            "$try" "book/05-parse.md, section 'Exercises'"
    grep -qxF "query: $query" "$LOG" ||
        fail_because "a line 'query: $query'" "$(grep -E '^(request|path|query):' "$LOG" || echo 'neither')" \
            "$try" "book/05-parse.md, section 'Exercises'"
}

# bats test_tags=exercise
@test "05-split-query: no '?' is no query; the query runs from the first '?'" {
    use_answer 05-split-query
    start_server listening 0
    local path
    path=/$(random_word)
    raw_request "GET $path HTTP/1.1\r\nHost: x\r\n\r\n" >/dev/null
    wait_for_log '^body: ' >/dev/null || true
    grep -qxF "path: $path" "$LOG" ||
        fail_because "'path: $path' for the target '$path'" "$(grep -E '^(path|query):' "$LOG" || echo 'neither')" \
            "$(raw_command "GET $path HTTP/1.1\r\nHost: x\r\n\r\n")" "book/05-parse.md, section 'Exercises'"
    ! grep -q '^query:' "$LOG" ||
        fail_because "no query line for the target '$path', which has no '?'" "$(grep '^query:' "$LOG")" \
            "$(raw_command "GET $path HTTP/1.1\r\nHost: x\r\n\r\n")" "book/05-parse.md, section 'Exercises'"
    raw_request "GET $path?a?b HTTP/1.1\r\nHost: x\r\n\r\n" >/dev/null
    wait_for_count '^body: ' 2 >/dev/null || true
    grep -qxF 'query: a?b' "$LOG" ||
        fail_because "'query: a?b' for the target '$path?a?b'" \
            "$(grep -E '^(path|query):' "$LOG" | tail -n 2)" \
            "$(raw_command "GET $path?a?b HTTP/1.1\r\nHost: x\r\n\r\n")"
}

# bats test_tags=exercise
@test "06-second-path: GET /about is a second page; HEAD, and other paths still 404" {
    use_answer 06-second-path
    start_server listening 0
    local status size
    status=$(fetch "http://127.0.0.1:$PORT/about")
    size=$(wc -c <"$BATS_TEST_TMPDIR/body")
    local try="curl -i http://127.0.0.1:8080/about" hint="book/06-respond.md, section 'Exercises'"
    [ "$status" = 200 ] || fail_because "200 for GET /about" "$status: $(curl_said)" "$try" "$hint"
    grep -qi about "$BATS_TEST_TMPDIR/body" ||
        fail_because "a page that says 'about'" "'$(head -c 80 "$BATS_TEST_TMPDIR/body")'" "$try" "$hint"
    [ "$(field Content-Type)" = 'text/html; charset=utf-8' ] ||
        fail_because "Content-Type: text/html; charset=utf-8" "'$(field Content-Type)'" "$try" "$hint"
    [ "$(field Content-Length)" = "$size" ] ||
        fail_because "Content-Length: $size, the page's size" "'$(field Content-Length)'" "$try" "$hint"
    local head=$BATS_TEST_TMPDIR/head-only
    raw_request 'HEAD /about HTTP/1.1\r\nHost: x\r\n\r\n' >"$head"
    try="curl -I http://127.0.0.1:8080/about"
    grep -q '^HTTP/1.1 200 ' "$head" ||
        fail_because "200 for HEAD /about" "$(head -n 1 "$head" | grep . || echo 'no response')" "$try" "$hint"
    grep -q "^Content-Length: $size"$'\r$' "$head" ||
        fail_because "Content-Length: $size for HEAD /about, as for GET" \
            "$(grep -a Content-Length "$head" || echo 'no Content-Length')" "$try" "$hint"
    [ "$(tail -c 4 "$head" | od -An -c | tr -d ' ')" = '\r\n\r\n' ] ||
        fail_because "the head to end with its empty line, and no body after it" \
            "it ends with: $(tail -c 40 "$head" | od -An -c | tr -s ' \n' ' ')" "$try" "$hint"
    local path
    for path in /about/ "/about$(random_word)" "/$(random_word)"; do
        status=$(fetch "http://127.0.0.1:$PORT$path")
        [ "$status" = 404 ] ||
            fail_because "404 for $path" "$status: $(curl_said)" "curl -i http://127.0.0.1:8080$path" "$hint"
    done
}

# bats test_tags=exercise
@test "06-echo-body: POST /echo answers with the body, byte for byte, as text/plain" {
    use_answer 06-echo-body
    start_server listening 0
    local size status
    for size in 0 $((1 + RANDOM * 2 % 65536)) 65536; do # 65536 is BODY_MAX
        { printf 'a\0b'; head -c "$size" /dev/urandom; } | head -c "$size" >"$BATS_TEST_TMPDIR/upload"
        status=$(fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/echo")
        local try="head -c $size /dev/urandom | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/echo"
        local hint="book/06-respond.md, section 'Exercises'"
        [ "$status" = 200 ] || fail_because "200 for a POST /echo of $size bytes" "$status: $(curl_said)" "$try" "$hint"
        cmp -s "$BATS_TEST_TMPDIR/upload" "$BATS_TEST_TMPDIR/body" ||
            fail_because "the $size bytes sent, byte for byte" "$(wc -c <"$BATS_TEST_TMPDIR/body") bytes: $(cmp "$BATS_TEST_TMPDIR/upload" "$BATS_TEST_TMPDIR/body" 2>&1 | head -n 1)" \
                "$try" "$hint"
        [[ $(field Content-Type) == text/plain* ]] ||
            fail_because "Content-Type: text/plain" "'$(field Content-Type)'" "$try" "$hint"
        [ "$(field Content-Length)" = "$size" ] ||
            fail_because "Content-Length: $size" "'$(field Content-Length)'" "$try" "$hint"
    done
}

# Sends a printf format over one connection, in one write, and prints what
# comes back until the server closes, without CRs, for WAIT_SECONDS at most.
converse() {
    local fd
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >"$BATS_TEST_TMPDIR/request"
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    { cat "$BATS_TEST_TMPDIR/request" >&"$fd"; } 2>/dev/null || true
    timeout "$WAIT_SECONDS" cat <&"$fd" 2>/dev/null | tr -d '\r' || true
    exec {fd}>&-
}

# bats test_tags=exercise
@test "07-keep-alive-field: each response that keeps the connection says Keep-Alive: timeout and max" {
    use_answer 07-keep-alive-field
    start_server listening 0
    local request='GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    local fields
    fields=$(converse "$request" | awk '/^HTTP\/1\.1 / { if (n++) print k; k = "-" } /^Keep-Alive:/ { k = $0 } END { print k }' |
        paste -sd '|' -)
    local try hint="book/07-keepalive.md, section 'Exercises'"
    try=$(raw_command "$request")
    [[ $fields =~ ^Keep-Alive:\ timeout=[0-9]+,\ max=([0-9]+)\|Keep-Alive:\ timeout=[0-9]+,\ max=([0-9]+)\|-$ ]] ||
        fail_because "Keep-Alive: timeout=2, max=N on the first two responses, none on the last (it closes)" \
            "'$fields'" "$try" "$hint"
    [ "${BASH_REMATCH[2]}" -eq "$((BASH_REMATCH[1] - 1))" ] ||
        fail_because "max=N on the first response, max=N-1 on the second: one request fewer left" \
            "'$fields'" "$try" "$hint"
}

# bats test_tags=exercise
@test "07-more-follows: responses to pipelined requests go with MSG_MORE, all but the last" {
    use_answer 07-more-follows
    start_traced_server sendto,write listening 0
    local request='GET / HTTP/1.1\r\nHost: x\r\n\r\nGET /x HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    local statuses sends more
    statuses=$(converse "$request" | sed -n 's/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' | paste -sd ' ' -)
    wait_for_log '^127\.0\.0\.1:[0-9]+ GET / 200' >/dev/null || true
    sends=$(grep -Ec '^[0-9]+ +(sendto|write)\([0-9]+, "HTTP/1\.1 ' "$TRACE" || true)
    more=$(grep -Ec '^[0-9]+ +sendto\([0-9]+, "HTTP/1\.1 .*MSG_MORE' "$TRACE" || true)
    local said try hint="book/07-keepalive.md, section 'Exercises'"
    said="answers '$statuses'; $sends sends, $more with MSG_MORE: $(grep -E 'sendto|write\([0-9]+, "HTTP' "$TRACE" | cut -c1-90 | tr '\n' '|')"
    try="strace -f -e trace=sendto,write $SERVER_NAME 8080 & $(raw_command "$request")"
    [ "$statuses" = '200 404 200' ] ||
        fail_because "three answers, 200 404 200" "$said" "$try" "$hint"
    [ "$sends" -eq 3 ] ||
        fail_because "three sends, one per response" "$said" "$try" "$hint"
    [ "$more" -eq 2 ] ||
        fail_because "two sends with MSG_MORE: every response but the last" "$said" "$try" "$hint"
}

# bats test_tags=exercise
@test "08-count-children: each new child's line says how many are alive, of how many" {
    use_answer 08-count-children
    start_server listening 0
    local fds=() fd i line
    for i in 1 2 3; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        fds+=("$fd")
    done
    line=$(wait_for_count '^child [0-9]+ serves ' 3) || true
    for fd in "${fds[@]}"; do
        exec {fd}>&-
    done
    [[ $line =~ \(3\ of\ [0-9]+\)$ ]] ||
        fail_because "a third line like 'child 4245 serves 127.0.0.1:41006 (3 of 32)', with three idle clients" \
            "'${line:-no third child line}'" \
            "$(by_hand "exec 3<>/dev/tcp/127.0.0.1/8080 4<>/dev/tcp/127.0.0.1/8080 5<>/dev/tcp/127.0.0.1/8080")" \
            "book/08-fork.md, section 'Exercises'"
}

# bats test_tags=exercise
@test "08-cpu-time: each reaped child's line says how much processor time it used" {
    use_answer 08-cpu-time
    start_server listening 0
    curl -s -m "$WAIT_SECONDS" -o /dev/null -H 'Connection: close' "http://127.0.0.1:$PORT/" || true
    local line
    line=$(wait_for_log '^child [0-9]+ (exited|killed)') || true
    [[ $line =~ ^child\ [0-9]+\ exited\ with\ 0,\ [0-9]+\.[0-9]{3}\ ms\ of\ CPU$ ]] ||
        fail_because "a line like 'child 4243 exited with 0, 0.412 ms of CPU'" "'${line:-none}'" \
            "$(by_hand "curl http://127.0.0.1:8080/")" "book/08-fork.md, section 'Exercises'"
}

# Lowers the descriptor limit of the running server PID so that it can
# open N more descriptors, the lowest numbers that are free, and no more
# (prlimit(1): its accept4 then fails with EMFILE).
#   limit_descriptors PID N
limit_descriptors() {
    local pid=$1 left=$2 fd=0
    while :; do
        if [ ! -e "/proc/$pid/fd/$fd" ]; then
            left=$((left - 1))
            [ "$left" -gt 0 ] || break
        fi
        fd=$((fd + 1))
    done
    prlimit --pid "$pid" --nofile=$((fd + 1)):$((fd + 1))
}

# bats test_tags=exercise
@test "10-accepting-again: says when it watches the listener again, and how many connections are open" {
    use_answer 10-accepting-again
    start_server listening 0
    limit_descriptors "$SERVER_PID" 1
    local fds=() fd line
    for _ in 1 2; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        fds+=("$fd")
    done
    wait_for_log '^accept4: Too many open files' >/dev/null || true
    for fd in "${fds[@]}"; do
        exec {fd}>&-
    done
    line=$(wait_for_log '^accepting again') || true
    [[ $line =~ ^accepting\ again:\ [0-9]+\ of\ [0-9]+\ connections\ open$ ]] ||
        fail_because "a line like 'accepting again: 1 of 16384 connections open' once accept4 failed" \
            "'${line:-no such line}'; the log: $(grep -c 'Too many open files' "$LOG") accept4 failures" \
            "$SERVER_NAME 8080 & sleep 0.5; prlimit --pid \$! --nofile=7:7; exec 3<>/dev/tcp/127.0.0.1/8080 4<>/dev/tcp/127.0.0.1/8080" \
            "book/10-tuned.md, section 'Exercises'"
}

# bats test_tags=exercise
@test "10-idle-first: out of descriptors, a new client is served at once, in place of an idle connection" {
    use_answer 10-idle-first
    start_server listening 0
    limit_descriptors "$SERVER_PID" 2
    local fds=() fd i said
    for i in 1 2; do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        fds+=("$fd")
        printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
        wait_for_count ' GET / 200 ' "$i" >/dev/null || true
    done
    # The two connections are idle, for 2 seconds: a new client must not wait for that.
    said=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/") || true
    for fd in "${fds[@]}"; do
        exec {fd}>&-
    done
    [ "$said" = 200 ] ||
        fail_because "200 within 1 s for curl, while two idle connections hold the last descriptors" \
            "'${said:-nothing}' (000: no answer within 1 s)" \
            "$SERVER_NAME 8080 & sleep 0.5; prlimit --pid \$! --nofile=7:7; (two clients that ask for / and stay); curl -m 1 http://127.0.0.1:8080/" \
            "book/10-tuned.md, section 'Exercises'"
    wait_for_log '^closed: idle, to make room$' >/dev/null ||
        fail_because "a line 'closed: idle, to make room'" "$(grep -c '^closed' "$LOG") 'closed' line(s)" \
            "the same" "book/10-tuned.md, section 'Exercises'"
}

# A ROOT of one file, style.css, for the answers of step 11.
start_file_server() {
    mkdir -p "$BATS_TEST_TMPDIR/root"
    printf 'h1 { color: teal; }\n' >"$BATS_TEST_TMPDIR/root/style.css"
    start_server listening 0 127.0.0.1 "$BATS_TEST_TMPDIR/root"
}

# bats test_tags=exercise
@test "11-nosniff: every file comes with X-Content-Type-Options: nosniff" {
    use_answer 11-nosniff
    start_file_server
    local head
    head=$(curl -sI -m "$WAIT_SECONDS" "http://127.0.0.1:$PORT/style.css" | tr -d '\r') || true
    grep -qx 'X-Content-Type-Options: nosniff' <<<"$head" ||
        fail_because "a field 'X-Content-Type-Options: nosniff' in the head of a file" "${head:-no head}" \
            "$(by_hand "curl -I http://127.0.0.1:8080/style.css")" "book/11-files.md, section 'Exercises'"
}

# bats test_tags=exercise
@test "11-etag: a file has an ETag, and If-None-Match with it gets 304; with another, the file" {
    use_answer 11-etag
    start_file_server
    local url="http://127.0.0.1:$PORT/style.css" etag same other
    etag=$(curl -sI -m "$WAIT_SECONDS" "$url" | tr -d '\r' | sed -n 's/^ETag: //p') || true
    [[ $etag =~ ^\"[^\"]+\"$ ]] ||
        fail_because "an ETag field, such as ETag: \"15-17a3c2f0b8e1c4d0\"" "'${etag:-none}'" \
            "$(by_hand "curl -I http://127.0.0.1:8080/style.css")" "book/11-files.md, section 'Exercises'"
    same=$(curl -s -o /dev/null -w '%{http_code}' -m "$WAIT_SECONDS" -H "If-None-Match: \"x\", W/$etag" "$url") || true
    other=$(curl -s -o /dev/null -w '%{http_code}' -m "$WAIT_SECONDS" -H 'If-None-Match: "x"' \
        -H 'If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT' "$url") || true
    [ "$same $other" = "304 200" ] ||
        fail_because "304 for If-None-Match: \"x\", W/$etag; 200 for If-None-Match: \"x\" (and an If-Modified-Since that it overrides)" \
            "$same and $other" "$(by_hand "curl -i -H 'If-None-Match: $etag' http://127.0.0.1:8080/style.css")" \
            "book/11-files.md, section 'Exercises'"
}

# A ROOT for step 12's answers, with a file of SIZE zeros, big.bin.
#   make_answer_root SIZE
make_answer_root() {
    ROOT=$BATS_TEST_TMPDIR/root
    mkdir -p "$ROOT"
    echo '<h1>hello</h1>' >"$ROOT/index.html"
    head -c "$1" /dev/zero >"$ROOT/big.bin"
}

# Waits until the server has ended, for SECONDS at most; then
# server_ended says how ("the server exited with status 1"). (Not in a
# $(...) subshell: only the test's own shell can wait(2) for the server.)
#   wait_for_end SECONDS
wait_for_end() {
    local deadline=$((SECONDS + $1 + 1))
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$(process_state "$SERVER_PID")" != Z ] &&
        ((SECONDS < deadline)); do
        sleep 0.02
    done
    server_ended >/dev/null
}

# bats test_tags=exercise
@test "12-sender: says which process sent the signal" {
    use_answer 12-sender
    make_answer_root 0
    start_server listening 0 127.0.0.1 "$ROOT"
    kill -TERM "$SERVER_PID"
    local line
    line=$(wait_for_log '^SIGTERM sent by process ') || true
    [ "$line" = "SIGTERM sent by process $BASHPID" ] ||
        fail_because "a line 'SIGTERM sent by process $BASHPID' (the shell that ran kill)" "'${line:-no such line}'" \
            "$SERVER_NAME 8080 & sleep 0.5; kill -TERM \$!; echo \$\$" "book/12-shutdown.md, section 'Exercises'"
}

# bats test_tags=exercise
@test "12-sigquit: SIGQUIT stops the server at once, with status 1, mid-download" {
    use_answer 12-sigquit
    make_answer_root 16M
    start_server listening 0 127.0.0.1 "$ROOT"
    local out=$BATS_TEST_TMPDIR/download deadline=$((SECONDS + WAIT_SECONDS)) ended try
    curl -s -m 30 --limit-rate 1M -o "$out" "http://127.0.0.1:$PORT/big.bin" &
    local curl_pid=$!
    until [ -s "$out" ] || ((SECONDS >= deadline)); do sleep 0.02; done
    try="$SERVER_NAME 8080 127.0.0.1 ROOT & sleep 0.5; curl -s --limit-rate 1M -o /dev/null http://127.0.0.1:8080/big.bin & sleep 1; kill -QUIT %1; wait %1; echo \$?"
    kill -QUIT "$SERVER_PID"
    wait_for_end 2
    ended=$(server_ended)
    kill "$curl_pid" 2>/dev/null || true
    wait "$curl_pid" 2>/dev/null || true
    [ "$ended" = "the server exited with status 1" ] ||
        fail_because "exit status 1 within 2 s of SIGQUIT, a download under way" "${ended:-still running}" \
            "$try" "book/12-shutdown.md, section 'Exercises'"
    grep -qx 'SIGQUIT: stopping now; connections unfinished: 1' "$LOG" ||
        fail_because "the line 'SIGQUIT: stopping now; connections unfinished: 1'" "'$(tail -n 1 "$LOG")'" \
            "$try" "book/12-shutdown.md, section 'Exercises'"
}

# For the tests of tests/apply-patch, from the top of the repository: the
# first answer's patch and its step's folder, in $patch and $step, and the
# file its first hunk changes, in $file. No server: "try it" is the
# command alone.
first_answer() {
    cd "$top" || return 1
    SERVER_NAME=tests/apply-patch
    patch=book/answers/${ANSWERS[0]}.diff
    step=$(tests/steps --folder "${ANSWERS[0]:0:2}")
    # "--- steps/01-socket/server.c": only the file's name counts.
    file=$(sed -n '/^--- \/dev\/null/d; s|^--- \([^[:space:]]*/\)\{0,1\}\([^/[:space:]]*\).*|\2|p' "$patch" | head -n 1)
}

# A copy of the step's folder, in $BATS_TEST_TMPDIR/step.
copy_step() {
    mkdir -p "$BATS_TEST_TMPDIR/step"
    cp "$step"/*.[ch] "$BATS_TEST_TMPDIR/step/"
}

@test "a patch whose step changed under it: no program, and how to repair the patch" {
    first_answer
    copy_step
    local drifted=$BATS_TEST_TMPDIR/step out=$BATS_TEST_TMPDIR/answer first
    # One line of the first hunk's context changes: patch's default fuzz
    # would still apply it; --fuzz=0 must not.
    first=$(sed -n '0,/^@@ -\([0-9]*\),.*/s//\1/p' "$patch")
    sed -i "${first}s/\$/ (changed)/" "$drifted/$file"
    run tests/apply-patch "$drifted" "$patch" "$out"
    local try="tests/apply-patch $drifted $patch $out" left
    [ "$status" -eq 1 ] || fail_because "status 1" "status $status" "$try"
    left=$(cd "$BATS_TEST_TMPDIR" && echo *)
    [ "$left" = step ] || fail_because "no program and no leftovers, only the folder step" "$left" "$try"
    [[ $output == "$patch no longer applies to $drifted:"* ]] ||
        fail_because "a first line that names the patch and the step's folder" "$output" "$try"
    # The recipe it prints: the patch merged into a copy of the folder,
    # the conflicts resolved, the patch written again.
    local recipe repaired=$BATS_TEST_TMPDIR/repaired.diff
    recipe=$(sed -n 's/^    //p' <<<"$output" | grep -E '^(tests/apply-patch --merge|[$]EDITOR|tests/make-patch) ')
    [ "$(wc -l <<<"$recipe")" -eq 3 ] && [[ $(tail -n 1 <<<"$recipe") == "tests/make-patch $drifted $out $patch" ]] ||
        fail_because "a recipe: tests/apply-patch --merge, \$EDITOR, then tests/make-patch $drifted $out $patch" \
            "$output" "$try"
    # Followed (into another patch than the book's), it gives a patch that
    # applies. One line of context changed: the merge has no conflict to
    # resolve, so the editor is not needed.
    recipe=$(grep -v '^[$]EDITOR ' <<<"$recipe" | sed "s| $patch\$| $repaired|")
    eval "$recipe" </dev/null >&2 || true
    [ -s "$repaired" ] || fail_because "the recipe to write $repaired" "it did not" "$recipe"
    tests/apply-patch "$drifted" "$repaired" "$out" ||
        fail_because "the repaired patch to apply" "it did not" "$try"
    if cmp -s "$out/$file" "$drifted/$file"; then
        fail_because "the repaired patch to change $file" "it is the step's" "$try"
    fi
}

@test "a patch whose step moved its lines: it applies, and says how to renumber it" {
    first_answer
    copy_step
    local moved=$BATS_TEST_TMPDIR/step out=$BATS_TEST_TMPDIR/answer
    { echo '/* a new first line */'; cat "$step/$file"; } >"$moved/$file"
    run tests/apply-patch "$moved" "$patch" "$out"
    local try="tests/apply-patch $moved $patch $out"
    [ "$status" -eq 0 ] || fail_because "status 0" "status $status: $output" "$try"
    [[ $output == *"to renumber it: tests/make-patch $moved $out $patch"* ]] ||
        fail_because "a note that says how to renumber the patch: tests/make-patch $moved $out $patch" \
            "${output:-nothing}" "$try"
    # Followed (into another patch than the book's), it gives a patch that
    # applies where it says.
    local renumbered=$BATS_TEST_TMPDIR/renumbered.diff
    tests/make-patch "$moved" "$out" "$renumbered"
    run tests/apply-patch "$moved" "$renumbered" "$BATS_TEST_TMPDIR/again"
    [ "$status" -eq 0 ] && [ -z "$output" ] ||
        fail_because "the renumbered patch to apply without a note" "status $status: $output" \
            "tests/make-patch $moved $out $renumbered"
}

# Waits for the answer's run of its step's tests, started by setup_file.
step_tests_pass() {
    [ "${ANSWERS_SKIP_STEP_TESTS:-}" != 1 ] || skip "ANSWERS_SKIP_STEP_TESTS=1"
    local name=$1 deadline=$((SECONDS + 600)) status
    while [ ! -s "$BATS_FILE_TMPDIR/$name.status" ] && ((SECONDS < deadline)); do sleep 0.1; done
    status=$(cat "$BATS_FILE_TMPDIR/$name.status" 2>/dev/null) || status='none: it did not finish'
    if [ "$status" != 0 ]; then
        grep -v '^ok ' "$BATS_FILE_TMPDIR/$name.tap" >&2
        fail_because "build/answers/$name to pass the tests of steps 01 to ${name:0:2}" \
            "exit status $status; what failed is above" "tests/check ${name:0:2} build/answers/$name"
    fi
}

@test "01-socket-ipv6 passes the tests of step 01" {
    step_tests_pass 01-socket-ipv6
}

@test "03-listen-ipv6 passes the tests of steps 01 to 03" {
    step_tests_pass 03-listen-ipv6
}

@test "04-count-connections passes the tests of steps 01 to 04" {
    step_tests_pass 04-count-connections
}

@test "05-split-query passes the tests of steps 01 to 05" {
    step_tests_pass 05-split-query
}

@test "06-second-path passes the tests of steps 01 to 06" {
    step_tests_pass 06-second-path
}

@test "06-echo-body passes the tests of steps 01 to 06" {
    step_tests_pass 06-echo-body
}

@test "07-keep-alive-field passes the tests of steps 01 to 07" {
    step_tests_pass 07-keep-alive-field
}

@test "07-more-follows passes the tests of steps 01 to 07" {
    step_tests_pass 07-more-follows
}

@test "08-count-children passes the tests of steps 01 to 08" {
    step_tests_pass 08-count-children
}

@test "08-cpu-time passes the tests of steps 01 to 08" {
    step_tests_pass 08-cpu-time
}

@test "10-accepting-again passes the tests of steps 01 to 10" {
    step_tests_pass 10-accepting-again
}

@test "10-idle-first passes the tests of steps 01 to 10" {
    step_tests_pass 10-idle-first
}

@test "11-etag passes the tests of steps 01 to 11" {
    step_tests_pass 11-etag
}

@test "11-nosniff passes the tests of steps 01 to 11" {
    step_tests_pass 11-nosniff
}

@test "12-sender passes the tests of steps 01 to 12" {
    step_tests_pass 12-sender
}

@test "12-sigquit passes the tests of steps 01 to 12" {
    step_tests_pass 12-sigquit
}
