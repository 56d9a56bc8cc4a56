#!/usr/bin/env bats
# The hints in the steps' tests send a reader to a section of the book:
# every section they name must exist, word for word, in that chapter.

@test "every hint in tests/0N-*.bats names a section that the book has" {
    cd "$BATS_TEST_DIRNAME/.."
    local missing='' chapter section count=0
    while IFS=$'\t' read -r chapter section; do
        count=$((count + 1))
        grep -Fxq -e "## $section" -e "### $section" "$chapter" 2>/dev/null ||
            missing+="    $chapter: '$section'"$'\n'
    done < <(grep -Eoh "book/[0-9a-z-]+\.md, section '[^']+'" tests/0*.bats tests/answers.bats |
        grep -v '[$]' | sed "s/, section '/\t/; s/'\$//" | sort -u)
    [ "$count" -gt 20 ] || { echo "found only $count hints: has their form changed?" >&2; return 1; }
    [ -z "$missing" ] || {
        printf 'these hints name sections that the book does not have:\n%s' "$missing" >&2
        return 1
    }
}
