# Which valgrind make memcheck runs, for tests/memcheck, tests/valgrind-server
# and tests/install-valgrind (sourced, not run).
#
# Steps 11 and 12 call openat2(2), which valgrind knows from 3.21.0 on.
# choose_valgrind takes the system's valgrind if it is 3.21 or later, else
# the one tests/install-valgrind put into build/valgrind/ (Debian 13's, run
# from there with VALGRIND_LIB), else the system's older one, which runs
# steps 01 to 09 only.

# The oldest valgrind that knows openat2(2).
VALGRIND_OPENAT2=3.21.0

# Prints the version of a valgrind binary (and any environment before it,
# as env arguments): 3.24.0.
valgrind_version() {
    env "$@" --version 2>/dev/null | sed -n 's/^valgrind-\([0-9][0-9.]*\).*/\1/p'
}

# Succeeds if VERSION is VALGRIND_OPENAT2 or later.
valgrind_is_new() {
    [ -n "$1" ] &&
        [ "$(printf '%s\n%s\n' "$VALGRIND_OPENAT2" "$1" | sort -V | head -n 1)" = "$VALGRIND_OPENAT2" ]
}

# Sets valgrind (an array: the command, to which valgrind's options are
# added), valgrind_version and valgrind_where (the system's, or
# build/valgrind/); all empty when there is no valgrind at all.
# shellcheck disable=SC2034 # the scripts that source this file read them
choose_valgrind() {
    local top local_bin system_version=
    top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    local_bin=$top/build/valgrind/usr/bin/valgrind.bin
    valgrind=()
    valgrind_version=
    valgrind_where=
    if command -v valgrind >/dev/null; then
        system_version=$(valgrind_version valgrind)
        if valgrind_is_new "$system_version"; then
            valgrind=(valgrind)
            valgrind_version=$system_version
            valgrind_where="the system's"
            return
        fi
    fi
    if [ -x "$local_bin" ]; then
        valgrind=(env "VALGRIND_LIB=$top/build/valgrind/usr/libexec/valgrind" "$local_bin")
        valgrind_version=$(valgrind_version "${valgrind[@]:1}")
        valgrind_where="build/valgrind/, from tests/install-valgrind"
    elif [ -n "$system_version" ]; then
        valgrind=(valgrind)
        valgrind_version=$system_version
        valgrind_where="the system's"
    fi
}
