"""Fixtures for tests that need the real services (see tests/services.py)."""

import re

import pytest
import redis

from tests.services import dovecot, redis_url, smtp_sink  # noqa: F401  (pytest fixtures)

# The queue tests use their own Redis database, emptied before and after, so they never touch the
# queues of a worker running on the shared database 0.
QUEUE_TEST_DB = 14


@pytest.fixture
def queue_redis(app, redis_url, monkeypatch):  # noqa: F811  (redis_url is the fixture imported above)
    """The app in redis mode on a private, empty Redis database; yields that connection."""
    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{QUEUE_TEST_DB}"
    monkeypatch.setitem(app.config, "QUEUE_MODE", "redis")
    monkeypatch.setitem(app.config, "REDIS_URL", url)
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()
