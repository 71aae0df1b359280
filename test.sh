#!/usr/bin/env bash
# Runs the test suite: ./test.sh [pytest args]. Without a test path it runs everything under tests/.
# Creates .venv on first use (scripts/bootstrap.sh). Exits non-zero on any failure, including
# "no tests collected".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
scripts/bootstrap.sh --require-browser

names_a_path() {
    local arg
    for arg in "$@"; do
        [[ "$arg" != -* && -e "${arg%%::*}" ]] && return 0
    done
    return 1
}

targets=(tests)
names_a_path "$@" && targets=()

status=0
.venv/bin/python -m pytest "${targets[@]}" "$@" || status=$?
if [[ $status == 5 ]]; then
    echo "test.sh: ERROR: pytest collected no tests (exit code 5); check the test paths and -k/-m expressions." >&2
fi
exit $status
