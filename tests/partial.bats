#!/usr/bin/env bats
# Each part has its own green: a server written up to part N of a stage
# (tests/partial/STEP-PART.patch, against the step's folder, as
# tests/make-patch writes it: the book's step without the later parts'
# lines; for stage 05, also without their functions, prototypes and types,
# in each of its files, so that it is what book/05-parse.md has a reader
# type, a partial http.c and http.h with server.c, and builds with -Werror)
# passes the stage's tests of part N, and fails the tests tagged ladder of
# part N+1. So a part's tests need only that part and the ones before it.
# (The tests of parts 1 to N-1 pass on the server written up to N-1, and
# a part adds code, it takes none away: `make check PART=N` runs them all.)
#
# Run on its own: tests/bats tests/partial.bats   (make test-answers runs it)

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)

# Builds tests/partial/NAME.patch (against the folder of step NN, NAME's
# first two characters) into build/partial/src/NAME/, and that folder's .c
# files into build/partial/NAME. For stage 05, each file of the patched
# folder (build/partial/src/NAME.whole/) loses the items of the later
# parts, and the server builds with -Werror: so it is the one the
# chapter's instructions make, a partial http.c and http.h included.
build_partial() {
    local patch=$top/tests/partial/$1.patch dir=$top/build/partial folder
    local step=${1%%-*} part file
    part=$(awk -F'\t' -v step="$step" -v name="${1#*-}" '$1 == step && $3 == name { print $2 }' "$top/tests/workshop/parts")
    [ -n "$part" ] || { echo "tests/workshop/parts has no part ${1#*-} of step $step" >&2; return 1; }
    folder=$top/$("$top/tests/steps" --folder "$step") || return 1
    mkdir -p "$dir/src"
    # Made again only when the patch, a file of its step or the parts changed since.
    if [ ! "$dir/$1" -nt "$patch" ] || [ ! "$dir/$1" -nt "$top/tests/workshop/parts" ] ||
        [ ! "$dir/$1" -nt "$top/tests/workshop/part-lines" ] ||
        [ -n "$(find "$folder" -name '*.[ch]' -newer "$dir/$1")" ]; then
        rm -f "$dir/$1"
        if [ "$step" = 05 ]; then
            "$top/tests/apply-patch" "$folder" "$patch" "$dir/src/$1.whole" >&2 || return 1
            # What the book's chapter has a reader type by the end of the
            # part: step 04, and only the items (tests/workshop/parts) of
            # this part and the ones before it, with the lines the patch
            # leaves out; it must build as the reader's does (-Werror).
            rm -rf "$dir/src/$1" && mkdir -p "$dir/src/$1"
            for file in "$dir/src/$1.whole"/*.[ch]; do
                "$top/tests/workshop/part-lines" "$step" --up-to "$part" "$file" | cat -s >"$dir/src/$1/${file##*/}" ||
                    return 1
            done
            ${CC:-cc} -std=c17 -Wall -Wextra -Wpedantic -Werror -O0 -g -o "$dir/$1" "$dir/src/$1"/*.c >&2 || {
                echo "the server that book/05-parse.md has a reader write up to part $part ($dir/src/$1/) does not build" >&2
                return 1
            }
        else
            "$top/tests/apply-patch" "$folder" "$patch" "$dir/src/$1" >&2 || return 1
            ${CC:-cc} -std=c17 -O0 -g -w -o "$dir/$1" "$dir/src/$1"/*.c >&2 || return 1
        fi
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

@test "09 part 1, loop: green for its tests, red for part 2's" {
    part_has_its_own_green 09 loop
}

@test "10 part 1, descriptors: green for its tests, red for part 2's" {
    part_has_its_own_green 10 descriptors
}

@test "every part but the last has a server written up to it here" {
    local step part patch missing=''
    # The steps with a server written up to one of their parts here.
    for step in $(for patch in "$top"/tests/partial/*.patch; do basename "$patch" | cut -c1-2; done | sort -u); do
        while read -r part; do
            [ -e "$top/tests/partial/$step-$part.patch" ] || missing+=" $step-$part"
        done < <(parts_of "$step" | sed '$d')
    done
    [ -z "$missing" ] || { echo "no tests/partial/NAME.patch for:$missing" >&2; return 1; }
}

# The chapter and tests/workshop/parts (whose items README.txt's "Add:"
# lists) name the same pieces for each part: what a part's section of
# book/05-parse.md shows is what the part's partial server has.
@test "each part of chapter 05 shows the items that tests/workshop/parts gives it" {
    local step=05 folder chapter sources
    folder=$top/$("$top/tests/steps" --folder "$step")
    chapter=$top/book/${folder##*/}.md
    sources=("$folder"/*.[ch]) # server.c, http.c, http.h: an item is in one of them
    local number items shown wrong=''
    while IFS=$'\t' read -r number _ items; do
        # The regions its section includes or diffs, in any file of the
        # step: "struct request" is request, "enum method" is method,
        # "enum { NO_RESPONSE" is NO_RESPONSE, "enum {" the limits.
        shown=$(awk -v n="$number" '/^## /{ inside = index($0, "## Part " n ":") == 1 } inside' "$chapter" |
            grep -o 'region="[^"]*"' | sed 's/^region="//; s/"$//' | tr ',' '\n' |
            sed 's/^ *//; s/^struct //; s/^enum \([a-z_]*\)$/\1/; s/^enum { \([A-Z]\)/\1/')
        local item
        for item in $shown; do
            [ "$item" = '{' ] || [ "$item" = enum ] && continue
            # A file's frame, its top (comment, includes) and #endif: no item.
            [ "$item" = top ] || [[ $item == '#'* ]] && continue
            # A region that changes a function of the step before: a rule of the part.
            grep -qx -- "$item" <<<"$(tr ' ' '\n' <<<"$items" | sed 's|/.*||')" ||
                wrong+=$'\n'"part $number shows $item, which tests/workshop/parts does not give it"
        done
        for item in $items; do
            [[ $item == */* ]] && continue
            grep -qx -- "$item" <<<"$shown" && continue
            # A limit, in the enum that part shows whole.
            [[ $item =~ ^[A-Z_]+$ ]] && grep -q 'region="enum {"' <<<"$(awk -v n="$number" '/^## /{ inside = index($0, "## Part " n ":") == 1 } inside' "$chapter")" && continue
            # Inside a region it shows, as book/include.lua finds it: from
            # its first line to the next } at column 0 (or that line alone,
            # if it ends with a ;).
            if awk -v item="$item" -v shown="$(tr '\n' ' ' <<<"$shown")" '
                BEGIN { n = split(shown, names, " "); for (i = 1; i <= n; i++) if (names[i] !~ /^(enum|\{)$/) wanted[names[i]] = 1 }
                FNR == 1 { open = 0; single = 0 } # a region ends with its file
                function named(line,   i) { for (i in wanted) if (line ~ ("[ *]" i "[ (\\[=;]") || line ~ ("^(struct|enum) " i " ")) return 1; return 0 }
                /^[a-z]/ && named($0) { open = 1; if (/;$/) single = 1 }
                open && /^[a-z]/ && $0 ~ ("[ *]" item "[ (\\[=]") { found = 1 }
                open && (/^}/ || single) { open = 0; single = 0 }
                END { exit !found }' "${sources[@]}"; then continue; fi
            wrong+=$'\n'"tests/workshop/parts gives part $number $item, which its section of the chapter does not show"
        done
    done < <(awk -F'\t' -v step="$step" '$1 == step { print $2 "\t" $3 "\t" $7 }' "$top/tests/workshop/parts")
    [ -z "$wrong" ] || { echo "${chapter#"$top"/} and tests/workshop/parts disagree:$wrong" >&2; return 1; }
}
