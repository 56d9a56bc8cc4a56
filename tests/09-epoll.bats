#!/usr/bin/env bats
# Step 09: one process, every connection at once. An epoll(7) event loop
# serves hundreds of clients without a child for any; each connection has
# its own deadlines; a client that does not read its answers stops nobody
# else, and is dropped in the end.

load helpers

# Clients the test started in the background (their pids):
# after_each_test ends them. (Idle connections, open_idle_connection in
# tests/helpers.bash, are closed by teardown.)
CLIENTS=()

after_each_test() {
    local pid
    for pid in "${CLIENTS[@]}"; do
        kill -CONT "$pid" 2>/dev/null || true
        kill "$pid" 2>/dev/null || true
    done
    CLIENTS=()
}

# Milliseconds since an earlier $(date +%s%N).
#   since START
since() {
    echo $((($(date +%s%N) - $1) / 1000000))
}

# Makes COUNT requests at once with one curl, CONNECTIONS at a time, each
# connection kept for the next request (curl --parallel). Prints, a line a
# request: the status code, 1 if it opened a connection (0 if it reused
# one), and the client's port, which names the connection.
#   fetch_parallel COUNT CONNECTIONS SECONDS
fetch_parallel() {
    local i
    for ((i = 0; i < $1; i++)); do
        printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$PORT"
    done >"$BATS_TEST_TMPDIR/urls"
    curl -s -Z --parallel-max "$2" --parallel-immediate -m "$3" -K "$BATS_TEST_TMPDIR/urls" \
        -w '%{http_code} %{num_connects} %{local_port}\n' 2>/dev/null || true
}

