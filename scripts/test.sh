#!/usr/bin/env bash
# The test command of the README: installs what is missing (with the test and development tools),
# starts the real services, runs the static checks, then the pytest suite (unit, integration and
# browser tests).
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/unit -x   # arguments go to pytest
# Exit code: pytest's when pytest fails; otherwise 1 when a static check failed. Every static check
# and pytest run whatever the others found, so one run shows every problem.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

FAILED_CHECKS=()

check() { # command... -> run one static check; a failure is remembered, not fatal
    say "== $*"
    "$@" || FAILED_CHECKS+=("$*")
}

static_checks() {
    check .venv/bin/ruff check .
    check .venv/bin/shellcheck scripts/*.sh .ci/run
    check .venv/bin/lint-imports
    check .venv/bin/mypy
}

scripts/install.sh --dev
scripts/services.sh start all

REDIS_URL="$(cat .state/redis.url)"
export REDIS_URL
# The PostgreSQL half of the suite uses the server services.sh found or started.
if [[ -z "${PG_TEST_ADMIN_URL:-}" && -s .state/postgres.url ]]; then
    PG_TEST_ADMIN_URL="$(cat .state/postgres.url)"
    export PG_TEST_ADMIN_URL
fi

static_checks

say "== pytest $*"
pytest_rc=0
# A hung test fails after CM_TEST_TIMEOUT seconds (with its stack) instead of stalling CI.
.venv/bin/pytest --timeout="${CM_TEST_TIMEOUT:-300}" "$@" </dev/null || pytest_rc=$?

if (( ${#FAILED_CHECKS[@]} )); then
    printf 'static check failed (see above): %s\n' "${FAILED_CHECKS[@]}" >&2
fi
if (( pytest_rc != 0 )); then
    exit "$pytest_rc"
fi
if (( ${#FAILED_CHECKS[@]} )); then
    exit 1
fi
