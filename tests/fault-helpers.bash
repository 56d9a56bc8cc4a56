# Helpers for tests/faults.bats, on top of tests/helpers.bash: misbehaving
# clients, load, and the server's descriptors and memory from /proc.
#
# Environment, besides SERVER and WAIT_SECONDS:
#   STEP           a step that parses requests (tests/faults sets it);
#                  what it can do is in steps/list, read below: step 05
#                  reads and logs requests but does not answer them, step
#                  07 keeps connections open, step 08 forks a child for
#                  each, step 09 serves them all from one process with
#                  epoll(7), and so on.
#   LOAD_REQUESTS  requests in the load test (default 10000; under valgrind,
#                  1000 for step 08, FORK_LOAD_REQUESTS).
#   RSS_TOLERANCE_KB  how much the resident set may grow under load
#                  (default 128 KiB: 32 pages).
#   VALGRIND_LOG_DIR  set by tests/memcheck: SERVER runs under valgrind,
#                  which writes DIR/server.PID.log; each test checks its log.

STEP=${STEP:-$(basename "$SERVER" | sed -n 's/^step\([0-9][0-9]\)$/\1/p')}
STEP=${STEP:-06}
# What step STEP can do, from steps/list: " parses responds ... ".
STEP_CAN=" $(awk -F '\t' -v step="$STEP" 'substr($1, 1, 2) == step { print $2 }' \
    "$BATS_TEST_DIRNAME/../steps/list") "

# Can step STEP do this (a word of steps/list)?
#   can ABILITY
can() {
    [[ $STEP_CAN == *" $1 "* ]]
}
LOAD_REQUESTS=${LOAD_REQUESTS:-10000}
# Under valgrind (make memcheck), every connection to step 08 is a process
# that valgrind checks for leaks when it exits, about a tenth of a second:
# a thousand of them show what ten thousand would, in minutes rather than
# twenty. (Step 09 runs no child, but valgrind slows its one process as
# much: a thousand are enough there too.)
if [ -n "${VALGRIND_LOG_DIR:-}" ] && { can forks || can loop; }; then
    LOAD_REQUESTS=${FORK_LOAD_REQUESTS:-1000}
fi
RSS_TOLERANCE_KB=${RSS_TOLERANCE_KB:-128}

# Step 06 answers; step 05 only logs what it read.
answers() {
    can responds
}

# Step 07 keeps a connection open after a response.
keeps_alive() {
    can keeps-alive
}

# Step 08 serves each connection in a child process of its own.
forks() {
    can forks
}

# No client waits for another: step 08 gives each one a child, step 09
# serves them all from one event loop.
serves_at_once() {
    can forks || can loop
}

# Step 12 drains on SIGTERM: it finishes what was begun, for DRAIN_SECONDS
# at most.
drains() {
    can drains
}

# One process serves every connection (epoll(7)).
has_event_loop() {
    can loop
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

# Hundreds of slow clients at once (slowloris): each connects, then sends
# one byte of a request that never ends every INTERVAL seconds, until the
# server closes it, for LIMIT seconds at most. Writes "connected" to the
# file READY once all are connected; prints, at the end, how many were
# answered 408, how many the server closed, and the shortest and longest
# time from connect to close, in milliseconds.
#   slow_clients COUNT INTERVAL LIMIT READY
slow_clients() {
    perl -MIO::Socket::INET -MIO::Select -MTime::HiRes=time -e '
        my ($port, $count, $interval, $limit, $ready) = @ARGV;
        $SIG{PIPE} = "IGNORE"; # the server may close first: write fails with EPIPE
        my (@sockets, %started, %answer, %took);
        for (1 .. $count) {
            my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1", PeerPort => $port)
                or die "connect: $!";
            $s->blocking(0);
            push @sockets, $s;
            $started{$s} = time;
            $answer{$s} = "";
        }
        open(my $file, ">", $ready) or die "$ready: $!";
        print $file "connected\n";
        close $file;
        my $text = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " . ("s" x 1000);
        my $open = IO::Select->new(@sockets);
        my ($sent, $next, $deadline) = (0, time, time + $limit);
        while ($open->count && time < $deadline) {
            if (time >= $next) {
                syswrite($_, substr($text, $sent, 1)) for $open->handles;
                ($sent, $next) = ($sent + 1, $next + $interval);
            }
            my $wait = $next - time;
            for my $s ($open->can_read($wait > 0 ? $wait : 0)) {
                my $n = sysread($s, my $bytes, 4096);
                if ($n) { $answer{$s} .= $bytes; next; }
                next if !defined $n && $!{EAGAIN};
                $took{$s} = time - $started{$s};
                $open->remove($s);
                close $s;
            }
        }
        my @took = sort { $a <=> $b } values %took;
        my $answered = grep { $answer{$_} =~ m{^HTTP/1\.1 408 } } @sockets;
        printf "%d %d %d %d\n", $answered, scalar @took,
            @took ? 1000 * $took[0] : -1, @took ? 1000 * $took[-1] : -1;' \
        "$PORT" "$@"
}

# Clients that reset with answers on their way: each sends COUNT requests
# at once, each answered 405 (about 200 bytes), with a small receive
# buffer and segments of 88 bytes (TCP_MAXSEG, tcp(7)), so that the
# answers back up; as soon as the first bytes of an answer arrive, it
# closes with SO_LINGER 0, which sends a reset (RST).
#   reset_mid_answers CLIENTS COUNT
reset_mid_answers() {
    perl -MSocket=:all -e '
        my ($port, $clients, $count) = @ARGV;
        my $requests = "DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" x $count;
        for (1 .. $clients) {
            socket(my $s, PF_INET, SOCK_STREAM, 0) or die "socket: $!";
            setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack("i", 1024)) or die "SO_RCVBUF: $!";
            setsockopt($s, IPPROTO_TCP, TCP_MAXSEG, pack("i", 88)) or die "TCP_MAXSEG: $!";
            connect($s, sockaddr_in($port, inet_aton("127.0.0.1"))) or die "connect: $!";
            syswrite($s, $requests) == length $requests or die "write: $!";
            vec(my $readable = "", fileno($s), 1) = 1;
            select($readable, undef, undef, 10) or die "no answer within 10 s";
            setsockopt($s, SOL_SOCKET, SO_LINGER, pack("ii", 1, 0)) or die "SO_LINGER: $!";
            close $s;
        }' "$PORT" "$@"
}
