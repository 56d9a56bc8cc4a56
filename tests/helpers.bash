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
    {
        echo "expected:  $1"
        echo "but:       $2"
        echo "try it:    $3"
        [ -z "${4:-}" ] || echo "hint:      $4"
        if [ -n "$LOG" ] && [ -s "$LOG" ]; then
            echo "the server printed:"
            sed 's/^/    | /' "$LOG" | head -n 40
        fi
    } >&2
    return 1
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

# Starts the server in the background and waits until it is ready.
#   start_server STAGE [ARGUMENTS...]   (STAGE: socket, bound or listening;
#   ARGUMENTS default to port 0, so that the kernel picks a free port.)
# Sets SERVER_PID, LOG and, from step 02 on, PORT.
start_server() {
    local stage=$1
    shift
    [ $# -gt 0 ] || set -- 0
    LOG=$BATS_TEST_TMPDIR/server.log
    "$SERVER" "$@" >"$LOG" 2>&1 &
    SERVER_PID=$!
    await_stage "$stage" "$@"
}

# Like start_server, but under strace(1), which writes the system calls
# named in TRACE_CALLS (a strace -e trace= list) to TRACE.
start_traced_server() {
    local stage=$1
    shift
    [ $# -gt 0 ] || set -- 0
    LOG=$BATS_TEST_TMPDIR/server.log
    TRACE=$BATS_TEST_TMPDIR/strace.txt
    strace -f -qq -o "$TRACE" -e trace="$TRACE_CALLS" "$SERVER" "$@" >"$LOG" 2>&1 &
    TRACER_PID=$!
    SERVER_PID=
    local line
    if line=$(wait_for_log "$(ready_pattern socket)"); then
        SERVER_PID=$(sed -n 's/.* in process \([0-9][0-9]*\).*/\1/p' <<<"$line")
    fi
    [ -n "$SERVER_PID" ] || SERVER_PID=$(pgrep -P "$TRACER_PID" | head -n 1)
    await_stage "$stage" "$@"
}

await_stage() {
    local stage=$1 line
    shift
    if ! line=$(wait_for_log "$(ready_pattern "$stage")"); then
        fail_because "a line matching '$(ready_pattern "$stage")' within $WAIT_SECONDS s" \
            "$(server_state)" "$SERVER_NAME $*"
        return 1
    fi
    PORT=$(grep -E -o ':[0-9]+' <<<"$line" | tail -n 1 | tr -d :)
}

server_state() {
    if [ -n "$SERVER_PID" ] && ! kill -0 "$SERVER_PID" 2>/dev/null; then
        wait "$SERVER_PID" 2>/dev/null
        echo "the server exited with status $?"
    else
        echo "the server did not print it"
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
    SERVER_PID= TRACER_PID=
}

teardown() {
    stop_server
}

# Sends bytes (a printf format) over a new connection and prints what
# comes back until the server closes, for WAIT_SECONDS at most.
#   raw_request FORMAT [SECONDS]
raw_request() {
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >&"$fd" 2>/dev/null || true
    timeout "${2:-$WAIT_SECONDS}" cat <&"$fd" 2>/dev/null || true
    exec {fd}>&-
}

# Builds a reproduce line for a raw request.
raw_command() {
    printf "printf '%s' | nc -N 127.0.0.1 8080" "$1"
}

# The number of open descriptors of the server, from /proc.
count_descriptors() {
    find "/proc/$SERVER_PID/fd" -mindepth 1 -maxdepth 1 | wc -l
}

# A short random word, so that a hard-coded answer cannot pass.
random_word() {
    printf '%s%04d' "$(tr -dc 'a-z' </dev/urandom | head -c 6)" "$((RANDOM % 10000))"
}
