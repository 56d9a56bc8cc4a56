#!/usr/bin/env bats
# Step 07: the connection stays open after a response (RFC 9112, section
# 9). Requests sent together are answered in order; the server closes
# after "Connection: close", after HTTP/1.0 without "keep-alive", after an
# error, after a number of requests, and after the client idles.

load helpers

# Opens one connection, sends FORMAT (printf) in one write(2), and reads
# what comes back until the server closes, for SECONDS at most (default
# WAIT_SECONDS). What came back is in $BATS_TEST_TMPDIR/answer. Sets
# CLOSED (yes: the server closed; no: we gave up waiting) and TOOK_MS.
#   converse FORMAT [SECONDS]
converse() {
    local fd started status=0
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >"$BATS_TEST_TMPDIR/request"
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    started=$(date +%s%N)
    { cat "$BATS_TEST_TMPDIR/request" >&"$fd"; } 2>/dev/null || true
    timeout "${2:-$WAIT_SECONDS}" cat <&"$fd" >"$BATS_TEST_TMPDIR/answer" 2>/dev/null || status=$?
    TOOK_MS=$((($(date +%s%N) - started) / 1000000))
    exec {fd}>&-
    CLOSED=yes
    [ "$status" -ne 124 ] || CLOSED=no
}

# The status codes of the responses that came back, in order: "200 404".
statuses() {
    tr -d '\r' <"$BATS_TEST_TMPDIR/answer" | sed -n 's/^HTTP\/1\.1 \([0-9][0-9]*\) .*/\1/p' |
        paste -sd ' ' -
}

# The Connection field of each response, in order, "-" for none: "- close".
connections() {
    tr -d '\r' <"$BATS_TEST_TMPDIR/answer" | awk '
        /^HTTP\/1\.1 / { if (n++) print c; c = "-" }
        tolower($0) ~ /^connection:/ { c = tolower($2) }
        END { if (n) print c }' | paste -sd ' ' -
}

# What came back, on one line, for "but:".
answer_summary() {
    if [ -s "$BATS_TEST_TMPDIR/answer" ]; then
        echo "responses '$(statuses)', Connection fields '$(connections)'," \
            "$([ "$CLOSED" = yes ] && echo "closed after $TOOK_MS ms" || echo 'still open')"
    else
        echo "no response ($([ "$CLOSED" = yes ] && echo "closed after $TOOK_MS ms" || echo 'still open'))"
    fi
}

# Checks what converse brought back, one thing at a time: the statuses in
# order, each response's Connection field, and the close after the last.
#   expect_answers REQUEST STATUSES WHY CONNECTIONS WHY LAST
expect_answers() {
    local request=$1 statuses=$2 statuses_why=$3 connections=$4 connections_why=$5
    local last=$6 try hint="book/07-keepalive.md, section 'When to close'"
    try=$(raw_command "$request")
    # The requests go in one write: fewer answers than requests most often
    # means the bytes after the first request were thrown away.
    local pipelined="book/07-keepalive.md, section 'The next request is already here'"
    [ "$(statuses | wc -w)" -ge "$(wc -w <<<"$statuses")" ] ||
        fail_because "$statuses_why (the requests came in one write: the next one was already in the buffer)" \
            "$(answer_summary)" "$try" "$pipelined"
    [ "$(statuses)" = "$statuses" ] ||
        fail_because "$statuses_why" "$(answer_summary)" "$try" "$hint"
    [ "$(connections)" = "$connections" ] ||
        fail_because "$connections_why" "$(answer_summary)" "$try" "$hint"
    [ "$CLOSED" = yes ] ||
        fail_because "the close after $last" "$(answer_summary)" "$try" "$hint"
}

# bats test_tags=ladder
@test "curl fetches two URLs over one connection" {
    start_server listening 0
    local path output
    path=/$(random_word)
    output=$(curl -sv -m "$WAIT_SECONDS" -o /dev/null -o /dev/null \
        "http://127.0.0.1:$PORT/" "http://127.0.0.1:$PORT$path" 2>&1 || true)
    wait_for_log "^127\.0\.0\.1:[0-9]+ GET $path 404 " >/dev/null || true
    local accepted
    accepted=$(grep -c '^accepted ' "$LOG")
    local said try hint="book/07-keepalive.md, section 'Build and run'"
    said="$accepted 'accepted' lines; curl said: $(grep -E 'Connected|Re-using|Closing' <<<"$output" | tr '\n' '|')"
    try=$(by_hand "curl -v http://127.0.0.1:8080/ http://127.0.0.1:8080$path")
    [ "$accepted" -eq 1 ] ||
        fail_because "one 'accepted' line: both requests on one connection" "$said" "$try" "$hint"
    grep -Eq "^127\.0\.0\.1:[0-9]+ GET / 200 " "$LOG" ||
        fail_because "'GET / 200' in the log, before 'GET $path 404'" "$said" "$try" "$hint"
    [[ $output == *'Re-using existing connection'* ]] ||
        fail_because "curl to say 'Re-using existing connection' for GET $path" "$said" "$try" "$hint"
}

