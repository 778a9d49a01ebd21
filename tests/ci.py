"""What a test does when a real part it needs cannot be started or reached.

On a developer's machine it skips, with the reason in pytest's summary. Under
``CI=true`` (``.ci/run``, where scripts/install.sh installed everything) it
fails with that reason instead: a green CI run must never hide a skipped half
of the suite (PostgreSQL, Dovecot, Redis, the OAuth stack, Roundcube, PHP,
Chromium).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the CI environment variable says so ("1", "true" or "yes")."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def unavailable(reason: str) -> NoReturn:
    """Skip the test with ``reason``; under CI, fail it with that reason."""
    if in_ci():
        pytest.fail(f"{reason} (CI is set: every real part must run, none may be skipped)", pytrace=False)
    pytest.skip(reason)
