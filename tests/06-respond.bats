#!/usr/bin/env bats
# Step 06: the server answers every request with a complete HTTP/1.1
# response, with write(2), survives clients that hang up, and closes so
# that the client receives the whole response.

load helpers

# Fetches with curl: the head goes to $BATS_TEST_TMPDIR/head, the body to
# $BATS_TEST_TMPDIR/body; prints the status code.
fetch() {
    : >"$BATS_TEST_TMPDIR/head"
    : >"$BATS_TEST_TMPDIR/body" # curl writes neither when no response comes
    curl -s -m "$WAIT_SECONDS" -D "$BATS_TEST_TMPDIR/head" -o "$BATS_TEST_TMPDIR/body" \
        -w '%{http_code}' -H 'Expect:' "$@" || true
}

# The value of a header field in the last head fetched.
field() {
    sed -n "s/^$1: \\(.*\\)\\r\$/\\1/Ip" "$BATS_TEST_TMPDIR/head" | head -n 1
}

# bats test_tags=ladder
@test "GET / answers 200 with the hello world page as text/html" {
    start_server listening 0
    local status body
    status=$(fetch "http://127.0.0.1:$PORT/")
    body=$(cat "$BATS_TEST_TMPDIR/body")
    [ "$status" = 200 ] && [ "$body" = '<h1>hello world</h1>' ] ||
        fail_because "200 and the body '<h1>hello world</h1>'" "status '$status', body '${body:0:80}'" \
            "$(by_hand "curl -i http://127.0.0.1:8080/")" "book/06-respond.md, section 'Build and run'"
    [ "$(field Content-Type)" = 'text/html; charset=utf-8' ] ||
        fail_because "Content-Type: text/html; charset=utf-8" "'$(field Content-Type)'" \
            "curl -i http://127.0.0.1:8080/"
}

# bats test_tags=ladder
@test "every response has Date, Content-Type, a true Content-Length and Connection: close" {
    start_server listening 0
    local target status date length size
    for target in / "/$(random_word)" "/%zz"; do
        status=$(fetch "http://127.0.0.1:$PORT$target")
        date=$(field Date)
        length=$(field Content-Length)
        size=$(wc -c <"$BATS_TEST_TMPDIR/body")
        [[ $date =~ ^(Mon|Tue|Wed|Thu|Fri|Sat|Sun),\ [0-9]{2}\ [A-Z][a-z]{2}\ [0-9]{4}\ [0-9:]{8}\ GMT$ ]] &&
            [ -n "$(field Content-Type)" ] && [ "$length" = "$size" ] && [ "$(field Connection)" = close ] ||
            fail_because "Date (RFC 9110 format), Content-Type, Content-Length: $size, Connection: close" \
                "status $status and: $(tr -d '\r' <"$BATS_TEST_TMPDIR/head" | tr '\n' '|')" \
                "curl -i http://127.0.0.1:8080$target" "book/06-respond.md, section 'What a response looks like'"
    done
}

