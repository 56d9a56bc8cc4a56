#!/usr/bin/env bats
# Fault and load tests: clients that are slow, silent, rude or malformed,
# and ten thousand requests in a row. They run against steps 05 (which
# reads requests but does not answer) to 11: make faults. The last tests
# are for step 09's one process and the steps after it: hundreds of slow
# clients at once, resets with answers on their way, hundreds of
# keep-alive clients; and step 12's drain deadline. The requests
# that expect the server to close say "Connection: close", which step 07
# honours and the earlier steps do anyway.
#
# Every test ends by checking that the server is still running and that
# no sanitizer (make faults SANITIZE=1) or valgrind (make memcheck) report
# appeared. What they measured is printed as "# ..." lines.

load helpers
load fault-helpers

setup() {
    start_server listening
    BASELINE_FDS=$(count_descriptors)
}

# Prints a figure for the reader (and for book/d-tested.md).
report() {
    echo "# step $STEP: $*" >&3
}

# A silent or slow client holds the server until REQUEST_TIMEOUT_SECONDS (5 s);
# then the server answers 408 (step 06) and serves the next client, which
# has been waiting in the listen queue all along. From step 08 on, the
# next one is served at once: by a child of its own (08), by the event loop
# (09).
timed_out_then_next() {
    local fd started took answer word code_file=$BATS_TEST_TMPDIR/probe.code curl_pid
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >&"$fd"
    started=$(now_ms)
    word=$(random_word)
    curl -s -m "$((WAIT_SECONDS + 10))" -o /dev/null -w '%{http_code} %{time_total}' \
        -H "X-Probe: $word" "http://127.0.0.1:$PORT/" >"$code_file" {fd}>&- &
    curl_pid=$! # (without our socket: the server would wait for curl to close it too)
    # The server's answer, then its FIN: cat returns when it times us out.
    answer=$(timeout "$((WAIT_SECONDS + 5))" cat <&"$fd" 2>/dev/null | head -n 1 | tr -d '\r' || true)
    took=$(($(now_ms) - started))
    exec {fd}>&-
    wait "$curl_pid" || true
    report "a client that $2 was timed out after $took ms"
    if ((took < 4500 || took > 8000)); then
        fail_because "the server to time the client out after about 5 s (REQUEST_TIMEOUT_SECONDS)" \
            "it did after $took ms" "$(raw_command "$1") (and wait)"
        return 1
    fi
    # (From step 09 on, the log is written when the server is quiet: wait.)
    if ! wait_for_log 'rejected with 408: timed out' >/dev/null; then
        fail_because "the log to say: rejected with 408: timed out" "it does not" \
            "$(raw_command "$1")"
        return 1
    fi
    if answers && [[ $answer != "HTTP/1.1 408 Request Timeout" ]]; then
        fail_because "HTTP/1.1 408 Request Timeout" "'$answer'" "$(raw_command "$1")"
        return 1
    fi
    local code probe_took
    read -r code probe_took <"$code_file" || true
    if ! wait_for_log "header: X-Probe: $word" >/dev/null; then
        fail_because "the client waiting behind it to be served" "the log has no 'header: X-Probe: $word'" \
            "$(raw_command "$1") & curl -v http://127.0.0.1:8080/"
        return 1
    fi
    if answers && [ "$code" != 200 ]; then
        fail_because "a 200 for the client waiting behind it" "status '$code'" \
            "$(raw_command "$1") & curl -v http://127.0.0.1:8080/"
        return 1
    fi
    report "the next client was served after ${probe_took:-?} s"
    if serves_at_once && ! awk -v took="${probe_took:-99}" 'BEGIN { exit !(took < 1) }'; then
        fail_because "the next client served at once (by a child of its own, or the event loop)" \
            "it was served after $probe_took s" "$(raw_command "$1") & curl -v http://127.0.0.1:8080/"
        return 1
    fi
}

@test "a client that connects and sends nothing is timed out, then the next one is served" {
    timed_out_then_next '' 'sends nothing'
}

@test "a client that stops halfway through its request is timed out, then the next one is served" {
    timed_out_then_next 'GET / HTTP/1.1\r\nHo' 'stops halfway'
}

