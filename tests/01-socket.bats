#!/usr/bin/env bats
# Step 01: the server creates a TCP socket with socket(2), prints its
# descriptor, and keeps running so that you can look at it.

load helpers

socket_fd() {
    sed -n 's/.*created socket fd \([0-9][0-9]*\).*/\1/p' "$LOG" | head -n 1
}

# bats test_tags=ladder
@test "prints the descriptor of the socket it created, and its process id" {
    start_server socket
    local line
    line=$(grep -E -m 1 'created socket fd [0-9]+ in process [0-9]+' "$LOG") ||
        fail_because "a line like 'created socket fd 3 in process $SERVER_PID'" \
            "no such line" "$SERVER_NAME" "book/01-socket.md, section 'Build and run'"
    [[ $line == *"in process $SERVER_PID"* ]] ||
        fail_because "the process id $SERVER_PID in '$line'" "another number" "$SERVER_NAME"
}

@test "the descriptor is a socket, as /proc/PID/fd shows" {
    start_server socket
    local fd target
    fd=$(socket_fd)
    target=$(readlink "/proc/$SERVER_PID/fd/$fd" 2>/dev/null) || target="no descriptor $fd"
    [[ $target == socket:* ]] ||
        fail_because "/proc/$SERVER_PID/fd/$fd to be a socket:[...]" "$target" \
            "$SERVER_NAME & ls -l /proc/\$!/fd" "book/01-socket.md, section 'Look inside'"
}

@test "asks for an IPv4 TCP socket with close-on-exec (strace)" {
    start_traced_server socket socket
    # From step 09 on, SOCK_NONBLOCK too.
    grep -Eq '^[0-9]+ +socket\(AF_INET, SOCK_STREAM\|SOCK_CLOEXEC(\|SOCK_NONBLOCK)?, (IPPROTO_IP|IPPROTO_TCP)\) += [0-9]+' "$TRACE" ||
        fail_because "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, 0) in the trace" \
            "$(grep socket "$TRACE" || echo 'no socket call')" \
            "strace -e trace=socket $SERVER_NAME" "book/01-socket.md, section 'The system call: socket(2)'"
}

@test "keeps running until interrupted, then exits on Ctrl-C (SIGINT)" {
    start_server socket
    kill -0 "$SERVER_PID" 2>/dev/null ||
        fail_because "the server to keep running" "it exited" "$SERVER_NAME"
    kill -INT "$SERVER_PID"
    local deadline=$((SECONDS + WAIT_SECONDS))
    while kill -0 "$SERVER_PID" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.02; done
    ! kill -0 "$SERVER_PID" 2>/dev/null ||
        fail_because "Ctrl-C (SIGINT) to stop the server" "it is still running" "$SERVER_NAME, then Ctrl-C"
    SERVER_PID=
}

@test "a bad argument prints a usage line on stderr and exits with status 2" {
    local argument status
    for argument in notaport -1 65536 99999999999999999999 8080x ''; do
        status=0
        "$SERVER" "$argument" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" </dev/null || status=$?
        [ "$status" -eq 2 ] ||
            fail_because "exit status 2 for port '$argument'" "status $status" \
                "$SERVER_NAME '$argument'; echo \$?" "book/01-socket.md, section 'The command line'"
        grep -qi usage "$BATS_TEST_TMPDIR/err" ||
            fail_because "a usage line on stderr for port '$argument'" \
                "stderr: $(head -c 200 "$BATS_TEST_TMPDIR/err")" \
                "$SERVER_NAME '$argument'; echo \$?" "book/01-socket.md, section 'The command line'"
    done
    for arguments in "0 not.an.address" "0 127.0.0.1 extra"; do
        status=0
        # shellcheck disable=SC2086 # split on purpose: two or three arguments
        "$SERVER" $arguments >/dev/null 2>"$BATS_TEST_TMPDIR/err" </dev/null || status=$?
        [ "$status" -eq 2 ] ||
            fail_because "exit status 2 for arguments '$arguments'" "status $status" \
                "$SERVER_NAME $arguments; echo \$?"
    done
}
