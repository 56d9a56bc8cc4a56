#!/usr/bin/env bats
# Step 12: SIGTERM (or SIGINT, Ctrl-C) stops the server without dropping
# anyone. The first signal closes the listener (new clients are refused),
# closes the connections that have not begun a request, and lets the
# others finish, with "Connection: close"; then the server exits with
# status 0. A second signal stops it at once, with status 1. (The drain's
# deadline, DRAIN_SECONDS, 10 s, is tested by make faults.)
#
# Step 11 dies where it stands on SIGTERM: every test tagged ladder fails
# on it.

load helpers

# Clients started in the background (their pids): after_each_test ends
# them. Connections held open (keep_open, in tests/helpers.bash) are
# closed by teardown.
CLIENTS=()

after_each_test() {
    local pid
    for pid in "${CLIENTS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    CLIENTS=()
}

# The longest a drain may take (DRAIN_SECONDS), and what a loaded machine
# may add to it.
DRAIN_SECONDS=10
DRAIN_MARGIN_SECONDS=3

# A ROOT of the test's own, with an index.html.
make_root() {
    ROOT=$BATS_TEST_TMPDIR/root
    PAGE_WORD=$(random_word)
    mkdir -p "$ROOT"
    printf '<h1>%s</h1>\n' "$PAGE_WORD" >"$ROOT/index.html"
}

start_root_server() {
    make_root
    start_server listening 0 127.0.0.1 "$ROOT"
}

# Milliseconds on a monotonic-enough clock, and since an earlier reading.
now_ms() {
    echo $(($(date +%s%N) / 1000000))
}
since() {
    echo $(($(now_ms) - $1))
}

# A command that shows a failure by hand: the server serves ROOT on port
# 8080, CLIENT runs, and the server gets SIGTERM.
#   by_hand_stop CLIENT [AFTER-SIGTERM]
by_hand_stop() {
    printf '%s 8080 127.0.0.1 ROOT & sleep 0.5; %s; kill -TERM $!%s' \
        "$SERVER_NAME" "$1" "${2:+; $2}"
}

# Opens a keep-alive connection and has one request answered on it, so
# that the connection is idle: between two requests. Sets IDLE_FD.
open_answered_connection() {
    local line length=0 body
    exec {IDLE_FD}<>"/dev/tcp/127.0.0.1/$PORT"
    keep_open "$IDLE_FD"
    printf 'GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n' >&"$IDLE_FD"
    while IFS= read -r -t "$WAIT_SECONDS" -u "$IDLE_FD" line && [ "$line" != $'\r' ]; do
        [[ $line != [Cc]ontent-[Ll]ength:* ]] || length=${line#*: } length=${length%$'\r'}
    done
    IFS= read -r -t "$WAIT_SECONDS" -N "$length" -u "$IDLE_FD" body || true
    [ "$body" = "<h1>$PAGE_WORD</h1>"$'\n' ] ||
        fail_because "index.html on a keep-alive connection, before any signal" \
            "'$(head -c 100 <<<"$body")'" "curl -v http://127.0.0.1:8080/index.html" \
            "book/12-shutdown.md, section 'Build and run'"
}

# Sends a signal to the server, and notes when (SIGNALLED_AT, in ms).
#   signal_server NAME
signal_server() {
    SIGNALLED_AT=$(now_ms)
    kill -s "$1" "$SERVER_PID"
}

# Waits until the server has ended, for SECONDS at most, and sets
# EXIT_STATUS (empty if it still runs) and EXIT_MS (from SIGNALLED_AT).
#   wait_for_exit SECONDS
wait_for_exit() {
    local deadline=$((SECONDS + $1 + 1)) ended
    while kill -0 "$SERVER_PID" 2>/dev/null && [ "$(process_state "$SERVER_PID")" != Z ] &&
        ((SECONDS < deadline)); do
        sleep 0.02
    done
    EXIT_MS=$(since "$SIGNALLED_AT")
    server_ended >/dev/null # here, in the shell that can wait(2) for the server
    ended=$(server_ended)
    EXIT_STATUS=
    case $ended in
    *"exited with status "*) EXIT_STATUS=${ended##* } ;;
    ?*) EXIT_STATUS=$ended ;;
    esac
    echo "# the server ended $EXIT_MS ms after the signal: ${ended:-it still runs}" >&3
}

