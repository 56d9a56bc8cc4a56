#!/usr/bin/env bats
# Step 11: GET and HEAD serve the files of a directory, ROOT, the third
# argument (./step11 PORT ADDRESS ROOT), and nothing outside it, whatever
# the path says. Files go out with sendfile(2) inside the event loop: a
# large one to a slow reader holds up nobody. The head says what a browser
# needs: Content-Type, Content-Length, Last-Modified, and 304 Not Modified.
#
# Each test builds its own ROOT in a temporary directory (make_site), with
# a secret file next to it, outside ROOT, that no request may reach.

load helpers

# A site in $BATS_TEST_TMPDIR/root, and beside it the file secret.txt,
# which holds the word SECRET_WORD: outside ROOT, no response may show it.
# Symbolic links in ROOT lead out of it in every way a link can.
make_site() {
    ROOT=$BATS_TEST_TMPDIR/root
    SECRET_WORD=secret-$(random_word)
    PAGE_WORD=$(random_word)
    mkdir -p "$ROOT/guide" "$ROOT/deep/deeper"
    echo "$SECRET_WORD" >"$BATS_TEST_TMPDIR/secret.txt"
    printf '<h1>%s</h1>\n' "$PAGE_WORD" >"$ROOT/index.html"
    printf '<p>guide %s</p>\n' "$PAGE_WORD" >"$ROOT/guide/index.html"
    printf 'body { color: black; }\n' >"$ROOT/style.css"
    printf 'a file whose name has a space: %s\n' "$PAGE_WORD" >"$ROOT/read me.txt"
    ln -s ../secret.txt "$ROOT/up"
    ln -s "$BATS_TEST_TMPDIR/secret.txt" "$ROOT/absolute"
    ln -s .. "$ROOT/parent"
    ln -s ../../secret.txt "$ROOT/guide/up-two"
    ln -s ../../../secret.txt "$ROOT/deep/deeper/up-three"
    ln -s /proc/self/root "$ROOT/proc-root"
    ln -s guide/index.html "$ROOT/inside"
}

# make_site, then the server on port 0, serving ROOT.
start_site() {
    make_site
    start_server listening 0 127.0.0.1 "$ROOT"
}

# A command that shows a failure by hand: the server serves ROOT (the
# test's own, gone once the test ends: make one like it) on port 8080.
by_hand_root() {
    printf '%s 8080 127.0.0.1 %s & sleep 0.5; %s; kill $!' "$SERVER_NAME" "${2:-$ROOT}" "$1"
}

# Sends "METHOD TARGET HTTP/1.1" with Connection: close over a raw socket
# (curl would tidy the target first) and prints the answer. The target goes
# in as it is: no printf format, so that % and \ stay what they are.
#   ask TARGET [METHOD [MORE-FIELD-LINES]]
ask() {
    printf '%s %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n' "${2:-GET}" "$1" "${3:-}" \
        >"$BATS_TEST_TMPDIR/request"
    send_file "$BATS_TEST_TMPDIR/request" "$WAIT_SECONDS"
}

# The status code in the first line of an answer on stdin.
status_of() {
    head -n 1 | sed -n 's/^HTTP\/1\.1 \([0-9][0-9][0-9]\).*/\1/p'
}

# bats test_tags=ladder,part:files
@test "GET sends a file of ROOT, byte for byte, with its size as Content-Length" {
    start_site
    head -c 100000 /dev/urandom >"$ROOT/data.bin"
    local status try
    try=$(by_hand_root "curl -s http://127.0.0.1:8080/data.bin | cmp - $ROOT/data.bin")
    status=$(fetch "http://127.0.0.1:$PORT/data.bin")
    [ "$status" = 200 ] ||
        fail_because "200 for GET /data.bin, a file of ROOT" "status '$status': $(curl_said)" "$try" \
            "book/11-files.md, section 'A file beneath ROOT'"
    [ "$(field Content-Length)" = 100000 ] ||
        fail_because "Content-Length: 100000, the file's size (fstat)" "'$(field Content-Length)'" "$try" \
            "book/11-files.md, section 'The head, then the file'"
    cmp -s "$BATS_TEST_TMPDIR/body" "$ROOT/data.bin" ||
        fail_because "the file's 100000 bytes, as they are" \
            "$(wc -c <"$BATS_TEST_TMPDIR/body") bytes, $(cmp "$BATS_TEST_TMPDIR/body" "$ROOT/data.bin" 2>&1 | head -n 1)" \
            "$try" "book/11-files.md, section 'The head, then the file'"
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] && [ "$(cat "$BATS_TEST_TMPDIR/body")" = "<h1>$PAGE_WORD</h1>" ] ||
        fail_because "ROOT/index.html for GET /: <h1>$PAGE_WORD</h1>" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/")" "book/11-files.md, section 'A file beneath ROOT'"
}

