"""Under CI=true a real part that cannot be reached fails the run; elsewhere it is skipped with the reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ci

ROOT = Path(__file__).resolve().parents[2]
DEAD_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:1/postgres"


@pytest.mark.parametrize(("value", "fails"), [("true", True), ("1", True), ("yes", True), ("", False),
                                               ("false", False)])
def test_unavailable_fails_under_ci_and_skips_elsewhere(monkeypatch, value, fails):
    monkeypatch.setenv("CI", value)
    expected = pytest.fail.Exception if fails else pytest.skip.Exception
    with pytest.raises(expected, match="Redis is gone"):
        ci.unavailable("Redis is gone")


def _pytest_without_postgres(ci_value: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, CI=ci_value, PG_TEST_ADMIN_URL=DEAD_POSTGRES)
    env.pop("PYTEST_ADDOPTS", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfEs",
                           "tests/unit/test_auth.py::test_pages_need_login"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)


def test_a_run_without_postgresql_fails_under_ci():
    """The attack on the suite: CI=true with PostgreSQL unreachable must not exit 0 with the half skipped."""
    result = _pytest_without_postgres("true")
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    assert result.stdout.strip().splitlines()[-1].startswith("1 passed, 1 error"), out
    assert "PostgreSQL not reachable" in out and "CI is set" in out, out


def test_a_run_without_postgresql_skips_with_the_reason_outside_ci():
    result = _pytest_without_postgres("")
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert result.stdout.strip().splitlines()[-1].startswith("1 passed, 1 skipped"), out
    assert "PostgreSQL not reachable" in out, out