# Starts curl in the background on a large file, at RATE bytes a second
# at most, into $BATS_TEST_TMPDIR/download, and waits until its first
# 256 KiB have arrived: the download is under way. Sets DOWNLOAD_PID; curl's
# exit status goes to $BATS_TEST_TMPDIR/download.status.
#   start_download PATH RATE
start_download() {
    local out=$BATS_TEST_TMPDIR/download deadline=$((SECONDS + WAIT_SECONDS))
    : >"$out"
    (
        status=0
        curl -s -m 30 --limit-rate "$2" -o "$out" "http://127.0.0.1:$PORT$1" || status=$?
        echo "$status" >"$out.status"
    ) &
    DOWNLOAD_PID=$!
    CLIENTS+=("$DOWNLOAD_PID")
    while [ "$(stat -c %s "$out")" -lt 262144 ] && ((SECONDS < deadline)); do sleep 0.02; done
    [ "$(stat -c %s "$out")" -ge 262144 ] ||
        fail_because "a download of $1 under way (256 KiB of it within $WAIT_SECONDS s)" \
            "$(stat -c %s "$out") bytes" "curl --limit-rate $2 -o /dev/null http://127.0.0.1:8080$1" \
            "book/12-shutdown.md, section 'What can go wrong'"
}

# Waits for the download to end (it may end after the server: curl still
# reads what the sockets hold), and sets DOWNLOAD_STATUS to curl's exit
# status. (Not in a $(...) subshell: only this shell can wait for curl.)
wait_for_download() {
    wait "$DOWNLOAD_PID" 2>/dev/null || true
    DOWNLOAD_STATUS=$(cat "$BATS_TEST_TMPDIR/download.status" 2>/dev/null || echo "none")
}

# The Recv-Q of the server's side of every connection to PORT: 0 once the
# server has read what the clients sent (ss(8)).
unread_by_server() {
    ss -Htn state established "( sport = :$PORT )" | awk '{ total += $1 } END { print total + 0 }'
}

