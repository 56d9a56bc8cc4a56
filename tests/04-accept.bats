#!/usr/bin/env bats
# Step 04: the server accepts connections with accept(2), one at a time,
# prints who connected and on which descriptor, and closes it.

load helpers

# Connects with curl; prints the client's own port. curl's exit status is
# in CURL_STATUS: from step 04 on, the server hangs up (52, "Empty reply
# from server", or 56) or answers (0); 28 means nobody ever answered.
connect_with_curl() {
    CURL_STATUS=0
    curl -s -o /dev/null -m "$WAIT_SECONDS" -w '%{local_port}' "http://127.0.0.1:$PORT/" ||
        CURL_STATUS=$?
}

# bats test_tags=ladder
@test "prints 'accepted ADDRESS:PORT on fd N' with the client's address and port" {
    start_server listening 0
    local client_port
    client_port=$(connect_with_curl)
    wait_for_log "accepted 127\.0\.0\.1:$client_port on fd [0-9]+" >/dev/null ||
        fail_because "a line 'accepted 127.0.0.1:$client_port on fd N' (curl's port was $client_port)" \
            "$(grep accepted "$LOG" || echo 'no accepted line')" \
            "$(by_hand "curl -v http://127.0.0.1:8080/")" "book/04-accept.md, section 'Build and run'"
}

# bats test_tags=ladder
@test "hangs up on the client instead of leaving it waiting" {
    start_server listening 0
    connect_with_curl >/dev/null
    [ "$CURL_STATUS" -ne 28 ] ||
        fail_because "the connection to end (curl: 'Empty reply from server')" \
            "curl waited $WAIT_SECONDS s and gave up: the connection was never accepted or never closed" \
            "$(by_hand "curl -v http://127.0.0.1:8080/")" "book/04-accept.md, section 'The loop': close each connection once it is accepted"
}

@test "closes every connection it accepts: no descriptor leaks" {
    start_server listening 0
    local before after fd
    before=$(count_descriptors)
    for _ in $(seq 20); do # connect, and hang up at once
        exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
        exec {fd}>&-
    done
    wait_for_count '^accepted ' 20 >/dev/null ||
        fail_because "20 lines 'accepted ...' for 20 connections" "$(grep -c '^accepted ' "$LOG") lines" \
            "$(by_hand "for i in 1 2 3; do nc -z 127.0.0.1 8080; done")" "book/04-accept.md, section 'Accepting'"
    after=$(count_descriptors)
    [ "$after" -eq "$before" ] ||
        fail_because "the same number of open descriptors after 20 connections ($before)" \
            "$after open: $(find "/proc/$SERVER_PID/fd" -mindepth 1 -printf '%f ')" \
            "$(by_hand "for i in 1 2 3; do nc -z 127.0.0.1 8080; done; ls -l /proc/\$!/fd")" \
            "book/04-accept.md, section 'The loop': close(2) every descriptor accept(2) gives you"
}

@test "accepted descriptors are close-on-exec and closed (strace)" {
    start_traced_server accept,accept4,fcntl,close listening 0
    connect_with_curl >/dev/null
    wait_for_log '^accepted ' >/dev/null || true # the trace below says what happened
    local deadline=$((SECONDS + WAIT_SECONDS)) fd=
    while [ -z "$fd" ] && ((SECONDS < deadline)); do
        fd=$(sed -n 's/.*accept4\?(.*) *= \([0-9][0-9]*\)$/\1/p' "$TRACE" | head -n 1)
        [ -n "$fd" ] && grep -Eq "close\($fd\)" "$TRACE" || { fd=; sleep 0.02; }
    done
    local calls
    calls=$(sed -n '/accept/,$p' "$TRACE" | grep -v unfinished | head -n 4 | sed 's/^[0-9]* *//' | tr -s ' ')
    grep -Eq 'accept4\(.*SOCK_CLOEXEC[|A-Z_]*\) += [0-9]+|fcntl\([0-9]+, F_SETFD, FD_CLOEXEC\)' "$TRACE" ||
        fail_because "accept4(3, ..., SOCK_CLOEXEC) = 4: a descriptor closed on exec" "${calls:-no accept call}" \
            "strace -e trace=accept4,close $SERVER_NAME 8080 & curl http://127.0.0.1:8080/" \
            "book/04-accept.md, section 'The system call: accept4(2)'"
    [ -n "$fd" ] ||
        fail_because "close(4) after accept4(...) = 4" "${calls:-no accept call}" \
            "strace -e trace=accept4,close $SERVER_NAME 8080 & curl http://127.0.0.1:8080/" \
            "book/04-accept.md, section 'The loop'"
}

@test "a client that connects and leaves at once does not stop the server" {
    start_server listening 0
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    exec {fd}>&-
    local client_port
    client_port=$(connect_with_curl)
    wait_for_log "accepted 127\.0\.0\.1:$client_port on fd" >/dev/null ||
        fail_because "'accepted 127.0.0.1:$client_port on fd N' for the client after one that left at once" \
            "$(kill -0 "$SERVER_PID" 2>/dev/null && tail -n 1 "$LOG" || server_state)" \
            "$(by_hand "nc -z 127.0.0.1 8080; curl -v http://127.0.0.1:8080/")" \
            "book/04-accept.md, section 'Accepting'"
}
