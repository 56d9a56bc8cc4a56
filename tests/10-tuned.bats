#!/usr/bin/env bats
# Step 10: ten thousand clients, as fast as nginx. Out of descriptors, the
# server waits rather than spins, and accepts again when it can; an idle
# connection costs little memory. (The speed itself is measured by make
# bench, not here: book/10-tuned.md.)

load helpers

# Starts the server as start_server does, with at most DESCRIPTORS open
# at once: prlimit(1) sets the limit, then runs the server in its process.
#   start_limited_server DESCRIPTORS
start_limited_server() {
    LOG=$BATS_TEST_TMPDIR/server.log
    exec_like_a_terminal prlimit --nofile="$1" "$SERVER" 0 </dev/null >"$LOG" 2>&1 &
    SERVER_PID=$!
    await_stage listening 0
}

# bats test_tags=part:descriptors,ladder
@test "out of descriptors, the server neither dies nor spins, and accepts again when connections close" {
    # (256: valgrind, under make memcheck, needs descriptors up to 200.)
    start_limited_server 256
    local line
    open_idle_connections 300
    line=$(wait_for_log '^accept4: ') || true
    local try hint="book/10-tuned.md, section 'When accept fails'"
    try="prlimit --nofile=256 $SERVER_NAME 8080 & sleep 0.5; for i in \$(seq 300); do exec {fd}<>/dev/tcp/127.0.0.1/8080; done; sleep 1; ps -o time,stat -p \$!; curl -m 2 http://127.0.0.1:8080/"
    [ -n "$line" ] ||
        fail_because "a line 'accept4: Too many open files' once 300 clients connect to a server limited to 256 descriptors" \
            "$(grep -c '^accepted ' "$LOG") 'accepted' lines, and no such line" "$try" "$hint"
    # A server that spins on the listener uses all of a core: 100 ticks a second.
    local before after used
    before=$(cpu_ticks)
    sleep 1 # the time we measure, not a wait for the server
    after=$(cpu_ticks)
    used=$((after - before))
    [ -z "$(server_ended)" ] ||
        fail_because "the server still running, out of descriptors" "$(server_ended)" "$try" "$hint"
    ((used <= 10)) ||
        fail_because "at most 0.1 s of CPU time in 1 s out of descriptors (10 ticks): waiting, not spinning" \
            "$used ticks in 1 s ($(getconf CLK_TCK) a second)" "$try" "$hint"
    close_idle_connections
    local code
    code=$(fetch "http://127.0.0.1:$PORT/")
    [ "$code" = 200 ] ||
        fail_because "200 for a new client once the others have closed" "$(curl_said)" "$try" "$hint"
}

# The quick version of the benchmark's ten thousand connections.
# bats test_tags=part:memory,ladder
@test "2000 idle keep-alive connections cost the server less than 512 bytes each" {
    # build/many-clients (tests/bench/many-clients.c) opens them, makes a
    # request on each, and holds them open, idle, until its input ends:
    # bash alone takes seconds to open 2000, longer than the timeouts.
    make -s -C "$BATS_TEST_DIRNAME/.." build/many-clients >/dev/null
    local client=$BATS_TEST_DIRNAME/../build/many-clients
    ulimit -n 4200 2>/dev/null || true
    start_server listening 0
    local count=2000 before after line summary='' held=''
    local try hint="book/10-tuned.md, section 'Memory'"
    try=$(by_hand "grep VmRSS /proc/\$!/status; sleep 3 | build/many-clients --hold 8080 $count 1 & sleep 1; grep VmRSS /proc/\$!/status")
    before=$(resident_kb)
    coproc CLIENT { exec "$client" --hold "$PORT" "$count" 1 2>&1; }
    while IFS= read -r -t "$((WAIT_SECONDS * 4))" line <&"${CLIENT[0]}"; do
        case $line in
        "holding "*) held=${line#holding } && held=${held%% *} && break ;;
        *) summary=$line ;;
        esac
    done
    # At once: an idle connection is closed after 2 s.
    after=$(resident_kb)
    local open grown
    open=$(($(find "/proc/$SERVER_PID/fd" -mindepth 1 -lname 'socket:*' 2>/dev/null | wc -l) - 1))
    # Done with it: a client still trying (a server that cannot answer
    # them all) would go on until its own deadline, two minutes.
    local input=${CLIENT[1]}
    exec {input}>&-
    kill "$CLIENT_PID" 2>/dev/null || true
    wait "$CLIENT_PID" 2>/dev/null || true
    # Its connections are gone: the server closes its side of each before
    # the test ends, else make memcheck finds them open when it stops.
    local deadline=$((SECONDS + WAIT_SECONDS + 1))
    while (($(find "/proc/$SERVER_PID/fd" -mindepth 1 -lname 'socket:*' 2>/dev/null | wc -l) > 1)) &&
        ((SECONDS < deadline)); do
        sleep 0.05
    done
    ((open > 0)) || open=1
    grown=$(((after - before) * 1024 / open))
    local said="many-clients said '${summary:-nothing}', holding ${held:-no} connections; the server held $open sockets; its VmRSS went from $before KiB to $after KiB: $grown bytes for each"
    [ "${held:-0}" -eq "$count" ] ||
        fail_because "$count connections answered and held open" "$said" "$try" "$hint"
    # A few may be closed on a busy machine; most must be open to measure.
    ((open >= count / 2)) ||
        fail_because "at least $((count / 2)) of the $count connections open, idle, when the memory is measured" \
            "$said" "$try" "$hint"
    if readlink "/proc/$SERVER_PID/exe" | grep -q memcheck; then
        skip "under valgrind (make memcheck), the resident memory is valgrind's: $said"
    fi
    [ "$grown" -lt 512 ] ||
        fail_because "less than 512 bytes of resident memory for each idle connection" "$said" "$try" "$hint"
}
