#!/usr/bin/env bats
# Step 03: the server calls listen(2). The kernel now completes TCP
# handshakes on the port and queues the connections.

load helpers

# bats test_tags=ladder
@test "prints 'listening on http://127.0.0.1:PORT/' with the real port" {
    start_server listening 0
    grep -Eq "^listening on http://127\.0\.0\.1:$PORT/\$" "$LOG" ||
        fail_because "a line 'listening on http://127.0.0.1:PORT/' with the port it bound" \
            "$(grep -i listen "$LOG" || echo 'no such line')" "$SERVER_NAME 0" \
            "book/03-listen.md, section 'Build and run'"
    [ "${PORT:-0}" -gt 0 ] ||
        fail_because "the port the kernel picked, not 0, in 'listening on http://127.0.0.1:PORT/'" \
            "port '$PORT'" "$SERVER_NAME 0" "book/02-bind.md, section 'Which port?'"
}

# bats test_tags=ladder
@test "ss shows the socket in the LISTEN state on its port" {
    start_server listening 0
    local state
    state=$(ss -ltnH "sport = :$PORT")
    [[ $state == LISTEN*"127.0.0.1:$PORT"* ]] ||
        fail_because "'ss -ltn' to list 127.0.0.1:$PORT in state LISTEN" "${state:-nothing listed}" \
            "$(by_hand "ss -ltn")" "book/03-listen.md, section 'Look inside'"
}

@test "a client can connect: the kernel completes the handshake" {
    start_server listening 0
    local fd
    if ! exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"; then
        fail_because "a TCP connection to 127.0.0.1:$PORT to succeed" "it was refused" \
            "$(by_hand "nc -v -z 127.0.0.1 8080")" "book/03-listen.md, section 'The system call: listen(2)'"
    fi
    exec {fd}>&-
}

@test "calls listen(2) with a backlog (strace)" {
    start_traced_server listen listening 0
    grep -Eq '^[0-9]+ +listen\([0-9]+, [1-9][0-9]*\) += 0' "$TRACE" ||
        fail_because "listen(3, 128) = 0 in the trace, or another backlog above 0" \
            "$(grep listen "$TRACE" || echo 'no listen call')" \
            "strace -e trace=listen $SERVER_NAME 0" "book/03-listen.md, section 'The system call: listen(2)'"
}
