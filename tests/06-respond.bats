#!/usr/bin/env bats
# Step 06: the server answers every request with a complete HTTP/1.1
# response, with write(2), survives clients that hang up, and closes so
# that the client receives the whole response.
#
# The stage comes in three parts (tests/workshop/parts), and each test is
# tagged with its part, so that `make check STEP=06 PART=N` checks the
# parts up to N: response, route, close.

load helpers

# The whole response of a raw request, its characters shown by od(1) so
# that CR, LF and the end are visible.
#   response_characters FORMAT
response_characters() {
    raw_request "$1" | od -An -c | tr -s ' \n' ' '
}

# The line of a response's head that does not end in CR LF, numbered,
# its characters shown by od(1); "no head" if no line ends the head; or
# nothing if every line of the head, the empty one too, ends in CR LF.
#   head_line_without_crlf FILE
head_line_without_crlf() {
    awk 'BEGIN { RS = "\n" }
        $0 == "\r" { ended = 1; exit }
        !/\r$/ { bad = NR; exit }
        END {
            if (bad) print bad
            else if (!ended) print "no head"
        }' "$1" | while read -r number; do
        if [ ! -s "$1" ]; then
            echo "no response: $(curl_said)"
        elif [ "$number" = "no head" ]; then
            echo "no empty line (CR LF) ended the head; what came: $(head -c 200 "$1" | od -An -c | tr -s ' \n' ' ')"
        else
            echo "line $number: $(sed -n "${number}p" "$1" | head -c 80 | od -An -c | tr -s ' \n' ' ')"
        fi
    done
}

# Every line of the head ends in CR LF, the empty line too: a client that
# looks for CR LF CR LF would wait for ever, and curl, which takes LF too,
# would hide the mistake from the other checks.
# bats test_tags=ladder,part:response
@test "GET / answers 200 with the hello world page as text/html" {
    start_server listening 0
    local status body bad
    raw_request 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >/dev/null
    bad=$(head_line_without_crlf "$BATS_TEST_TMPDIR/answer")
    [ -z "$bad" ] ||
        fail_because "every line of the response's head to end in CR LF (\\r\\n), and the empty line that ends it too" \
            "$bad" "$(raw_command 'GET / HTTP/1.1\r\nHost: x\r\n\r\n') | od -c | head" \
            "book/06-respond.md, section 'What a response looks like': each line ends in CR LF, \"\\r\\n\" in C, not \"\\n\" alone"
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] ||
        fail_because "status 200 for GET /" "status '$status': $(curl_said)" \
            "$(by_hand "curl -i http://127.0.0.1:8080/")" "book/06-respond.md, section 'What a response looks like'"
    body=$(cat "$BATS_TEST_TMPDIR/body")
    [ "$body" = '<h1>hello world</h1>' ] ||
        fail_because "the body '<h1>hello world</h1>'" "'${body:0:80}'" \
            "$(by_hand "curl -i http://127.0.0.1:8080/")" "book/06-respond.md, section 'Build and run'"
    [ "$(field Content-Type)" = 'text/html; charset=utf-8' ] ||
        fail_because "Content-Type: text/html; charset=utf-8" "'$(field Content-Type)'" \
            "curl -i http://127.0.0.1:8080/" "book/06-respond.md, section 'What a response looks like'"
}

# From step 07 on, the server keeps the connection open unless the client
# asks it to close: so the request asks, and the answer must agree.
# bats test_tags=ladder,part:response
@test "every response has Date, Content-Type, a true Content-Length and Connection: close" {
    start_server listening 0
    local target status date length size try head
    for target in / "/$(random_word)" "/%zz"; do
        status=$(fetch -H 'Connection: close' "http://127.0.0.1:$PORT$target")
        head="status $status and: $(tr -d '\r' <"$BATS_TEST_TMPDIR/head" | tr '\n' '|')"
        try="curl -i -H 'Connection: close' http://127.0.0.1:8080$target"
        date=$(field Date)
        [[ $date =~ ^(Mon|Tue|Wed|Thu|Fri|Sat|Sun),\ [0-9]{2}\ [A-Z][a-z]{2}\ [0-9]{4}\ [0-9:]{8}\ GMT$ ]] ||
            fail_because "a Date field in the RFC 9110 format, such as 'Date: Sun, 06 Nov 1994 08:49:37 GMT'" \
                "$head" "$try" "book/06-respond.md, section 'What a response looks like'"
        [ -n "$(field Content-Type)" ] ||
            fail_because "a Content-Type field" "$head" "$try" \
                "book/06-respond.md, section 'What a response looks like'"
        length=$(field Content-Length)
        size=$(wc -c <"$BATS_TEST_TMPDIR/body")
        [ "$length" = "$size" ] ||
            fail_because "Content-Length: $size, the size of the body that came" "$head" "$try" \
                "book/06-respond.md, section 'What a response looks like'"
        [ "$(field Connection)" = close ] ||
            fail_because "Connection: close" "$head" "$try" \
                "book/06-respond.md, section 'What a response looks like'"
    done
}

