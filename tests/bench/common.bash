# shellcheck shell=bash disable=SC2154 # top and work: set by the script that sources this file
# What the benchmark's scripts share (tests/bench/run, syscalls,
# connections): the servers, started on ports of the kernel's choice and
# stopped on exit, nginx configured like them, and the results' headers.
#
# The servers, by name: stepNN (./stepNN, built by make), floor
# (build/floor, tests/bench/floor.c) and nginx (one worker).

# The servers measured, in the order of the book: every step that answers
# with the same page (steps/list: responds, and no files), then the floor
# and nginx.
# shellcheck disable=SC2034 # used by the scripts that source this file
read -ra SERVERS <<<"$("$top/tests/steps" responds no-files | sed 's/[0-9][0-9]/step&/g') floor nginx"

# The scripts set top (the repository) and work (build/bench) first.
PATH=$PATH:/usr/sbin # nginx, for a user without sbin in PATH

# Says what is missing, and how to get it.
require() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 ||
            { echo "bench needs $tool: sudo apt install wrk nginx-light strace" >&2; exit 2; }
    done
}

pids=()
stop_all() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
    pids=()
}
trap stop_all EXIT

# Sets PORT to the port that process PID listens on, within 5 s.
#   find_port PID NAME
find_port() {
    local pid=$1 deadline=$((SECONDS + 5))
    PORT=''
    while [ -z "$PORT" ] && ((SECONDS < deadline)); do
        PORT=$(ss -ltnpH | sed -n "s/.*127\.0\.0\.1:\([0-9]*\) .*pid=$pid,.*/\1/p" | sed -n 1p)
        [ -n "$PORT" ] || sleep 0.02
    done
    [ -n "$PORT" ] || { echo "bench: $2 did not listen within 5 s: see $work/$2.err" >&2; exit 1; }
}

# nginx as close to our servers as a configuration gets: one worker
# process, the same page from memory (return 200, not a file that it
# would open, fstat and close for every request), text/html, and
# otherwise its defaults (keep-alive: 75 s and 1000 requests a
# connection; our steps: 2 s and 100). The log: our servers print
# several lines per request and flush them once per request (one write
# to stdout, which the benchmark sends to /dev/null). nginx formats its
# access log line for every request too, and writes them to /dev/null
# as a server tuned for speed does, buffered (64 KiB at a time). Turning
# the log off would spare nginx work our servers do; unbuffered, it would
# cost a system call per request that no server tuned for speed makes.
# Room for CONNECTIONS clients: nginx counts a connection from the time
# it accepts it until it has freed it, so it needs a margin (with
# exactly 10000 + 32, it closed 600 idle connections of 10000 to make
# room: "worker_connections are not enough, reusing connections").
# SERVER, if given, replaces what the server block serves (tests/bench/files
# serves a folder).
#   write_nginx_conf PORT CONNECTIONS [SERVER]
write_nginx_conf() {
    local room=$(($2 * 2)) hard
    local server=${3:-'location = / { return 200 "<h1>hello world</h1>\n"; }'}
    hard=$(ulimit -Hn)
    [ "$hard" = unlimited ] || [ "$room" -le "$hard" ] || room=$hard
    cat >"$work/nginx.conf" <<CONF
worker_processes 1;
worker_rlimit_nofile $room;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections $room; }
http {
    access_log /dev/null combined buffer=64k;
    client_body_temp_path $work/temp;
    proxy_temp_path $work/temp;
    fastcgi_temp_path $work/temp;
    uwsgi_temp_path $work/temp;
    scgi_temp_path $work/temp;
    default_type text/html;
    server {
        listen 127.0.0.1:$1;
        $server
    }
}
CONF
}

# A free port, for nginx, which cannot ask the kernel for one: the
# floor asks, and stops.
free_port() {
    start_server floor
    stop_server
}

# Starts a server on a port of the kernel's choice, its log to
# /dev/null; sets PORT, PID (for nginx, the master's) and SERVER_PID
# (the process that serves: for nginx, its worker).
#   start_server NAME [CONNECTIONS]   (CONNECTIONS: what nginx must hold)
start_server() {
    local name=$1
    mkdir -p "$work/temp"
    case $name in
    step[0-9][0-9])
        [ -x "$top/$name" ] || { echo "bench: no ./$name: make $name" >&2; exit 1; }
        "$top/$name" 0 >/dev/null 2>"$work/$name.err" &
        PID=$!
        ;;
    floor | floor-close)
        local mode=keep-alive
        [ "$name" = floor ] || mode=close
        "$top/build/floor" 0 "$mode" >/dev/null 2>"$work/$name.err" &
        PID=$!
        ;;
    nginx)
        free_port
        write_nginx_conf "$PORT" "${2:-1024}"
        nginx -c "$work/nginx.conf" -p "$work" -e "$work/nginx.err" >/dev/null 2>&1 &
        PID=$!
        ;;
    *) echo "bench: no server called $name" >&2; exit 2 ;;
    esac
    pids+=("$PID")
    find_port "$PID" "$name"
    SERVER_PID=$PID
    if [ "$name" = nginx ]; then
        local deadline=$((SECONDS + 5))
        SERVER_PID=$(pgrep -P "$PID" | sed -n 1p)
        while [ -z "$SERVER_PID" ] && ((SECONDS < deadline)); do
            sleep 0.02
            SERVER_PID=$(pgrep -P "$PID" | sed -n 1p)
        done
        [ -n "$SERVER_PID" ] || { echo "bench: nginx started no worker" >&2; exit 1; }
    fi
}

# Stops the server started last.
stop_server() {
    kill "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
    forget "$PID"
}

# Takes a process that has ended off the list of those to stop on exit.
forget() {
    local left=() pid
    for pid in "${pids[@]}"; do [ "$pid" = "$1" ] || left+=("$pid"); done
    pids=("${left[@]}")
}

# The header of a results file: what was measured where, with what.
#   write_header COMMAND
write_header() {
    echo "# date: $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "# machine: $(nproc) processors, Linux $(uname -r), $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | sed -n 1p)"
    echo "# nginx: $(nginx -v 2>&1 | sed 's/.*: //')"
    echo "# wrk: $(wrk --version 2>&1 | sed -n '1s/ \[.*//p')"
    echo "# load average at the start (1, 5, 15 minutes): $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "# command: $1"
}
