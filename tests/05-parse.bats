#!/usr/bin/env bats
# Step 05: the server reads each request with read(2) until the end of its
# head, parses it, reads a Content-Length body, and prints what it found.
# Malformed or oversized requests are rejected, with a reason in the log.

load helpers

# bats test_tags=ladder
@test "prints the request line and the header fields it parsed" {
    start_server listening 0
    local path value
    path=/$(random_word)
    value=$(random_word)
    curl -s -o /dev/null -m "$WAIT_SECONDS" -H "X-Word: $value" "http://127.0.0.1:$PORT$path" || true
    wait_for_log "^request: GET $path HTTP/1\.1\$" >/dev/null ||
        fail_because "a line 'request: GET $path HTTP/1.1'" "$(grep -v '^header' "$LOG" | tail -n 3)" \
            "$(by_hand "curl http://127.0.0.1:8080$path")" "book/05-parse.md, section 'Parsing the head'"
    grep -q "^header: X-Word: $value\$" "$LOG" && grep -q "^header: Host: 127.0.0.1:$PORT\$" "$LOG" ||
        fail_because "lines 'header: Host: 127.0.0.1:$PORT' and 'header: X-Word: $value'" \
            "$(grep '^header' "$LOG" || echo 'no header lines')" \
            "$(by_hand "curl -H 'X-Word: $value' http://127.0.0.1:8080/")" \
            "book/05-parse.md, section 'Parsing the head'"
}

# bats test_tags=ladder
@test "reads the whole body that Content-Length announces" {
    start_server listening 0
    local size=$((1000 + RANDOM % 20000))
    head -c "$size" /dev/urandom |
        curl -s -o /dev/null -m "$WAIT_SECONDS" -H 'Expect:' --data-binary @- "http://127.0.0.1:$PORT/" || true
    wait_for_log "^body: $size bytes\$" >/dev/null ||
        fail_because "a line 'body: $size bytes' after a POST of $size bytes" \
            "$(grep -E '^(body|rejected|dropped)' "$LOG" || echo 'no body line')" \
            "head -c $size /dev/zero | curl -H 'Expect:' --data-binary @- http://127.0.0.1:8080/" \
            "book/05-parse.md, section 'The body'"
}

