#!/usr/bin/env bats
# Step 08: one process per connection. The server forks a child for each
# connection and goes back to accept at once, so that a client that says
# nothing holds up nobody else; it reaps every child that exits, stops
# accepting at its limit of children, and its log stays whole.

load helpers

# Makes COUNT requests with one curl, each on a new connection (the
# requests say Connection: close). Prints each status code on a line.
#   fetch_many COUNT
fetch_many() {
    local i
    for ((i = 0; i < $1; i++)); do
        printf 'url = "http://127.0.0.1:%s/"\noutput = "/dev/null"\n' "$PORT"
    done >"$BATS_TEST_TMPDIR/urls"
    curl -s -m $((WAIT_SECONDS * 4)) -H 'Connection: close' -w '%{http_code}\n' \
        -K "$BATS_TEST_TMPDIR/urls" || true
}

# The children of the server that are zombies: exited, not yet reaped.
zombies() {
    local children child
    read -ra children <"/proc/$SERVER_PID/task/$SERVER_PID/children" || true
    for child in "${children[@]}"; do
        if [ "$(awk '{ print $3 }' "/proc/$child/stat" 2>/dev/null)" = Z ]; then
            printf '%s ' "$child"
        fi
    done
}

# bats test_tags=ladder
@test "a client that says nothing does not delay a second client" {
    start_server listening 0
    open_idle_connection
    wait_for_log '^accepted ' >/dev/null || true
    local started code took
    started=$(date +%s%N)
    code=$(curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    took=$((($(date +%s%N) - started) / 1000000))
    [ "$code" = 200 ] ||
        fail_because "the second client gets 200 within 1 s, while the first one idles" \
            "curl got '$code' after $took ms" \
            "$(by_hand "exec 3<>/dev/tcp/127.0.0.1/8080; curl -m 1 http://127.0.0.1:8080/")" \
            "book/08-fork.md, section 'Build and run'"
}

# bats test_tags=ladder
@test "200 connections are each served by a child, and leave no zombie" {
    skip_from_step 09 "step 09 has no children: one process serves every connection"
    start_server listening 0
    local codes served left deadline=$((SECONDS + WAIT_SECONDS))
    codes=$(fetch_many 200 | grep -c '^200$' || true)
    wait_for_count '^child [0-9]+ (exited|killed)' 200 >/dev/null || true
    left=$(zombies)
    while [ -n "$left" ] && ((SECONDS < deadline)); do
        sleep 0.05
        left=$(zombies)
    done
    served=$(grep -Ec '^child [0-9]+ serves ' "$LOG" || true)
    local said="$codes answers, $served 'child N serves' lines, zombies: '${left:-none}'"
    local try hint="book/08-fork.md, section 'Reaping the children'"
    try=$(by_hand "for i in \$(seq 200); do curl -s -o /dev/null http://127.0.0.1:8080/; done; ps --ppid \$! -o pid,stat")
    [ "$codes" -eq 200 ] ||
        fail_because "200 answers with status 200, one per connection" "$said" "$try" "$hint"
    [ "$served" -eq 200 ] ||
        fail_because "200 'child N serves' lines: each connection served by a child" "$said" "$try" "$hint"
    [ -z "$left" ] ||
        fail_because "no child of the server left in state Z, once all 200 have exited" "$said" "$try" "$hint"
}

# bats test_tags=ladder
@test "at its limit of children, the server accepts again only when one exits" {
    skip_from_step 09 "step 09 has no children: one process serves every connection"
    start_server listening 0
    local limit_line='' limit_pattern='^[0-9]+ children: waiting for one to exit'
    # Forty idle clients, more than any limit the chapter suggests, opened
    # at once, without waiting for each to be accepted: on a busy machine,
    # waiting took longer than the children's 5 s timeout. Then the server
    # must say it is at its limit.
    open_idle_connections 40
    limit_line=$(wait_for_log "$limit_pattern" | sed -n 1p) || true
    [ -z "$limit_line" ] || limit_line=$(grep -Enm 1 "$limit_pattern" "$LOG")
    if [ -z "$limit_line" ]; then
        fail_because "after some idle connections, a line like '32 children: waiting for one to exit'" \
            "$(grep -c '^accepted ' "$LOG") connections accepted, and no such line" \
            "$(by_hand "for i in \$(seq 40); do exec {fd}<>/dev/tcp/127.0.0.1/8080; done")" \
            "book/08-fork.md, section 'A limit on children'"
        return 1
    fi
    local limit=${limit_line#*:}
    limit=${limit%% *}
    # The clients opened past the limit wait in the listen queue: they
    # leave now, and each child the server forks for them later exits
    # at once.
    local extra
    for extra in "${IDLE[@]:limit}"; do exec {extra}>&-; done
    IDLE=("${IDLE[@]:0:limit}")
    # One more client, with a request: it waits in the listen queue...
    local fd answer
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&"$fd"
    # ...until an idle client leaves and its child exits.
    local first=${IDLE[0]}
    exec {first}>&-
    answer=$(timeout "$WAIT_SECONDS" head -n 1 <&"$fd" | tr -d '\r' || true)
    exec {fd}>&-
    local waited exited accepted
    waited=${limit_line%%:*}
    exited=$(grep -Enm 1 '^child [0-9]+ (exited|killed)' "$LOG" | cut -d: -f1)
    accepted=$(grep -En '^accepted ' "$LOG" | sed -n "$((limit + 1))p" | cut -d: -f1)
    local said="answer '$answer'; log lines: limit $waited, first exit ${exited:-none}, accepted #$((limit + 1)) ${accepted:-none}"
    local try hint="book/08-fork.md, section 'A limit on children'"
    try=$(by_hand "for i in \$(seq $limit); do exec {fd}<>/dev/tcp/127.0.0.1/8080; done; curl -m 2 http://127.0.0.1:8080/")
    [ "$answer" = 'HTTP/1.1 200 OK' ] ||
        fail_because "'HTTP/1.1 200 OK' for the waiting client, once an idle client left" "$said" "$try" "$hint"
    [ -n "$exited" ] ||
        fail_because "a line 'child N exited' once the first idle client left" "$said" "$try" "$hint"
    [ -n "$accepted" ] ||
        fail_because "an 'accepted' line for connection #$((limit + 1)), the one that waited" "$said" "$try" "$hint"
    [ "$waited" -lt "$exited" ] ||
        fail_because "'$limit children: waiting for one to exit' before the first 'child N exited'" "$said" "$try" "$hint"
    [ "$exited" -lt "$accepted" ] ||
        fail_because "with $limit children alive, connection #$((limit + 1)) accepted only after 'child N exited'" \
            "$said" "$try" "$hint"
}

# bats test_tags=ladder
@test "a child that is killed does not take the server with it" {
    skip_from_step 09 "step 09 has no children: one process serves every connection"
    start_server listening 0
    open_idle_connection
    local line child code
    line=$(wait_for_log '^child [0-9]+ serves ') || true
    child=$(awk '{ print $2 }' <<<"$line")
    [ -n "$child" ] && kill -KILL "$child"
    line=$(wait_for_log "^child $child killed by signal 9") || true
    code=$(curl -s -m 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/" || true)
    local said="child '${child:-none}', log line '${line:-none}', then curl got '$code'"
    local try hint="book/08-fork.md, section 'Reaping the children'"
    try=$(by_hand "exec 3<>/dev/tcp/127.0.0.1/8080; sleep 0.2; pkill -KILL -P \$!; curl http://127.0.0.1:8080/")
    [ -n "$line" ] ||
        fail_because "'child N killed by signal 9' in the log" "$said" "$try" "$hint"
    [ "$code" = 200 ] ||
        fail_because "200 for the next client, after a child was killed" "$said" "$try" "$hint"
}

@test "each log line is printed once, however many children print" {
    start_server listening 0
    local codes accepted distinct started
    codes=$(fetch_many 50 | grep -c '^200$' || true)
    wait_for_count '^127\.0\.0\.1:[0-9]+ GET / 200 ' 50 >/dev/null || true
    accepted=$(grep -c '^accepted ' "$LOG" || true)
    distinct=$(grep '^accepted ' "$LOG" | sort -u | wc -l)
    started=$(grep -c '^listening on ' "$LOG" || true)
    local said="$codes answers, $accepted 'accepted' lines ($distinct different), $started 'listening on' lines"
    local try hint="book/08-fork.md, section 'What fork copies'"
    try="$(by_hand "for i in \$(seq 50); do curl -s -o /dev/null http://127.0.0.1:8080/; done") | sort | uniq -d"
    [ "$codes" -eq 50 ] ||
        fail_because "50 answers with status 200" "$said" "$try" "$hint"
    [ "$accepted" -eq 50 ] ||
        fail_because "50 'accepted' lines, one per connection: a line printed once, not again by a child" \
            "$said" "$try" "$hint"
    [ "$distinct" -eq 50 ] ||
        fail_because "50 different 'accepted' lines, none repeated" "$said" "$try" "$hint"
    [ "$started" -eq 1 ] ||
        fail_because "one 'listening on' line: a child does not print it again" "$said" "$try" "$hint"
}

@test "the server's descriptors stay the same after many connections" {
    start_server listening 0
    local before after
    before=$(count_descriptors)
    fetch_many 100 >/dev/null
    wait_for_count '^127\.0\.0\.1:[0-9]+ GET / [0-9]+ ' 100 >/dev/null || true
    [ "$((10#${STEP:-8}))" -ge 9 ] || wait_for_count '^child [0-9]+ (exited|killed)' 100 >/dev/null || true
    after=$(count_descriptors)
    [ "$before" -eq "$after" ] ||
        fail_because "the server holds as many descriptors after 100 connections as before ($before)" \
            "$after descriptors: $(find "/proc/$SERVER_PID/fd" -mindepth 1 -printf '%f ')" \
            "$(by_hand "ls -l /proc/\$!/fd; for i in \$(seq 100); do curl -s -o /dev/null http://127.0.0.1:8080/; done; ls -l /proc/\$!/fd")" \
            "book/08-fork.md, section 'What fork copies'"
}