# bats test_tags=ladder
@test "three requests sent in one write are answered in order" {
    start_server listening 0
    local word body request
    word=$(random_word)
    body=$(random_word)$(random_word)
    request="POST / HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: ${#body}\\r\\n\\r\\n$body"
    request+="GET /$word HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    request+="DELETE / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n"
    converse "$request"
    local try hint="book/07-keepalive.md, section 'The next request is already here'"
    try=$(raw_command "$request")
    [ "$(statuses)" = '200 404 405' ] ||
        fail_because "200 (the POST's ${#body}-byte body), 404 (GET /$word), 405 (DELETE), in that order" \
            "$(answer_summary)" "$try" "$hint"
    grep -q "<p>received ${#body} bytes</p>" "$BATS_TEST_TMPDIR/answer" ||
        fail_because "the POST's answer to say '<p>received ${#body} bytes</p>'" \
            "$(grep -a -o '<p>received [^<]*</p>' "$BATS_TEST_TMPDIR/answer" || echo 'no such line'); $(answer_summary)" \
            "$try" "$hint"
    [ "$CLOSED" = yes ] ||
        fail_because "the close after the third answer (the DELETE said Connection: close)" \
            "$(answer_summary)" "$try" "$hint"
    local order
    order=$(grep -E '^127\.0\.0\.1:[0-9]+ [A-Z]+ ' "$LOG" | cut -d' ' -f2,3 | paste -sd ',' -)
    [ "$order" = "POST /,GET /$word,DELETE /" ] ||
        fail_because "the access lines in the order sent: POST /, GET /$word, DELETE /" "'$order'" \
            "$(raw_command "$request")"
}

# bats test_tags=ladder
# (Connection holds a list of options, without case: RFC 9110, section 7.6.1.)
@test "the connection stays open until a request says Connection: close" {
    start_server listening 0
    local request='GET / HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: TE, Close\r\n\r\nGET /never HTTP/1.1\r\nHost: x\r\n\r\n'
    converse "$request"
    expect_answers "$request" '200 200' \
        "two answers, 200 200 (the third request, after Connection: TE, Close, unanswered)" \
        '- close' "no Connection field on the first answer, Connection: close on the second (it said Connection: TE, Close)" \
        'the second answer'
}

# bats test_tags=ladder
@test "HTTP/1.0 closes after its response, unless it asks for keep-alive" {
    start_server listening 0
    local request='GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET /never HTTP/1.0\r\n\r\n'
    converse "$request"
    expect_answers "$request" '200 200' \
        "two answers, 200 200 (the third request, after an HTTP/1.0 request without keep-alive, unanswered)" \
        'keep-alive close' "Connection: keep-alive on the first answer (it asked), Connection: close on the second" \
        'the second answer'
}

# bats test_tags=ladder
@test "a 404 keeps the connection; a malformed request ends it" {
    start_server listening 0
    local word request
    word=$(random_word)
    request="GET /$word HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET / HTTP/1.1 extra\\r\\nHost: x\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n"
    converse "$request"
    expect_answers "$request" '404 400' \
        "404, then 400 (the third request unanswered: after a malformed request, nobody knows where the next one begins)" \
        '- close' "no Connection field on the 404 (connection kept), Connection: close on the 400" \
        'the 400'
}

# bats test_tags=ladder
@test "an idle connection is closed after the keep-alive timeout, without a 408" {
    start_server listening 0
    converse 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' 15
    local try="(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 20) | nc 127.0.0.1 8080"
    local hint="book/07-keepalive.md, section 'Two timeouts'"
    [ "$(statuses)" = 200 ] ||
        fail_because "one 200, and nothing more (no 408 to an idle connection)" "$(answer_summary)" "$try" "$hint"
    [ "$CLOSED" = yes ] ||
        fail_because "the close after the keep-alive timeout (1 to 10 s)" "$(answer_summary)" "$try" "$hint"
    ((TOOK_MS >= 1000 && TOOK_MS <= 10000)) ||
        fail_because "the connection kept open for the keep-alive timeout, 1 to 10 s, before the close" \
            "$(answer_summary)" "$try" "$hint"
    ! grep -q '^rejected' "$LOG" ||
        fail_because "no 'rejected' line: an idle connection between requests is not an error" \
            "$(grep '^rejected' "$LOG")" "$try" "$hint"
}

# bats test_tags=ladder
@test "after a maximum number of requests on one connection, the server closes" {
    start_server listening 0
    local request='' count=1200 i
    for ((i = 0; i < count; i++)); do request+='GET / HTTP/1.1\r\nHost: x\r\n\r\n'; done
    converse "$request"
    local answered closes
    answered=$(statuses | wc -w)
    closes=$(connections | tr ' ' '\n' | grep -c close || true)
    local said
    said="$answered answers, $closes with Connection: close, $([ "$CLOSED" = yes ] && echo closed || echo 'still open')"
    local try="for i in \$(seq $count); do printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; done | nc 127.0.0.1 8080 | grep -c HTTP/1.1"
    local hint="book/07-keepalive.md, section 'When to close'"
    [ "$answered" -ge 2 ] ||
        fail_because "at least 2 answers on one connection (the limit is above 1)" "$said" "$try" "$hint"
    [ "$answered" -lt "$count" ] ||
        fail_because "a limit below $count requests: fewer than $count answers" "$said" "$try" "$hint"
    [ "$closes" -eq 1 ] ||
        fail_because "exactly one answer with Connection: close, the one at the limit" "$said" "$try" "$hint"
    [ "$(connections | awk '{ print $NF }')" = close ] ||
        fail_because "Connection: close on the last answer" "$said; the last said '$(connections | awk '{ print $NF }')'" \
            "$try" "$hint"
    [ "$CLOSED" = yes ] ||
        fail_because "the close after the answer at the limit" "$said" "$try" "$hint"
}