# What the kernel does for the server, seen by strace: the file is opened
# beneath ROOT by openat2(2), and goes out by sendfile(2), never through
# read(2) and write(2).
# bats test_tags=part:files
@test "a file is opened with openat2 and RESOLVE_BENEATH, and sent with sendfile (strace)" {
    make_site
    head -c 300000 /dev/urandom >"$ROOT/data.bin"
    start_traced_server openat2,sendfile,read,write listening 0 127.0.0.1 "$ROOT"
    local status opened sent try
    try="strace -e trace=openat2,sendfile $SERVER_NAME 8080 127.0.0.1 ROOT & sleep 0.5; curl -s -o /dev/null http://127.0.0.1:8080/data.bin; kill \$!"
    status=$(fetch "http://127.0.0.1:$PORT/data.bin")
    [ "$status" = 200 ] || fail_because "200 for GET /data.bin" "status $status: $(curl_said)" "$try"
    local deadline=$((SECONDS + WAIT_SECONDS))
    until grep -q 'sendfile(' "$TRACE" || ((SECONDS >= deadline)); do sleep 0.02; done
    opened=$(grep -m 1 'openat2([0-9]*, "data.bin"' "$TRACE")
    [[ $opened == *RESOLVE_BENEATH* ]] && [[ $opened == *RESOLVE_NO_MAGICLINKS* ]] ||
        fail_because 'openat2(ROOT, "data.bin", {... resolve=RESOLVE_NO_MAGICLINKS|RESOLVE_BENEATH}, 24)' \
            "${opened:-no openat2 of data.bin in the trace}" "$try" "book/11-files.md, section 'A file beneath ROOT'"
    sent=$(grep -E 'sendfile\([0-9]+, [0-9]+, \[0\] => \[[0-9]+\]' "$TRACE" | head -n 1)
    [ -n "$sent" ] ||
        fail_because "sendfile(SOCKET, FILE, [0] => [N], ...) for the file's bytes" \
            "$(grep -E 'sendfile|write\(' "$TRACE" | head -n 3)" "$try" "book/11-files.md, section 'The head, then the file'"
    ! grep -qE '^[0-9]+ +write\([0-9]+, .{100}' "$TRACE" ||
        fail_because "no write(2) of the file's bytes: sendfile sends them" \
            "$(grep -E '^[0-9]+ +write\(' "$TRACE" | head -n 1 | cut -c 1-100)" "$try" \
            "book/11-files.md, section 'The head, then the file'"
}

# bats test_tags=ladder,part:files
@test "Content-Type follows the file's extension, application/octet-stream by default" {
    make_site
    local name type failed=0
    local -A types=([page.html]='text/html; charset=utf-8' [style.css]='text/css; charset=utf-8'
        [app.js]='text/javascript; charset=utf-8' [logo.svg]='image/svg+xml' [photo.png]=image/png
        [photo.jpg]=image/jpeg [photo.JPEG]=image/jpeg [notes.txt]='text/plain; charset=utf-8'
        [data.json]=application/json [book.pdf]=application/pdf [book.epub]=application/epub+zip
        [code.wasm]=application/wasm [archive.tar]=application/octet-stream
        [no-extension]=application/octet-stream [dot.d/file]=application/octet-stream)
    mkdir -p "$ROOT/dot.d"
    for name in "${!types[@]}"; do echo "$name" >"$ROOT/$name"; done
    start_server listening 0 127.0.0.1 "$ROOT"
    for name in "${!types[@]}"; do
        fetch "http://127.0.0.1:$PORT/$name" >/dev/null
        type=$(field Content-Type)
        [ "$type" = "${types[$name]}" ] ||
            NO_SERVER_LOG=1 fail_because "Content-Type: ${types[$name]} for /$name" "'$type'" \
                "$(by_hand_root "curl -sI http://127.0.0.1:8080/$name")" \
                "book/11-files.md, section 'The head, then the file'" || failed=$((failed + 1))
    done
    [ "$failed" -eq 0 ]
}

