"""The one Redis connection helper of the app, and Redis addresses in words for people."""

from __future__ import annotations

from urllib.parse import urlsplit

import redis
from flask import Flask, current_app

# Seconds to connect, and (for every client but a worker's) to wait for an answer: a dead Redis makes a
# page or a scan say so in plain words instead of hanging.
REDIS_TIMEOUT = 5.0


def redis_connection(app: Flask | None = None, *, blocking: bool = False) -> redis.Redis:
    """A Redis client for the app's ``REDIS_URL``; one pool is kept per app, URL and kind.

    ``blocking=True`` is for an RQ worker, which waits on the queue for long periods by design: its
    client has no read timeout. Every other client gives up after ``REDIS_TIMEOUT`` seconds.
    """
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    url = app.config["REDIS_URL"]
    pools = app.extensions.setdefault("redis", {})
    conn = pools.get((url, blocking))
    if conn is None:
        conn = redis.Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT,
                                    socket_timeout=None if blocking else REDIS_TIMEOUT)
        pools[(url, blocking)] = conn
    return conn


def redis_location(url: str | None) -> str:
    """host:port/db of a Redis URL, without any password, for messages."""
    try:
        parts = urlsplit(url or "")
        return f"{parts.hostname or 'localhost'}:{parts.port or 6379}{parts.path or ''}"
    except ValueError:
        return "the configured address"


def unreachable_message(url: str | None) -> str:
    """The plain-words sentence shown when Redis does not answer."""
    return (f"Redis at {redis_location(url)} is not reachable, so the queues cannot be shown and scans "
            "cannot be queued. Start Redis (scripts/services.sh starts a local one) or correct REDIS_URL, "
            "then reload this page.")
