# Helpers for tests/faults.bats, on top of tests/helpers.bash: misbehaving
# clients, load, and the server's descriptors and memory from /proc.
#
# Environment, besides SERVER and WAIT_SECONDS:
#   STEP           05 to 08 (tests/faults sets it); step 05 reads and
#                  logs requests but does not answer them; step 07 keeps
#                  connections open; step 08 forks a child for each.
#   LOAD_REQUESTS  requests in the load test (default 10000; under valgrind,
#                  1000 for step 08, FORK_LOAD_REQUESTS).
#   RSS_TOLERANCE_KB  how much the resident set may grow under load
#                  (default 128 KiB: 32 pages).
#   VALGRIND_LOG_DIR  set by tests/memcheck: SERVER runs under valgrind,
#                  which writes DIR/server.PID.log; each test checks its log.

STEP=${STEP:-$(basename "$SERVER" | sed -n 's/^step\(0[0-9]\)$/\1/p')}
STEP=${STEP:-06}
LOAD_REQUESTS=${LOAD_REQUESTS:-10000}
# Under valgrind (make memcheck), every connection to step 08 is a process
# that valgrind checks for leaks when it exits, about a tenth of a second:
# a thousand of them show what ten thousand would, in minutes rather than
# twenty.
if [ -n "${VALGRIND_LOG_DIR:-}" ] && [ "$((10#$STEP))" -ge 8 ]; then
    LOAD_REQUESTS=${FORK_LOAD_REQUESTS:-1000}
fi
RSS_TOLERANCE_KB=${RSS_TOLERANCE_KB:-128}

# Step 06 answers; step 05 only logs what it read.
answers() {
    [ "$((10#$STEP))" -ge 6 ]
}

# Step 07 keeps a connection open after a response.
keeps_alive() {
    [ "$((10#$STEP))" -ge 7 ]
}

# Step 08 serves each connection in a child process of its own.
forks() {
    [ "$((10#$STEP))" -ge 8 ]
}

# Step 11 drains on SIGTERM: it finishes what was begun, for DRAIN_SECONDS
# at most.
drains() {
    [ "$((10#$STEP))" -ge 11 ]
}

# Runs a command without bats' DEBUG trap, which bats runs before every
# command of a test (to report the failing line) and which makes a loop of
# thousands of commands take seconds instead of milliseconds.
untraced() {
    local saved status=0
    saved=$(trap -p DEBUG)
    trap - DEBUG
    "$@" || status=$?
    eval "$saved"
    return "$status"
}

# Milliseconds on a monotonic-enough clock, for measuring waits.
now_ms() {
    echo "$(($(date +%s%N) / 1000000))"
}

# Resident set size of the server, in KiB, from /proc/PID/status.
resident_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"
}

# Waits until the server is back to COUNT descriptors, that is, done with
# every connection (it may linger up to 2 s on one). Prints the count.
wait_for_descriptors() {
    local count=$1 now deadline=$((SECONDS + WAIT_SECONDS + 3))
    while now=$(count_descriptors) && [ "$now" -ne "$count" ] && ((SECONDS < deadline)); do
        sleep 0.05
    done
    echo "$now"
}

# Sends a complete request with a fresh random X-Probe field and checks the
# server took it: the log shows the field, and step 06 answers 200.
probe() {
    local word code
    word=$(random_word)
    # Long enough to wait out a client that the server is timing out.
    code=$(curl -s -m "$((WAIT_SECONDS + 10))" -o /dev/null -w '%{http_code}' \
        -H "X-Probe: $word" "http://127.0.0.1:$PORT/" || true)
    if answers && [ "$code" != 200 ]; then
        fail_because "200 to a plain GET /" "status '$code'" \
            "curl -v http://127.0.0.1:8080/" "the server should still answer after: ${1:-the test}"
        return 1
    fi
    if ! wait_for_log "header: X-Probe: $word" >/dev/null; then
        fail_because "the log to show the probe request (header: X-Probe: $word)" \
            "$(server_state)" "curl -v -H 'X-Probe: $word' http://127.0.0.1:8080/" \
            "the server should still serve clients after: ${1:-the test}"
        return 1
    fi
}

# Writes TEXT to the descriptor FD in pieces of SIZE bytes, one write(2)
# each, with a pause of SECONDS between them.
#   send_in_pieces FD SIZE SECONDS TEXT
send_in_pieces() {
    local fd=$1 size=$2 pause=$3 text=$4 i
    for ((i = 0; i < ${#text}; i += size)); do
        printf '%s' "${text:i:size}" >&"$fd"
        sleep "$pause"
    done
}

# Sends a file over a new connection, half-closes (so that the server sees
# the end of the request at once) and saves what comes back.
#   send_half_closed INPUT OUTPUT   (helpers.bash has send_file: not the same)
send_half_closed() {
    timeout "$WAIT_SECONDS" nc -N 127.0.0.1 "$PORT" <"$1" >"$2" 2>/dev/null || true
}

# A client that hangs up abruptly: it sends BYTES (a printf format, may be
# empty) and closes with SO_LINGER 0, so the kernel sends a reset (RST)
# rather than FIN, and drops anything that arrives after.
send_and_reset() {
    local bytes
    # shellcheck disable=SC2059 # the format is the point
    bytes=$(printf -- "$1"; echo x)
    perl -MSocket -MIO::Socket::INET -e '
        my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $ARGV[0]) or exit 1;
        print $s substr($ARGV[1], 0, -1);
        setsockopt($s, SOL_SOCKET, SO_LINGER, pack("ii", 1, 0)) or exit 1;
        close $s;' "$PORT" "$bytes"
}

# After each test (helpers.bash's teardown calls these): the server must
# still be running and, under valgrind, its valgrind log must hold no error.
# (The teardown checks the log for sanitizer reports.)
after_each_test() {
    if [ -n "$SERVER_PID" ] && [ -n "$(server_ended)" ]; then
        fail_because "the server to survive the test" "$(server_state)" "make faults"
        return 1
    fi
}

after_stopping_server() {
    local pid=$1 log
    [ -n "${VALGRIND_LOG_DIR:-}" ] && [ -n "$pid" ] || return 0
    log=$VALGRIND_LOG_DIR/server.$pid.log
    if ! "$BATS_TEST_DIRNAME/memcheck-verdict" "$log" >&2; then
        fail_because "valgrind to find no error in process $pid" "it did: $log" "make memcheck"
        return 1
    fi
}
