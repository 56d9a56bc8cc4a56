#!/usr/bin/env bats
# The benchmark's tools, without running the benchmark (make bench does,
# in minutes): the floor and many-clients build clean under gcc and clang
# with the steps' strict flags and do what they say; the results files in
# book/bench/ that the book reads parse; the chart is drawn from them.
#
# Run on its own: tests/bats tests/bench.bats   (no SERVER needed)

setup() {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
    pids=()
}

teardown() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
}

# Says what was expected, what happened, and how to see it; fails.
#   explain EXPECTED BUT TRY [HINT]
explain() {
    {
        echo "expected:  $1"
        head -c 1500 <<<"$2" | sed '1s/^/but:       /; 2,$s/^/           /'
        echo "try it:    $3"
        [ -z "${4:-}" ] || echo "hint:      $4"
    } >&2
    return 1
}

strict=(-std=c17 -Wall -Wextra -Wpedantic -Werror -O2)

# Builds tests/bench/NAME.c with compiler CC into $BATS_TEST_TMPDIR/NAME.
#   build CC NAME
build() {
    local output
    output=$("$1" "${strict[@]}" -o "$BATS_TEST_TMPDIR/$2" "tests/bench/$2.c" 2>&1) ||
        explain "tests/bench/$2.c builds clean with $1 ${strict[*]}" "$output" \
            "$1 ${strict[*]} -o /tmp/$2 tests/bench/$2.c"
}

@test "the floor and many-clients build clean under gcc and clang, strict flags" {
    local cc found=0
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        found=$((found + 1))
        build "$cc" floor
        build "$cc" many-clients
    done
    [ "$found" -gt 0 ] || skip "neither gcc nor clang is installed"
}

# Starts the floor built by build; sets PORT from the line it prints.
#   start_floor [keep-alive|close]
start_floor() {
    build cc floor
    local log=$BATS_TEST_TMPDIR/floor-${1:-keep-alive}.log tries=0
    "$BATS_TEST_TMPDIR/floor" 0 "${1:-keep-alive}" >"$log" 2>&1 &
    pids+=("$!")
    PORT=''
    while [ -z "$PORT" ] && [ "$tries" -lt 250 ]; do
        PORT=$(sed -n 's|^listening on http://127\.0\.0\.1:\([0-9]*\)/$|\1|p' "$log")
        [ -n "$PORT" ] || sleep 0.02
        tries=$((tries + 1))
    done
    [ -n "$PORT" ] || explain "the floor prints 'listening on http://127.0.0.1:PORT/' within 5 s" \
        "$(cat "$log")" "make build/floor && build/floor 0"
}

@test "the floor answers every request with the page, on one connection" {
    start_floor
    local output
    output=$(curl -sS --max-time 5 "http://127.0.0.1:$PORT/" "http://127.0.0.1:$PORT/other" \
        -w '%{http_code} %{num_connects}\n' 2>&1)
    [ "$output" = $'<h1>hello world</h1>\n200 1\n<h1>hello world</h1>\n200 0' ] ||
        explain "two answers 200 with the page, the second on the same connection" "$output" \
            "build/floor 0 & curl -v http://127.0.0.1:PORT/ http://127.0.0.1:PORT/"
}

@test "many-clients makes exactly CONNECTIONS x REQUESTS requests, and connects again after a close" {
    build cc many-clients
    local output
    start_floor
    output=$(timeout 10 "$BATS_TEST_TMPDIR/many-clients" "$PORT" 16 10 2>&1) ||
        explain "many-clients answers every request of 16 x 10" "$output" "build/many-clients PORT 16 10"
    [ "$output" = "16 connections, 10 requests each: 160 of 160 answered, 0 connections failed, 0 reconnections" ] ||
        explain "160 of 160 answered, on 16 connections" "$output" "build/many-clients PORT 16 10"
    start_floor close
    output=$(timeout 10 "$BATS_TEST_TMPDIR/many-clients" "$PORT" 4 5 2>&1) ||
        explain "many-clients answers every request of 4 x 5 from a server that closes" "$output" \
            "build/floor 0 close & build/many-clients PORT 4 5"
    [[ $output == *"20 of 20 answered, 0 connections failed, 16 reconnections" ]] ||
        explain "20 answered, and 16 reconnections (after each response but the last of each)" \
            "$output" "build/floor 0 close & build/many-clients PORT 4 5"
}