@test "parses a request that arrives one byte at a time" {
    start_server listening 0
    local path request fd i
    path=/$(random_word)
    request=$'GET '"$path"$' HTTP/1.1\r\nHost: x\r\nX-Slow: yes\r\n\r\n'
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    for ((i = 0; i < ${#request}; i++)); do
        if ! { printf '%s' "${request:i:1}" >&"$fd"; } 2>/dev/null; then
            fail_because "the server to wait for the rest of a request that comes byte by byte" \
                "it closed the connection after $i bytes; it printed: $(tail -n 1 "$LOG")" \
                "(printf 'GET / HTTP/1.1\\r\\n'; sleep 1; printf 'Host: x\\r\\n\\r\\n') | nc 127.0.0.1 8080" \
                "book/05-parse.md, section 'Finding the end of the head': read(2) returns what has arrived, not a whole request"
        fi
        sleep 0.005 # space the bytes out, so that they travel one by one
    done
    wait_for_log "^request: GET $path HTTP/1\.1\$" >/dev/null ||
        fail_because "'request: GET $path HTTP/1.1' when the request comes byte by byte" \
            "$(tail -n 3 "$LOG")" \
            "(printf 'GET / HTTP/1.1\\r\\n'; sleep 1; printf 'Host: x\\r\\n\\r\\n') | nc 127.0.0.1 8080" \
            "book/05-parse.md, section 'Finding the end of the head': read(2) returns what has arrived, not a whole request"
    exec {fd}>&-
}

@test "takes a body that comes with the head, and one that comes later" {
    start_server listening 0
    local body first second request
    body=$(random_word)$(random_word | head -c $((RANDOM % 10)))
    request="POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: ${#body}\\r\\n\\r\\n$body"
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
            "(printf 'POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: $length\\r\\n\\r\\n$first'; sleep 1; printf $second) | nc 127.0.0.1 8080" \
            "book/05-parse.md, section 'The body'"
    exec {fd}>&-
}

@test "rejects malformed and oversized requests, logging the status and a reason" {
    start_server listening 0
    local status format count=0
    while IFS=$'\t' read -r status format length character; do
        count=$((count + 1))
        send_listed_request "$format" ${length:+"$length" "$character"} 2 >/dev/null
        wait_for_count '^(rejected|dropped|request:)' "$count" >/dev/null || true
        local line section='Parsing the head'
        case $status in 413 | 414 | 431) section='Limits, named' ;; esac
        line=$(grep -E '^(rejected|dropped|request:)' "$LOG" | sed -n "${count}p")
        [[ $line == "rejected with $status: "?* ]] ||
            fail_because "'rejected with $status: <reason>' for the request '$format'" \
                "${line:-nothing logged}" "$(raw_command "$format" ${length:+"$length" "$character"})" \
                "book/05-parse.md, section '$section'"
    done < <(malformed_requests)
    [ "$count" -eq "$MALFORMED_REQUEST_COUNT" ] # the list itself must not break
}

@test "a client that sends nothing is timed out, and the next one is served" {
    start_server listening 0
    local fd started=$SECONDS
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    WAIT_SECONDS=$((WAIT_SECONDS + 10)) wait_for_log '^rejected with 408' >/dev/null ||
        fail_because "'rejected with 408: timed out' a few seconds after a client connects and sends nothing" \
            "$(tail -n 2 "$LOG")" "$(by_hand "nc 127.0.0.1 8080")" \
            "book/05-parse.md, section 'Reading with a deadline'"
    local waited=$((SECONDS - started))
    exec {fd}>&-
    curl -s -o /dev/null -m "$WAIT_SECONDS" -H 'X-After: silence' "http://127.0.0.1:$PORT/" || true
    wait_for_log '^header: X-After: silence$' >/dev/null ||
        fail_because "the next client to be served after the silent one" "$(tail -n 3 "$LOG")" \
            "$(by_hand "nc 127.0.0.1 8080 & curl http://127.0.0.1:8080/")"
    [ "$waited" -le 12 ] ||
        fail_because "a timeout of a few seconds" "the server waited $waited s" "$(by_hand "nc 127.0.0.1 8080")"
}

# Sends each request (a printf format) on its own connection, and checks
# that the server logged its request line as sent, not a rejection.
#   expect_request_lines SECTION FORMAT EXPECTED-LINE [FORMAT EXPECTED-LINE]...
expect_request_lines() {
    local section=$1 count=0 line
    shift
    while [ $# -gt 0 ]; do
        count=$((count + 1))
        raw_request "$1" 2 >/dev/null
        wait_for_count '^(rejected|dropped|request:)' "$count" >/dev/null || true
        line=$(grep -E '^(rejected|dropped|request:)' "$LOG" | sed -n "${count}p")
        [ "$line" = "request: $2" ] ||
            fail_because "'request: $2' for the request '$1'" "${line:-nothing logged}" \
                "$(raw_command "$1")" "book/05-parse.md, section '$section'"
        shift 2
    done
}

# part: request-line
@test "takes a target in absolute-form, with a port, an empty path or an upper-case scheme" {
    start_server listening 0
    local path
    path=/$(random_word)
    expect_request_lines 'The request target, and Host' \
        "GET http://example.com$path HTTP/1.1\\r\\nHost: example.com\\r\\n\\r\\n" \
        "GET http://example.com$path HTTP/1.1" \
        "GET http://127.0.0.1:8080$path?q=1 HTTP/1.1\\r\\nHost: 127.0.0.1:8080\\r\\n\\r\\n" \
        "GET http://127.0.0.1:8080$path?q=1 HTTP/1.1" \
        'GET http://example.com?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n' \
        'GET http://example.com?q=1 HTTP/1.1' \
        'HEAD HTTP://EXAMPLE.COM HTTP/1.1\r\nHost: example.com\r\n\r\n' \
        'HEAD HTTP://EXAMPLE.COM HTTP/1.1' \
        'GET http://[::1]:8080/ HTTP/1.1\r\nHost: other.example\r\n\r\n' \
        'GET http://[::1]:8080/ HTTP/1.1'
}

# part: fields
@test "takes every valid kind of Host: a name, an IPv4 or IPv6 address, a port, nothing" {
    start_server listening 0
    expect_request_lines 'The request target, and Host' \
        'GET / HTTP/1.1\r\nHost: example.com\r\n\r\n' 'GET / HTTP/1.1' \
        'GET /a HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n' 'GET /a HTTP/1.1' \
        'GET /b HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\r\n' 'GET /b HTTP/1.1' \
        'GET /c HTTP/1.1\r\nHost: xn--bcher-kva.example:\r\n\r\n' 'GET /c HTTP/1.1' \
        'GET /d HTTP/1.1\r\nHost: my%%20host\r\n\r\n' 'GET /d HTTP/1.1' \
        'GET /e HTTP/1.1\r\nHost:\r\n\r\n' 'GET /e HTTP/1.1'
}

# part: request-line
@test "skips a few empty lines before the request line" {
    start_server listening 0
    local path
    path=/$(random_word)
    expect_request_lines 'The request target, and Host' \
        "\\r\\nGET $path HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n" "GET $path HTTP/1.1" \
        "\\r\\n\\r\\n\\r\\nPOST $path HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\n\\r\\nok" \
        "POST $path HTTP/1.1"
    wait_for_log '^body: 2 bytes$' >/dev/null ||
        fail_because "'body: 2 bytes' after empty lines and a POST" "$(tail -n 2 "$LOG")" \
            "$(raw_command '\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok')" \
            "book/05-parse.md, section 'The request target, and Host'"
}

# part: request-line
@test "takes OPTIONS * and HTTP/1.2, which is read as HTTP/1.1" {
    start_server listening 0
    expect_request_lines 'The request target, and Host' \
        'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n' 'OPTIONS * HTTP/1.1' \
        'OPTIONS * HTTP/1.0\r\n\r\n' 'OPTIONS * HTTP/1.0' \
        'GET / HTTP/1.2\r\nHost: x\r\n\r\n' 'GET / HTTP/1.2'
}

# part: body
@test "reads a Content-Length with leading zeros, and takes chunked last, empty list elements aside, as 501" {
    start_server listening 0
    raw_request 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0005\r\n\r\nhello' 2 >/dev/null
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