# bats test_tags=part:route
@test "HEAD / sends the same head as GET, and no body" {
    start_server listening 0
    local page length response
    fetch "http://127.0.0.1:$PORT/" >/dev/null
    page=$(wc -c <"$BATS_TEST_TMPDIR/body")
    length=$(field Content-Length)
    [ "$page" -gt 0 ] && [ "$length" = "$page" ] || # what the test compares with, not what it tests
        fail_because "GET / to send the page and its length, first" "Content-Length '$length', $page bytes" \
            "curl -i http://127.0.0.1:8080/" "book/06-respond.md, section 'What a response looks like'"
    response=$(response_characters 'HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')
    [[ $response == *'2 0 0'* ]] ||
        fail_because "a 200 response to HEAD /" "$(head -c 300 "$BATS_TEST_TMPDIR/answer" | grep . || echo 'no response')" \
            "curl -I http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    local spaced # od -c shows each character followed by a space
    spaced=$(grep -o . <<<"$page" | paste -sd' ')
    [[ $response == *"C o n t e n t - L e n g t h : $spaced "'\r \n'* ]] ||
        fail_because "Content-Length: $page, the length of the page GET / sends" \
            "$(grep -a Content-Length "$BATS_TEST_TMPDIR/answer" || echo 'no Content-Length')" \
            "curl -I http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    [[ $response == *'\r \n \r \n ' ]] ||
        fail_because "the head to end with its empty line, and no body after it" \
            "it ends with: $(tail -c 40 "$BATS_TEST_TMPDIR/answer" | od -An -c | tr -s ' \n' ' ')" \
            "curl -I http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
}

# bats test_tags=ladder,part:route
@test "any other path is 404" {
    start_server listening 0
    local path status
    path=/$(random_word)
    status=$(fetch "http://127.0.0.1:$PORT$path")
    [ "$status" = 404 ] ||
        fail_because "404 for $path" "$status: $(curl_said)" "curl -i http://127.0.0.1:8080$path" \
            "book/06-respond.md, section 'What to answer'"
}

