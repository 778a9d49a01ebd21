"""Fixtures for the fault tests: the shared real services, plus private ones a test may break."""

from __future__ import annotations

import pytest

from tests.ci import unavailable
from tests.faults.private_dovecot import PrivateDovecot
from tests.faults.redis_server import RedisServer
from tests.services import dovecot, redis_url  # noqa: F401  (pytest fixtures)


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own on a free port (no persistence), stopped at the end."""
    server = RedisServer(tmp_path / "redis")
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"cannot start a private redis-server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def private_dovecot(dovecot):  # noqa: F811  (the shared one must run: its config is the template)
    """A Dovecot of this module's own on a free port, removed at the end."""
    instance = PrivateDovecot()
    try:
        instance.start()
    except Exception as exc:
        instance.remove()
        unavailable(f"cannot start a private Dovecot: {exc}")
    yield instance
    instance.remove()