# The heart of the step: SIGTERM under load. 64 MiB read at 16 MiB/s take
# about 4 s, well within the drain's 10 s, and are still under way when
# the signal comes.
# bats test_tags=ladder
@test "SIGTERM during a 64 MiB download: it completes intact, idle closed, new clients refused, exit 0" {
    local try hint="book/12-shutdown.md, section 'The first signal: draining'"
    make_root
    head -c 64M /dev/urandom >"$ROOT/big.bin"
    local expected got size closed_ms status
    expected=$(sha256sum <"$ROOT/big.bin" | cut -d' ' -f1)
    start_server listening 0 127.0.0.1 "$ROOT"
    try=$(by_hand_stop "curl -s --limit-rate 16M http://127.0.0.1:8080/big.bin | sha256sum & sleep 1" \
        "curl -v http://127.0.0.1:8080/; wait")
    open_answered_connection
    start_download /big.bin 16M
    signal_server TERM

    # The idle connection: closed at once (cat sees the end of the stream).
    status=0
    timeout 1 cat <&"$IDLE_FD" >/dev/null || status=$?
    closed_ms=$(since "$SIGNALLED_AT")
    echo "# the idle keep-alive connection was closed $closed_ms ms after SIGTERM" >&3
    [ "$status" -eq 0 ] ||
        fail_because "the idle keep-alive connection closed within a second of SIGTERM" \
            "$(server_ended || true) it was still open after 1 s" "$try" "$hint"

    # The listener: closed, so that a new client is refused, not queued.
    wait_for_log '^SIGTERM: ' >/dev/null || true
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 000 ] && grep -q 'could not connect' "$BATS_TEST_TMPDIR/exchange" ||
        fail_because "a new client refused after SIGTERM (curl: could not connect)" \
            "status $status: $(curl_said)" "$try" "$hint"

    size=$(stat -c %s "$BATS_TEST_TMPDIR/download")
    [ "$size" -lt 67108864 ] ||
        fail_because "the download still under way when SIGTERM came" \
            "it was complete already: the machine read 64 MiB at 16 MiB/s in no time?" "$try"

    # The download: complete and intact, then the server exits 0.
    wait_for_exit $((DRAIN_SECONDS + DRAIN_MARGIN_SECONDS))
    [ "$EXIT_STATUS" = 0 ] ||
        fail_because "exit status 0 once the download is done, within ${DRAIN_SECONDS} s of SIGTERM" \
            "${EXIT_STATUS:-still running} after $EXIT_MS ms" "$try" \
            "book/12-shutdown.md, section 'The loop ends when the last connection does'"
    wait_for_download
    status=$DOWNLOAD_STATUS
    got=$(sha256sum <"$BATS_TEST_TMPDIR/download" | cut -d' ' -f1)
    echo "# the download: $(stat -c %s "$BATS_TEST_TMPDIR/download") bytes, sha256 ${got:0:16}..., expected ${expected:0:16}..." >&3
    [ "$status" = 0 ] && [ "$got" = "$expected" ] ||
        fail_because "the whole 64 MiB, intact (sha256 $expected), and curl's status 0" \
            "curl's status $status ($(curl_verdict "$status")), $(stat -c %s "$BATS_TEST_TMPDIR/download") bytes, sha256 $got" \
            "$try" "$hint"
    grep -Eq '^SIGTERM: accepting no more; idle connections closed: 1; to finish: 1$' "$LOG" ||
        fail_because "the line 'SIGTERM: accepting no more; idle connections closed: 1; to finish: 1'" \
            "'$(grep -m 1 '^SIG' "$LOG" || echo none)'" "$try" "$hint"
    grep -Eq '^stopped; connections drained: 1$' "$LOG" ||
        fail_because "the last line 'stopped; connections drained: 1'" "'$(tail -n 1 "$LOG")'" "$try" \
            "book/12-shutdown.md, section 'The loop ends when the last connection does'"
}

# bats test_tags=ladder
@test "SIGTERM with nothing under way: idle connections closed, exit 0 at once" {
    local try hint="book/12-shutdown.md, section 'The first signal: draining'" status fresh
    start_root_server
    try=$(by_hand_stop "nc 127.0.0.1 8080 & curl -s http://127.0.0.1:8080/ >/dev/null" "wait")
    open_answered_connection
    # A connection that has sent nothing yet has not begun a request either.
    exec {fresh}<>"/dev/tcp/127.0.0.1/$PORT"
    keep_open "$fresh"
    wait_for_count '^accepted ' 2 >/dev/null || true
    signal_server TERM
    wait_for_exit 2
    [ "$EXIT_STATUS" = 0 ] ||
        fail_because "exit status 0 within 2 s of SIGTERM: no request was under way" \
            "${EXIT_STATUS:-still running} after $EXIT_MS ms" "$try" \
            "book/12-shutdown.md, section 'The loop ends when the last connection does'"
    status=0
    timeout 1 cat <&"$fresh" >/dev/null || status=$?
    [ "$status" -eq 0 ] ||
        fail_because "the connection that had sent nothing closed" "still open" "$try" "$hint"
    grep -Eq '^SIGTERM: accepting no more; idle connections closed: 2; to finish: 0$' "$LOG" ||
        fail_because "the line 'SIGTERM: accepting no more; idle connections closed: 2; to finish: 0'" \
            "'$(grep -m 1 '^SIG' "$LOG" || echo none)'" "$try" "$hint"
    grep -Eq '^stopped; connections drained: 0$' "$LOG" ||
        fail_because "the last line 'stopped; connections drained: 0'" "'$(tail -n 1 "$LOG")'" "$try" \
            "book/12-shutdown.md, section 'The loop ends when the last connection does'"
}