@test "many-clients --hold keeps its connections open until its input ends" {
    build cc many-clients
    start_floor
    coproc client { exec "$BATS_TEST_TMPDIR/many-clients" --hold "$PORT" 200 2; }
    pids+=("$client_PID")
    local summary holding open input
    IFS= read -r -t 10 summary <&"${client[0]}" || summary='(nothing within 10 s)'
    IFS= read -r -t 10 holding <&"${client[0]}" || holding='(nothing within 10 s)'
    open=$(ss -tnH state established "( sport = :$PORT )" | wc -l)
    input=${client[1]}
    exec {input}>&-
    [[ $summary == *"400 of 400 answered"* && $holding == "holding 200 connections open" ]] ||
        explain "400 of 400 answered, then 'holding 200 connections open'" "$summary"$'\n'"$holding" \
            "build/many-clients --hold PORT 200 2"
    [ "$open" -eq 200 ] ||
        explain "200 connections open at the floor while many-clients holds them" "$open" \
            "build/many-clients --hold PORT 200 2 & ss -tn state established"
}

@test "many-clients says when the limit of descriptors is too low" {
    build cc many-clients
    local output
    output=$(ulimit -n 100 && "$BATS_TEST_TMPDIR/many-clients" 1 1000 2>&1) && return 1
    [[ $output == *"1000 connections need 1016 descriptors, but the hard limit is 100"* ]] ||
        explain "a message that names the need and the limit" "$output" \
            "(ulimit -n 100; build/many-clients 1 1000)"
}

# Checks that every line of a results file that is not a comment has
# FIELDS tab-separated fields matching the patterns, the first line
# being the header.
#   check_table FILE HEADER PATTERN...
check_table() {
    local file=$1 header=$2 line number=0 rows=0 bad=''
    shift 2
    local pattern
    pattern=$(printf '%s\t' "$@")
    pattern="^${pattern%$'\t'}\$"
    [ -f "$file" ] || explain "$file, written by make bench" "no such file" "make bench"
    while IFS= read -r line; do
        number=$((number + 1))
        [[ $line == '#'* ]] && continue
        if [ "$rows" -eq 0 ] && [ "$line" = "$header" ]; then
            rows=1
            continue
        fi
        [[ $line =~ $pattern ]] || bad+="$file:$number: $line"$'\n'
        rows=$((rows + 1))
    done <"$file"
    [ -z "$bad" ] || explain "every line of $file in its format: $header" "$bad" "head $file"
    [ "$rows" -gt 1 ] || explain "a header line ($header) and measurements in $file" "$rows lines" \
        "make bench"
}

@test "book/bench/results.tsv, syscalls.tsv and connections.tsv parse" {
    check_table book/bench/results.tsv \
        $'round\tserver\tconnections\tmode\trequests_per_second\terrors\tcpu_us_per_request' \
        '[0-9]+' '[a-z0-9-]+' '(1|16|256)' '(keep-alive|close)' '[0-9]+' '[0-9]+' '[0-9]+\.[0-9]+'
    check_table book/bench/syscalls.tsv $'server\tsyscall\tcalls\terrors\tper_request' \
        '[a-z0-9-]+' '[a-z0-9_]+' '[0-9]+' '[0-9]+' '[0-9]+\.[0-9]+'
    check_table book/bench/connections.tsv \
        $'server\tconnections\treconnections\topen_when_measured\trss_before_kib\trss_after_kib\tbytes_per_connection' \
        '[a-z0-9-]+' '[0-9]+' '[0-9]+' '[0-9]+' '[0-9]+' '[0-9]+' '-?[0-9]+'
    local output
    output=$(tests/bench/median book/bench/results.tsv 2>&1) ||
        explain "tests/bench/median prints the medians of book/bench/results.tsv" "$output" \
            "tests/bench/median"
    for server in nginx floor; do
        [[ $output == *" $server"* ]] ||
            explain "$server among the servers measured" "$output" "tests/bench/median"
    done
    grep -q '^# command: tests/bench/' book/bench/results.tsv ||
        explain "the command that made book/bench/results.tsv in its header" \
            "$(head -n 8 book/bench/results.tsv)" "head book/bench/results.tsv"
}

# Builds a page holding the chart of results file FILE into FORMAT.
#   chart FILE FORMAT OUTPUT
chart() {
    # shellcheck disable=SC2016 # markdown: its backticks are text
    printf '# Chart\n\n```{chart="%s"}\n```\n' "$1" >"$BATS_TEST_TMPDIR/page.md"
    pandoc "$BATS_TEST_TMPDIR/page.md" --lua-filter book/include.lua --metadata title=chart \
        --to "$2" -o "$3" 2>&1
}