# bats test_tags=ladder,part:files
@test "HEAD sends a file's head, with its Content-Length, and no body" {
    start_site
    head -c 5000 /dev/urandom >"$ROOT/data.bin"
    local answer try
    # HEAD, then GET / on the same connection: if the HEAD sent a body,
    # its bytes come where the GET's status line should be.
    printf 'HEAD /data.bin HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' \
        >"$BATS_TEST_TMPDIR/request"
    answer=$(send_file "$BATS_TEST_TMPDIR/request" "$WAIT_SECONDS" | tr -d '\r' | head -c 2000 | tr -d '\0')
    try=$(by_hand_root "printf 'HEAD /data.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' | nc 127.0.0.1 8080")
    grep -qx 'Content-Length: 5000' <<<"$answer" ||
        fail_because "Content-Length: 5000 in the HEAD's head" "$(head -n 8 <<<"$answer" | tr '\n' '|')" "$try" \
            "book/11-files.md, section 'The head, then the file'"
    [ "$(grep -c '^HTTP/1.1 200' <<<"$answer")" -eq 2 ] && [ "$(tail -n 1 <<<"$answer")" = "<h1>$PAGE_WORD</h1>" ] ||
        fail_because "the HEAD's head, then at once the GET's response (no body after HEAD)" \
            "$(head -c 400 <<<"$answer" | tr '\n' '|')" "$try" "book/11-files.md, section 'The head, then the file'"
}

# The head is written first, the file after it: sent as two small packets,
# the second would wait for the client to acknowledge the first, which a
# client may delay by 40 ms (Nagle's algorithm and delayed ACKs, tcp(7)).
# bats test_tags=part:files
@test "ten small files over one connection take less than 200 ms in all" {
    start_site
    local urls=() outputs=() total
    for _ in $(seq 10); do
        urls+=("http://127.0.0.1:$PORT/style.css")
        outputs+=(-o /dev/null)
    done
    total=$(curl -s -m "$WAIT_SECONDS" "${outputs[@]}" -w '%{time_total}\n' "${urls[@]}" |
        awk '{ total += $1 } END { printf "%.3f", total }')
    awk -v t="$total" 'BEGIN { exit !(t < 0.2) }' ||
        fail_because "ten requests for style.css, one after the other on one connection, in less than 200 ms" \
            "$total s in all: $(curl -s "${outputs[@]}" -w '%{time_total} ' "${urls[@]}")" \
            "$(by_hand_root "curl -s -o /dev/null -o /dev/null -w '%{time_total}\\n' http://127.0.0.1:8080/style.css http://127.0.0.1:8080/style.css")" \
            "book/11-files.md, section 'The head, then the file'"
}

# bats test_tags=ladder,part:files
@test "without ROOT, the server serves the example site of step 11" {
    [ -d steps/11-files/site ] || skip "run from the top of the repository (tests/check does)"
    start_server listening 0
    local status
    status=$(fetch "http://127.0.0.1:$PORT/guide/")
    [ "$status" = 200 ] && grep -q 'A guide to this site' "$BATS_TEST_TMPDIR/body" ||
        fail_because "200 and steps/11-files/site/guide/index.html for GET /guide/" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$SERVER_NAME 8080 & sleep 0.5; curl -i http://127.0.0.1:8080/guide/; kill \$!" \
            "book/11-files.md, section 'Build and run'"
}

