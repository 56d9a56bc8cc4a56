#!/usr/bin/env bats
# Each part has its own green: a server written up to part N of a stage
# (tests/partial/STEP-PART.patch: the book's step without the later parts)
# passes the stage's tests of part N, and fails the tests tagged ladder of
# part N+1. So a part's tests need only that part and the ones before it.
# (The tests of parts 1 to N-1 pass on the server written up to N-1, and
# a part adds code, it takes none away: `make check PART=N` runs them all.)
#
# Run on its own: tests/bats tests/partial.bats   (make test runs it)

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# Builds tests/partial/NAME.patch into build/partial/NAME.
build_partial() {
    local patch=$top/tests/partial/$1.patch dir=$top/build/partial source
    source=$(sed -n '1s/^--- \([^[:space:]]*\).*/\1/p' "$patch")
    mkdir -p "$dir"
    # Made again only when the patch or its step changed since.
    if [ ! "$dir/$1" -nt "$patch" ] || [ ! "$dir/$1" -nt "$top/$source" ]; then
        "$top/tests/apply-patch" "$top/$source" "$patch" "$dir/$1.c" >&2 || return 1
        ${CC:-cc} -std=c17 -O0 -g -w -o "$dir/$1" "$dir/$1.c" >&2 || return 1
    fi
}

# The names of a step's parts, in order.
parts_of() {
    awk -F'\t' -v step="$1" '$1 == step { print $3 }' "$top/tests/workshop/parts"
}

# Runs the stage's tests (tests/STEP-*.bats only: the steps before it do
# not change) on the server written up to PART, with bats' --filter-tags
# TAGS; the TAP output goes to $BATS_TEST_TMPDIR/tap.
#   run_partial STEP PART TAGS [WAIT-SECONDS]
run_partial() {
    SERVER=$top/build/partial/$1-$2 SERVER_NAME=build/partial/$1-$2 STEP=$1 WAIT_SECONDS=${4:-5} \
        "$top/tests/bats" --tap --filter-tags "$3" "$top"/tests/"$1"-*.bats >"$BATS_TEST_TMPDIR/tap" 2>&1 3>&- || true
}

# Checks a server written up to PART: green for the parts up to it, red
# for the next part's ladder.
#   part_has_its_own_green STEP PART
part_has_its_own_green() {
    local step=$1 part=$2 next
    build_partial "$step-$part"
    next=$(parts_of "$step" | sed -n "/^$part\$/{n;p;}")
    run_partial "$step" "$part" "part:$part"
    if grep -q '^not ok ' "$BATS_TEST_TMPDIR/tap" || ! grep -q '^ok ' "$BATS_TEST_TMPDIR/tap"; then
        echo "a server written up to part $part of stage $step fails the tests of that part (or none ran):" >&2
        cat "$BATS_TEST_TMPDIR/tap" >&2
        return 1
    fi
    run_partial "$step" "$part" "ladder,part:$next" 2
    if ! grep -q '^not ok ' "$BATS_TEST_TMPDIR/tap"; then
        echo "a server written up to part $part of stage $step passes the ladder of part $next:" >&2
        cat "$BATS_TEST_TMPDIR/tap" >&2
        return 1
    fi
}

@test "05 part 1, head: green for its tests, red for part 2's" {
    part_has_its_own_green 05 head
}

@test "05 part 2, request-line: green for its tests, red for part 3's" {
    part_has_its_own_green 05 request-line
}

@test "05 part 3, target: green for its tests, red for part 4's" {
    part_has_its_own_green 05 target
}

@test "05 part 4, fields: green for its tests, red for part 5's" {
    part_has_its_own_green 05 fields
}

@test "06 part 1, response: green for its tests, red for part 2's" {
    part_has_its_own_green 06 response
}

# On loopback, the client reads the whole response before a plain close's
# reset arrives: only the trace of the close tells a server without part 3.
@test "06 part 2, route: green for its tests, red for part 3's" {
    part_has_its_own_green 06 route
    grep -q '^not ok .*shuts down its side before it closes' "$BATS_TEST_TMPDIR/tap" || {
        echo "a server written up to part route of stage 06, which closes with close(2) alone, passes the test of the careful close:" >&2
        cat "$BATS_TEST_TMPDIR/tap" >&2
        return 1
    }
}

@test "every part but the last has a server written up to it here" {
    local step part missing=''
    for step in 05 06; do
        while read -r part; do
            [ -e "$top/tests/partial/$step-$part.patch" ] || missing+=" $step-$part"
        done < <(parts_of "$step" | sed '$d')
    done
    [ -z "$missing" ] || { echo "no tests/partial/NAME.patch for:$missing" >&2; return 1; }
}
