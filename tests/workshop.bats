#!/usr/bin/env bats
# make workshop STEP=NN (tests/workshop/start): a participant's starting
# point for stage NN, in a folder of their own that is never overwritten.

top=$(cd "$BATS_TEST_DIRNAME/.." && pwd)
start=$top/tests/workshop/start

setup() {
    export WORKSHOP_DIR=$BATS_TEST_TMPDIR/workshop
}

# The steps that come in parts (tests/workshop/parts), on one line.
steps_with_parts() {
    cut -f1 "$top/tests/workshop/parts" | grep -v '^#' | sort -u | paste -sd' ' -
}

# The step before STEP in steps/list (nothing for the first).
step_before() {
    "$top/tests/steps" --previous "$1"
}

# The lines that the folder NEW adds to the folder OLD, blank ones not
# counted: each .c and .h file against the one of its name in OLD (all of
# it, if OLD has none), as tests/workshop/part-lines counts them.
#   added_lines OLD NEW
added_lines() {
    local file old sum=0
    for file in "$2"/*.[ch]; do
        old=$1/${file##*/}
        [ -e "$old" ] || old=/dev/null
        sum=$((sum + $(diff "$old" "$file" | grep '^>' | grep -cv '^> *$')))
    done
    echo "$sum"
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
    [[ $output == *"rm $WORKSHOP_DIR/05/*.[ch]; cp $WORKSHOP_DIR/04/*.[ch] $WORKSHOP_DIR/05/"* ]]
}

@test "STEP=05 copies step 04's server.c alone, and says to create http.c and http.h" {
    run "$start" 05
    [ "$status" -eq 0 ]
    [ "$(cd "$WORKSHOP_DIR/05" && echo *.[ch])" = server.c ]
    [[ $output == *"stage 05 creates http.c, http.h"* ]]
    grep -q 'Files to create: http.c, http.h' "$WORKSHOP_DIR/05/README.txt"
    grep -q 'http.c (the parsing) and http.h' "$WORKSHOP_DIR/05/README.txt"
}

@test "a stage's folder is the participant's: every .c file is built, none is overwritten" {
    local folder
    folder=$top/$("$top/tests/steps" --folder 05)
    "$start" 05 >/dev/null
    # The participant writes the stage: here, the book's step 05, and a mark of theirs.
    cp "$folder"/*.[ch] "$WORKSHOP_DIR/05/"
    printf '/* mine */\n' >>"$WORKSHOP_DIR/05/http.c"
    run "$start" 05
    [ "$status" -eq 0 ]
    [[ $output == *"kept your $WORKSHOP_DIR/05/http.c $WORKSHOP_DIR/05/http.h $WORKSHOP_DIR/05/server.c"* ]]
    [[ $output == *" -o $WORKSHOP_DIR/05/server $WORKSHOP_DIR/05/http.c $WORKSHOP_DIR/05/server.c"* ]]
    [ "$(tail -n 1 "$WORKSHOP_DIR/05/http.c")" = '/* mine */' ]
    cmp "$folder/server.c" "$WORKSHOP_DIR/05/server.c"
    [ -x "$WORKSHOP_DIR/05/server" ]
    # The next stage starts from the book's step 05: all three of its files.
    run "$start" 06
    [ "$status" -eq 0 ]
    local file
    for file in "$folder"/*.[ch]; do
        cmp "$file" "$WORKSHOP_DIR/06/${file##*/}"
    done
    [ "$(cd "$WORKSHOP_DIR/06" && echo *.[ch])" = "$(cd "$folder" && echo *.[ch])" ]
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
    for n in $("$top/tests/steps"); do
        "$start" "$n" >/dev/null
        dir=$(basename "$("$top/tests/steps" --folder "$n")")
        grep -q "book/$dir.md" "$WORKSHOP_DIR/$n/README.txt"
        grep -Eq '[a-z0-9]+\([0-9]\)' "$WORKSHOP_DIR/$n/README.txt"
        grep -q "Stage $n" "$WORKSHOP_DIR/$n/README.txt"
    done
}

@test "a STEP that is not a step of steps/list: a usage line and status 2, and nothing written" {
    local step
    for step in '' 0 "$((10#$("$top/tests/steps" --newest) + 1))" 004 four; do
        run "$start" "$step"
        [ "$status" -eq 2 ]
        [[ $output == *usage* ]]
    done
    [ ! -e "$WORKSHOP_DIR" ]
}

@test "the skeleton builds clean with gcc and with clang, under the steps' flags" {
    local cc built=0
    for cc in gcc clang; do
        command -v "$cc" >/dev/null || continue
        WORKSHOP_DIR=$BATS_TEST_TMPDIR/$cc CC=$cc run "$start" 01
        [ "$status" -eq 0 ]
        [[ $output == *"$cc -std=c17 -Wall -Wextra -Wpedantic -Werror "* ]]
        built=$((built + 1))
    done
    [ "$built" -gt 0 ] || { echo "neither gcc nor clang is installed: nothing was built" >&2; return 1; }
}

