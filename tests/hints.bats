#!/usr/bin/env bats
# The hints in the steps' tests send a reader to a section of the book:
# every section they name must exist, word for word, in that chapter. That
# holds for the hints written out, for those whose section is built in a
# variable (section='...', then "section '$section'"), and for the parts'
# sections (tests/workshop/parts), which teardown names for a test that
# failed without a hint of its own. A hint names a section as the book
# shows it, without markdown's escapes: 'OPTIONS *' for ### OPTIONS \*.

setup() {
    cd "$BATS_TEST_DIRNAME/.." || exit 1
}

# Every hint: CHAPTER<tab>SECTION, one a line. A section built in a
# variable counts with each value the file gives that variable.
#   hints FILE...
hints() {
    local file
    for file in "$@"; do
        grep -Eoh "book/[0-9a-z-]+\.md, section '[^']+'" "$file" | grep -v '[$]' |
            sed "s/, section '/\t/; s/'\$//"
        # section='...' or section="book/NN.md, section '...'" in the same file
        grep -Eo "book/[0-9a-z-]+\.md, section '[$][{]?[a-z_]+" "$file" | while read -r hint; do
            local chapter=${hint%%, *} variable=${hint##*\'}
            variable=${variable#\$}
            variable=${variable#\{}
            grep -Eo "(local )?$variable='[^']+'" "$file" | sed "s/.*$variable='//; s/'\$//" |
                sed "s|^|$chapter\t|"
        done
    done
}

# The parts' sections (tests/workshop/parts), as CHAPTER<tab>SECTION.
part_sections() {
    awk -F'\t' '!/^#/ && NF >= 5 { print $1 "\t" $5 }' tests/workshop/parts |
        while IFS=$'\t' read -r step section; do
            # The chapter named as the step's tests are: book/09-epoll.md
            # for tests/09-epoll.bats.
            printf '%s\t%s\n' "book/$(basename tests/"$step"-*.bats .bats).md" "$section"
        done
}

@test "every hint in the tests names a section that the book has" {
    local missing='' chapter section count=0
    while IFS=$'\t' read -r chapter section; do
        count=$((count + 1))
        # A heading as the reader sees it: markdown's escapes (### OPTIONS \*) dropped.
        grep -Fxq -e "## $section" -e "### $section" <(sed 's/\\\(.\)/\1/g' "$chapter" 2>/dev/null) ||
            missing+="    $chapter: '$section'"$'\n'
    done < <({ hints tests/[0-9]*.bats tests/answers.bats tests/*.bash; part_sections; } | sort -u)
    [ "$count" -gt 20 ] || { echo "found only $count hints: has their form changed?" >&2; return 1; }
    [ -z "$missing" ] || {
        printf 'these hints name sections that the book does not have:\n%s' "$missing" >&2
        return 1
    }
}

@test "a hint whose section is in a variable is checked too" {
    local file=$BATS_TEST_TMPDIR/09-fake.bats
    # shellcheck disable=SC2016 # the $ is the point: a test's own source
    printf '%s\n' "    local section='No such section'" \
        '        fail_because a b c "book/05-parse.md, section '"'"'$section'"'"'"' >"$file"
    run hints "$file"
    [ "$output" = "book/05-parse.md	No such section" ] || { echo "got: '$output'" >&2; return 1; }
}