@test "HEAD / sends the same head as GET, and no body" {
    start_server listening 0
    local response
    response=$(raw_request 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n' | od -An -c | tr -s ' \n' ' ')
    [[ $response == *'2 0 0'*'C o n t e n t - L e n g t h : 2 1 \r \n'*'\r \n \r \n ' ]] ||
        fail_because "a 200 head with Content-Length: 21 that ends with the empty line, and no body" \
            "$(raw_request 'HEAD / HTTP/1.1\r\nHost: x\r\n\r\n' | head -c 300 | grep . || echo 'no response')" \
            "curl -I http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
}

@test "any other path is 404" {
    start_server listening 0
    local path status
    path=/$(random_word)
    status=$(fetch "http://127.0.0.1:$PORT$path")
    [ "$status" = 404 ] ||
        fail_because "404 for $path" "$status" "curl -i http://127.0.0.1:8080$path" "book/06-respond.md, section 'What to answer'"
}

@test "POST with a body is read whole and answered 200" {
    start_server listening 0
    local size=$((1 + RANDOM % 60000)) status
    head -c "$size" /dev/urandom >"$BATS_TEST_TMPDIR/upload"
    status=$(fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] && grep -q "$size" "$BATS_TEST_TMPDIR/body" ||
        fail_because "200 and a body that says how many bytes arrived ($size)" \
            "status $status, body '$(head -c 100 "$BATS_TEST_TMPDIR/body")'" \
            "head -c $size /dev/zero | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/"
}

@test "methods: 405 with Allow for a known method, 501 for an unknown one, 411 for POST without a length" {
    start_server listening 0
    local status
    status=$(fetch -X PUT "http://127.0.0.1:$PORT/")
    [ "$status" = 405 ] && [[ $(field Allow) == *GET* ]] ||
        fail_because "405 with an Allow field for PUT" "status $status, Allow '$(field Allow)'" \
            "curl -i -X PUT http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    status=$(fetch -X "$(random_word | tr '[:lower:]' '[:upper:]')" "http://127.0.0.1:$PORT/")
    [ "$status" = 501 ] ||
        fail_because "501 for a method nobody defined" "$status" "curl -i -X BREW http://127.0.0.1:8080/"
    status=$(fetch -X POST "http://127.0.0.1:$PORT/")
    [ "$status" = 411 ] ||
        fail_because "411 for a POST without Content-Length" "$status" "curl -i -X POST http://127.0.0.1:8080/"
}

@test "malformed and oversized requests get their status code and a short body" {
    start_server listening 0
    local status format response count=0
    while IFS=$'\t' read -r status format length character; do
        count=$((count + 1))
        response=$(send_listed_request "$format" ${length:+"$length" "$character"} 3 | tr -d '\r')
        [[ $response == "HTTP/1.1 $status "*$'\n\n'?* ]] ||
            fail_because "a $status response with a body to '$format'" \
                "$(head -n 1 <<<"${response:-nothing}")" "$(raw_command "$format" ${length:+"$length" "$character"})" \
                "book/06-respond.md, section 'What to answer'"
    done < <(malformed_requests)
    [ "$count" -eq "$MALFORMED_REQUEST_COUNT" ] # the list itself must not break
}

@test "a request that stops halfway gets 408 after the timeout" {
    start_server listening 0
    local response
    response=$(raw_request 'GET / HTTP/1.1\r\nHost: x\r\n' 15 | head -n 1 | tr -d '\r')
    [[ $response == "HTTP/1.1 408 "* ]] ||
        fail_because "HTTP/1.1 408 Request Timeout after a few seconds" "${response:-nothing}" \
            "printf 'GET / HTTP/1.1\\r\\n' | nc 127.0.0.1 8080"
}

@test "the client receives the whole response even when the server leaves bytes unread" {
    start_server listening 0
    local status
    head -c 300000 /dev/zero >"$BATS_TEST_TMPDIR/upload"
    status=$(fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/")
    [ "$status" = 413 ] && [ -s "$BATS_TEST_TMPDIR/body" ] ||
        fail_because "a whole 413 response to a 300000-byte body the server never reads" \
            "status '$status' (000: the connection was reset before the answer arrived)" \
            "head -c 300000 /dev/zero | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/" \
            "book/06-respond.md, section 'Closing without losing the response'"
    local response
    response=$(raw_request "GET / HTTP/1.1\r\nHost: x\r\n\r\n$(head -c 100000 /dev/zero | tr '\0' x)" |
        tr -d '\r' | tail -n 1)
    [ "$response" = '<h1>hello world</h1>' ] ||
        fail_because "the whole page, though the client sent 100000 more bytes after its request" \
            "'${response:0:80}'" "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; head -c 100000 /dev/zero) | nc 127.0.0.1 8080"
}

@test "survives clients that hang up, and does not die of SIGPIPE" {
    start_server listening 0
    local fd
    for _ in $(seq 10); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
        exec {fd}>&-
    done
    [ "$(fetch "http://127.0.0.1:$PORT/")" = 200 ] ||
        fail_because "a 200 after 10 clients hung up without reading" \
            "$(kill -0 "$SERVER_PID" 2>/dev/null && echo 'no 200' || server_state)" \
            "for i in 1 2 3; do printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -q0 127.0.0.1 8080; done"
    # SIGPIPE (13) is bit 12 of the masks in /proc/PID/status: ignored
    # (SigIgn) or handled (SigCgt). A server may instead send with
    # MSG_NOSIGNAL, which only a trace shows.
    local ignored caught
    ignored=$(sed -n 's/^SigIgn:\t//p' "/proc/$SERVER_PID/status")
    caught=$(sed -n 's/^SigCgt:\t//p' "/proc/$SERVER_PID/status")
    if ! (((16#$ignored >> 12) & 1)) && ! (((16#$caught >> 12) & 1)); then
        stop_server
        start_traced_server sendto,sendmsg listening 0
        fetch "http://127.0.0.1:$PORT/" >/dev/null
        grep -q MSG_NOSIGNAL "$TRACE" ||
            fail_because "SIGPIPE ignored (SigIgn in /proc/PID/status), or MSG_NOSIGNAL on every send" \
                "SigIgn: $ignored, SigCgt: $caught, and no MSG_NOSIGNAL" \
                "grep Sig /proc/\$(pgrep -n ${SERVER_NAME##*/})/status" \
                "book/06-respond.md, section 'The signal': a write(2) to a closed connection raises SIGPIPE, signal(7)"
    fi
}

@test "logs one access line per request: peer, method, target, status, bytes sent" {
    start_server listening 0
    local path client_port head_size body_size
    path=/$(random_word)
    read -r client_port head_size body_size < <(curl -s -o /dev/null -m "$WAIT_SECONDS" \
        -w '%{local_port} %{size_header} %{size_download}\n' "http://127.0.0.1:$PORT$path")
    local sent=$((head_size + body_size))
    wait_for_log "^127\.0\.0\.1:$client_port GET $path 404 $sent\$" >/dev/null ||
        fail_because "a line '127.0.0.1:$client_port GET $path 404 $sent' ($sent: the bytes curl received)" \
            "$(tail -n 1 "$LOG")" "$(by_hand "curl http://127.0.0.1:8080$path")" \
            "book/06-respond.md, section 'Each connection'"
}

# part: route
@test "OPTIONS * and OPTIONS / answer 200 with Allow, which lists OPTIONS, and no content" {
    start_server listening 0
    local request response allow
    for request in 'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n' 'OPTIONS / HTTP/1.1\r\nHost: x\r\n\r\n'; do
        response=$(raw_request "$request" | tr -d '\r')
        allow=$(sed -n 's/^Allow: //Ip' <<<"$response")
        [[ $response == 'HTTP/1.1 200 '* && $response == *$'\nContent-Length: 0\n'* &&
            $allow == *GET* && $allow == *OPTIONS* && $response != *$'\n\n'?* ]] || # $(...) drops the empty line, so: nothing after it
            fail_because "200, Allow listing GET and OPTIONS, Content-Length: 0 and no content, for '$request'" \
                "$(tr '\n' '|' <<<"${response:-nothing}")" "curl -i -X OPTIONS --request-target '*' http://127.0.0.1:8080/" \
                "book/06-respond.md, section 'OPTIONS *'"
    done
    response=$(raw_request 'PUT / HTTP/1.1\r\nHost: x\r\n\r\n' | tr -d '\r')
    [[ $(sed -n 's/^Allow: //Ip' <<<"$response") == *OPTIONS* ]] ||
        fail_because "the same Allow, with OPTIONS, in a 405" "$(tr '\n' '|' <<<"${response:-nothing}")" \
            "curl -i -X PUT http://127.0.0.1:8080/" "book/06-respond.md, section 'OPTIONS *'"
}

# part: route
@test "a target in absolute-form is served by its path, whatever Host says" {
    start_server listening 0
    local status path
    status=$(fetch --proxy "http://127.0.0.1:$PORT" http://example.com/)
    [ "$status" = 200 ] && [ "$(cat "$BATS_TEST_TMPDIR/body")" = '<h1>hello world</h1>' ] ||
        fail_because "200 and the hello page for GET http://example.com/ (curl --proxy sends absolute-form)" \
            "status $status" "curl -i --proxy http://127.0.0.1:8080 http://example.com/" \
            "book/05-parse.md, section 'The request target, and Host'"
    local response
    response=$(raw_request 'GET HTTP://EXAMPLE.COM:8080 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n' |
        tr -d '\r' | tail -n 1)
    [ "$response" = '<h1>hello world</h1>' ] ||
        fail_because "the hello page for GET HTTP://EXAMPLE.COM:8080 (an empty path is /), with another Host" \
            "'${response:0:80}'" \
            "$(raw_command 'GET HTTP://EXAMPLE.COM:8080 HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n')" \
            "book/05-parse.md, section 'The request target, and Host'"
    path=/$(random_word)
    status=$(fetch --proxy "http://127.0.0.1:$PORT" "http://example.com$path")
    [ "$status" = 404 ] ||
        fail_because "404 for GET http://example.com$path" "status $status" \
            "curl -i --proxy http://127.0.0.1:8080 http://example.com$path" \
            "book/05-parse.md, section 'The request target, and Host'"
}
