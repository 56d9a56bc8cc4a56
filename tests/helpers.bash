# Shared by every tests/NN-*.bats file: start and stop the server under
# test, talk to it, and explain failures to the reader.
#
# The tests look only at what the program does, never at its source, so
# they can check any server that follows the book's command line:
#   SERVER [PORT [ADDRESS]]   prints "created socket fd N in process PID",
#   "bound to ADDRESS:PORT" (step 02 on), "listening on http://ADDRESS:PORT/"
#   (step 03 on), and "accepted ADDRESS:PORT on fd N" (step 04 on).
#
# Environment: SERVER, the binary under test (tests/check sets it).
# WAIT_SECONDS bounds every wait for the server (default 5).

: "${SERVER:?SERVER must name the server binary; run the tests with tests/check}"
WAIT_SECONDS=${WAIT_SECONDS:-5}
# How a reader runs the binary by hand, for the "reproduce" lines.
SERVER_NAME=${SERVER_NAME:-$(basename "$SERVER")}
case $SERVER_NAME in */*) ;; *) SERVER_NAME=./$SERVER_NAME ;; esac

SERVER_PID=
PORT=
LOG=

# Explains a failure the way a reader needs it, then fails the test.
#   fail_because WHAT-WAS-EXPECTED WHAT-HAPPENED HOW-TO-REPRODUCE [HINT]
fail_because() {
    local try=$3
    [[ $try == *"$SERVER_NAME"* ]] || try="$SERVER_NAME 8080 in one terminal; in another: $try"
    {
        echo "expected:  $1"
        echo "but:       $(head -c 600 <<<"$2")"
        echo "try it:    $try"
        [ -z "${4:-}" ] || echo "hint:      $4"
        if [ -n "$LOG" ] && [ -s "$LOG" ]; then
            echo "the server printed:"
            sed 's/^/    | /' "$LOG" | head -n 40
        fi
    } >&2
    return 1
}

# A command line that shows a failure by hand: it starts the server on
# port 8080, runs CLIENT, and stops the server again.
by_hand() {
    printf '%s 8080 & sleep 0.5; %s; kill $!' "$SERVER_NAME" "$1"
}

# Polls the server's output until a line matches the extended regular
# expression, for at most SECONDS (default WAIT_SECONDS). Prints the line.
wait_for_log() {
    local pattern=$1 seconds=${2:-$WAIT_SECONDS} line
    local deadline=$((SECONDS + seconds + 1))
    while ((SECONDS < deadline)); do
        if line=$(grep -E -m 1 -- "$pattern" "$LOG" 2>/dev/null); then
            printf '%s\n' "$line"
            return 0
        fi
        [ -z "$SERVER_PID" ] || kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.02
    done
    grep -E -m 1 -- "$pattern" "$LOG" 2>/dev/null
}

# What the server prints once it is ready, by the stage the test needs.
ready_pattern() {
    case $1 in
    socket) echo 'created socket fd [0-9]+' ;;
    bound) echo 'bound to [0-9.]+:[0-9]+' ;;
    listening) echo 'listening on http://[0-9.]+:[0-9]+/' ;;
    esac
}

# Runs a command the way a terminal would: with only stdin, stdout and
# stderr open (bats keeps descriptors of its own open, which the server
# would inherit, so that its socket would not be fd 3), and with SIGINT at
# its default action (a shell ignores it in background jobs).
exec_like_a_terminal() {
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec env --default-signal=INT "$@"
}

# Starts the server in the background and waits until it is ready.
#   start_server STAGE [ARGUMENTS...]   (STAGE: socket, bound or listening;
#   ARGUMENTS default to port 0, so that the kernel picks a free port.)
# Sets SERVER_PID, LOG and, from step 02 on, PORT.
start_server() {
    local stage=$1
    shift
    [ $# -gt 0 ] || set -- 0
    LOG=$BATS_TEST_TMPDIR/server.log
    exec_like_a_terminal "$SERVER" "$@" </dev/null >"$LOG" 2>&1 &
    SERVER_PID=$!
    await_stage "$stage" "$@"
}

# Like start_server, but under strace(1), which writes the system calls
# named in CALLS (a strace -e trace= list) to the file $TRACE.
#   start_traced_server CALLS STAGE [ARGUMENTS...]
start_traced_server() {
    local calls=$1 stage=$2
    shift 2
    [ $# -gt 0 ] || set -- 0
    LOG=$BATS_TEST_TMPDIR/server.log
    TRACE=$BATS_TEST_TMPDIR/strace.txt
    exec_like_a_terminal strace -f -qq -o "$TRACE" -e trace="$calls" "$SERVER" "$@" \
        </dev/null >"$LOG" 2>&1 &
    TRACER_PID=$!
    SERVER_PID=
    local line
    if line=$(wait_for_log "$(ready_pattern socket)"); then
        SERVER_PID=$(sed -n 's/.* in process \([0-9][0-9]*\).*/\1/p' <<<"$line")
    fi
    [ -n "$SERVER_PID" ] || SERVER_PID=$(pgrep -P "$TRACER_PID" | head -n 1)
    await_stage "$stage" "$@"
}

# The line each stage prints when it is ready, as a reader would write it,
# and the chapter that shows it.
ready_example() {
    case $1 in
    socket) echo "'created socket fd 3 in process PID'" ;;
    bound) echo "'bound to 127.0.0.1:PORT', after 'created socket ...'" ;;
    listening) echo "'listening on http://127.0.0.1:PORT/', after 'bound to ...'" ;;
    esac
}
ready_hint() {
    case $1 in
    socket) echo "book/01-socket.md, section 'Build and run'" ;;
    bound) echo "book/02-bind.md, section 'Build and run'" ;;
    listening) echo "book/03-listen.md, section 'Build and run'" ;;
    esac
}