# bats test_tags=ladder
@test "SIGINT (Ctrl-C) drains the same way: exit 0, and the log names it" {
    local try
    start_root_server
    try=$(by_hand_stop "curl -s http://127.0.0.1:8080/ >/dev/null" | sed 's/kill -TERM/kill -INT/')
    open_answered_connection
    signal_server INT
    wait_for_exit 2
    [ "$EXIT_STATUS" = 0 ] ||
        fail_because "exit status 0 within 2 s of SIGINT" "${EXIT_STATUS:-still running} after $EXIT_MS ms" \
            "$try" "book/12-shutdown.md, section 'Signals as bytes'"
    grep -Eq '^SIGINT: accepting no more; idle connections closed: 1; to finish: 0$' "$LOG" ||
        fail_because "the line 'SIGINT: accepting no more; idle connections closed: 1; to finish: 0'" \
            "'$(grep -m 1 '^SIG' "$LOG" || echo none)'" "$try" "book/12-shutdown.md, section 'Signals as bytes'"
}

# A request whose head is half sent has begun: it is not dropped, but
# answered once the rest comes, and its response says Connection: close.
# bats test_tags=ladder
@test "a request half sent when SIGTERM comes is answered, with Connection: close" {
    local try hint="book/12-shutdown.md, section 'Connection: close'" fd deadline answer
    start_root_server
    try=$(by_hand_stop "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n'; sleep 1; printf '\\r\\n'; sleep 1) | nc 127.0.0.1 8080 & sleep 0.5" "wait")
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    keep_open "$fd"
    printf 'GET / HTTP/1.1\r\nHost: x\r\n' >&"$fd"
    # The server has read the half (ss shows nothing left in its socket).
    wait_for_log '^accepted ' >/dev/null || true
    deadline=$((SECONDS + WAIT_SECONDS))
    until [ "$(unread_by_server)" = 0 ] || ((SECONDS >= deadline)); do sleep 0.02; done
    signal_server TERM
    wait_for_log '^SIGTERM: ' >/dev/null ||
        fail_because "the line 'SIGTERM: accepting no more; ...' while a request is half sent" \
            "$(server_state)" "$try" "book/12-shutdown.md, section 'The first signal: draining'"
    grep -Eq '^SIGTERM: accepting no more; idle connections closed: 0; to finish: 1$' "$LOG" ||
        fail_because "the line 'SIGTERM: accepting no more; idle connections closed: 0; to finish: 1'" \
            "'$(grep -m 1 '^SIG' "$LOG" || echo none)'" "$try" "book/12-shutdown.md, section 'The first signal: draining'"
    printf '\r\n' >&"$fd"
    answer=$(timeout "$WAIT_SECONDS" cat <&"$fd" | tr -d '\r')
    [[ $answer == "HTTP/1.1 200 OK"* ]] && grep -qx "<h1>$PAGE_WORD</h1>" <<<"$answer" ||
        fail_because "200 and index.html for the request completed after SIGTERM" \
            "'$(head -c 200 <<<"$answer" | tr '\n' '|')'" "$try" "$hint"
    grep -qix 'Connection: close' <<<"$answer" ||
        fail_because "Connection: close in the response: the server is stopping" \
            "$(sed -n '1,/^$/p' <<<"$answer" | tr '\n' '|')" "$try" "$hint"
    wait_for_exit 2
    [ "$EXIT_STATUS" = 0 ] && grep -Eq '^stopped; connections drained: 1$' "$LOG" ||
        fail_because "exit status 0 and 'stopped; connections drained: 1' once the response is out" \
            "${EXIT_STATUS:-still running} after $EXIT_MS ms; last line '$(tail -n 1 "$LOG")'" "$try" \
            "book/12-shutdown.md, section 'The loop ends when the last connection does'"
}

