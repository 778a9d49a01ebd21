"""The watchers' figures in Redis, read by ``/metrics``: connections, reconnects, events, latency.

Each watcher writes its own counters (``cm:watch:figures:<watcher id>``) on every heartbeat,
with a time to live, so the web process reads them without talking to a watcher. The delivery
latency (from the watcher's event to the run that stored the message) is a cumulative histogram
in one hash (``cm:watch:latency``), added to by the scan job when a run started for a watcher's
event ends having read mail.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import redis

from app.watch.leases import PREFIX, live_watchers

LATENCY_KEY = f"{PREFIX}:latency"
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
# The job meta key holding the Unix time of the watcher's event that asked for the scan.
EVENT_META = "event_at"


def figures_key(watcher_id: str) -> str:
    """The Redis key of one watcher's counters."""
    return f"{PREFIX}:figures:{watcher_id}"


def write_figures(conn: redis.Redis, watcher_id: str, figures: Mapping[str, object], ttl: float) -> None:
    """Publish a watcher's counters for ``ttl`` seconds."""
    conn.set(figures_key(watcher_id), json.dumps(dict(figures)), ex=max(1, int(ttl)))


def read_figures(conn: redis.Redis) -> dict[str, dict]:
    """The counters of every live watcher, by watcher id."""
    ids = live_watchers(conn)
    if not ids:
        return {}
    values = conn.mget([figures_key(w) for w in ids])
    return {w: json.loads(v) for w, v in zip(ids, values, strict=True) if v}


def record_latency(conn: redis.Redis, seconds: float) -> None:
    """Add one delivery latency to the histogram."""
    seconds = max(0.0, float(seconds))
    pipe = conn.pipeline()
    for bound in LATENCY_BUCKETS:
        if seconds <= bound:
            pipe.hincrby(LATENCY_KEY, f"le:{bound}", 1)
    pipe.hincrby(LATENCY_KEY, "count", 1)
    pipe.hincrbyfloat(LATENCY_KEY, "sum", seconds)
    pipe.execute()


def read_latency(conn: redis.Redis) -> tuple[list[tuple[float, int]], int, float]:
    """(cumulative buckets as (bound, count), total count, sum of seconds) of the delivery latency."""
    raw = {(k.decode() if isinstance(k, bytes) else k): v for k, v in conn.hgetall(LATENCY_KEY).items()}
    buckets = [(bound, int(raw.get(f"le:{bound}", 0))) for bound in LATENCY_BUCKETS]
    return buckets, int(raw.get("count", 0)), float(raw.get("sum", 0.0))
