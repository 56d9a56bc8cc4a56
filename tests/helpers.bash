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
#
# Every failure explains itself, in the same four lines (fail_because):
# expected, but, try it (a command with a time limit), hint (the section of
# the book to read). A test that stops on a command of its own, a server
# that crashed (its signal named) or hangs: teardown explains those too.
# tests/broken.bats proves it with servers broken on purpose.

: "${SERVER:?SERVER must name the server binary; run the tests with tests/check}"
WAIT_SECONDS=${WAIT_SECONDS:-5}
# Every test is bounded as a whole: however its waits add up, bats stops it
# after this many seconds (24 times WAIT_SECONDS: 2 minutes by default).
export BATS_TEST_TIMEOUT=${BATS_TEST_TIMEOUT:-$((WAIT_SECONDS * 24))}
# A server that hangs fails test after test, each only once it has waited
# out its bound. After HANGS_MAX tests in a row that failed so, with the
# server still running, the rest are skipped, and tests/check says why.
# KEEP_GOING=1 runs them all anyway.
HANGS_MAX=2
# (Only under tests/check, which sets CHECK_HANGS: other suites run the
# steps' tests to see them fail, and need every failure.)
HANGS=${CHECK_HANGS:-}
# How a reader runs the binary by hand, for the "reproduce" lines.
SERVER_NAME=${SERVER_NAME:-$(basename "$SERVER")}
case $SERVER_NAME in */*) ;; *) SERVER_NAME=./$SERVER_NAME ;; esac

SERVER_PID=
PORT=
LOG=

# A write to a connection that the server has closed raises SIGPIPE, which
# would end the test without a word: ignored, it makes the write fail with
# EPIPE instead, and the test says what happened. (The server itself starts
# with SIGPIPE at its default action: see exec_like_a_terminal.)
trap '' PIPE

# Explains a failure the way a reader needs it, then fails the test. Every
# failure goes through here, and teardown explains the ones that did not
# (a command that failed on its own, a crash, a hang).
#   fail_because WHAT-WAS-EXPECTED WHAT-HAPPENED HOW-TO-REPRODUCE [HINT]
# The lines that matter come first: expected, but (led by how the server
# ended, if it did), try it, hint; then what the server printed.
fail_because() {
    local try=$3 ended
    case $try in *"$SERVER_NAME"* | make\ * | tests/*) ;; *) try=$(by_hand "$try") ;; esac
    server_ended >/dev/null # here, in the shell that can wait(2) for the server
    ended=$(server_ended)
    {
        echo "expected:  $1"
        if [ -n "$ended" ]; then
            echo "but:       $ended"
            head -c 600 <<<"$2" | sed 's/^/           /'
        else
            head -c 600 <<<"$2" | sed '1s/^/but:       /; 2,$s/^/           /'
        fi
        echo "try it:    $(time_limited "$try")"
        echo "hint:      $(with_built_page "${4:-$(test_hint)}")"
        if [ -z "${NO_SERVER_LOG:-}" ] && [ -n "$LOG" ] && [ -s "$LOG" ]; then
            echo "the server printed (last lines):"
            tail -n 30 "$LOG" | sed 's/^/    | /'
        fi
        [ -z "$LOG" ] || server_note
    } >&2
    : >"$BATS_TEST_TMPDIR/explained"
    return 1
}

# What the server's state says beyond the test's own verdict: a server
# blocked in accept(2) while it holds connections it does not serve; or
# one whose lines never reached the test. A server from step 04 on prints
# a line for every connection it accepts: one that printed nothing at all,
# or nothing after "listening on" in a test that connects (those of step
# 04 on), may have done everything right, with its lines still in stdio's
# buffer, where the test cannot see them and blames whatever it looked for.
server_note() {
    [ -n "$SERVER_PID" ] && [ -z "$(server_ended)" ] || return 0
    local held file
    held=$(held_connections)
    if grep -q accept "/proc/$SERVER_PID/wchan" 2>/dev/null && ((held > 0)); then
        echo "note:      the server is blocked in accept(2), with $held connections open that it does not serve meanwhile"
        if "$BATS_TEST_DIRNAME/steps" --can "${STEP:-01}" loop 2>/dev/null; then
            echo "           is the listener non-blocking? (book/09-epoll.md, section 'Non-blocking sockets')"
        fi
        return 0
    fi
    file=$(basename "${BATS_TEST_FILENAME:-}")
    if [ ! -s "$LOG" ] || { [[ $file =~ ^[0-9]{2}- ]] && ((10#${file:0:2} >= 4)) &&
        [[ $(tail -n 1 "$LOG") == "listening on "* ]]; }; then
        echo "note:      nothing was written$([ ! -s "$LOG" ] || echo " after 'listening on'"), yet the server runs: its lines may still be in stdio's buffer."
        echo "           Is the log flushed? Output to a file or a pipe is fully buffered"
        echo "           (book/01-socket.md, section 'The command line', flush_log)."
    fi
}

# The connections the server holds: its sockets, but for the listener.
held_connections() {
    echo $(($(find "/proc/$SERVER_PID/fd" -mindepth 1 -lname 'socket:*' 2>/dev/null | wc -l) - 1))
}

# The server's last line, for a verdict; or that it printed none.
last_log_line() {
    if [ -s "$LOG" ]; then
        tail -n 1 "$LOG"
    else
        echo "(it printed nothing)"
    fi
}

# A hint names a section of a chapter's source, book/NN-name.md, which has
# no code in it (book/include.lua puts the code in when `make book` builds
# it): adds the page and anchor of the built chapter, where the code is.
#   with_built_page "book/05-parse.md, section 'Part 1: the head'"
#   -> ... (built: build/book/html/05-parse.html#part-1-the-head, by make book)
with_built_page() {
    local hint=$1 q="'"
    local pattern="book/([0-9a-z-]+)\.md, section $q([^$q]+)$q"
    if [[ $hint =~ $pattern ]]; then
        local page=${BASH_REMATCH[1]} anchor
        # pandoc's identifier for a heading: lower case, no punctuation but
        # - _ ., a - for each space, from the first letter on.
        anchor=$(tr '[:upper:]' '[:lower:]' <<<"${BASH_REMATCH[2]}" |
            sed -e 's/[^a-z0-9 _.-]//g' -e 's/ /-/g' -e 's/^[^a-z]*//')
        hint+=" (built: build/book/html/$page.html#$anchor, by make book)"
    fi
    echo "$hint"
}