# bats test_tags=ladder
@test "a second SIGTERM stops the server at once, with status 1, mid-download" {
    local try hint="book/12-shutdown.md, section 'A second signal, or the deadline'" status
    make_root
    head -c 32M /dev/zero >"$ROOT/big.bin"
    start_server listening 0 127.0.0.1 "$ROOT"
    try=$(by_hand_stop "curl -s --limit-rate 1M -o /dev/null http://127.0.0.1:8080/big.bin & sleep 1" \
        "sleep 1; kill -TERM \$!")
    start_download /big.bin 1M
    signal_server TERM
    wait_for_log '^SIGTERM: ' >/dev/null ||
        fail_because "the line 'SIGTERM: accepting no more; ...'" "$(server_state)" "$try" \
            "book/12-shutdown.md, section 'The first signal: draining'"
    signal_server TERM
    wait_for_exit 1
    [ "$EXIT_STATUS" = 1 ] ||
        fail_because "exit status 1 within a second of the second SIGTERM" \
            "${EXIT_STATUS:-still running} after $EXIT_MS ms" "$try" "$hint"
    grep -Eq '^a second signal: stopping now; connections unfinished: 1$' "$LOG" ||
        fail_because "the line 'a second signal: stopping now; connections unfinished: 1'" \
            "'$(tail -n 1 "$LOG")'" "$try" "$hint"
    wait_for_download
    status=$DOWNLOAD_STATUS
    [ "$status" != 0 ] ||
        fail_because "the download cut short (curl's status not 0)" "curl got it all" "$try" "$hint"
}

# An idle client's next request that arrives with the signal, in the
# same batch of events: the server closes the connection (no request of
# it had been read), and must not touch it again afterwards. The server
# is stopped (SIGSTOP) while both arrive, so that epoll_wait(2) reports
# them together when it goes on, the signal first. Under make test
# SANITIZE=1, AddressSanitizer sees any use of the freed connection.
@test "a request that comes with SIGTERM, in the same batch of events, is safe" {
    local try fd
    start_root_server
    try="$SERVER_NAME 8080 & sleep 0.5; exec 5<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&5; sleep 0.5; kill -STOP \$!; kill -TERM \$!; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&5; kill -CONT \$!; wait \$!; echo \$?"
    open_answered_connection
    fd=$IDLE_FD
    wait_for_log ' GET /index.html 200 ' >/dev/null || true
    kill -STOP "$SERVER_PID"
    signal_server TERM
    printf 'GET /index.html HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
    kill -CONT "$SERVER_PID"
    wait_for_exit 2
    [ "$EXIT_STATUS" = 0 ] ||
        fail_because "exit status 0: the idle connection closed, or answered, and nothing else" \
            "${EXIT_STATUS:-still running} after $EXIT_MS ms" "$try" \
            "book/12-shutdown.md, section 'The first signal: draining'"
}

# What the kernel sees: the signals blocked, then a signalfd for them.
@test "SIGTERM and SIGINT are blocked and read from a signalfd (strace)" {
    make_root
    start_traced_server rt_sigprocmask,signalfd4,signalfd listening 0 127.0.0.1 "$ROOT"
    local try="strace -e trace=rt_sigprocmask,signalfd4 $SERVER_NAME 8080 & sleep 0.5; kill -TERM \$!"
    local hint="book/12-shutdown.md, section 'The system calls: sigprocmask(2) and signalfd(2)'"
    # The sets hold INT and TERM, and maybe more (an exercise adds QUIT).
    local blocked made
    blocked=$(grep -Eo 'rt_sigprocmask\(SIG_BLOCK, \[[A-Z0-9 ]*\]' "$TRACE" | grep -w INT | grep -w TERM | head -n 1)
    [ -n "$blocked" ] ||
        fail_because "rt_sigprocmask(SIG_BLOCK, [INT TERM], ...) in the trace" \
            "$(grep -m 3 sigprocmask "$TRACE" || echo 'no rt_sigprocmask')" "$try" "$hint"
    made=$(grep -E 'signalfd4?\(-1, \[[A-Z0-9 ]*\], [0-9]+, (SFD_CLOEXEC\|SFD_NONBLOCK|SFD_NONBLOCK\|SFD_CLOEXEC)\) = [0-9]+' "$TRACE" |
        grep -w INT | grep -w TERM | head -n 1)
    [ -n "$made" ] ||
        fail_because "signalfd4(-1, [INT TERM], 8, SFD_CLOEXEC|SFD_NONBLOCK) = FD in the trace" \
            "$(grep -m 3 signalfd "$TRACE" || echo 'no signalfd')" "$try" "$hint"
}