@test "a request sent one byte at a time is served" {
    local request fd answer
    request=$'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: yes\r\nConnection: close\r\n\r\n'
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    untraced send_in_pieces "$fd" 1 0.005 "$request"
    answer=$(timeout "$WAIT_SECONDS" cat <&"$fd" | head -n 1 | tr -d '\r' || true)
    exec {fd}>&-
    report "sent a request of ${#request} bytes in ${#request} writes"
    if ! wait_for_log 'header: X-Slow: yes' >/dev/null; then
        fail_because "the log to show the request" "it does not" \
            "(for c in G E T ' ' / ...; do printf %s \"\$c\"; sleep 0.1; done) | nc 127.0.0.1 8080"
        return 1
    fi
    if answers && [[ $answer != "HTTP/1.1 200 OK" ]]; then
        fail_because "HTTP/1.1 200 OK" "'$answer'" "a request sent one byte at a time"
        return 1
    fi
}

@test "a request split across many writes, head and body, is read in full" {
    local body fd chunk=37 message answer
    body=$(head -c 3000 /dev/zero | tr '\0' 'b')
    message=$'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3000\r\nConnection: close\r\n\r\n'$body
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    untraced send_in_pieces "$fd" "$chunk" 0.002 "$message"
    answer=$(timeout "$WAIT_SECONDS" cat <&"$fd" | tail -n 1 || true)
    exec {fd}>&-
    report "sent ${#message} bytes in $(((${#message} + chunk - 1) / chunk)) writes of $chunk bytes"
    if ! wait_for_log 'body: 3000 bytes' >/dev/null; then
        fail_because "the log to say: body: 3000 bytes" "it does not" \
            "a POST with a 3000-byte body, sent $chunk bytes at a time"
        return 1
    fi
    if answers && [[ $answer != "<p>received 3000 bytes</p>" ]]; then
        fail_because "<p>received 3000 bytes</p>" "'$answer'" "the same POST"
        return 1
    fi
}

hang_up_in_every_way() {
    local i fd request=$'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' garbage
    garbage=$(head -c 100000 /dev/zero | tr '\0' 'g')
    for ((i = 0; i < 10; i++)); do
        # before: connect and close, with FIN then with RST
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        exec {fd}>&-
        send_and_reset ''
        # before: half a request, then close
        send_and_reset 'GET / HTTP/1.1\r\nHo'
        # during: a whole request, then reset before the answer is read
        send_and_reset "$request"
        # during: a request followed by bytes the server never reads
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        (printf '%s%s' "$request" "$garbage" >&"$fd") 2>/dev/null || true
        exec {fd}>&-
        # after: read the answer, then close
        raw_request "$request" >/dev/null
    done
}

@test "clients that hang up before, during and after the response do not stop the server" {
    untraced hang_up_in_every_way
    report "60 clients hung up before, during or after the response;" \
        "$(count_log '^(write|shutdown|close|accept4): ') failed calls logged"
    probe "60 clients hung up on it" || return 1
    local fds
    fds=$(wait_for_descriptors "$BASELINE_FDS")
    if [ "$fds" -ne "$BASELINE_FDS" ]; then
        fail_because "$BASELINE_FDS open descriptors, as before" "$fds" "ls -l /proc/PID/fd"
        return 1
    fi
}