# bats test_tags=part:files
@test "a ROOT that cannot be opened is a bad argument: status 2, and a line that names it" {
    local status=0 missing=$BATS_TEST_TMPDIR/no-such-directory
    "$SERVER" 0 127.0.0.1 "$missing" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" </dev/null || status=$?
    [ "$status" -eq 2 ] && grep -q "$missing" "$BATS_TEST_TMPDIR/err" ||
        fail_because "exit status 2, and a line on stderr that names $missing" \
            "status $status, stderr: $(head -c 300 "$BATS_TEST_TMPDIR/err")" \
            "$SERVER_NAME 0 127.0.0.1 /no/such/directory; echo \$?" "book/11-files.md, section 'Opening ROOT'"
}

# strace can make a system call fail: here openat2, as on Linux before 5.6.
# bats test_tags=part:files
@test "without openat2 (ENOSYS), the server refuses to serve files, and says why" {
    make_site
    local status=0
    timeout 10 strace -f -qq -o /dev/null -e trace=openat2 -e inject=openat2:error=ENOSYS \
        "$SERVER" 0 127.0.0.1 "$ROOT" >"$BATS_TEST_TMPDIR/out" 2>"$BATS_TEST_TMPDIR/err" </dev/null || status=$?
    [ "$status" -ne 0 ] && [ "$status" -ne 124 ] && grep -q 'openat2' "$BATS_TEST_TMPDIR/err" &&
        grep -q '5\.6' "$BATS_TEST_TMPDIR/err" ||
        fail_because "an exit at start, and a line on stderr that names openat2 and Linux 5.6" \
            "status $status, stderr: $(head -c 300 "$BATS_TEST_TMPDIR/err")" \
            "strace -qq -o /dev/null -e inject=openat2:error=ENOSYS $SERVER_NAME 0; echo \$?" \
            "book/11-files.md, section 'A file beneath ROOT'"
}

# The list of targets that try to leave ROOT, one a line: how it tries, a
# tab, the target as sent. SECRET is the path of secret.txt from the
# filesystem's root, without its first slash; DEEP is "../" 200 times.
traversals() {
    cat <<'LIST'
dot segments	/../secret.txt
dot segments after a dot	/./../secret.txt
dot segments below a folder	/guide/../../secret.txt
dot segments, the parent itself	/..
encoded dots	/%2e%2e/secret.txt
encoded dots in upper case	/%2E%2E/secret.txt
encoded dots in mixed case	/%2e%2E/secret.txt
one dot encoded	/.%2e/secret.txt
the other dot encoded	/%2e./secret.txt
an encoded slash	/..%2fsecret.txt
an encoded slash in upper case	/..%2Fsecret.txt
all encoded	/%2e%2e%2fsecret.txt
encoded slashes below a folder	/guide/..%2f..%2fsecret.txt
a backslash	/..\secret.txt
backslashes all along	/\..\..\secret.txt
an encoded backslash	/..%5csecret.txt
an encoded backslash in upper case	/..%5Csecret.txt
a NUL byte	/secret.txt%00.html
a NUL byte before dots	/%00../secret.txt
a NUL byte between dots	/.%00./secret.txt
doubled encoding	/%252e%252e/secret.txt
doubled encoding of a slash	/..%252fsecret.txt
tripled encoding	/%25252e%25252e/secret.txt
an overlong UTF-8 slash	/..%c0%afsecret.txt
an overlong UTF-8 dot	/%c0%ae%c0%ae/secret.txt
a %u escape	/%u002e%u002e/secret.txt
a semicolon after the dots	/..;/secret.txt
four dots	/....//secret.txt
a link to the file outside	/up
a link to an absolute path	/absolute
a link to the parent	/parent/secret.txt
a link two folders up	/guide/up-two
a link three folders up	/deep/deeper/up-three
a link to /proc/self/root, then the path	/proc-root/SECRET
an absolute path	//SECRET
an absolute path, three slashes	///SECRET
/etc/passwd	//etc/passwd
a very deep chain to /etc/passwd	/DEEPetc/passwd
a very deep chain to the secret	/DEEPSECRET
absolute-form with dot segments	http://example.com/../secret.txt
absolute-form with encoded dots	http://example.com/%2e%2e/secret.txt
absolute-form with an absolute path	http://example.com//etc/passwd
LIST
}