# Gives every client and server in a "try it" command a time limit, so that
# a reader who pastes it never waits on a server that hangs.
time_limited() {
    local server
    server=$(sed 's/[][\\.*^$/]/\\&/g' <<<"$SERVER_NAME")
    sed -E -e 's/(^|[;&|(] *)('"$server"')( |$)/\1timeout 10 \2\3/g' \
        -e 's/(^|[^-a-z])strace /\1timeout 10 strace /g' \
        -e 's/(^|[^-a-z])curl (-m [0-9]+ )?/\1curl -m 5 /g' \
        -e 's/(^|[^-a-z])nc -l /\1timeout 10 nc -l /g' \
        -e 's/(^|[^-a-z])nc (-w [0-9]+ )?([^l -]|-[^lw])/\1nc -w 5 \3/g' \
        -e 's/timeout 10 timeout [0-9]+ /timeout 10 /g' <<<"$1"
}

# The section a failing test sends the reader to when it did not name one:
# the first hint in its own source, else its part's section
# (tests/workshop/parts), else its chapter's "The change".
test_hint() {
    local file=$BATS_TEST_FILENAME hint
    hint=$(awk -v name="@test \"$BATS_TEST_DESCRIPTION\" {" -v q="'" '
        BEGIN { hint = "book/[0-9a-z-]+\\.md, section " q "[^" q "$]+" q }
        index($0, name) == 1 { inside = 1 }
        inside && match($0, hint) { print substr($0, RSTART, RLENGTH); exit }
        inside && /^}/ { exit }' "$file" 2>/dev/null)
    if [ -z "$hint" ]; then
        local part chapter
        part=$(test_part)
        chapter=$(basename "$file" .bats)
        if [ -n "$part" ]; then
            hint="book/$chapter.md, section '$(part_field "${chapter:0:2}" "$part" 5)'"
        else
            hint="book/$chapter.md, section 'The change'"
        fi
    fi
    echo "$hint"
}

# The part (tests/workshop/parts) of the running test, from its tags.
test_part() {
    awk -v name="@test \"$BATS_TEST_DESCRIPTION\" {" '
        /^# bats test_tags=/ { tags = $0 }
        index($0, name) == 1 { if (match(tags, /part:[a-z-]+/)) print substr(tags, RSTART + 5, RLENGTH - 5); exit }
        /^@test / { tags = "" }' "$BATS_TEST_FILENAME" 2>/dev/null
}