@test "the chart is drawn from book/bench/results.tsv: a bar per server and group, nginx as a line" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    local output html=$BATS_TEST_TMPDIR/page.html
    output=$(chart book/bench/results.tsv html5 "$html") ||
        explain "the chart builds" "$output" "tests/bats tests/bench.bats"
    local servers groups bars lines
    servers=$(awk -F'\t' '!/^#/ && $1 != "round" && $2 != "nginx" { print $2 }' book/bench/results.tsv | sort -u | wc -l)
    groups=$(awk -F'\t' '!/^#/ && $1 != "round" { print $3, $4 }' book/bench/results.tsv | sort -u | wc -l)
    bars=$(grep -c '^<rect' "$html")
    lines=$(grep -c 'stroke-dasharray="6 3"><title>nginx' "$html")
    [ "$bars" -eq $((servers * groups)) ] && [ "$lines" -eq "$groups" ] ||
        explain "$((servers * groups)) bars and $groups nginx lines" "$bars bars, $lines lines" \
            "make book, then open build/book/html/ at the benchmark chapter"
    output=$(chart book/bench/results.tsv epub3 "$BATS_TEST_TMPDIR/page.epub") ||
        explain "the chart builds into an EPUB" "$output" "make book"
}

@test "a broken line of a results file stops the chart, naming the line" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    local results=$BATS_TEST_TMPDIR/results.tsv output
    { sed -n '1,/^round/p' book/bench/results.tsv; printf '1\tstep06\t16\tkeep-alive\tmany\t0\t1.00\n'; } >"$results"
    if output=$(chart "$results" html5 /dev/null); then
        explain "the build fails on a line whose requests per second is not a number" "it succeeded" \
            "tests/bats tests/bench.bats"
    fi
    [[ $output == *"results.tsv:$(grep -c '' "$results"):"* ]] ||
        explain "the message names the file and line" "$output" "tests/bats tests/bench.bats"
}

# Expands a page of markdown TEXT through the book's filter into plain
# text in $BATS_TEST_TMPDIR/out; prints what the filter said.
#   expand_page TEXT
expand_page() {
    printf '%s\n' "$1" >"$BATS_TEST_TMPDIR/page.md"
    pandoc "$BATS_TEST_TMPDIR/page.md" --lua-filter book/include.lua --to plain --columns=200 \
        -o "$BATS_TEST_TMPDIR/out" 2>&1
}

# A small results file whose figures are known: two rounds, two servers.
write_small_results() {
    {
        printf '# date: 2026-01-01 00:00 UTC\n# machine: 2 processors\n'
        printf "# wrk -t1 -d3s -cCONNECTIONS [-H 'Connection: close'] http://127.0.0.1:PORT/, 2 rounds\n"
        printf 'round\tserver\tconnections\tmode\trequests_per_second\terrors\tcpu_us_per_request\n'
        printf '1\tstep09\t16\tkeep-alive\t12000\t0\t8.00\n'
        printf '1\tnginx\t16\tkeep-alive\t10000\t0\t9.00\n'
        printf '2\tstep09\t16\tkeep-alive\t10000\t0\t9.00\n'
        printf '2\tnginx\t16\tkeep-alive\t10000\t0\t9.50\n'
    } >"$BATS_TEST_TMPDIR/small.tsv"
}

