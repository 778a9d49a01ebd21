#!/usr/bin/env bash
# The test command of the README: installs what is missing, starts the real services,
# then runs ruff and the whole pytest suite (unit, integration and browser tests).
#   scripts/test.sh                 # everything
#   scripts/test.sh tests/unit -x   # arguments go to pytest
# Exit code: pytest's; a ruff failure fails the run too.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

scripts/install.sh
scripts/services.sh start all

REDIS_URL="$(cat .state/redis.url)"
export REDIS_URL
# The PostgreSQL half of the suite uses the server services.sh found or started.
if [[ -z "${PG_TEST_ADMIN_URL:-}" && -s .state/postgres.url ]]; then
    PG_TEST_ADMIN_URL="$(cat .state/postgres.url)"
    export PG_TEST_ADMIN_URL
fi

ruff_rc=0
echo "== ruff check ."
.venv/bin/ruff check . || ruff_rc=$?

echo "== pytest $*"
pytest_rc=0
# A hung test fails after CM_TEST_TIMEOUT seconds (with its stack) instead of stalling CI.
.venv/bin/pytest --timeout="${CM_TEST_TIMEOUT:-300}" "$@" </dev/null || pytest_rc=$?

if (( pytest_rc != 0 )); then
    exit "$pytest_rc"
fi
if (( ruff_rc != 0 )); then
    echo "ruff found problems (see above): failing the run" >&2
    exit "$ruff_rc"
fi