# bats test_tags=part:route
@test "POST with a body is read whole and answered 200" {
    start_server listening 0
    local size=$((1 + RANDOM % 60000)) status
    head -c "$size" /dev/urandom >"$BATS_TEST_TMPDIR/upload"
    status=$(fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/")
    local try="head -c $size /dev/zero | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/"
    [ "$status" = 200 ] ||
        fail_because "200 for a POST of $size bytes" "$status: $(curl_said)" "$try" \
            "book/06-respond.md, section 'What to answer'"
    grep -q "$size" "$BATS_TEST_TMPDIR/body" ||
        fail_because "a body that says how many bytes arrived ($size)" \
            "'$(head -c 100 "$BATS_TEST_TMPDIR/body")'" "$try" "book/06-respond.md, section 'What to answer'"
}

# bats test_tags=part:route
@test "methods: 405 with Allow for a known method, 501 for an unknown one, 411 for POST without a length" {
    start_server listening 0
    local status
    status=$(fetch -X PUT "http://127.0.0.1:$PORT/")
    [ "$status" = 405 ] ||
        fail_because "405 for PUT" "$status: $(curl_said)" \
            "curl -i -X PUT http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    [[ $(field Allow) == *GET* ]] ||
        fail_because "an Allow field that names GET, with the 405" "Allow: '$(field Allow)'" \
            "curl -i -X PUT http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    status=$(fetch -X "$(random_word | tr '[:lower:]' '[:upper:]')" "http://127.0.0.1:$PORT/")
    [ "$status" = 501 ] ||
        fail_because "501 for a method nobody defined" "$status: $(curl_said)" \
            "curl -i -X BREW http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
    status=$(fetch -X POST "http://127.0.0.1:$PORT/")
    [ "$status" = 411 ] ||
        fail_because "411 for a POST without Content-Length" "$status: $(curl_said)" \
            "curl -i -X POST http://127.0.0.1:8080/" "book/06-respond.md, section 'What to answer'"
}

# check_malformed_requests's CHECK for step 06: the response says it.
answered_with() {
    local status=$1 format=$2 response
    shift 2
    response=$(send_listed_request "$format" "$@" 3 | tr -d '\r')
    [[ $response == "HTTP/1.1 $status "* ]] ||
        fail_because "a $status response to $(listed_request "$format" "$@")" \
            "$(head -n 1 <<<"${response:-nothing: $(cat "$BATS_TEST_TMPDIR/exchange")}")" \
            "$(raw_command "$format" "$@")" "book/06-respond.md, section 'What to answer'" || return 1
    [[ $response == *$'\n\n'?* ]] ||
        fail_because "a short body after the head of the $status response to $(listed_request "$format" "$@")" \
            "$(tail -n 3 <<<"$response")" "$(raw_command "$format" "$@")" \
            "book/06-respond.md, section 'What a response looks like'"
}

# bats test_tags=part:response
@test "malformed and oversized requests get their status code and a short body" {
    start_server listening 0
    check_malformed_requests '' answered_with
}

# bats test_tags=part:response
@test "a request that stops halfway gets 408 after the timeout" {
    start_server listening 0
    local response
    response=$(raw_request 'GET / HTTP/1.1\r\nHost: x\r\n' 15 | head -n 1 | tr -d '\r')
    [[ $response == "HTTP/1.1 408 "* ]] ||
        fail_because "HTTP/1.1 408 Request Timeout after a few seconds" \
            "${response:-nothing: $(cat "$BATS_TEST_TMPDIR/exchange")}" \
            "printf 'GET / HTTP/1.1\\r\\n' | nc 127.0.0.1 8080" "book/06-respond.md, section 'What to answer'"
}

# bats test_tags=ladder,part:close
@test "the client receives the whole response even when the server leaves bytes unread" {
    start_server listening 0
    local status
    head -c 300000 /dev/zero >"$BATS_TEST_TMPDIR/upload"
    status=$(fetch --data-binary @"$BATS_TEST_TMPDIR/upload" "http://127.0.0.1:$PORT/")
    [ "$status" = 413 ] ||
        fail_because "a 413 response to a 300000-byte body the server never reads" \
            "status '$status': $(curl_said)" \
            "head -c 300000 /dev/zero | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/" \
            "book/06-respond.md, section 'Closing without losing the response'"
    [ -s "$BATS_TEST_TMPDIR/body" ] ||
        fail_because "the 413 response's body too" "no body: the connection was reset before it arrived" \
            "head -c 300000 /dev/zero | curl -i -H 'Expect:' --data-binary @- http://127.0.0.1:8080/" \
            "book/06-respond.md, section 'Closing without losing the response'"
    local response
    # (It asks to close: from step 07 on, what follows would be the next request.)
    response=$(raw_request "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n$(head -c 100000 /dev/zero | tr '\0' x)" |
        tr -d '\r' | tail -n 1)
    [ "$response" = '<h1>hello world</h1>' ] ||
        fail_because "the whole page, though the client sent 100000 more bytes after its request" \
            "'${response:0:80}'" "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n'; head -c 100000 /dev/zero) | nc 127.0.0.1 8080" \
            "book/06-respond.md, section 'Closing without losing the response'"
}

# Unread bytes make close(2) send a reset, which can destroy the response
# before the client reads it; on loopback the client is quick enough to
# read it first, so only a trace shows that the server closed with care:
# shutdown(2) of its side, then close(2).
# bats test_tags=ladder,part:close
@test "shuts down its side before it closes a connection with bytes left unread (strace)" {
    start_traced_server shutdown,close listening 0
    local request fd closes
    request="GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n$(random_word) and more that nobody reads"
    raw_request "$request" >/dev/null
    fd=$(wait_for_log '^accepted .* on fd [0-9]+$' | sed 's/.* on fd //')
    # The server closes after the client does, or after its linger: wait for it.
    local deadline=$((SECONDS + WAIT_SECONDS + 1))
    while ! grep -Eq "close\(${fd:-x}\) " "$TRACE" && ((SECONDS < deadline)); do sleep 0.02; done
    closes=$(grep -E "(shutdown|close)\(${fd:-x}[,)]" "$TRACE" | sed -E 's/^[0-9]+ +//; s/\) += /) = /' | paste -sd' ')
    [[ $closes == *"shutdown($fd, SHUT_WR) = 0"*"close($fd) = 0"* ]] ||
        fail_because "shutdown($fd, SHUT_WR), then close($fd), for a connection whose request was followed by bytes the server did not read" \
            "${closes:-no close of fd ${fd:-N} in the trace}" \
            "strace -e trace=shutdown,close $SERVER_NAME 8080 & sleep 0.5; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\nmore' | nc 127.0.0.1 8080; kill \$!" \
            "book/06-respond.md, section 'Closing without losing the response'"
}

# bats test_tags=ladder,part:close
@test "survives clients that hang up, and does not die of SIGPIPE" {
    start_server listening 0
    local fd
    for _ in $(seq 10); do
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
        exec {fd}>&-
    done
    local status
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] ||
        fail_because "a 200 after 10 clients hung up without reading" "$status: $(curl_said)" \
            "for i in 1 2 3; do printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc -q0 127.0.0.1 8080; done" \
            "book/06-respond.md, section 'The signal'"
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

# bats test_tags=part:response
@test "logs one access line per request: peer, method, target, status, bytes sent" {
    start_server listening 0
    local client_port head_size body_size
    read -r client_port head_size body_size < <(curl -s -o /dev/null -m "$WAIT_SECONDS" \
        -w '%{local_port} %{size_header} %{size_download}\n' "http://127.0.0.1:$PORT/")
    local sent=$((head_size + body_size))
    wait_for_log "^127\.0\.0\.1:$client_port GET / 200 $sent\$" >/dev/null ||
        fail_because "a line '127.0.0.1:$client_port GET / 200 $sent' ($sent: the bytes curl received)" \
            "$(tail -n 1 "$LOG")" "$(by_hand "curl http://127.0.0.1:8080/")" \
            "book/06-respond.md, section 'Each connection'"
}

# bats test_tags=part:route
@test "OPTIONS * and OPTIONS / answer 200 with Allow, which lists OPTIONS, and no content" {
    start_server listening 0
    local request response allow
    local try="curl -i -X OPTIONS --request-target '*' http://127.0.0.1:8080/" hint="book/06-respond.md, section 'OPTIONS *'"
    # (Connection: close: from step 07 on, the server would keep the connection.)
    for request in 'OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
        'OPTIONS / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'; do
        response=$(raw_request "$request" | tr -d '\r')
        allow=$(sed -n 's/^Allow: //Ip' <<<"$response")
        [[ $response == 'HTTP/1.1 200 '* ]] ||
            fail_because "200 for '$request'" "$(head -n 1 <<<"${response:-nothing}")" "$try" "$hint"
        [[ $allow == *GET* && $allow == *OPTIONS* ]] ||
            fail_because "an Allow field that lists GET and OPTIONS, for '$request'" "Allow: '$allow'" "$try" "$hint"
        [[ $response == *$'\nContent-Length: 0\n'* ]] ||
            fail_because "Content-Length: 0 for '$request'" "$(grep -i '^Content-Length' <<<"$response" || echo 'none')" \
                "$try" "$hint"
        # $(...) drops the empty line at the end, so: nothing after the head's last line
        [[ $response != *$'\n\n'?* ]] ||
            fail_because "no content after the head, for '$request'" "$(tr '\n' '|' <<<"$response")" "$try" "$hint"
    done
    response=$(raw_request 'PUT / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' | tr -d '\r')
    [[ $(sed -n 's/^Allow: //Ip' <<<"$response") == *OPTIONS* ]] ||
        fail_because "the same Allow, with OPTIONS, in a 405" "$(tr '\n' '|' <<<"${response:-nothing}")" \
            "curl -i -X PUT http://127.0.0.1:8080/" "book/06-respond.md, section 'OPTIONS *'"
}

# bats test_tags=part:route
@test "a target in absolute-form is served by its path, whatever Host says" {
    start_server listening 0
    local status path
    status=$(fetch --proxy "http://127.0.0.1:$PORT" http://example.com/)
    [ "$status" = 200 ] ||
        fail_because "200 for GET http://example.com/ (curl --proxy sends absolute-form)" \
            "status $status: $(curl_said)" "curl -i --proxy http://127.0.0.1:8080 http://example.com/" \
            "book/05-parse.md, section 'The request target, and Host'"
    [ "$(cat "$BATS_TEST_TMPDIR/body")" = '<h1>hello world</h1>' ] ||
        fail_because "the hello page for GET http://example.com/" "'$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "curl -i --proxy http://127.0.0.1:8080 http://example.com/" \
            "book/05-parse.md, section 'The request target, and Host'"
    local response
    response=$(raw_request 'GET HTTP://EXAMPLE.COM:8080 HTTP/1.1\r\nHost: elsewhere.example\r\nConnection: close\r\n\r\n' |
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
