#!/usr/bin/env bats
# Step 05: the server reads each request with read(2) until the end of its
# head, parses it, reads a Content-Length body, and prints what it found.
# Malformed or oversized requests are rejected, with a reason in the log.
#
# The stage comes in five parts (tests/workshop/parts), and each test is
# tagged with its part, so that `make check STEP=05 PART=N` checks the
# parts up to N: head, request-line, target, fields, body. A part's tests
# need only that part and the ones before it.

load helpers

# Sends REQUEST (bytes, not a format) one byte at a time, a few ms apart,
# then waits for the server to close the connection. Notes what happened;
# fails, through fail_because, if the server closed before the end or kept
# the connection open after it. (The requests ask it to close: from step
# 07 on, the server would otherwise keep the connection.)
#   send_byte_by_byte REQUEST
send_byte_by_byte() {
    local request=$1 fd i try
    try="(printf 'GET / HTTP/1.1\\r\\n'; sleep 1; printf 'Host: x\\r\\n\\r\\n') | nc -N 127.0.0.1 8080"
    # A pause without a process of its own (sleep(1) is one, and on a busy
    # machine 69 of them can take longer than the server's 5 s timeout):
    # the read builtin's time limit (-t), on a pipe that nobody writes to.
    local pause
    rm -f "$BATS_TEST_TMPDIR/pause" && mkfifo "$BATS_TEST_TMPDIR/pause"
    exec {pause}<>"$BATS_TEST_TMPDIR/pause"
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    for ((i = 0; i < ${#request}; i++)); do
        # A write fails once the server has closed and our last byte was refused.
        if ! { printf '%s' "${request:i:1}" >&"$fd"; } 2>/dev/null; then
            exec {fd}>&-
            fail_because "the server to wait for the rest of a head that comes byte by byte" \
                "it closed the connection after about $i of ${#request} bytes" "$try" \
                "book/05-parse.md, section 'Finding the end of the head': read(2) returns what has arrived, not a whole request"
            return 1
        fi
        read -rt 0.005 -u "$pause" || true # space the bytes out, so that they travel one by one
    done
    exec {pause}>&-
    rm -f "$BATS_TEST_TMPDIR/pause"
    local status=0
    timeout "$WAIT_SECONDS" cat <&"$fd" >/dev/null 2>&1 || status=$?
    exec {fd}>&-
    [ "$status" -ne 124 ] ||
        fail_because "the server to close the connection once the empty line ends the head" \
            "it still held it open $WAIT_SECONDS s later: $(server_state)" "$try" \
            "book/05-parse.md, section 'Finding the end of the head'"
}

# The line the server logged for the Nth request of a test: request:,
# rejected with or dropped:.
logged_line() {
    wait_for_count '^(rejected|dropped|request:)' "$1" >/dev/null || true
    grep -E '^(rejected|dropped|request:)' "$LOG" | sed -n "$1p"
}

# Sends each request (a printf format) on its own connection, and checks
# that the server logged its request line as sent, not a rejection; reports
# every request that fails, not the first only. (The HTTP/1.1 requests ask
# to close: from step 07 on, the server would keep the connection open,
# and raw_request would wait for it to close.)
#   expect_request_lines SECTION FORMAT EXPECTED-LINE [FORMAT EXPECTED-LINE]...
expect_request_lines() {
    local section=$1 count=0 failed=0 line
    shift
    while [ $# -gt 0 ]; do
        count=$((count + 1))
        raw_request "$1" 2 >/dev/null
        line=$(logged_line "$count")
        [ "$line" = "request: $2" ] ||
            NO_SERVER_LOG=1 fail_because "'request: $2' for the request '$1'" "${line:-nothing logged}" \
                "$(raw_command "$1")" "book/05-parse.md, section '$section'" || failed=$((failed + 1))
        shift 2
    done
    [ "$failed" -eq 0 ] ||
        fail_because "the request line of all $count requests above" \
            "$failed of them were not taken: each is explained above" \
            "$(check_command)" "book/05-parse.md, section '$section'"
}

# check_malformed_requests's CHECK for step 05: the log says it.
rejected_in_log() {
    local status=$1 format=$2 line section
    shift 2
    REQUESTS_SENT=$((REQUESTS_SENT + 1))
    send_listed_request "$format" "$@" 2 >/dev/null
    line=$(logged_line "$REQUESTS_SENT")
    section=$(test_hint)
    case $status in 413 | 414 | 431) section="book/05-parse.md, section 'Limits, named'" ;; esac
    [[ $line == "rejected with $status: "?* ]] ||
        fail_because "'rejected with $status: <reason>' for the request $(listed_request "$format" "$@")" \
            "${line:-nothing logged}" "$(raw_command "$format" "$@")" "$section"
}

# bats test_tags=ladder,part:head
@test "waits for a head that comes byte by byte, and closes the connection after its empty line" {
    start_server listening 0
    send_byte_by_byte $'GET /'"$(random_word)"$' HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\nConnection: close\r\n\r\n'
}

# bats test_tags=part:head
@test "a client that sends nothing is rejected with 408 within the deadline, and the next one is served" {
    start_server listening 0
    local fd started=$SECONDS
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    wait_for_log '^rejected with 408' "$((WAIT_SECONDS + 10))" >/dev/null ||
        fail_because "'rejected with 408: timed out' a few seconds after a client connects and sends nothing" \
            "$(server_state)" "$(by_hand "nc 127.0.0.1 8080")" \
            "book/05-parse.md, section 'Reading with a deadline'"
    local waited=$((SECONDS - started))
    exec {fd}>&-
    [ "$waited" -le 12 ] ||
        fail_because "a timeout of a few seconds (REQUEST_TIMEOUT_SECONDS)" "the server waited $waited s" \
            "$(by_hand "nc 127.0.0.1 8080")" "book/05-parse.md, section 'Reading with a deadline'"
    send_byte_by_byte $'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    wait_for_count '^accepted ' 2 >/dev/null ||
        fail_because "'accepted ...' for the client after the silent one" "$(server_state)" \
            "$(by_hand "nc 127.0.0.1 8080 & curl http://127.0.0.1:8080/")"
}

# bats test_tags=ladder,part:request-line
@test "prints the request line it parsed" {
    start_server listening 0
    local path
    path=/$(random_word)
    fetch "http://127.0.0.1:$PORT$path" >/dev/null
    wait_for_log "^request: GET $path HTTP/1\.1\$" >/dev/null && return
    local hint="book/05-parse.md, section 'Parsing the head'"
    # No request line at all, not even a wrong one: nothing prints it.
    grep -q '^request: ' "$LOG" ||
        hint="book/05-parse.md, section 'Part 2: the request line': no 'request:' line at all; does handle_connection call print_request (the else that part 1 left out)?"
    fail_because "a line 'request: GET $path HTTP/1.1'" "$(grep -v '^header' "$LOG" | tail -n 3)" \
        "$(by_hand "curl http://127.0.0.1:8080$path")" "$hint"
}

# bats test_tags=part:request-line
@test "prints the request line of a request that comes byte by byte" {
    start_server listening 0
    local path
    path=/$(random_word)
    send_byte_by_byte $'GET '"$path"$' HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'
    wait_for_log "^request: GET $path HTTP/1\.1\$" >/dev/null ||
        fail_because "'request: GET $path HTTP/1.1' when the request comes byte by byte" \
            "$(tail -n 3 "$LOG")" \
            "(printf 'GET / HTTP/1.1\\r\\n'; sleep 1; printf 'Host: x\\r\\n\\r\\n') | nc -N 127.0.0.1 8080" \
            "book/05-parse.md, section 'Parsing the head': the whole head was read (the server waited for it), so it is the request line's format: 'request: METHOD TARGET VERSION', one space apart"
}

# bats test_tags=part:request-line
@test "rejects a malformed request line with 400, 414 or 505, and logs a reason" {
    start_server listening 0
    REQUESTS_SENT=0
    check_malformed_requests request-line rejected_in_log
}

# bats test_tags=ladder,part:fields
@test "prints the header fields it parsed" {
    start_server listening 0
    local value
    value=$(random_word)
    fetch -H "X-Word: $value" "http://127.0.0.1:$PORT/" >/dev/null
    wait_for_log "^header: X-Word: $value\$" >/dev/null ||
        fail_because "a line 'header: X-Word: $value'" "$(grep '^header' "$LOG" || echo 'no header lines')" \
            "$(by_hand "curl -H 'X-Word: $value' http://127.0.0.1:8080/")" \
            "book/05-parse.md, section 'Field lines'"
    grep -q "^header: Host: 127.0.0.1:$PORT\$" "$LOG" ||
        fail_because "a line 'header: Host: 127.0.0.1:$PORT' for the Host field curl sends" \
            "$(grep '^header' "$LOG" || echo 'no header lines')" \
            "$(by_hand "curl http://127.0.0.1:8080/")" "book/05-parse.md, section 'Field lines'"
    # The spaces and tabs around a value are not part of it (RFC 9110, section 5.5).
    local request
    value=$(random_word)
    request="GET / HTTP/1.1\\r\\nHost: x\\r\\nX-Word:  $value \\t \\r\\nConnection: close\\r\\n\\r\\n"
    raw_request "$request" 2 >/dev/null
    wait_for_log "^header: X-Word: $value\$" >/dev/null ||
        fail_because "a line 'header: X-Word: $value', without the spaces and tab around the value, for 'X-Word:  $value \\t '" \
            "$(grep "^header: X-Word: .*$value" "$LOG" | sed 's/\t/\\t/g; s/.*/'"'&'"'/' || echo 'no such header line')" \
            "$(raw_command "$request")" "book/05-parse.md, section 'Field lines'"
}

# bats test_tags=part:fields
@test "rejects a malformed field line or Host with 400, too long a field with 431" {
    start_server listening 0
    REQUESTS_SENT=0
    check_malformed_requests fields rejected_in_log
}

# bats test_tags=ladder,part:body
@test "reads the whole body that Content-Length announces" {
    start_server listening 0
    local size=$((1000 + RANDOM % 20000))
    head -c "$size" /dev/urandom >"$BATS_TEST_TMPDIR/upload"
    fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/" >/dev/null
    wait_for_log "^body: $size bytes\$" >/dev/null ||
        fail_because "a line 'body: $size bytes' after a POST of $size bytes" \
            "$(grep -E '^(body|rejected|dropped)' "$LOG" || echo 'no body line')" \
            "head -c $size /dev/zero | curl -H 'Expect:' --data-binary @- http://127.0.0.1:8080/" \
            "book/05-parse.md, section 'The body'"
}

# bats test_tags=part:body
@test "takes a body that comes with the head, and one that comes later" {
    start_server listening 0
    local body first second request
    body=$(random_word)$(random_word | head -c $((RANDOM % 10)))
    request="POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: ${#body}\\r\\nConnection: close\\r\\n\\r\\n$body"
    raw_request "$request" >/dev/null
    wait_for_log "^body: ${#body} bytes\$" >/dev/null ||
        fail_because "'body: ${#body} bytes' for a body sent in the same write as the head" \
            "$(tail -n 3 "$LOG")" "$(raw_command "$request")" "book/05-parse.md, section 'The body'"
    first=$(random_word)
    second=$(random_word)$(random_word)
    local fd length=$((${#first} + ${#second}))
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s' "$length" "$first" >&"$fd"
    sleep 0.05 # let the server read the head and the first bytes alone
    { printf '%s' "$second" >&"$fd"; } 2>/dev/null || true # checked below
    wait_for_log "^body: $length bytes\$" >/dev/null ||
        fail_because "'body: $length bytes' for a body sent in two parts" "$(tail -n 3 "$LOG")" \
            "(printf 'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: $length\\r\\n\\r\\n$first'; sleep 1; printf $second) | nc -N 127.0.0.1 8080" \
            "book/05-parse.md, section 'The body'"
    exec {fd}>&-
}

# A server that takes Content-Length's word for it, and never reads the
# body (or reads it once, not until it has it all), prints 'body: N
# bytes' for a body cut short. The body comes in two writes, then the
# client hangs up before the end.
# bats test_tags=part:body
@test "reads the body until it has all of it: a body cut short is 'rejected with 400'" {
    start_server listening 0
    local first second length fd line try
    first=$(random_word)
    second=$(random_word)
    length=$((${#first} + ${#second} + 10))
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
        "$length" "$first" >&"$fd"
    sleep 0.05 # let the server read the head and the first bytes alone
    { printf '%s' "$second" >&"$fd"; } 2>/dev/null || true # checked below
    sleep 0.05
    exec {fd}>&-
    line=$(wait_for_log '^(body:|rejected|dropped)') || true
    try="printf 'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: $length\\r\\n\\r\\n$first$second' | nc -N 127.0.0.1 8080"
    [ "$line" = 'rejected with 400: closed before the end of the request' ] ||
        fail_because "'rejected with 400: closed before the end of the request': Content-Length said $length bytes, $((length - 10)) came, then the client closed" \
            "${line:-nothing logged}" "$try" \
            "book/05-parse.md, section 'The body': read until the body is all there, as read_head does for the head; Content-Length is only what the client promises"
}

# bats test_tags=part:body
@test "rejects a bad Content-Length or Transfer-Encoding with 400, 413 or 501" {
    start_server listening 0
    REQUESTS_SENT=0
    check_malformed_requests body rejected_in_log
}

# bats test_tags=ladder,part:target
@test "takes a target in absolute-form, with a port, an empty path or an upper-case scheme" {
    start_server listening 0
    local path
    path=/$(random_word)
    expect_request_lines 'The request target, and Host' \
        "GET http://example.com$path HTTP/1.1\\r\\nHost: example.com\\r\\nConnection: close\\r\\n\\r\\n" \
        "GET http://example.com$path HTTP/1.1" \
        "GET http://127.0.0.1:8080$path?q=1 HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\nConnection: close\\r\\n\\r\\n" \
        "GET http://127.0.0.1:8080$path?q=1 HTTP/1.1" \
        'GET http://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n' \
        'GET http://example.com?q=1 HTTP/1.1' \
        'HEAD HTTP://EXAMPLE.COM HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n' \
        'HEAD HTTP://EXAMPLE.COM HTTP/1.1' \
        'GET http://[::1]:8080/ HTTP/1.1\r\nHost: other.example\r\nConnection: close\r\n\r\n' \
        'GET http://[::1]:8080/ HTTP/1.1'
}

# bats test_tags=part:fields
@test "takes every valid kind of Host: a name, an IPv4 or IPv6 address, a port, nothing" {
    start_server listening 0
    expect_request_lines 'The request target, and Host' \
        'GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n' 'GET / HTTP/1.1' \
        'GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nConnection: close\r\n\r\n' 'GET /a HTTP/1.1' \
        'GET /b HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\nConnection: close\r\n\r\n' 'GET /b HTTP/1.1' \
        'GET /c HTTP/1.1\r\nHost: xn--bcher-kva.example:\r\nConnection: close\r\n\r\n' 'GET /c HTTP/1.1' \
        'GET /d HTTP/1.1\r\nHost: my%%20host\r\nConnection: close\r\n\r\n' 'GET /d HTTP/1.1' \
        'GET /e HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n' 'GET /e HTTP/1.1'
}

# bats test_tags=part:request-line
@test "skips a few empty lines before the request line" {
    start_server listening 0
    local path
    path=/$(random_word)
    expect_request_lines 'Finding the end of the head' \
        "\\r\\nGET $path HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n" "GET $path HTTP/1.1" \
        "\\r\\n\\r\\n\\r\\nPOST $path HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\nok" \
        "POST $path HTTP/1.1"
}

# bats test_tags=part:body
@test "reads the body of a request that comes after empty lines" {
    start_server listening 0
    raw_request '\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok' >/dev/null
    wait_for_log '^body: 2 bytes$' >/dev/null ||
        fail_because "'body: 2 bytes' after empty lines and a POST" "$(tail -n 2 "$LOG")" \
            "$(raw_command '\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok')" \
            "book/05-parse.md, section 'The body'"
}

# bats test_tags=part:request-line
@test "takes HTTP/1.2, which is read as HTTP/1.1" {
    start_server listening 0
    expect_request_lines 'Parsing the head' \
        'GET / HTTP/1.2\r\nHost: x\r\nConnection: close\r\n\r\n' 'GET / HTTP/1.2'
}

# bats test_tags=ladder,part:target
@test "takes OPTIONS *, in HTTP/1.1 and HTTP/1.0" {
    start_server listening 0
    expect_request_lines 'The request target, and Host' \
        'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' 'OPTIONS * HTTP/1.1' \
        'OPTIONS * HTTP/1.0\r\n\r\n' 'OPTIONS * HTTP/1.0'
}

# A server that took only paths would reject these too: it must take a
# good URL and OPTIONS * first, so that each 400 below is for what is wrong.
# bats test_tags=part:target
@test "rejects * with another method than OPTIONS, and a URL without a valid http host, with 400" {
    start_server listening 0
    expect_request_lines 'The request target, and Host' \
        'GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n' 'GET http://example.com/ HTTP/1.1' \
        'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' 'OPTIONS * HTTP/1.1' || return 1
    REQUESTS_SENT=2
    check_malformed_requests target rejected_in_log
}

# bats test_tags=part:body
@test "reads a Content-Length with leading zeros, and takes chunked last, empty list elements aside, as 501" {
    start_server listening 0
    raw_request 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\nConnection: close\r\n\r\nhello' 2 >/dev/null
    wait_for_log '^body: 5 bytes$' >/dev/null ||
        fail_because "'body: 5 bytes' for Content-Length: 0005" "$(tail -n 2 "$LOG")" \
            "$(raw_command 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello')" \
            "book/05-parse.md, section 'The body'"
    raw_request 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, , chunked ,\r\n\r\n' 2 >/dev/null
    wait_for_log '^rejected with 501' >/dev/null ||
        fail_because "'rejected with 501' for Transfer-Encoding: gzip, , chunked ," "$(tail -n 1 "$LOG")" \
            "$(raw_command 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, , chunked ,\r\n\r\n')" \
            "book/05-parse.md, section 'The request target, and Host'"
}
