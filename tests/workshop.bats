#!/usr/bin/env bats
# make workshop STEP=NN (tests/workshop/start): a participant's starting
# point for stage NN, in a folder of their own that is never overwritten.

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
start=$top/tests/workshop/start

setup() {
    export WORKSHOP_DIR=$BATS_TEST_TMPDIR/workshop
}

@test "STEP=04 copies step 03, writes what to add, builds it, and says what next" {
    run "$start" 04
    [ "$status" -eq 0 ]
    cmp "$top/steps/03-listen/server.c" "$WORKSHOP_DIR/04/server.c"
    [ -x "$WORKSHOP_DIR/04/server" ]
    grep -q 'book/04-accept.md' "$WORKSHOP_DIR/04/README.txt"
    grep -q 'accept(2)' "$WORKSHOP_DIR/04/README.txt"
    grep -q 'accepted 127.0.0.1:CLIENT-PORT on fd N' "$WORKSHOP_DIR/04/README.txt"
    [[ $output == *"make check STEP=04 SERVER=$WORKSHOP_DIR/04/server"* ]]
    [[ $output == *"tests/check 04 $WORKSHOP_DIR/04/server"* ]]
}

@test "a second run keeps the participant's server.c, and builds it again" {
    "$start" 4 >/dev/null
    printf '/* mine */\n' >>"$WORKSHOP_DIR/04/server.c"
    rm "$WORKSHOP_DIR/04/server"
    run "$start" 4
    [ "$status" -eq 0 ]
    [[ $output == *"kept your $WORKSHOP_DIR/04/server.c"* ]]
    [ "$(tail -n 1 "$WORKSHOP_DIR/04/server.c")" = '/* mine */' ]
    [ -x "$WORKSHOP_DIR/04/server" ]
}

@test "the next stage starts from the book's step, and says how to go on from your own" {
    "$start" 04 >/dev/null
    run "$start" 05
    [ "$status" -eq 0 ]
    cmp "$top/steps/04-accept/server.c" "$WORKSHOP_DIR/05/server.c"
    [[ $output == *"cp $WORKSHOP_DIR/04/server.c $WORKSHOP_DIR/05/server.c"* ]]
}

@test "a server.c that does not build: the compiler's errors, status 1, and no old binary" {
    "$start" 02 >/dev/null
    printf 'int broken(void) { return undeclared; }\n' >>"$WORKSHOP_DIR/02/server.c"
    run "$start" 02
    [ "$status" -eq 1 ]
    [[ $output == *"undeclared"* ]]
    [[ $output == *"does not build yet"* ]]
    [ ! -e "$WORKSHOP_DIR/02/server" ]
}

@test "STEP=01 starts from the skeleton: step 01 without its socket, which it does not pass" {
    run "$start" 1
    [ "$status" -eq 0 ]
    [[ $output == *"made $WORKSHOP_DIR/01/server.c from the skeleton"*"tests/workshop/skeleton.diff"* ]]
    # The skeleton lacks exactly the stage: what step 01 adds is the socket.
    diff "$WORKSHOP_DIR/01/server.c" "$top/steps/01-socket/server.c" | grep -q '^> .*socket(AF_INET'
    grep -q 'Step 01: create the socket here' "$WORKSHOP_DIR/01/server.c"
    run timeout 1 "$WORKSHOP_DIR/01/server" 0
    [ "$status" -eq 124 ] # it waits, as step 01 does
    [[ $output == *"waiting"* ]]
    [[ $output != *"created socket"* ]]
    WAIT_SECONDS=1 BATS_FLAGS='--filter-tags ladder' run "$top/tests/check" 01 "$WORKSHOP_DIR/01/server" 3>&-
    [ "$status" -ne 0 ]
    [[ $output == *"not ok"* ]]
}

@test "every stage has a note that names its chapter and its system call" {
    local n dir
    for n in 01 02 03 04 05 06; do
        "$start" "$n" >/dev/null
        dir=$(basename "$(echo "$top"/steps/"$n"-*)")
        grep -q "book/$dir.md" "$WORKSHOP_DIR/$n/README.txt"
        grep -Eq '[a-z0-9]+\([0-9]\)' "$WORKSHOP_DIR/$n/README.txt"
        grep -q "Stage $n" "$WORKSHOP_DIR/$n/README.txt"
    done
}

@test "a STEP that is not 1 to 6: a usage line and status 2, and nothing written" {
    local step
    for step in '' 0 7 004 four; do
        run "$start" "$step"
        [ "$status" -eq 2 ]
        [[ $output == *usage* ]]
    done
    [ ! -e "$WORKSHOP_DIR" ]
}

@test "the skeleton builds clean with gcc and with clang, under the steps' flags" {
    local cc
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        WORKSHOP_DIR=$BATS_TEST_TMPDIR/$cc CC=$cc run "$start" 01
        [ "$status" -eq 0 ]
        [[ $output == *"$cc -std=c17 -Wall -Wextra -Wpedantic -Werror "* ]]
    done
}