# How often the server is runnable (state R, proc(5)): running, or waiting
# for a processor. Looks SAMPLES times, 50 ms apart; prints how many
# times it was. A server asleep in epoll_wait is S; one that spins is R,
# however busy the machine, where its CPU time would shrink with its share.
#   runnable_samples SAMPLES
runnable_samples() {
    local i stat runnable=0
    for ((i = 0; i < $1; i++)); do
        read -r stat <"/proc/$SERVER_PID/stat" || break
        stat=${stat##*) }
        [ "${stat%% *}" != R ] || runnable=$((runnable + 1))
        sleep 0.05
    done
    echo "$runnable"
}

# Polls until a process is stopped (state T), for WAIT_SECONDS at most.
wait_until_stopped() {
    local deadline=$((SECONDS + WAIT_SECONDS + 1))
    while [ "$(process_state "$1")" != T ] && ((SECONDS < deadline)); do
        kill -0 "$1" 2>/dev/null || return 1
        sleep 0.02
    done
    [ "$(process_state "$1")" = T ]
}

# bats test_tags=part:loop,ladder
@test "one process serves every client: no fork, and every answer is written by the server itself" {
    # (From step 11 on, a response's head goes out with send(2): sendto.)
    start_traced_server socket,fork,vfork,clone,clone3,write,sendto listening 0
    local codes answered forks writers
    codes=$(fetch_parallel 50 50 "$WAIT_SECONDS" | grep -c '^200 ' || true)
    wait_for_count '^127\.0\.0\.1:[0-9]+ GET / 200 ' 50 >/dev/null || true
    # From the server's socket(2) on: a wrapper that starts the server
    # (make memcheck's) may fork before.
    forks=$(sed -n '/ socket(AF_INET/,$p' "$TRACE" | grep -Ec '^[0-9]+ +(fork|vfork|clone|clone3)\(' || true)
    answered=$(grep -Ec '^[0-9]+ +(write|sendto)\([0-9]+, "HTTP/1\.1 200' "$TRACE" || true)
    writers=$(grep -E '^[0-9]+ +(write|sendto)\([0-9]+, "HTTP/1\.1 ' "$TRACE" | awk '{ print $1 }' | sort -u | paste -sd ' ' -)
    local said="$codes answers with 200; strace saw $forks fork/clone calls and $answered answers written, by pids '$writers' (the server is $SERVER_PID)"
    local try hint="book/09-epoll.md, section 'The loop'"
    try="strace -f -e trace=clone,clone3,fork,write $SERVER_NAME 8080 & sleep 0.5; curl -s -Z http://127.0.0.1:8080/ http://127.0.0.1:8080/ >/dev/null; kill %1"
    [ "$forks" -eq 0 ] ||
        fail_because "no fork(2) or clone(2) at all: one process serves every connection" "$said" "$try" "$hint"
    [ "$codes" -eq 50 ] ||
        fail_because "50 answers with status 200, to 50 clients at once" "$said" "$try" "$hint"
    [ "$answered" -eq 50 ] ||
        fail_because "50 write(2)s of an answer in the trace" "$said" "$try" "$hint"
    [ "$writers" = "$SERVER_PID" ] ||
        fail_because "every answer written by the server's own process, $SERVER_PID" "$said" "$try" "$hint"
}

# Step 08 serves 32 clients at a time, and a child ends only when its
# client has been idle for 2 s: 300 clients take it 20 s.
# bats test_tags=part:loop,ladder
@test "300 keep-alive clients at once make 600 requests on their 300 connections, all answered within 5 s" {
    start_server listening 0
    local bound=$((WAIT_SECONDS > 5 ? WAIT_SECONDS : 5)) started took
    started=$(date +%s%N)
    fetch_parallel 600 300 "$bound" >"$BATS_TEST_TMPDIR/answers"
    took=$(since "$started")
    wait_for_count '^127\.0\.0\.1:[0-9]+ GET / 200 ' 600 1 >/dev/null || true
    local answers=$BATS_TEST_TMPDIR/answers codes opened reused connections accepted
    codes=$(grep -c '^200 ' "$answers" || true)
    opened=$(grep -c '^200 1 ' "$answers" || true)
    reused=$(grep -c '^200 0 ' "$answers" || true)
    connections=$(awk '$1 == 200 { print $3 }' "$answers" | sort | uniq -c | wc -l)
    accepted=$(grep -c '^accepted ' "$LOG" || true)
    local said="after $took ms: $codes answers with 200 ($opened on a new connection, $reused on one kept), on $connections connections; $accepted 'accepted' lines"
    local try hint="book/09-epoll.md, section 'The loop'"
    try="for i in \$(seq 600); do echo 'url = \"http://127.0.0.1:8080/\"'; done | curl -s -Z --parallel-max 300 --parallel-immediate -K - -o /dev/null -w '%{http_code} %{local_port}\\n' | sort | uniq -c | sort -n | head"
    [ "$codes" -eq 600 ] ||
        fail_because "600 answers with 200 within $bound s: two for each of 300 clients at once" "$said" "$(by_hand "$try")" "$hint"
    # (curl takes any free connection for the next request: most get two.)
    [ "$opened" -eq 300 ] && [ "$reused" -eq 300 ] && [ "$connections" -eq 300 ] ||
        fail_because "300 connections, and 300 answers more on the connections kept open" \
            "$said" "$(by_hand "$try")" "$hint"
    [ "$accepted" -eq 300 ] ||
        fail_because "300 'accepted' lines, one per connection" "$said" "$(by_hand "$try")" "$hint"
}

# Reads a connection in the background until the server closes it, for
# 12 s at most: what comes goes to $BATS_TEST_TMPDIR/NAME, and the
# milliseconds since START to NAME.took. Closes FD here.
#   read_in_background NAME FD START
read_in_background() {
    local file=$BATS_TEST_TMPDIR/$1 fd=$2 started=$3
    {
        timeout 12 cat <&"$fd" >"$file" 2>/dev/null
        date +%s%N >"$file.ended"
        since "$started" >"$file.took"
    } 3>&- &
    CLIENTS+=("$!")
    exec {fd}>&-
}

# A background client that says nothing (read_in_background NAME).
#   silent_client NAME
silent_client() {
    local fd started
    started=$(date +%s%N)
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    read_in_background "$1" "$fd" "$started"
}

# Polls for a background client's "took" file, for SECONDS at most.
#   client_took NAME SECONDS
client_took() {
    local deadline=$((SECONDS + $2 + 1)) file=$BATS_TEST_TMPDIR/$1.took
    while [ ! -s "$file" ] && ((SECONDS < deadline)); do sleep 0.05; done
    cat "$file" 2>/dev/null || echo none
}

# bats test_tags=part:loop
@test "each connection has its own deadline: two silent clients 1.5 s apart each get a 408 5 s after their own start" {
    start_server listening 0
    silent_client first
    sleep 1.5 # the scenario, not a wait for the server: the second comes later
    silent_client second
    local first second
    first=$(client_took first 10)
    second=$(client_took second 10)
    local first_status second_status apart
    first_status=$(head -n 1 "$BATS_TEST_TMPDIR/first" | tr -d '\r')
    second_status=$(head -n 1 "$BATS_TEST_TMPDIR/second" | tr -d '\r')
    # How long after the first client's close the second's came.
    apart=$((($(cat "$BATS_TEST_TMPDIR/second.ended" 2>/dev/null || echo 0) - \
        $(cat "$BATS_TEST_TMPDIR/first.ended" 2>/dev/null || echo 0)) / 1000000))
    local said="the first got '$first_status' after $first ms, the second '$second_status' after $second ms, $apart ms after the first"
    local try hint="book/09-epoll.md, section 'Deadlines in queues'"
    try="(nc 127.0.0.1 8080 & sleep 1.5; nc 127.0.0.1 8080; wait) | grep --line-buffered HTTP | while read -r l; do echo \"\$(date +%T.%N) \$l\"; done"
    [[ $first_status == 'HTTP/1.1 408 '* && $second_status == 'HTTP/1.1 408 '* ]] ||
        fail_because "a 408 for each of the two silent clients" "$said" "$(by_hand "$try")" "$hint"
    # Never before its 5 s. Late, on a busy machine, by as much as the
    # machine makes it; but each by its own deadline, 1.5 s apart, where
    # one deadline for both would close them together.
    [ "$first" != none ] && [ "$second" != none ] && ((first >= 4500 && first <= 9500 && second >= 4500 && second <= 9500)) ||
        fail_because "each 408, and the close, 4.5 s or more after its own client connected (the timeout is 5 s), and no later than 9.5 s" \
            "$said" "$(by_hand "$try")" "$hint"
    ((apart >= 750)) ||
        fail_because "the second 408 about 1.5 s after the first, as the second client came 1.5 s later" \
            "$said" "$(by_hand "$try")" "$hint"
}

# bats test_tags=part:loop
@test "an idle keep-alive connection is closed after 2 s, and another client is served meanwhile" {
    start_server listening 0
    local fd started
    started=$(date +%s%N)
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
    read_in_background idle "$fd" "$started"
    wait_for_log '^127\.0\.0\.1:[0-9]+ GET / 200 ' >/dev/null || true
    local code other_took idle_open=yes
    local other_started
    other_started=$(date +%s%N)
    code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    other_took=$(since "$other_started")
    [ ! -s "$BATS_TEST_TMPDIR/idle.took" ] || idle_open=no
    local took statuses
    took=$(client_took idle 6)
    statuses=$(tr -d '\r' <"$BATS_TEST_TMPDIR/idle" | grep -c '^HTTP/1.1 ' || true)
    local when=after
    [ "$idle_open" = no ] || when=while
    local said="the idle connection got $statuses answers and was closed after $took ms; the other client got '$code' after $other_took ms, $when the first was open"
    local try hint="book/09-epoll.md, section 'Deadlines in queues'"
    try=$(by_hand "(printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 5) | nc 127.0.0.1 8080 & curl -s http://127.0.0.1:8080/; time wait %2")
    [ "$code" = 200 ] && [ "$idle_open" = yes ] ||
        fail_because "200 for another client within 1 s, while the first connection idles" "$said" "$try" "$hint"
    # Late by what a busy machine adds, but before the request's 5 s.
    [ "$statuses" -eq 1 ] && [ "$took" != none ] && ((took >= 1500 && took <= 4500)) ||
        fail_because "one answer on the idle connection, then its close 1.5 to 4.5 s later (the keep-alive timeout is 2 s)" \
            "$said" "$try" "$hint"
    grep -q '^closed: idle for 2 seconds' "$LOG" ||
        fail_because "a line 'closed: idle for 2 seconds'" "$said" "$try" "$hint"
}

# A loop that is told of an event it does not handle (EPOLLOUT asked for
# with nothing to write, a closed connection left in the set) is woken at
# once, again and again: it spins, and uses all of a core.
# bats test_tags=part:loop
@test "with one idle keep-alive connection, the server sleeps in epoll_wait: it does not spin" {
    start_server listening 0
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    keep_open "$fd"
    printf 'GET / HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
    # The answer's first line, not the log: a server that spins may never
    # find the quiet moment in which it writes its log out.
    local status_line=''
    IFS= read -r -t "$WAIT_SECONDS" -u "$fd" status_line || true
    local before runnable used
    before=$(cpu_ticks)
    runnable=$(runnable_samples 20)
    used=$(($(cpu_ticks) - before))
    local try hint="book/09-epoll.md, section 'The loop': epoll_wait(2) returns at once, again and again, while it has an event to report that nobody handles (from part 2: EPOLLOUT asked for with nothing to write, section 'Writing what fits')"
    try="$SERVER_NAME 8080 & sleep 0.5; exec 3<>/dev/tcp/127.0.0.1/8080; printf 'GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; sleep 1.5; ps -o time,stat -p \$!; kill %1"
    [[ $status_line == "HTTP/1.1 200 "* ]] ||
        fail_because "an answer to GET /, on a connection that then stays open" \
            "its first line was '${status_line%$'\r'}'" "$try" "$hint"
    [ -z "$(server_ended)" ] ||
        fail_because "the server still running, with the connection idle" "$(server_ended)" "$try" "$hint"
    ((runnable <= 5)) ||
        fail_because "the server asleep in epoll_wait(2) in the second after an answer, with the connection idle: runnable (state R) in at most 5 of 20 looks" \
            "runnable in $runnable of 20 looks, one every 50 ms: it spins; $used ticks of CPU time meanwhile ($(getconf CLK_TCK) a second)" "$try" "$hint"
}

# Starts tests/stalled-client in the background: it sends COUNT requests
# and reads nothing until it gets SIGCONT. Sets STALLED (its pid) once it
# has stopped; what it reads goes to $BATS_TEST_TMPDIR/stalled.
#   start_stalled_client COUNT
start_stalled_client() {
    "$BATS_TEST_DIRNAME/stalled-client" "$PORT" "$1" >"$BATS_TEST_TMPDIR/stalled" 2>&1 3>&- &
    STALLED=$!
    CLIENTS+=("$STALLED")
    wait_until_stopped "$STALLED"
}

STALLED_TRY="tests/stalled-client 8080 90 & sleep 1; curl -m 2.5 http://127.0.0.1:8080/; kill -CONT \$!; wait"

# bats test_tags=part:full-socket,ladder
@test "a client that sends 90 requests and reads nothing delays nobody, and gets all 90 answers when it reads" {
    start_traced_server write,sendto,epoll_ctl listening 0
    start_stalled_client 90 ||
        fail_because "tests/stalled-client to send its requests and stop" "it did not: $(cat "$BATS_TEST_TMPDIR/stalled")" \
            "$(by_hand "$STALLED_TRY")"
    # The server writes answers until the client's socket is full: write(2)
    # says EAGAIN, and it asks epoll to say when there is room (EPOLLOUT).
    local deadline=$((SECONDS + WAIT_SECONDS + 1))
    while ! grep -q 'EAGAIN' "$TRACE" && ((SECONDS < deadline)); do sleep 0.05; done
    local started code took
    started=$(date +%s%N)
    code=$(curl -s -m 2.5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    took=$(since "$started")
    local eagain epollout
    eagain=$(grep -Ec '(write|sendto)\(.*EAGAIN' "$TRACE" || true)
    epollout=$(grep -c 'EPOLL_CTL_MOD.*EPOLLOUT' "$TRACE" || true)
    kill -CONT "$STALLED"
    local status=0
    wait "$STALLED" || status=$?
    local answers complete last
    answers=$(grep -ac '^HTTP/1.1 ' "$BATS_TEST_TMPDIR/stalled" || true)
    complete=$(grep -ac '^405 Method Not Allowed: method not allowed$' "$BATS_TEST_TMPDIR/stalled" || true)
    last=$(tr -d '\r' <"$BATS_TEST_TMPDIR/stalled" | grep -ai '^connection:' | tail -n 1)
    local closed='and the close'
    [ "$status" -eq 0 ] || closed='and no close within 10 s'
    local said="the other client got '$code' after $took ms; strace saw $eagain write(2)s fail with EAGAIN, $epollout epoll_ctl(2)s for EPOLLOUT; the stalled client then read $answers answers ($complete bodies whole), the last with '${last:-no Connection field}', $closed"
    local hint="book/09-epoll.md, section 'Writing what fits'"
    # A server that waits for the stalled client waits 5 s or for ever:
    # 2.5 s leaves room for a busy machine.
    [ "$code" = 200 ] && ((took <= 2500)) ||
        fail_because "200 for another client within 2.5 s, while one client reads none of its answers" \
            "$said" "$(by_hand "$STALLED_TRY")" "$hint"
    [ "$eagain" -gt 0 ] && [ "$epollout" -gt 0 ] ||
        fail_because "write(2) failing with EAGAIN once the client's socket is full, then epoll_ctl(2) asking for EPOLLOUT" \
            "$said" "strace -f -e trace=write,epoll_ctl $SERVER_NAME 8080 & sleep 0.5; tests/stalled-client 8080 90 & sleep 1; kill -CONT \$!; wait \$!; kill %1" "$hint"
    [ "$answers" -eq 90 ] && [ "$complete" -eq 90 ] ||
        fail_because "all 90 answers, whole (each a 405 with its body), once the client reads" \
            "$said" "$(by_hand "tests/stalled-client 8080 90 & sleep 1; kill -CONT \$!; wait \$! | grep -c '^405 Method'")" "$hint"
    [ "$status" -eq 0 ] && [ "$last" = 'Connection: close' ] ||
        fail_because "the close after the 90th answer, which says Connection: close" "$said" \
            "$(by_hand "tests/stalled-client 8080 90 & sleep 1; kill -CONT \$!; wait \$! | tail -n 8")" "$hint"
}

# bats test_tags=part:full-socket,ladder
@test "a client that never reads its answers is dropped after 5 s" {
    start_server listening 0
    local before
    before=$(count_descriptors)
    start_stalled_client 90 ||
        fail_because "tests/stalled-client to send its requests and stop" "it did not: $(cat "$BATS_TEST_TMPDIR/stalled")" \
            "$(by_hand "$STALLED_TRY")"
    local started line took after
    started=$(date +%s%N)
    line=$(wait_for_log '^dropped: the response was not read' $((5 + WAIT_SECONDS))) || true
    took=$(since "$started")
    after=$(count_descriptors)
    local said="log line '${line:-none}' after $took ms; the server holds $after descriptors, $before before the client came"
    local try hint="book/09-epoll.md, section 'Writing what fits'"
    try=$(by_hand "tests/stalled-client 8080 90 & sleep 7; ls /proc/\$(pgrep -n ${SERVER_NAME##*/})/fd | wc -l; kill -CONT %2")
    [ -n "$line" ] ||
        fail_because "a line 'dropped: the response was not read for 5 seconds'" "$said" "$try" "$hint"
    # Never early; late by what a busy machine adds, but well before 10 s.
    ((took >= 4000 && took <= 9000)) ||
        fail_because "the drop 4 to 9 s after the client stopped reading (the timeout is 5 s)" "$said" "$try" "$hint"
    [ "$after" -eq "$before" ] ||
        fail_because "the dropped connection closed: $before descriptors again" "$said" "$try" "$hint"
}