# bats test_tags=part:paths
@test "no spelling of a path outside ROOT gets a file: encoded, doubled, backslashed, NUL, links, deep" {
    start_site
    local how target secret deep answer status failed=0 count=0
    secret=${BATS_TEST_TMPDIR#/}/secret.txt
    deep=$(printf '../%.0s' $(seq 200))
    while IFS=$'\t' read -r how target; do
        count=$((count + 1))
        target=${target//SECRET/$secret}
        target=${target//DEEP/$deep}
        answer=$(ask "$target" | tr -d '\0')
        status=$(status_of <<<"$answer")
        if [[ $answer == *"$SECRET_WORD"* ]] || [[ $answer == *root:x:0:0:* ]] ||
            [[ $status != 4[0-9][0-9] ]]; then
            NO_SERVER_LOG=1 fail_because "an error (400, 403 or 404) without the file, for $how: GET ${target:0:120}" \
                "status '$status': $(head -c 300 <<<"$answer" | tr '\r\n' '  ')" \
                "$(by_hand_root "printf 'GET %s HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' '${target//\\/\\\\}' | nc -q 1 127.0.0.1 8080")" \
                "book/11-files.md, section 'Path traversal'" || failed=$((failed + 1))
        fi
    done < <(traversals)
    [ "$count" -gt 40 ] || fail_because "the whole list of traversals" "only $count" "grep -c . tests/11-files.bats"
    [ "$failed" -eq 0 ] ||
        fail_because "an error for all $count ways out of ROOT" "$failed of them did not get one: each is explained above" \
            "$(check_command)" "book/11-files.md, section 'What the kernel guarantees'"
}

# bats test_tags=part:paths
@test "the percent-decoding refuses %00 (400), %2F (404) and a % without two hex digits (400)" {
    start_site
    local target expected status failed=0
    while read -r expected target; do
        status=$(ask "$target" | status_of)
        [ "$status" = "$expected" ] ||
            NO_SERVER_LOG=1 fail_because "$expected for GET $target" "'$status'" \
                "$(by_hand_root "curl -i --path-as-is 'http://127.0.0.1:8080$target'")" \
                "book/11-files.md, section 'Percent-decoding, once'" || failed=$((failed + 1))
    done <<'LIST'
400 /index.html%00
400 /%00
404 /guide%2Findex.html
404 /guide%2findex.html
400 /index.html%
400 /index.html%4
400 /%zzindex.html
400 /%+1index.html
200 /%69ndex.html
200 /index.html?q=%00%2F%zz
LIST
    [ "$failed" -eq 0 ]
}

# bats test_tags=part:paths
@test "symbolic links inside ROOT are followed; those that lead out are not" {
    start_site
    local status
    status=$(fetch "http://127.0.0.1:$PORT/inside")
    [ "$status" = 200 ] && [ "$(cat "$BATS_TEST_TMPDIR/body")" = "<p>guide $PAGE_WORD</p>" ] ||
        fail_because "200 and guide/index.html for /inside, a link to guide/index.html inside ROOT" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/inside")" "book/11-files.md, section 'What the kernel guarantees'"
    status=$(fetch "http://127.0.0.1:$PORT/up")
    [[ $status == 4?? ]] && ! grep -q "$SECRET_WORD" "$BATS_TEST_TMPDIR/body" ||
        fail_because "an error for /up, a link to ../secret.txt outside ROOT" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/up")" "book/11-files.md, section 'What the kernel guarantees'"
}

# /proc/self holds magic links (root, cwd, fd/N, exe): each leads to a
# file, not to a path, and would take a request anywhere.
# bats test_tags=part:paths
@test "even with ROOT=/proc/self, its magic links lead nowhere" {
    make_site
    start_server listening 0 127.0.0.1 /proc/self
    local target answer failed=0
    for target in "/root${BATS_TEST_TMPDIR}/secret.txt" "/cwd/tests/helpers.bash" \
        "/root/etc/passwd" "/fd/3" "/exe"; do
        answer=$(ask "$target" | head -c 3000 | tr -d '\0')
        [[ $(status_of <<<"$answer") == 4?? ]] ||
            NO_SERVER_LOG=1 fail_because "an error for GET $target with ROOT=/proc/self (a magic link)" \
                "$(head -c 200 <<<"$answer" | tr '\r\n' '  ')" \
                "$(by_hand_root "curl -i http://127.0.0.1:8080$target" /proc/self)" \
                "book/11-files.md, section 'What the kernel guarantees'" || failed=$((failed + 1))
    done
    [ "$failed" -eq 0 ]
}

# bats test_tags=ladder,part:paths
@test "a name with a space (%20), a folder's index.html, and /folder sent to /folder/ (301)" {
    start_site
    local status try
    status=$(fetch "http://127.0.0.1:$PORT/read%20me.txt")
    [ "$status" = 200 ] && grep -q "$PAGE_WORD" "$BATS_TEST_TMPDIR/body" ||
        fail_because "200 and the file 'read me.txt' for GET /read%20me.txt" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$(by_hand_root "curl -i 'http://127.0.0.1:8080/read%20me.txt'")" "book/11-files.md, section 'Percent-decoding, once'"
    status=$(fetch "http://127.0.0.1:$PORT/guide/")
    [ "$status" = 200 ] && [ "$(cat "$BATS_TEST_TMPDIR/body")" = "<p>guide $PAGE_WORD</p>" ] ||
        fail_because "200 and guide/index.html for GET /guide/" \
            "status $status, '$(head -c 80 "$BATS_TEST_TMPDIR/body")'" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/guide/")" "book/11-files.md, section 'Directories'"
    try=$(by_hand_root "curl -i 'http://127.0.0.1:8080/guide?x=1'")
    status=$(fetch "http://127.0.0.1:$PORT/guide?x=1")
    [ "$status" = 301 ] && [ "$(field Location)" = /guide/ ] ||
        fail_because "301 and Location: /guide/ for GET /guide?x=1 (a folder, without its slash)" \
            "status $status, Location '$(field Location)'" "$try" "book/11-files.md, section 'Directories'"
    status=$(fetch "http://127.0.0.1:$PORT/deep/")
    [ "$status" = 404 ] ||
        fail_because "404 for GET /deep/, a folder without index.html (no listing)" "status $status" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/deep/")" "book/11-files.md, section 'Directories'"
}

# Opening a FIFO for reading waits for a writer: a server that does not
# open it with O_NONBLOCK stops there, and every client with it. Opening
# a socket file fails (ENXIO): that is a file that is not regular, not a
# fault of the server's (500).
# bats test_tags=part:paths
@test "only regular files: a FIFO or a socket in ROOT gets 404 at once, and the server goes on" {
    make_site
    mkfifo "$ROOT/pipe"
    # bind(2) on a Unix socket makes the file, which stays after perl.
    perl -MSocket -e 'my $s; socket($s, PF_UNIX, SOCK_STREAM, 0) && bind($s, pack_sockaddr_un($ARGV[0])) or die "$!\n"' \
        "$ROOT/socket"
    start_server listening 0 127.0.0.1 "$ROOT"
    local status name
    for name in pipe socket; do
        status=$(fetch "http://127.0.0.1:$PORT/$name")
        [ "$status" = 404 ] ||
            fail_because "404 for GET /$name, a $name in ROOT (not a regular file)" "status '$status': $(curl_said)" \
                "$(by_hand_root "curl -i http://127.0.0.1:8080/$name")" "book/11-files.md, section 'Only regular files'"
    done
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] ||
        fail_because "200 for GET / after the FIFO and the socket" "status '$status': $(curl_said)" \
            "$(by_hand_root "curl -i http://127.0.0.1:8080/pipe; curl -i http://127.0.0.1:8080/")" \
            "book/11-files.md, section 'Only regular files'"
}

# bats test_tags=ladder,part:headers
@test "Last-Modified is the file's mtime; If-Modified-Since not older gets 304 without a body" {
    start_site
    touch -d '2001-02-03 04:05:06 UTC' "$ROOT/style.css"
    local status try date='Sat, 03 Feb 2001 04:05:06 GMT'
    try=$(by_hand_root "curl -sI http://127.0.0.1:8080/style.css")
    status=$(fetch "http://127.0.0.1:$PORT/style.css")
    [ "$status" = 200 ] && [ "$(field Last-Modified)" = "$date" ] ||
        fail_because "200 and Last-Modified: $date (the file's mtime, touch -d)" \
            "status $status, Last-Modified '$(field Last-Modified)'" "$try" "book/11-files.md, section 'Last-Modified'"
    local since expected failed=0
    while IFS=$'\t' read -r expected since; do
        try=$(by_hand_root "curl -si -H 'If-Modified-Since: $since' http://127.0.0.1:8080/style.css")
        status=$(fetch -H "If-Modified-Since: $since" "http://127.0.0.1:$PORT/style.css")
        if [ "$status" != "$expected" ]; then
            NO_SERVER_LOG=1 fail_because "$expected for If-Modified-Since: $since" "$status" "$try" \
                "book/11-files.md, section '304 Not Modified'" || failed=$((failed + 1))
        elif [ "$status" = 304 ] && [ -s "$BATS_TEST_TMPDIR/body" ]; then
            NO_SERVER_LOG=1 fail_because "no body with 304" "$(wc -c <"$BATS_TEST_TMPDIR/body") bytes" "$try" \
                "book/11-files.md, section '304 Not Modified'" || failed=$((failed + 1))
        fi
    done <<'LIST'
304	Sat, 03 Feb 2001 04:05:06 GMT
304	Sun, 04 Feb 2001 00:00:00 GMT
200	Sat, 03 Feb 2001 04:05:05 GMT
200	Saturday, 03-Feb-01 04:05:06 GMT
200	Sat Feb  3 04:05:06 2001
200	sat, 03 feb 2001 04:05:06 gmt
200	Sun, 03 Feb 2001 04:05:06 GMT
200	Sat, 3 Feb 2001 04:05:06 GMT
200	Sat, 03 Feb 2001 04:05:06 UTC
200	Sat, 03 Feb 2001 04:05:06 GMT junk
200	yesterday
LIST
    [ "$failed" -eq 0 ]
}

# A client that asks for a large file and reads nothing fills the socket:
# the server must go on with the others meanwhile, then finish the file
# when the client reads. (64 MiB: more than the socket buffers can hold.)
# bats test_tags=ladder,part:files
@test "a 64 MiB file arrives intact while another client is answered within 200 ms" {
    start_site
    head -c 64M /dev/urandom >"$ROOT/big.bin"
    local slow line expected got best=9 took hint="book/11-files.md, section 'A piece at a time'"
    local try
    try=$(by_hand_root "(printf 'GET /big.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 3) | nc 127.0.0.1 8080 | head -c 100 & time curl -s http://127.0.0.1:8080/")
    expected=$(sha256sum <"$ROOT/big.bin" | cut -d' ' -f1)
    exec {slow}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' >&"$slow"
    # The head: the download has begun. Then the client reads no more.
    while IFS= read -r -t "$WAIT_SECONDS" -u "$slow" line && [ "$line" != $'\r' ]; do :; done
    for _ in 1 2 3; do
        took=$(curl -s -o /dev/null -m "$WAIT_SECONDS" -w '%{time_total}' "http://127.0.0.1:$PORT/") || took=9
        best=$(awk -v a="$best" -v b="$took" 'BEGIN { print (b < a ? b : a) }')
    done
    grep -q 'GET /big.bin 200' "$LOG" &&
        fail_because "the download still under way while the other client was served" \
            "the server logged it done: $(grep 'GET /big.bin' "$LOG")" "$try" "$hint"
    awk -v t="$best" 'BEGIN { exit !(t < 0.2) }' ||
        fail_because "GET / answered within 200 ms (the best of three) while a slow client downloads 64 MiB" \
            "$best s" "$try" "$hint"
    got=$(timeout 30 cat <&"$slow" | sha256sum | cut -d' ' -f1)
    exec {slow}>&-
    [ "$got" = "$expected" ] ||
        fail_because "the 64 MiB file intact, once the client reads (sha256 $expected)" \
            "sha256 $got" "$try" "$hint"
}

# Step 09 gave a response RESPONSE_TIMEOUT_SECONDS (5 s) in all; a large
# file to a slow client takes longer, and that is no fault of the client's
# as long as it keeps reading. (About 6 s: 60 MiB at 10 MiB/s, more than the
# socket buffers take.)
# bats test_tags=part:files
@test "a client that reads slowly, for longer than 5 s in all, gets the whole file" {
    start_site
    head -c 60M /dev/urandom >"$ROOT/slow.bin"
    local got expected try
    try=$(by_hand_root "curl -s --limit-rate 10M http://127.0.0.1:8080/slow.bin | wc -c")
    expected=$(sha256sum <"$ROOT/slow.bin" | cut -d' ' -f1)
    got=$(curl -s -m 20 --limit-rate 10M "http://127.0.0.1:$PORT/slow.bin" | sha256sum | cut -d' ' -f1)
    [ "$got" = "$expected" ] ||
        fail_because "the whole 60 MiB file at 10 MiB/s (sha256 $expected)" \
            "sha256 $got; $(grep -m 1 '^dropped' "$LOG" || echo 'the server logged no drop')" "$try" \
            "book/11-files.md, section 'A piece at a time'"
}

# bats test_tags=part:files
@test "a file that shrinks while it is sent ends the connection, and the server goes on" {
    start_site
    head -c 16M /dev/urandom >"$ROOT/shrinks.bin"
    local fd line status got
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET /shrinks.bin HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
    while IFS= read -r -t "$WAIT_SECONDS" -u "$fd" line && [ "$line" != $'\r' ]; do :; done
    truncate -s 1M "$ROOT/shrinks.bin"
    status=0
    got=$(timeout "$WAIT_SECONDS" cat <&"$fd" | wc -c) || status=$?
    exec {fd}>&-
    local try
    try=$(by_hand_root "(printf 'GET /shrinks.bin HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n'; sleep 1) | nc 127.0.0.1 8080 | wc -c & sleep 0.2; truncate -s 1M ROOT/shrinks.bin")
    [ "$status" -eq 0 ] && [ "$got" -lt 16777216 ] ||
        fail_because "the connection closed, before 16 MiB, when the file shrank to 1 MiB" \
            "$got bytes$([ "$status" -eq 0 ] || echo ", and still open after $WAIT_SECONDS s")" "$try" \
            "book/11-files.md, section 'A piece at a time'"
    status=$(fetch "http://127.0.0.1:$PORT/")
    [ "$status" = 200 ] ||
        fail_because "200 for GET / after the file shrank" "status '$status': $(curl_said)" "$try" \
            "book/11-files.md, section 'A piece at a time'"
}

# bats test_tags=part:files
@test "each file is closed once sent, or when its client goes away mid-download" {
    start_site
    head -c 16M /dev/urandom >"$ROOT/big.bin"
    local before after fd line deadline
    fetch "http://127.0.0.1:$PORT/" >/dev/null
    before=$(count_descriptors)
    fetch "http://127.0.0.1:$PORT/style.css" >/dev/null
    fetch -I "http://127.0.0.1:$PORT/style.css" >/dev/null
    exec {fd}<>"/dev/tcp/127.0.0.1/$PORT"
    printf 'GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n' >&"$fd"
    while IFS= read -r -t "$WAIT_SECONDS" -u "$fd" line && [ "$line" != $'\r' ]; do :; done
    exec {fd}>&-
    deadline=$((SECONDS + WAIT_SECONDS))
    while after=$(count_descriptors) && [ "$after" -gt "$before" ] && ((SECONDS < deadline)); do
        sleep 0.05
    done
    [ "$after" -le "$before" ] ||
        fail_because "$before descriptors open once the clients are gone, as before them" \
            "$after: $(find "/proc/$SERVER_PID/fd" -lname "$ROOT/*" | wc -l) of them files of ROOT" \
            "$(by_hand_root "curl -s http://127.0.0.1:8080/big.bin | head -c 1 >/dev/null; ls -l /proc/\$!/fd")" \
            "book/11-files.md, section 'A piece at a time'"
}