# Writes the malformed requests of the flood into DIR, one file each.
write_malformed_requests() {
    local dir=$1 i
    local -a formats=(
        'GET / HTTP/1.1\nHost: x\n\n'                                  # bare LF
        'GET / HTTP/1.1\r\nHost: x\n\r\n'                              # LF, then CR LF
        'GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n'            # obs-fold
        'GET / HTTP/1.1\r\nHost: x\r\n\tb\r\n\r\n'                     # obs-fold, tab
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc'
        'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\nhello'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\na'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n'
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort'   # body cut short
        'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n'
        'GET / HTTP/1.1\r\n\r\n'                                       # no Host
        'GET / HTTP/2.0\r\nHost: x\r\n\r\n'
        'GET / HTTP/1.10\r\nHost: x\r\n\r\n'
        'GET / http/1.1\r\nHost: x\r\n\r\n'
        'GET /\r\n\r\n'                                                # HTTP/0.9
        'GET  / HTTP/1.1\r\nHost: x\r\n\r\n'                           # two spaces
        'GET\t/\tHTTP/1.1\r\nHost: x\r\n\r\n'
        'GET http:///x HTTP/1.1\r\nHost: x\r\n\r\n'                    # absolute form, no host
        'GET index.html HTTP/1.1\r\nHost: x\r\n\r\n'
        'G(T / HTTP/1.1\r\nHost: x\r\n\r\n'
        ' GET / HTTP/1.1\r\nHost: x\r\n\r\n'
        '\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n'  # 9 empty lines first
        'GET * HTTP/1.1\r\nHost: x\r\n\r\n'                              # * is for OPTIONS
        'GET / HTTP/1.1\r\nHost: x y\r\n\r\n'                          # a space in Host
        'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n' # chunks in HTTP/1.0
        '\r\n\r\n'
        'GET /\0 HTTP/1.1\r\nHost: x\r\n\r\n'                          # NUL in the target
        'GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n'                         # NUL in a field
        '\0\0\0\0\r\n\r\n'
        'GET /caf\303\251 HTTP/1.1\r\nHost: x\r\n\r\n'                 # non-ASCII target
        'GET / HTTP/1.1\r\nHost: x\001\r\n\r\n'                        # control character
        'GET / HTTP/1.1\r\nHost: x\177\r\n\r\n'                        # DEL
        'GET / HTTP/1.1\r\nHost : x\r\n\r\n'                           # space before colon
        'GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n'                     # empty field name
        'GET / HTTP/1.1\r\nNo colon here\r\n\r\n'
        'GET / HTTP/1.1\r\nHost: x\r\n'                                # no empty line
        'GET / HTTP/1.1'                                               # request line only
        'GET'
    )
    for i in "${!formats[@]}"; do
        # shellcheck disable=SC2059 # the formats are the point
        printf -- "${formats[i]}" >"$dir/crafted-$i"
    done
    # Too large: a target, a field line, too many fields, a whole head.
    { printf 'GET /'; head -c 3000 /dev/zero | tr '\0' a; printf ' HTTP/1.1\r\nHost: x\r\n\r\n'; } >"$dir/huge-target"
    { printf 'GET /'; head -c 20000 /dev/zero | tr '\0' a; } >"$dir/huge-request-line"
    { printf 'GET / HTTP/1.1\r\nHost: x\r\nX-Big: '; head -c 5000 /dev/zero | tr '\0' v; printf '\r\n\r\n'; } >"$dir/huge-field"
    { printf 'GET / HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 1 40); do printf 'X-%d: %d\r\n' "$i" "$i"; done; printf '\r\n'; } >"$dir/many-fields"
    { printf 'GET / HTTP/1.1\r\nHost: x\r\n'; for i in $(seq 1 30); do printf 'X-%d: %0300d\r\n' "$i" 0; done; printf '\r\n'; } >"$dir/huge-head"
    { printf 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 70000\r\n\r\n'; head -c 70000 /dev/zero; } >"$dir/huge-body"
    head -c 100000 /dev/zero >"$dir/nul-bytes"
    # Random bytes, alone and after a valid request line.
    for i in $(seq 1 "${RANDOM_INPUTS:-150}"); do
        head -c "$((RANDOM % 2000 + 1))" /dev/urandom >"$dir/random-$i"
        { printf 'GET / HTTP/1.1\r\n'; head -c "$((RANDOM % 300 + 20))" /dev/urandom; printf '\r\n\r\n'; } >"$dir/random-fields-$i"
    done
}

# Sends every file of DIR, checks each answer, prints "COUNT WRONG".
send_flood() {
    local dir=$1 input first count=0 bad=0
    for input in "$dir"/*; do
        count=$((count + 1))
        send_half_closed "$input" "$input.answer"
        first=$(head -n 1 "$input.answer" | tr -d '\r')
        if answers && [ -n "$first" ] && ! [[ $first =~ ^HTTP/1\.1\ [45][0-9][0-9]\  ]]; then
            echo "# $(basename "$input"): answered '$first'" >&3
            bad=$((bad + 1))
        fi
        if [ -n "$first" ] && ! answers; then
            echo "# $(basename "$input"): step 05 answered '$first'" >&3
            bad=$((bad + 1))
        fi
        rm -f "$input.answer"
    done
    echo "$count $bad"
}

@test "a flood of malformed requests: each gets an error status or a clean close" {
    local dir=$BATS_TEST_TMPDIR/malformed count bad before after
    mkdir -p "$dir"
    untraced write_malformed_requests "$dir"
    before=$(count_log '^(rejected with|dropped:)')
    untraced send_flood "$dir" >"$BATS_TEST_TMPDIR/flood"
    read -r count bad <"$BATS_TEST_TMPDIR/flood"
    wait_for_count '^(rejected with|dropped:)' "$((before + count))" >/dev/null || true
    after=$(count_log '^(rejected with|dropped:)')
    report "$count malformed requests sent, $((after - before)) rejected or dropped, $bad wrong answers"
    if [ "$bad" -ne 0 ]; then
        fail_because "an error status (4xx, 5xx) or a clean close for every malformed request" \
            "$bad other answers (listed above)" "make faults"
        return 1
    fi
    if [ "$((after - before))" -ne "$count" ]; then
        fail_because "$count rejected or dropped in the log" "$((after - before))" "make faults" \
            "a line 'request: ...' means a malformed request was taken for a good one"
        return 1
    fi
    probe "$count malformed requests" || return 1
}

# The load test: requests one after another, then the server must be back
# to the descriptors and (within RSS_TOLERANCE_KB) the memory it had.
@test "$LOAD_REQUESTS requests in a row leave no descriptor and no memory behind" {
    local urls=$BATS_TEST_TMPDIR/urls codes started took
    awk -v n="$LOAD_REQUESTS" -v port="$PORT" 'BEGIN {
        for (i = 0; i < n; i++) printf "url = \"http://127.0.0.1:%s/\"\noutput = \"/dev/null\"\n", port
    }' >"$urls"
    # Warm up: the first requests touch stack pages and stdio buffers for
    # good, and a large body touches the rest of the request buffer.
    head -c 60000 /dev/zero | curl -s -m "$WAIT_SECONDS" -o /dev/null -H 'Connection: close' \
        --data-binary @- "http://127.0.0.1:$PORT/" || true
    head -n 400 "$urls" | curl -s -K - -H 'Connection: close' >/dev/null || true
    local fds_before rss_before fds_after rss_after
    fds_before=$(wait_for_descriptors "$BASELINE_FDS")
    rss_before=$(resident_kb)
    started=$(now_ms)
    codes=$(curl -s -K "$urls" -H 'Connection: close' -w '%{http_code}\n' | sort | uniq -c | tr -s ' ' | paste -sd, -)
    took=$(($(now_ms) - started))
    fds_after=$(wait_for_descriptors "$fds_before")
    rss_after=$(resident_kb)
    report "$LOAD_REQUESTS requests in $took ms (status: count $codes); descriptors $fds_before -> $fds_after; VmRSS $rss_before -> $rss_after KiB"
    local served
    wait_for_count '^request: GET / HTTP/1.1' "$((LOAD_REQUESTS + 200))" >/dev/null || true
    served=$(count_log '^request: GET / HTTP/1.1')
    if [ "$served" -lt "$((LOAD_REQUESTS + 200))" ]; then
        fail_because "$((LOAD_REQUESTS + 200)) requests in the log" "$served" "make faults"
        return 1
    fi
    if answers && [[ $codes != " $LOAD_REQUESTS 200" ]]; then
        fail_because "$LOAD_REQUESTS answers 200" "status: count $codes" "make faults"
        return 1
    fi
    if [ "$fds_after" -ne "$fds_before" ]; then
        fail_because "$fds_before open descriptors after the load, as before" "$fds_after" \
            "ls -l /proc/PID/fd, before and after: wrk -c 4 -d 5s http://127.0.0.1:8080/"
        return 1
    fi
    if [ -z "${VALGRIND_LOG_DIR:-}" ] && ((rss_after > rss_before + RSS_TOLERANCE_KB)); then
        fail_because "VmRSS within $RSS_TOLERANCE_KB KiB of $rss_before KiB" "$rss_after KiB" \
            "grep VmRSS /proc/PID/status, before and after a load"
        return 1
    fi
}

@test "four clients at once for 1 s (wrk) are all answered, nothing leaks" {
    answers || skip "step $STEP does not answer, so wrk has nothing to count"
    local fds_before rss_before fds_after rss_after out requests
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" || true
    fds_before=$(wait_for_descriptors "$BASELINE_FDS")
    rss_before=$(resident_kb)
    out=$(wrk -t 2 -c 4 -d "${WRK_SECONDS:-1}s" --timeout 2s -H 'Connection: close' "http://127.0.0.1:$PORT/")
    fds_after=$(wait_for_descriptors "$fds_before")
    rss_after=$(resident_kb)
    requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' <<<"$out")
    report "wrk -c 4: $requests requests; descriptors $fds_before -> $fds_after; VmRSS $rss_before -> $rss_after KiB"
    if grep -q 'Non-2xx' <<<"$out" || [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
        fail_because "only 200 answers" "$out" "wrk -c 4 -d 2s -H 'Connection: close' http://127.0.0.1:8080/"
        return 1
    fi
    if [ "$fds_after" -ne "$fds_before" ]; then
        fail_because "$fds_before descriptors after the load" "$fds_after" "ls -l /proc/PID/fd"
        return 1
    fi
    if [ -z "${VALGRIND_LOG_DIR:-}" ] && ((rss_after > rss_before + RSS_TOLERANCE_KB)); then
        fail_because "VmRSS within $RSS_TOLERANCE_KB KiB of $rss_before KiB" "$rss_after KiB" "make faults"
        return 1
    fi
}

# Step 07 keeps connections open: an idle one must not hold the server for
# longer than KEEPALIVE_TIMEOUT, and must end without a 408.
@test "an idle keep-alive connection is closed after the keep-alive timeout, then the next client is served" {
    keeps_alive || skip "step $STEP closes after every response"
    local fd started took answer
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' >&"$fd"
    started=$(now_ms)
    answer=$(timeout "$((WAIT_SECONDS + 10))" cat <&"$fd" 2>/dev/null | tr -d '\r' | grep -c '^HTTP/1.1 ' || true)
    took=$(($(now_ms) - started))
    exec {fd}>&-
    report "an idle connection was closed after $took ms, with $answer response(s)"
    wait_for_count '^closed: idle' 1 >/dev/null || true
    if [ "$answer" -ne 1 ] || ((took < 1000 || took > 8000)); then
        fail_because "one response, then the close after the keep-alive timeout (a few seconds)" \
            "$answer responses, closed after $took ms" \
            "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 20) | nc 127.0.0.1 8080"
        return 1
    fi
    if [ "$(count_log '^closed: idle')" -ne 1 ] || grep -q '^rejected' "$LOG"; then
        fail_because "one line 'closed: idle ...', and no 'rejected' line" "$(tail -n 2 "$LOG")" \
            "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 20) | nc 127.0.0.1 8080"
        return 1
    fi
    probe "an idle keep-alive connection" || return 1
}

# The request timeout starts again with each request: a second request
# that stops halfway gets its 408, as a first one would.
@test "a second request that stops halfway is timed out with 408" {
    keeps_alive || skip "step $STEP closes after the first request"
    local fd started took statuses
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\nGET / HTTP/1.1\r\nHo' >&"$fd"
    started=$(now_ms)
    statuses=$(timeout "$((WAIT_SECONDS + 10))" cat <&"$fd" 2>/dev/null | tr -d '\r' |
        sed -n 's/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' | paste -sd ' ' - || true)
    took=$(($(now_ms) - started))
    exec {fd}>&-
    report "a second request that stopped halfway: '$statuses' after $took ms"
    if [ "$statuses" != '200 408' ] || ((took < 4500 || took > 8000)); then
        fail_because "200, then 408 after about 5 s (REQUEST_TIMEOUT_SECONDS)" "'$statuses' after $took ms" \
            "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHo'; sleep 20) | nc 127.0.0.1 8080"
        return 1
    fi
    probe "a second request that stopped halfway" || return 1
}

# Pipelined requests that arrive in pieces which cut across requests: the
# bytes left over after one request must be kept for the next.
@test "pipelined requests in pieces that cut across them are all answered, in order" {
    keeps_alive || skip "step $STEP answers one request per connection"
    local fd message='' i statuses expected=''
    for i in $(seq 1 20); do
        message+=$'POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\n\r\nhello'
        message+=$'GET /'"$i"$' HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n'
        expected+='200 404 '
    done
    message+=$'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'
    expected+=200
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    untraced send_in_pieces "$fd" 13 0.001 "$message"
    statuses=$(timeout "$WAIT_SECONDS" cat <&"$fd" 2>/dev/null | tr -d '\r' |
        sed -n 's/^HTTP\/1\.1 \([0-9]*\) .*/\1/p' | paste -sd ' ' - || true)
    exec {fd}>&-
    report "41 pipelined requests in writes of 13 bytes: $(wc -w <<<"$statuses") answers"
    if [ "$statuses" != "$expected" ]; then
        fail_because "$expected" "'$statuses'" "41 pipelined requests, sent 13 bytes at a time"
        return 1
    fi
}

# A client that pipelines without ever reading: the server answers up to
# its limit of requests per connection (the answers fit in the socket
# buffers, so it never blocks in write), then closes, and serves the next.
@test "a flood of pipelined requests that the client never reads ends at the request limit" {
    keeps_alive || skip "step $STEP answers one request per connection"
    local fd i flood=$BATS_TEST_TMPDIR/flood before served
    # Twice step 10's limit of 1000 (KEEPALIVE_REQUESTS_MAX; 100 before).
    for i in $(seq 1 2000); do
        printf 'GET /%d HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n' "$i"
    done >"$flood"
    local reaped
    before=$(count_log '^127\.0\.0\.1:[0-9]+ GET ')
    reaped=$(count_log '^child [0-9]+ (exited|killed)')
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    { timeout "$WAIT_SECONDS" cat "$flood" >&"$fd"; } 2>/dev/null || true
    # Done with the connection when the server is back to its descriptors;
    # from step 08 on, whose server never holds the connection, when it has
    # reaped the child that served it.
    wait_for_descriptors "$BASELINE_FDS" >/dev/null
    if forks; then
        wait_for_count '^child [0-9]+ (exited|killed)' "$((reaped + 1))" >/dev/null || true
    fi
    served=$(($(count_log '^127\.0\.0\.1:[0-9]+ GET ') - before))
    exec {fd}>&-
    report "2000 pipelined requests, never read: $served answered on one connection"
    if ((served < 2 || served >= 2000)); then
        fail_because "answers up to the limit of requests per connection, then the close" \
            "$served answered" "for i in \$(seq 2000); do printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; done | nc 127.0.0.1 8080 >/dev/null"
        return 1
    fi
    probe "a flood of pipelined requests" || return 1
}

# A drain waits for what was begun, but not for ever: a client that
# downloads 128 MiB at 6 MiB/s would hold it for 20 s. DRAIN_SECONDS,
# 10 s, after SIGTERM, the server stops anyway, with status 1.
@test "a download slower than the drain is cut at DRAIN_SECONDS (10 s), and the server exits with status 1" {
    drains || skip "step $STEP does not drain: SIGTERM ends it at once"
    stop_server
    local root=$BATS_TEST_TMPDIR/root out=$BATS_TEST_TMPDIR/download started took ended deadline curl_pid
    mkdir -p "$root"
    head -c 128M /dev/zero >"$root/big.bin"
    start_server listening 0 127.0.0.1 "$root"
    local try="$SERVER_NAME 8080 127.0.0.1 ROOT & sleep 0.5; curl -s --limit-rate 6M -o /dev/null http://127.0.0.1:8080/big.bin & sleep 1; kill -TERM %1; time wait %1; echo \$?"
    : >"$out"
    curl -s -m 30 --limit-rate 6M -o "$out" "http://127.0.0.1:$PORT/big.bin" &
    curl_pid=$!
    deadline=$((SECONDS + WAIT_SECONDS))
    until [ -s "$out" ] || ((SECONDS >= deadline)); do sleep 0.02; done
    started=$(now_ms)
    kill -TERM "$SERVER_PID"
    deadline=$((SECONDS + 16))
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$(process_state "$SERVER_PID")" != Z ] &&
        ((SECONDS < deadline)); do
        sleep 0.05
    done
    took=$(($(now_ms) - started))
    server_ended >/dev/null
    ended=$(server_ended)
    kill "$curl_pid" 2>/dev/null || true
    wait "$curl_pid" 2>/dev/null || true
    report "a download at 6 MiB/s held the drain; the server stopped $took ms after SIGTERM: $ended"
    if [ "$ended" != "the server exited with status 1" ] || ((took < 9500 || took > 13000)); then
        fail_because "exit status 1 about 10 s (DRAIN_SECONDS) after SIGTERM, the download unfinished" \
            "${ended:-still running} after $took ms" "$try" "book/12-shutdown.md, section 'A second signal, or the deadline'"
        return 1
    fi
    if ! grep -qx 'drain deadline: stopping now; connections unfinished: 1' "$LOG"; then
        fail_because "the line 'drain deadline: stopping now; connections unfinished: 1'" "'$(tail -n 1 "$LOG")'" \
            "$try" "book/12-shutdown.md, section 'A second signal, or the deadline'"
        return 1
    fi
    SERVER_PID= # it was meant to stop
}

# Step 09 serves every client from one process: hundreds of slow clients
# (slowloris: a byte at a time, a request that never ends) must not slow
# the loop down for the others, and each has REQUEST_TIMEOUT_SECONDS in
# all, however often it sends a byte. In step 08 each had a child.
@test "hundreds of clients sending a byte at a time do not delay a fast one, and each is timed out with 408" {
    has_event_loop || skip "step $STEP: before step 09, each client waits for the one before or has a child"
    local count=${SLOW_CLIENTS:-200} ready=$BATS_TEST_TMPDIR/ready out=$BATS_TEST_TMPDIR/slow
    local bound_ms=${PROBE_MS_MAX:-500} slowest=0 took code i before
    [ -z "${VALGRIND_LOG_DIR:-}" ] || bound_ms=${PROBE_MS_MAX:-3000}
    before=$(count_log '^rejected with 408: timed out')
    slow_clients "$count" 0.5 "$((WAIT_SECONDS + 10))" "$ready" >"$out" &
    local slow_pid=$!
    local deadline=$((SECONDS + WAIT_SECONDS + 5))
    while [ ! -s "$ready" ] && kill -0 "$slow_pid" 2>/dev/null && ((SECONDS < deadline)); do
        sleep 0.02
    done
    # Five fast clients, a third of a second apart, while the slow ones send.
    for i in 1 2 3 4 5; do
        read -r code took < <(curl -s -m "$WAIT_SECONDS" -o /dev/null -w '%{http_code} %{time_total}\n' \
            "http://127.0.0.1:$PORT/" || true)
        took=$(awk -v s="${took:-99}" 'BEGIN { printf "%d", s * 1000 }')
        ((took > slowest)) && slowest=$took
        if [ "$code" != 200 ]; then
            fail_because "200 for a fast client while $count slow ones send a byte at a time" \
                "status '$code'" "make faults"
            return 1
        fi
        sleep 0.3
    done
    wait "$slow_pid" || true
    local answered closed shortest longest
    read -r answered closed shortest longest <"$out" || true
    wait_for_count '^rejected with 408: timed out' "$((before + count))" >/dev/null || true
    report "$count clients sending a byte every 0.5 s: a fast client answered in $slowest ms at most;" \
        "the slow ones answered 408: ${answered:-?}, closed after $shortest to $longest ms"
    if ((slowest > bound_ms)); then
        fail_because "a fast client answered within $bound_ms ms" "it took $slowest ms" \
            "make faults" "book/09-epoll.md, section 'The loop'"
        return 1
    fi
    if [ "${answered:-0}" -ne "$count" ] || [ "${closed:-0}" -ne "$count" ]; then
        fail_because "$count slow clients answered 408, then closed" \
            "${answered:-0} answered 408, ${closed:-0} closed" "make faults" \
            "book/09-epoll.md, section 'Deadlines in queues'"
        return 1
    fi
    if ((shortest < 4500 || longest > 5000 + 3000)); then
        fail_because "each slow client timed out about 5 s after it connected (REQUEST_TIMEOUT_SECONDS), though it sends a byte every 0.5 s" \
            "closed after $shortest to $longest ms" "make faults" \
            "book/09-epoll.md, section 'Deadlines in queues'"
        return 1
    fi
    local fds
    fds=$(wait_for_descriptors "$BASELINE_FDS")
    if [ "$fds" -ne "$BASELINE_FDS" ]; then
        fail_because "$BASELINE_FDS open descriptors, as before" "$fds" "ls -l /proc/PID/fd"
        return 1
    fi
}

# A reset while answers are on their way: the server is between writes of
# a pipelined batch, or waits for room to write (WRITING). Either way the
# write fails or the next read does, and the connection must end there.
@test "clients that reset while their answers are on their way do not stop the server" {
    has_event_loop || skip "step $STEP: the fault tests above cover one connection at a time"
    local clients=10 before after writes
    # A failed write: write(2) from step 09 on, send(2) or sendfile(2)
    # from step 11 on (warn() writes the log out first: the line is whole).
    local ended='^dropped: |^(write|send|sendfile): '
    before=$(count_log "$ended")
    reset_mid_answers "$clients" 99
    wait_for_count "$ended" "$((before + clients))" >/dev/null || true
    after=$(count_log "$ended")
    writes=$(count_log '^(write|send|sendfile): ')
    report "$clients clients reset with 99 answers on their way: $((after - before)) connections ended," \
        "$writes of them in a write(2), send(2) or sendfile(2)"
    if [ "$((after - before))" -ne "$clients" ]; then
        fail_because "$clients connections ended ('dropped: ...', or 'write: ...', 'send: ...' in the log)" \
            "$((after - before))" "make faults" "book/09-epoll.md, section 'Writing what fits'"
        return 1
    fi
    local fds
    fds=$(wait_for_descriptors "$BASELINE_FDS")
    if [ "$fds" -ne "$BASELINE_FDS" ]; then
        fail_because "$BASELINE_FDS open descriptors, as before" "$fds" "ls -l /proc/PID/fd"
        return 1
    fi
    probe "$clients clients that reset with answers on their way" || return 1
}

# Hundreds of keep-alive clients at once, each sending its next request as
# soon as it has the answer: all answered, and every descriptor given back.
@test "two hundred keep-alive clients at once for 1 s (wrk -c 200) are all answered, nothing leaks" {
    has_event_loop || skip "step $STEP: two hundred clients at once are for step 09's event loop"
    local fds_before rss_before fds_after rss_after out requests
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" || true
    fds_before=$(wait_for_descriptors "$BASELINE_FDS")
    rss_before=$(resident_kb)
    out=$(wrk -t 2 -c 200 -d "${WRK_SECONDS:-1}s" --timeout 4s "http://127.0.0.1:$PORT/")
    fds_after=$(wait_for_descriptors "$fds_before")
    rss_after=$(resident_kb)
    requests=$(sed -n 's/^ *\([0-9][0-9]*\) requests in.*/\1/p' <<<"$out")
    report "wrk -c 200, keep-alive: $requests requests; descriptors $fds_before -> $fds_after;" \
        "VmRSS $rss_before -> $rss_after KiB (what busy connections used stays in the heap, or from step 10 in the free list)"
    if grep -Eq 'Non-2xx|Socket errors' <<<"$out" || [ -z "$requests" ] || [ "$requests" -eq 0 ]; then
        fail_because "only 200 answers, and no socket error" "$out" \
            "wrk -c 200 -d 2s http://127.0.0.1:8080/"
        return 1
    fi
    if [ "$fds_after" -ne "$fds_before" ]; then
        fail_because "$fds_before descriptors after the load" "$fds_after" "ls -l /proc/PID/fd"
        return 1
    fi
}
