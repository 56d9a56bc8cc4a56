#!/usr/bin/env bats
# Step 02: the server binds its socket to an address with bind(2), after
# setting SO_REUSEADDR, and prints the address it got.

load helpers

# Finds a port that is free now: the kernel picks one for the server, which
# is then stopped. (Nothing else on this machine is likely to take it in
# the next few milliseconds.)
free_port() {
    local status=0
    start_server bound 0 >&2 || status=1
    # shellcheck disable=SC2153 # PORT: set by start_server
    local port=$PORT
    stop_server
    [ "$status" -eq 0 ] && echo "$port" # no port: the test stops at port=$(free_port)
}

# Runs a server that should fail to bind and exit: sets STATUS and ERR
# (its stderr), and fails the test if it is still running after the wait.
#   run_failing_bind TRY-IT-COMMAND COMMAND...
run_failing_bind() {
    local try=$1
    shift
    STATUS=0
    timeout "$WAIT_SECONDS" "$@" >/dev/null 2>"$BATS_TEST_TMPDIR/err" </dev/null || STATUS=$?
    ERR=$(cat "$BATS_TEST_TMPDIR/err")
    [ "$STATUS" -ne 124 ] ||
        fail_because "the server to exit with status 1 when bind(2) fails" \
            "it was still running after $WAIT_SECONDS s" "$try" \
            "book/02-bind.md, section 'What can go wrong'"
}

# bats test_tags=ladder
@test "prints the address it bound, with the port the kernel picked for port 0" {
    start_server bound 0
    [ "${PORT:-0}" -gt 0 ] ||
        fail_because "a line like 'bound to 127.0.0.1:40123' with a port that is not 0" \
            "$(grep bound "$LOG" || echo 'no such line')" "$SERVER_NAME 0" \
            "book/02-bind.md, section 'Which port?': getsockname(2) tells the port the kernel picked"
    grep -q "bound to 127.0.0.1:$PORT" "$LOG" ||
        fail_because "'bound to 127.0.0.1:$PORT'" "$(cat "$LOG")" "$SERVER_NAME 0"
}

@test "binds the port and the address given on the command line" {
    local port address
    port=$(free_port)
    # Any address in 127.0.0.0/8 is this machine's, on Linux.
    address=127.$((RANDOM % 256)).$((RANDOM % 256)).$((1 + RANDOM % 254))
    start_server bound "$port" "$address"
    grep -q "bound to $address:$port" "$LOG" ||
        fail_because "'bound to $address:$port'" "$(grep bound "$LOG" || echo 'no such line')" \
            "$SERVER_NAME $port $address" "book/02-bind.md, section 'The address, from the command line'"
}

@test "sets SO_REUSEADDR before bind(2) (strace)" {
    start_traced_server setsockopt,bind bound 0
    local calls
    calls=$(grep -E 'setsockopt\(.*SO_REUSEADDR, \[1\]|bind\(' "$TRACE" | sed 's/^[0-9]* *//')
    [[ $(head -n 1 <<<"$calls") == setsockopt* ]] ||
        fail_because "setsockopt(..., SOL_SOCKET, SO_REUSEADDR, [1], 4) first, before bind(2)" \
            "${calls:-neither call}" "strace -e trace=setsockopt,bind $SERVER_NAME 0" \
            "book/02-bind.md, section 'Binding'"
    grep -q 'bind(.*sin_addr=inet_addr("127.0.0.1")' <<<"$calls" ||
        fail_because "bind(... sin_addr=inet_addr(\"127.0.0.1\") ...) after setsockopt" \
            "${calls:-neither call}" "strace -e trace=setsockopt,bind $SERVER_NAME 0" \
            "book/02-bind.md, section 'Binding'"
}

@test "a port in use: one line naming the address and the error, exit status 1" {
    # nc listens on a port of the kernel's choosing; ss tells which.
    nc -l 127.0.0.1 0 < <(sleep "$WAIT_SECONDS") >/dev/null 2>&1 &
    local nc_pid=$! port='' deadline=$((SECONDS + WAIT_SECONDS))
    while [ -z "$port" ] && ((SECONDS < deadline)); do
        port=$(ss -ltnpH | sed -n "s/.*127\.0\.0\.1:\([0-9]*\) .*pid=$nc_pid,.*/\1/p")
        [ -n "$port" ] || sleep 0.02
    done
    local status=0
    run_failing_bind "nc -l 127.0.0.1 $port & $SERVER_NAME $port" "$SERVER" "$port" || status=1
    kill "$nc_pid" 2>/dev/null || true
    wait "$nc_pid" 2>/dev/null || true
    [ "$status" -eq 0 ] || return 1
    local try="nc -l 127.0.0.1 $port & $SERVER_NAME $port"
    [ "$STATUS" -eq 1 ] ||
        fail_because "exit status 1 when the port is in use" "status $STATUS" "$try" \
            "book/02-bind.md, section 'What can go wrong'"
    [[ $ERR == *"127.0.0.1:$port"* ]] ||
        fail_because "the address, 127.0.0.1:$port, on stderr" "stderr: ${ERR:-nothing}" "$try" \
            "book/02-bind.md, section 'What can go wrong'"
    [[ $ERR == *"Address already in use"* ]] ||
        fail_because "the error, 'Address already in use' (strerror(EADDRINUSE)), on stderr" \
            "stderr: ${ERR:-nothing}" "$try" "book/02-bind.md, section 'What can go wrong'"
    [ "$(wc -l <<<"$ERR")" -eq 1 ] ||
        fail_because "one line on stderr, such as 'bind 127.0.0.1:$port: Address already in use'" \
            "$(wc -l <<<"$ERR") lines: $ERR" "$try" "book/02-bind.md, section 'What can go wrong'"
}

@test "a privileged port without privileges: Permission denied, exit status 1" {
    local as_user=()
    if [ "$(id -u)" -eq 0 ]; then
        command -v setpriv >/dev/null || skip "setpriv is not installed"
        as_user=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
        "${as_user[@]}" test -x "$SERVER" || skip "user nobody cannot run $SERVER here"
    fi
    run_failing_bind "$SERVER_NAME 80   # as a user, not root" "${as_user[@]}" "$SERVER" 80
    [ "$STATUS" -eq 1 ] ||
        fail_because "exit status 1 for a port below 1024" "status $STATUS" \
            "$SERVER_NAME 80   # as a user, not root" "book/02-bind.md, section 'What can go wrong'"
    [[ $ERR == *"127.0.0.1:80"*"Permission denied"* ]] ||
        fail_because "'bind 127.0.0.1:80: Permission denied' on stderr" "stderr: ${ERR:-nothing}" \
            "$SERVER_NAME 80   # as a user, not root" "book/02-bind.md, section 'What can go wrong'"
}
