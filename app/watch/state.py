"""Each scanner's watch state in Redis, for the operators' page and for the schedule.

Each watcher keeps one Redis hash (``cm:watch:states:<watcher id>``): a small JSON record per
scanner it holds, written when the state changes; the hash's time to live is renewed on every
heartbeat, so a watcher killed with SIGKILL leaves nothing behind for long. A scanner's state is
read from the watcher holding its lease. The states:

- ``idle``: an IDLE connection per folder (folders beyond the connection cap are polled over them);
- ``notify``: one NOTIFY connection for all the scanner's folders;
- ``polling``: the server offers neither, so a kept-open connection asks STATUS at the check
  frequency;
- ``connecting`` / ``reconnecting`` (with the reason): no working connection right now;
- ``off``: no record, no watcher holds the scanner (the schedule polls it).

The schedule treats a scanner as watched only in the first three states; a scanner whose watch
cannot connect is polled at the check frequency as if no watcher existed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis

from app.watch.leases import PREFIX, lease_holders

WATCHING = ("idle", "notify", "polling")
STATES = (*WATCHING, "connecting", "reconnecting", "off")


def states_key(watcher_id: str) -> str:
    """The Redis hash of one watcher's scanners (field: scanner id, value: its state as JSON)."""
    return f"{PREFIX}:states:{watcher_id}"


@dataclass
class WatchState:
    """What a watcher says about one scanner; times are Unix seconds."""

    state: str
    watcher: str
    reason: str | None = None
    connected_at: float | None = None
    last_event_at: float | None = None
    updated_at: float = 0.0  # when the state last changed
    connections: int = 0
    uidnext: dict[str, int] = field(default_factory=dict)  # folder → UIDNEXT the watcher saw last

    @property
    def watching(self) -> bool:
        return self.state in WATCHING

    def when(self, name: str) -> datetime | None:
        """``connected_at``, ``last_event_at`` or ``updated_at`` as a naive UTC datetime, for pages."""
        value = getattr(self, name)
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))


def write_states(conn: redis.Redis, watcher_id: str, changed: Mapping[int, str], removed: Iterable[int],
                 ttl: float) -> bool:
    """Write a watcher's changed states (JSON by scanner), drop the removed ones, keep the rest alive.

    Returns False when the watcher's hash had vanished (Redis restarted, or it ran out): the
    caller writes every state again.
    """
    key = states_key(watcher_id)
    pipe = conn.pipeline()
    if changed:
        pipe.hset(key, mapping={str(a): v for a, v in changed.items()})
    gone = [str(a) for a in removed]
    if gone:
        pipe.hdel(key, *gone)
    pipe.expire(key, max(1, int(ttl)))
    return bool(pipe.execute()[-1])


def clear_watcher(conn: redis.Redis, watcher_id: str) -> None:
    """Forget every state of a watcher that stops."""
    conn.delete(states_key(watcher_id))


def read_states(conn: redis.Redis, account_ids: Iterable[int]) -> dict[int, WatchState]:
    """The watch states of ``account_ids`` that have one (the others are "off").

    A scanner's state is read from the watcher that holds its lease.
    """
    by_watcher: dict[str, list[int]] = {}
    for account_id, watcher_id in lease_holders(conn, account_ids).items():
        by_watcher.setdefault(watcher_id, []).append(account_id)
    if not by_watcher:
        return {}
    pipe = conn.pipeline(transaction=False)
    for watcher_id, ids in by_watcher.items():
        pipe.hmget(states_key(watcher_id), [str(a) for a in ids])
    found = {}
    for (_watcher_id, ids), values in zip(by_watcher.items(), pipe.execute(), strict=True):
        for account_id, raw in zip(ids, values, strict=True):
            if raw:
                try:
                    found[account_id] = WatchState(**json.loads(raw))
                except (TypeError, ValueError):
                    continue  # written by another version: treated as off until rewritten
    return found


def watched_ids(conn: redis.Redis, account_ids: Iterable[int]) -> set[int]:
    """The scanners among ``account_ids`` that a live watcher watches (IDLE, NOTIFY or polling)."""
    return {a for a, state in read_states(conn, account_ids).items() if state.watching}