# A field of a part's line in tests/workshop/parts.
#   part_field STEP PART-NAME-OR-NUMBER FIELD-NUMBER
part_field() {
    awk -F'\t' -v step="$1" -v part="$2" -v field="$3" \
        '$1 == step && ($2 == part || $3 == part) { print $field; exit }' \
        "$BATS_TEST_DIRNAME/workshop/parts"
}

# The command that runs these tests again, as the reader ran them: with
# the part, when tests/check was given one (it sets CHECK_PART).
check_command() {
    echo "tests/check ${STEP:-NN} $SERVER_NAME${CHECK_PART:+ --part $CHECK_PART}"
}

# A command line that shows a failure by hand: it starts the server on
# port 8080, runs CLIENT, and stops the server again.
by_hand() {
    printf '%s 8080 & sleep 0.5; %s; kill $!' "$SERVER_NAME" "$1"
}

# What the last client of the test did, and the command that does it by
# hand: the explanation of a failure that no check explained. (Files, not
# variables: the helpers often run in a $(...) subshell.)
#   note_exchange WHAT-HAPPENED [COMMAND]
note_exchange() {
    echo "$1" >"$BATS_TEST_TMPDIR/exchange"
    [ -z "${2:-}" ] || echo "$2" >"$BATS_TEST_TMPDIR/try"
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
# its default action (a shell ignores it in background jobs), and SIGPIPE
# too (the tests ignore it: see the top of this file).
exec_like_a_terminal() {
    local fd
    for fd in "/proc/$BASHPID/fd"/*; do
        fd=${fd##*/}
        if ((fd > 2)); then eval "exec $fd>&-" 2>/dev/null || true; fi
    done
    exec env --default-signal=INT,PIPE "$@"
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
    # LeakSanitizer (make test SANITIZE=1) cannot run under ptrace: a
    # child that exits (step 08) would report that, not a leak.
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
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
            "$(server_state)" "$SERVER_NAME $* | cat" "$(ready_hint "$stage")"
        return 1
    fi
    PORT=$(grep -E -o ':[0-9]+' <<<"$line" | tail -n 1 | tr -d :)
}

# The CPU time the server has used, in clock ticks (utime + stime,
# proc(5)).
cpu_ticks() {
    sed 's/^.*) //' "/proc/$SERVER_PID/stat" | awk '{ print $12 + $13 }'
}

# The server's resident memory, in KiB (VmRSS, proc(5)).
resident_kb() {
    awk '$1 == "VmRSS:" { print $2 }' "/proc/$SERVER_PID/status"
}

# How the server ended, if it did, in words: "the server was killed by
# SIGSEGV". Empty while it runs. Only the test's own shell can wait(2) for
# the server, so the first call there keeps the answer in a file for the
# calls from $(...) subshells.
server_ended() {
    local ended=$BATS_TEST_TMPDIR/server-ended status
    if [ -s "$ended" ]; then
        cat "$ended"
        return
    fi
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null && [ "$(process_state "$SERVER_PID")" != Z ]; then
        return 0
    fi
    [ "$BASHPID" = "$$" ] || { echo "the server has exited"; return; }
    # Under strace, the child is strace, which ends as the server did.
    status=0
    wait "${TRACER_PID:-$SERVER_PID}" 2>/dev/null || status=$?
    if ((status > 128 && status < 128 + 65)); then
        echo "the server was killed by SIG$(kill -l "$((status - 128))")$(signal_meaning "$((status - 128))")"
    elif ((status == 127)); then
        echo "the server has exited"
    else
        echo "the server exited with status $status"
    fi >"$ended"
    cat "$ended"
}

signal_meaning() {
    case $(kill -l "$1") in
    SEGV) echo ": it crashed, touching memory it does not own (run it under gdb, or make test SANITIZE=1)" ;;
    ABRT) echo ": it aborted (a failed assert, or a sanitizer's report)" ;;
    PIPE) echo ": it wrote to a connection the client had closed (SIGPIPE, signal(7))" ;;
    BUS | FPE | ILL) echo ": it crashed" ;;
    esac
}

# The state letter of a process in /proc/PID/stat: R running, S sleeping,
# Z exited but not yet waited for, t stopped by a tracer.
process_state() {
    sed -n 's/^[0-9]* (.*) \([A-Za-z]\) .*/\1/p' "/proc/$1/stat" 2>/dev/null
}