await_stage() {
    local stage=$1 line
    shift
    if ! line=$(wait_for_log "$(ready_pattern "$stage")"); then
        fail_because "a line like $(ready_example "$stage") within $WAIT_SECONDS s" \
            "$(server_state)" "$SERVER_NAME $*" "$(ready_hint "$stage")"
        return 1
    fi
    PORT=$(grep -E -o ':[0-9]+' <<<"$line" | tail -n 1 | tr -d :)
}

server_state() {
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null
        echo "the server exited with status $?"
    else
        echo "the server is running, and its last line is: $(tail -n 1 "$LOG" 2>/dev/null)"
    fi
}

# Stops the server; every test file calls this from its teardown.
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [ -n "${TRACER_PID:-}" ]; then
        wait "$TRACER_PID" 2>/dev/null || true
    fi
    SERVER_PID='' TRACER_PID=
}

# Stops the server, and fails the test if a sanitizer (make test
# SANITIZE=1) reported anything, even after the test's last check.
teardown() {
    stop_server
    if [ -n "$LOG" ] && grep -Eq 'runtime error:|AddressSanitizer|LeakSanitizer' "$LOG"; then
        fail_because "no sanitizer report in the server's output" \
            "$(grep -E -m 1 'runtime error:|Sanitizer' "$LOG")" "make test SANITIZE=1"
    fi
}

# Sends bytes (a printf format) over a new connection, in one write(2),
# and prints what comes back until the server closes, for WAIT_SECONDS at
# most. (The printf builtin would write line by line; cat writes at once.)
#   raw_request FORMAT [SECONDS]
raw_request() {
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >"$BATS_TEST_TMPDIR/request"
    send_file "$BATS_TEST_TMPDIR/request" "${2:-$WAIT_SECONDS}"
}

send_file() {
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    { cat "$1" >&"$fd"; } 2>/dev/null || true
    timeout "$2" cat <&"$fd" 2>/dev/null || true
    exec {fd}>&-
}

# A command that sends a raw request by hand, to a server on port 8080.
#   raw_command FORMAT [FILLER-LENGTH FILLER-CHARACTER]
raw_command() {
    if [ -n "${2:-}" ]; then
        printf "printf '%s' \"\$(head -c %s /dev/zero | tr '\\\\0' %s)\" | nc -N 127.0.0.1 8080" "$1" "$2" "$3"
    else
        printf "printf '%s' | nc -N 127.0.0.1 8080" "$1"
    fi
}

# The number of open descriptors of the server, from /proc.
count_descriptors() {
    find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

# A short random word, so that a hard-coded answer cannot pass.
random_word() {
    printf '%s%04d' "$(tr -dc '[:lower:]' </dev/urandom | head -c 6)" "$((RANDOM % 10000))"
}

# Polls until the server's output has at least N lines that match the
# extended regular expression, for at most WAIT_SECONDS. Prints the Nth.
wait_for_count() {
    local pattern=$1 count=$2 deadline=$((SECONDS + WAIT_SECONDS + 1))
    while [ "$(grep -E -c -- "$pattern" "$LOG")" -lt "$count" ] && ((SECONDS < deadline)); do
        sleep 0.02
    done
    grep -E -- "$pattern" "$LOG" | sed -n "${count}p" | grep .
}

# shellcheck disable=SC2034 # used by the .bats files
MALFORMED_REQUEST_COUNT=35

# The malformed requests and what the server must make of them, one per
# line, separated by tabs: the status code (step 05 logs it, step 06
# answers with it); the request, as a printf format; and for the long
# ones, the length and the character of a filler that takes its place at %s.
malformed_requests() {
    cat <<'REQUESTS'
400	GET /\r\n\r\n
400	GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n
400	GET / HTTP/1.1\nHost: x\n\n
400	GET / HTTP/1.1\r\n\r\n
400	GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n
400	GET / HTTP/1.1\r\nHost : x\r\n\r\n
400	GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n
400	GET / HTTP/1.1\r\nHost: x\r\nX: a\001b\r\n\r\n
400	GET nowhere HTTP/1.1\r\nHost: x\r\n\r\n
400	GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n
400	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd
400	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n
501	POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n
505	GET / HTTP/2.0\r\nHost: x\r\n\r\n
413	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n
414	GET /%s HTTP/1.1\r\nHost: x\r\n\r\n	3000	a
431	GET / HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n\r\n	5000	b
400	GET / HTTP/1.1\r\nHost: a b\r\n\r\n
400	GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n
400	GET / HTTP/1.1\r\nHost: example.com:80a\r\n\r\n
400	GET / HTTP/1.1\r\nHost: [::g]:80\r\n\r\n
400	GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n
400	GET http://:80/ HTTP/1.1\r\nHost: x\r\n\r\n
400	GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n
400	GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n
400	GET * HTTP/1.1\r\nHost: x\r\n\r\n
400	GET / HTTP/1.2\r\n\r\n
400	\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n
400	GET / HTTP/1.1\r\n Host: x\r\n\r\n
400	GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n
400	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello
400	POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n
400	POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n
400	GET / http/1.1\r\nHost: x\r\n\r\n
400	GET / HTTP/1.1\r\nHost: x\r\nX: a\000b\r\n\r\n
REQUESTS
}

# Sends a request from that list; prints what comes back.
#   send_listed_request FORMAT [FILLER-LENGTH FILLER-CHARACTER] SECONDS
send_listed_request() {
    local format=$1 seconds=${*: -1} filler=''
    if [ $# -eq 4 ]; then filler=$(head -c "$2" /dev/zero | tr '\0' "$3"); fi
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$format" "$filler" >"$BATS_TEST_TMPDIR/request"
    send_file "$BATS_TEST_TMPDIR/request" "$seconds"
}