@test "every stage in parts explains them in order: section, what to add, lines, minutes, check" {
    local step part name
    for step in $(steps_with_parts); do
        "$start" "$step" >/dev/null
        while IFS=$'\t' read -r _ part name _; do
            grep -Eq "^Part $part, $name: about [0-9]+ minutes, [1-9][0-9]* lines in the book's step$" \
                "$WORKSHOP_DIR/$step/README.txt"
            grep -q "make check STEP=$step PART=$part SERVER=$WORKSHOP_DIR/$step/server" "$WORKSHOP_DIR/$step/README.txt"
            grep -q "tests/check $step $WORKSHOP_DIR/$step/server --part $name" "$WORKSHOP_DIR/$step/README.txt"
        done < <(grep "^$step	" "$top/tests/workshop/parts")
        [ "$(grep -c '^Part ' "$WORKSHOP_DIR/$step/README.txt")" -eq "$(grep -c "^$step	" "$top/tests/workshop/parts")" ]
        [ "$(grep -c "    Read:      book/.*, section '" "$WORKSHOP_DIR/$step/README.txt")" -gt 0 ]
    done
}

@test "the parts' line counts add up to the lines the step adds, and none is empty" {
    local step counted added
    for step in $(steps_with_parts); do
        counted=$("$top/tests/workshop/part-lines" "$step" | awk '$3 > 0 { sum += $3; n++ } END { print n, sum }')
        # Over all the files of the step's folder: server.c, http.c, http.h.
        added=$(cd "$top" && added_lines "$(tests/steps --folder "$(step_before "$step")")" "$(tests/steps --folder "$step")")
        [ "$counted" = "$(grep -c "^$step	" "$top/tests/workshop/parts") $added" ] || {
            echo "step $step: parts with lines, and their sum: $counted; lines added: $added" >&2
            return 1
        }
    done
}

@test "every part is a tag of its stage's tests, and every tagged part exists" {
    local step name
    for step in $(steps_with_parts); do
        while IFS=$'\t' read -r _ _ name _; do
            grep -Eq "^# bats test_tags=.*part:$name(,|\$)" "$top"/tests/"$step"-*.bats || {
                echo "no test of step $step is tagged part:$name" >&2
                return 1
            }
        done < <(grep "^$step	" "$top/tests/workshop/parts")
        while read -r name; do
            grep -q "^$step	[0-9]*	${name#part:}	" "$top/tests/workshop/parts" || {
                echo "tests/$step-*.bats: $name is no part of tests/workshop/parts" >&2
                return 1
            }
        done < <(grep -ho 'part:[a-z-]*' "$top"/tests/"$step"-*.bats | sort -u)
    done
}

# The workshop's plans, as they are in FILE: the rows of their tables, one
# a line; with TABLE, only that table's (1: Part I's, 2: Part II's). A
# table ends with its Total row.
plan_rows() {
    awk -v want="${2:-0}" '
        /^\| (Welcome|[01][0-9] [a-z]|Break|Exercises|Wrap-up|Total)/ {
            if (want == 0 || tables + 1 == want) print
            if ($0 ~ /^\| Total /) tables++
        }' "$1"
}

@test "the README and the book give the same two workshop plans, each three hours and a day" {
    cd "$top"
    diff <(plan_rows README.md) <(plan_rows book/00-introduction.md) || {
        echo "README.md and book/00-introduction.md give different plans (above): change both" >&2
        return 1
    }
    local tables
    tables=$(plan_rows README.md | grep -c '^| Total ')
    [ "$tables" -eq 2 ] || {
        echo "README.md has $tables plans (a Total row ends each), not two: Part I's and Part II's" >&2
        return 1
    }
    local table plan odd sums session session_total day day_total lines lines_total
    for table in 1 2; do
        plan="Part $([ "$table" = 1 ] && echo I || echo II)'s plan"
        # Every row is worked, read at home (no minutes: the plan says so),
        # or left out: a row the session or the day keeps must have its minutes.
        odd=$(plan_rows README.md "$table" | awk -F' *\\| *' '$2 != "Total" &&
            ($5 !~ /^(write|yes|read at home|)$/ || $6 !~ /^(write|yes|read at home|)$/)')
        [ -z "$odd" ] || {
            echo "$plan: rows whose session or day is not write, yes, 'read at home' or empty:" >&2
            echo "$odd" >&2
            return 1
        }
        sums=$(plan_rows README.md "$table" | awk -F' *\\| *' '
            $2 != "Total" {
                if ($5 == "write" || $5 == "yes") session += $4
                if ($6 == "write" || $6 == "yes") day += $4
                lines += $3
            }
            $2 == "Total" { print session + 0, $5, day + 0, $6, lines + 0, $3 }')
        read -r session session_total day day_total lines lines_total <<<"$sums"
        [ "$session" = "$session_total" ] || {
            echo "$plan: the session's rows add up to $session minutes, but its Total row says $session_total" >&2
            return 1
        }
        [ "$session" -eq 180 ] || {
            echo "$plan: the session adds up to $session minutes, not 180 (three hours)" >&2
            return 1
        }
        [ "$day" = "$day_total" ] || {
            echo "$plan: the day's rows add up to $day minutes, but its Total row says $day_total" >&2
            return 1
        }
        [ "$day" -eq 360 ] || {
            echo "$plan: the day adds up to $day minutes, not 360 (six hours)" >&2
            return 1
        }
        [ "$lines" = "$lines_total" ] || {
            echo "$plan: the rows add up to $lines lines, but the Total row says $lines_total" >&2
            return 1
        }
    done
}

@test "the plans' minutes are the parts', and their lines are the steps' (within 15%)" {
    cd "$top"
    local table row stage number part name lines minutes counted previous
    local -A part_lines=()
    local checked=()
    for table in 1 2; do
        while IFS= read -r row; do
            IFS='|' read -r _ stage lines minutes _ <<<"$row"
            read -r stage <<<"$stage" # trims its spaces
            read -r lines <<<"$lines"
            read -r minutes <<<"$minutes"
            if [[ $stage =~ ^([01][0-9])\ part\ ([0-9]),\ ([a-z-]+)(,.*)?$ ]]; then
                number=${BASH_REMATCH[1]} part=${BASH_REMATCH[2]} name=${BASH_REMATCH[3]}
                [ -n "${part_lines[$number]:-}" ] || part_lines[$number]=$(tests/workshop/part-lines "$number")
                counted=$(awk -v n="$part" '$1 == n { print $3 }' <<<"${part_lines[$number]}")
                grep -q "^$number	$part	$name	$minutes	" tests/workshop/parts || {
                    echo "'$stage': $minutes minutes in the plan, not in tests/workshop/parts" >&2
                    return 1
                }
            elif [[ $stage =~ ^[01][0-9]\ [a-z]+$ ]] && [ -d "steps/${stage/ /-}" ]; then
                number=${stage%% *}
                previous=$(step_before "$number")
                if [ -z "$previous" ]; then
                    previous=$BATS_TEST_TMPDIR/skeleton
                    tests/apply-patch "steps/${stage/ /-}" tests/workshop/skeleton.diff "$previous"
                else
                    previous=$(tests/steps --folder "$previous")
                fi
                counted=$(added_lines "$previous" "steps/${stage/ /-}")
            elif [[ $stage =~ ^[01][0-9] ]]; then
                echo "'$stage': a row of the plan that names no stage (as steps/ does) nor part the test knows" >&2
                return 1
            else
                continue
            fi
            # Part I is stages 01 to 06; Part II, 07 on.
            if { [ "$table" = 1 ] && ((10#$number > 6)); } || { [ "$table" = 2 ] && ((10#$number <= 6)); }; then
                echo "'$stage' is in Part $([ "$table" = 1 ] && echo "I's plan, not Part II's" || echo "II's plan, not Part I's")" >&2
                return 1
            fi
            checked+=("$stage")
            ((lines * 100 >= counted * 85 && lines * 100 <= counted * 115)) || {
                echo "'$stage': $lines lines in the plan, but the step adds $counted: update the plan in README.md and book/00-introduction.md" >&2
                return 1
            }
        done < <(plan_rows README.md "$table")
    done
    # Once each: a row for each stage of steps/list, or one for each of its
    # parts (tests/workshop/parts).
    local twice expected
    twice=$(printf '%s\n' "${checked[@]}" | sort | uniq -d)
    [ -z "$twice" ] || {
        echo "rows that the plans give twice: $twice" >&2
        return 1
    }
    expected=$(($(tests/steps | wc -w) +
        $(grep -c '^[01][0-9]	' tests/workshop/parts) - $(cut -f1 tests/workshop/parts | grep '^[01][0-9]' | sort -u | wc -l)))
    [ "${#checked[@]}" -eq "$expected" ] || {
        echo "the plans have ${#checked[@]} rows of stages and parts; the steps and tests/workshop/parts make $expected" >&2
        return 1
    }
}

@test "tests/check --part: a part that does not exist, or a step without parts, is a usage error" {
    run "$top/tests/check" 05 "$top/step05" --part nothing
    [ "$status" -eq 2 ]
    [[ $output == *"its parts are: 1=head 2=request-line 3=target 4=fields 5=body"* ]]
    [[ $output == *"usage: tests/check STEP [SERVER] [--part PART]"* ]]
    PART=1 run "$top/tests/check" 04 "$top/step04"
    [ "$status" -eq 2 ]
    [[ $output == *"step 04 has no parts"* ]]
    run make -s -C "$top" check STEP=05 PART=9
    [ "$status" -ne 0 ]
    [[ $output == *"step 05 has no part '9'"* ]]
}