# What the server is doing now, or how it ended, in words.
server_state() {
    local ended
    ended=$(server_ended)
    if [ -n "$ended" ]; then
        echo "$ended"
    elif [ -z "$SERVER_PID" ]; then
        echo "no server was started"
    elif [ "$(process_state "$SERVER_PID")" = R ]; then
        echo "the server is running flat out on the CPU: a loop that does not end?"
    elif grep -q accept "/proc/$SERVER_PID/wchan" 2>/dev/null; then
        # Its sockets, but for the listener: connections it holds, and
        # does not read while it waits for another.
        local held
        held=$(held_connections)
        if ((held > 0)) && "$BATS_TEST_DIRNAME/steps" --can "${STEP:-01}" loop 2>/dev/null; then
            echo "the server is blocked in accept(2), waiting for the next client, with $held connections open that it does not serve meanwhile: is the listener non-blocking (SOCK_NONBLOCK), and accept4 called only when epoll says a client waits?; its last line is: $(last_log_line)"
        elif ((held > 0)); then
            echo "the server is waiting in accept(2) for the next client, with $held connections open that it does not serve meanwhile; its last line is: $(last_log_line)"
        else
            echo "the server is waiting in accept(2) for the next client; its last line is: $(last_log_line)"
        fi
    elif [ "$(find "/proc/$SERVER_PID/fd" -mindepth 1 -lname 'socket:*' 2>/dev/null | wc -l)" -gt 1 ]; then
        echo "the server is stuck with a connection open, waiting ($(cat "/proc/$SERVER_PID/wchan" 2>/dev/null)): for bytes that will not come?; its last line is: $(last_log_line)"
    else
        echo "the server is running, and its last line is: $(last_log_line)"
    fi
}

# Before each test: skip it if the server hung in the tests before it.
setup() {
    TEST_STARTED=$SECONDS
    if [ -z "${KEEP_GOING:-}" ] && [ -n "$HANGS" ] && [ -s "$HANGS" ] && [ "$(wc -l <"$HANGS")" -ge "$HANGS_MAX" ]; then
        skip "the server hung in $HANGS_MAX tests in a row: $(tail -n 1 "$HANGS")"
    fi
}