@test "a value in a sentence is computed from the results file: medians, ratios, words" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    write_small_results
    local f=$BATS_TEST_TMPDIR/small.tsv output
    output=$(expand_page "[]{.bench file=\"$f\" value=\"median step09 keep-alive 16\"}
[]{.bench file=\"$f\" value=\"ratio step09 nginx keep-alive 16\"}
[]{.bench file=\"$f\" value=\"percent nginx step09 keep-alive 16\"}
[]{.bench file=\"$f\" value=\"cpu nginx keep-alive 16\"}
[]{.bench file=\"$f\" value=\"fastest step09 keep-alive 16\"}
[]{.bench file=\"$f\" value=\"rounds\"} []{.bench file=\"$f\" value=\"seconds\"}
[]{.bench file=\"$f\" value=\"ratio step09 nginx keep-alive 16\" at-least=\"1\" words=\"more|fewer\"}
[]{.bench file=\"$f\" value=\"ratio nginx step09 keep-alive 16\" at-least=\"1\" words=\"more|fewer\"}
[]{.bench file=\"$f\" value=\"wins step09 nginx keep-alive 16\"}") ||
        explain "the page builds" "$output" "tests/bats tests/bench.bats"
    output=$(tr '\n' ' ' <"$BATS_TEST_TMPDIR/out")
    # Medians: step09 11000, nginx 10000; nginx's cpu 9.25. Step 09 has
    # more in round 1, as many in round 2: 1 of 2.
    [ "$output" = "11,000 1.10× 91% 9.25 12,000 2 3 more fewer 1 of 2 " ] ||
        explain "11,000 1.10× 91% 9.25 12,000 2 3 more fewer 1 of 2" "$output" "tests/bats tests/bench.bats"
}

@test "the values of the committed files build: system calls, memory, the run" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    local output expected
    output=$(expand_page '[]{.bench value="syscalls nginx"} []{.bench value="calls nginx epoll_wait"} []{.bench value="bytes nginx"} []{.bench value="date"} []{.bench .code value="command"}') ||
        explain "the page builds" "$output" "tests/bats tests/bench.bats"
    expected=$(awk -F'\t' '$1 == "nginx" && $2 == "total" { printf "%.2f ", $5 }' book/bench/syscalls.tsv)
    expected+=$(awk -F'\t' '$1 == "nginx" && $2 == "epoll_wait" { printf "%d ", $3 }' book/bench/syscalls.tsv)
    expected+=$(awk -F'\t' '$1 == "nginx" { printf "%d ", $7 }' book/bench/connections.tsv)
    expected+=$(sed -n 's/^# date: //p' book/bench/results.tsv)
    expected+=" $(sed -n 's/^# command: //p' book/bench/results.tsv)"
    output=$(tr '\n' ' ' <"$BATS_TEST_TMPDIR/out" | sed 's/ $//; s/,//g')
    [ "$output" = "$expected" ] ||
        explain "$expected (from book/bench/*.tsv)" "$output" "tests/bats tests/bench.bats"
}

@test "a value that names a server not in the file stops the build, naming it" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    local output
    if output=$(expand_page 'It serves []{.bench value="ratio step99 nginx keep-alive 16"}.'); then
        explain "the build fails on a server that book/bench/results.tsv does not have" "it succeeded" \
            "tests/bats tests/bench.bats"
    fi
    [[ $output == *"no server 'step99' in book/bench/results.tsv"* ]] ||
        explain "the message names the server and the file" "$output" "tests/bats tests/bench.bats"
    if output=$(expand_page '[]{.bench value="syscalls step09 no_such_call"}'); then
        explain "the build fails on a system call the file does not have" "it succeeded" \
            "tests/bats tests/bench.bats"
    fi
    [[ $output == *"no system call 'no_such_call'"* ]] ||
        explain "the message names the call" "$output" "tests/bats tests/bench.bats"
    if output=$(expand_page '[]{.bench value="median step09 keep-alive 99"}'); then
        explain "the build fails on a number of connections the file does not have" "it succeeded" \
            "tests/bats tests/bench.bats"
    fi
    [[ $output == *"no measurement of step09 with keep-alive 99"* ]] ||
        explain "the message names what is missing" "$output" "tests/bats tests/bench.bats"
    if output=$(expand_page '[]{.bench value="speed step09"}'); then
        explain "the build fails on a value it does not know" "it succeeded" "tests/bats tests/bench.bats"
    fi
    [[ $output == *"no such value 'speed'"* ]] ||
        explain "the message names the value" "$output" "tests/bats tests/bench.bats"
}

@test "the tables are built from the files: a column per server, a row per group" {
    command -v pandoc >/dev/null || skip "pandoc is not installed (sudo apt install pandoc)"
    write_small_results
    local output
    output=$(expand_page "\`\`\`{bench=\"medians\" file=\"$BATS_TEST_TMPDIR/small.tsv\"}
\`\`\`") || explain "the table builds" "$output" "tests/bats tests/bench.bats"
    grep -Eq '^ *keep-alive, 16 +11,000 +10,000 *$' "$BATS_TEST_TMPDIR/out" ||
        explain "a row 'keep-alive, 16  11,000  10,000'" "$(cat "$BATS_TEST_TMPDIR/out")" \
            "tests/bats tests/bench.bats"
    local table
    for table in medians cpu rounds syscalls connections; do
        output=$(expand_page "\`\`\`{bench=\"$table\"}
\`\`\`") || explain "the table $table builds from book/bench/" "$output" "tests/bats tests/bench.bats"
    done
    grep -Eq '^ *step09 +10,000 ' "$BATS_TEST_TMPDIR/out" ||
        explain "a row for step09 in the table of connections" "$(cat "$BATS_TEST_TMPDIR/out")" \
            "tests/bats tests/bench.bats"
}