# After each test, in teardown: a test that failed after waiting its bound,
# with the server still running, counts as a hang; any other outcome ends
# the row.
count_hang() {
    [ -n "$HANGS" ] && [ -z "${BATS_TEST_SKIPPED:-}" ] || return 0
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && ((SECONDS - ${TEST_STARTED:-$SECONDS} >= WAIT_SECONDS)) &&
        [ -n "$SERVER_PID" ] && [ -z "$(server_ended)" ]; then
        echo "'$BATS_TEST_DESCRIPTION': $(server_state)" >>"$HANGS"
    else
        : >"$HANGS"
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

# What a sanitizer writes when it finds an error (make test SANITIZE=1).
SANITIZER_REPORT='runtime error|AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer'

# Opens a connection that sends nothing, and keeps it open: its descriptor
# is added to IDLE, and teardown closes it.
IDLE=()
open_idle_connection() {
    local fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    IDLE+=("$fd")
}

# Opens COUNT idle connections, one right after the other. Without bats'
# DEBUG trap, which bats runs before every command of a test: on a slow
# machine, a loop of hundreds of commands under it takes seconds, long
# enough for the server to time the first connections out (408 after 5 s)
# before the last are open.
#   open_idle_connections COUNT
open_idle_connections() {
    local saved i
    saved=$(trap -p DEBUG)
    trap - DEBUG
    for ((i = 0; i < $1; i++)); do
        open_idle_connection
    done
    eval "$saved"
}

# Keeps a connection the test opened itself, for teardown to close.
#   keep_open FD
keep_open() {
    IDLE+=("$1")
}

# (A test may have closed one already.)
close_idle_connections() {
    local fd
    for fd in "${IDLE[@]}"; do
        { exec {fd}>&-; } 2>/dev/null || true
    done
    IDLE=()
}

# After every test: explains a failure that no check explained (a command
# that failed, a crash, a hang), closes the idle connections the test
# opened, stops the server, and fails the test if a sanitizer reported
# anything, even after the test's last check. A test file with more to
# do after each test defines after_each_test.
teardown() {
    local status=0
    if [ -z "${BATS_TEST_COMPLETED:-}" ] && [ -z "${BATS_TEST_SKIPPED:-}" ] &&
        [ ! -e "$BATS_TEST_TMPDIR/explained" ]; then
        explain_unexplained_failure
    fi
    if declare -F after_each_test >/dev/null; then after_each_test || status=1; fi
    count_hang
    close_idle_connections
    server_ended >/dev/null # while the test's shell can still wait for it
    local pid=$SERVER_PID
    stop_server
    if [ -n "$LOG" ] && grep -Eq -- "$SANITIZER_REPORT" "$LOG"; then
        fail_because "no sanitizer report in the server's output" \
            "$(grep -E -m 1 -- "$SANITIZER_REPORT" "$LOG")" "make test SANITIZE=1" || status=1
    fi
    if declare -F after_stopping_server >/dev/null; then after_stopping_server "$pid" || status=1; fi
    return "$status"
}

# A test stopped on a command that failed outside fail_because: say what
# the test was doing, what became of the server, and how to see it by hand.
explain_unexplained_failure() {
    local exchange='' try
    [ ! -s "$BATS_TEST_TMPDIR/exchange" ] || exchange="; last, $(cat "$BATS_TEST_TMPDIR/exchange")"
    # tests/check splits BATS_FLAGS at spaces: the filter has none.
    try=$(cat "$BATS_TEST_TMPDIR/try" 2>/dev/null) ||
        try="BATS_FLAGS='--filter $(head -c 40 <<<"$BATS_TEST_DESCRIPTION" | tr -c '[:alnum:]\n' .)' $(check_command)"
    fail_because "what the test's name says: $BATS_TEST_DESCRIPTION" \
        "$(server_state)$exchange" "$try" 2>&1 || true
}

# Sends bytes (a printf format) over a new connection, in one write(2),
# and prints what comes back until the server closes, for WAIT_SECONDS at
# most. (The printf builtin would write line by line; cat writes at once.)
#   raw_request FORMAT [SECONDS]
raw_request() {
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$1" >"$BATS_TEST_TMPDIR/request"
    send_file "$BATS_TEST_TMPDIR/request" "${2:-$WAIT_SECONDS}"
    raw_command "$1" >"$BATS_TEST_TMPDIR/try"
}

# Sends a file over a new connection and prints what comes back until the
# server closes, for SECONDS at most; notes what happened (note_exchange).
#   send_file FILE SECONDS
send_file() {
    local fd started=$SECONDS answer=$BATS_TEST_TMPDIR/answer status=0 sent
    : >"$answer"
    if ! exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"; then
        note_exchange "a client could not connect to 127.0.0.1:$PORT"
        return 0
    fi
    { cat "$1" >&"$fd"; } 2>/dev/null || sent=" (the server closed the connection before it was all sent)"
    timeout "$2" cat <&"$fd" >"$answer" 2>/dev/null || status=$?
    exec {fd}>&-
    if ((status == 124)); then
        note_exchange "a client sent $(wc -c <"$1") bytes${sent:-} and got $(wc -c <"$answer") back; the server still held the connection open after $2 s"
    else
        note_exchange "a client sent $(wc -c <"$1") bytes${sent:-} and got $(wc -c <"$answer") back, then the server closed the connection (after $((SECONDS - started)) s)"
    fi
    cat "$answer"
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

# The tests are cumulative, but a later step may replace what an earlier
# one built: step 09 serves every connection in one process, so the tests
# of step 08's children do not apply to it. Skips the test when the step
# under test (STEP, from tests/check) is FROM or later.
#   skip_from_step FROM REASON
skip_from_step() {
    if [ -n "${STEP:-}" ] && ((10#$STEP >= 10#$1)); then
        skip "$2"
    fi
}

# A short random word, so that a hard-coded answer cannot pass.
random_word() {
    local letters
    letters=$(head -c 600 /dev/urandom | tr -dc '[:lower:]')
    printf '%s%04d' "${letters:0:6}" "$((RANDOM % 10000))"
}

# Counts the lines of the server's output that match an extended regex.
count_log() {
    local count
    count=$(grep -E -c -- "$1" "$LOG" 2>/dev/null)
    echo "${count:-0}"
}

# Polls until the server's output has at least N lines that match the
# extended regular expression, for at most WAIT_SECONDS (or SECONDS).
# Prints the Nth; fails if there are fewer.
#   wait_for_count PATTERN N [SECONDS]
wait_for_count() {
    local pattern=$1 count=$2 deadline=$((SECONDS + ${3:-$WAIT_SECONDS} + 1))
    while [ "$(count_log "$pattern")" -lt "$count" ] && ((SECONDS < deadline)); do
        [ -z "$SERVER_PID" ] || kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.02
    done
    grep -E -- "$pattern" "$LOG" | sed -n "${count}p" | grep .
}

# Fetches with curl, for WAIT_SECONDS at most: the head goes to
# $BATS_TEST_TMPDIR/head, the body to $BATS_TEST_TMPDIR/body; prints the
# status code (000: no response).
#   fetch [CURL-OPTIONS...] URL
fetch() {
    : >"$BATS_TEST_TMPDIR/head"
    : >"$BATS_TEST_TMPDIR/body" # curl writes neither when no response comes
    local code status=0
    code=$(curl -s -m "$WAIT_SECONDS" -D "$BATS_TEST_TMPDIR/head" -o "$BATS_TEST_TMPDIR/body" \
        -w '%{http_code}' -H 'Expect:' "$@") || status=$?
    note_exchange "curl $(curl_verdict "$status")" "curl -i -H 'Expect:' ${*//127.0.0.1:$PORT/127.0.0.1:8080}"
    echo "$code"
}

# What curl's exit status means, for a reader.
curl_verdict() {
    case $1 in
    0) echo "got a response" ;;
    7) echo "could not connect (exit status 7)" ;;
    28) echo "got no complete response within $WAIT_SECONDS s (exit status 28): the server kept the connection open" ;;
    52) echo "got an empty reply (exit status 52): the server closed the connection without a response" ;;
    56) echo "saw the connection reset (exit status 56)" ;;
    *) echo "failed with exit status $1" ;;
    esac
}

# What the last client saw, for a "but:" line: "curl got an empty reply".
curl_said() {
    cat "$BATS_TEST_TMPDIR/exchange" 2>/dev/null
}

# The value of a header field in the last head fetched.
field() {
    sed -n "s/^$1: \\(.*\\)\\r\$/\\1/Ip" "$BATS_TEST_TMPDIR/head" | head -n 1
}

# The malformed requests and what the server must make of them, one per
# line, separated by tabs: the status code (step 05 logs it, step 06
# answers with it); the part of stage 05 that rejects it
# (tests/workshop/parts); what is wrong with it, in a few words, for the
# failure to show; the request, as a printf format; and for the long ones,
# the length and the character of a filler that takes its place at %s.
#   malformed_requests [PART]   (only that part's, with PART)
malformed_requests() {
    awk -F'\t' -v part="${1:-}" 'part == "" || $2 == part' <<'REQUESTS'
400	request-line	no HTTP version, as in HTTP/0.9	GET /\r\n\r\n
400	request-line	a fourth word in the request line	GET / HTTP/1.1 extra\r\nHost: x\r\n\r\n
400	request-line	lines end in LF, not CR LF	GET / HTTP/1.1\nHost: x\n\n
400	request-line	a target that is no path	GET nowhere HTTP/1.1\r\nHost: x\r\n\r\n
505	request-line	HTTP/2.0 in a request line	GET / HTTP/2.0\r\nHost: x\r\n\r\n
414	request-line	too long a target	GET /%s HTTP/1.1\r\nHost: x\r\n\r\n	3000	a
400	fields	no Host	GET / HTTP/1.1\r\n\r\n
400	fields	two Hosts	GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n
400	fields	a space before the colon	GET / HTTP/1.1\r\nHost : x\r\n\r\n
400	fields	a folded line (obs-fold)	GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n
400	fields	a control character in a value	GET / HTTP/1.1\r\nHost: x\r\nX: a\001b\r\n\r\n
431	fields	too long a field line	GET / HTTP/1.1\r\nHost: x\r\nX-Long: %s\r\n\r\n	5000	b
400	body	a Content-Length that is no number	GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5x\r\n\r\n
400	body	two different Content-Lengths	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd
400	body	both Content-Length and Transfer-Encoding	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n
501	body	chunked, which the server does not read	POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n
413	body	too large a body	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n
400	fields	a space in Host	GET / HTTP/1.1\r\nHost: a b\r\n\r\n
400	fields	two ports in Host	GET / HTTP/1.1\r\nHost: a:80:80\r\n\r\n
400	fields	a port that is no number	GET / HTTP/1.1\r\nHost: example.com:80a\r\n\r\n
400	fields	a bad IPv6 address in Host	GET / HTTP/1.1\r\nHost: [::g]:80\r\n\r\n
400	fields	user information in Host	GET / HTTP/1.1\r\nHost: user@example.com\r\n\r\n
400	target	a URL without a host	GET http://:80/ HTTP/1.1\r\nHost: x\r\n\r\n
400	target	a URL that is not http	GET ftp://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n
400	target	user information in the URL	GET http://user@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n
400	target	* with another method than OPTIONS	GET * HTTP/1.1\r\nHost: x\r\n\r\n
400	fields	no Host in HTTP/1.2, read as HTTP/1.1	GET / HTTP/1.2\r\n\r\n
400	request-line	nine empty lines first, one too many	\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n
400	fields	a field line that starts with a space	GET / HTTP/1.1\r\n Host: x\r\n\r\n
400	fields	a lone CR in a value	GET / HTTP/1.1\r\nHost: x\r\nX: a\rb\r\n\r\n
400	body	a list in Content-Length	POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\nhello
400	body	Transfer-Encoding in HTTP/1.0	POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n
400	body	chunked is not the last coding	POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n
400	request-line	a version in lower case	GET / http/1.1\r\nHost: x\r\n\r\n
400	fields	a NUL byte in a value	GET / HTTP/1.1\r\nHost: x\r\nX: a\000b\r\n\r\n
REQUESTS
}

# Checks every malformed request of a part (all of them, without PART)
# with CHECK, and reports every one that fails, not the first only.
#   check_malformed_requests PART CHECK
# CHECK STATUS FORMAT [FILLER-LENGTH FILLER-CHARACTER] runs after
# the request before it; it fails through fail_because, and listed_request
# shows the request with what is wrong with it (LISTED_REASON).
check_malformed_requests() {
    local part=$1 check=$2 status _part format length character count=0 failed=0 total
    total=$(malformed_requests "$part" | grep -c .)
    while IFS=$'\t' read -r status _part LISTED_REASON format length character; do
        count=$((count + 1))
        if [ -n "$(server_ended)" ]; then
            fail_because "an answer to each of the $total requests" \
                "$((total - count + 1)) were never sent" "$(raw_command "$format")"
            failed=$((failed + total - count + 1))
            break
        fi
        NO_SERVER_LOG=1 "$check" "$status" "$format" ${length:+"$length" "$character"} ||
            failed=$((failed + 1))
    done < <(malformed_requests "$part")
    LISTED_REASON=
    # An empty list would check nothing, and pass.
    [ "$count" -gt 0 ] || fail_because "malformed requests of part '$part' to check" \
        "the list in tests/helpers.bash has none" "grep '$part' tests/helpers.bash" || return 1
    [ "$failed" -eq 0 ] ||
        fail_because "the right status for all $total malformed requests of part '${part:-all}'" \
            "$failed of them did not get it: each is explained above" \
            "$(check_command)"
}

# A request from that list, as a "for the request ..." phrase shows it,
# with what is wrong with it (check_malformed_requests sets LISTED_REASON).
#   listed_request FORMAT [FILLER-LENGTH FILLER-CHARACTER]
listed_request() {
    local reason=${LISTED_REASON:+" ($LISTED_REASON)"}
    if [ $# -eq 3 ]; then
        echo "'$1'$reason (%s: $2 times '$3')"
    else
        echo "'$1'$reason"
    fi
}

# Sends a request from that list; prints what comes back.
#   send_listed_request FORMAT [FILLER-LENGTH FILLER-CHARACTER] SECONDS
send_listed_request() {
    local format=$1 seconds=${*: -1} filler=''
    if [ $# -eq 4 ]; then filler=$(head -c "$2" /dev/zero | tr '\0' "$3"); fi
    # shellcheck disable=SC2059 # the format is the point
    printf -- "$format" "$filler" >"$BATS_TEST_TMPDIR/request"
    send_file "$BATS_TEST_TMPDIR/request" "$seconds"
    if [ $# -eq 4 ]; then
        raw_command "$format" "$2" "$3" >"$BATS_TEST_TMPDIR/try"
    else
        raw_command "$format" >"$BATS_TEST_TMPDIR/try"
    fi
}
