"""Each scanner's watch state in Redis, for the operators' page and for the schedule.

The watcher writes one small JSON record per watched scanner (``cm:watch:state:<id>``) on every
heartbeat, with a time to live of a few heartbeats: a watcher killed with SIGKILL leaves nothing
behind for long. The states:

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
import time
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

import redis

from app.watch.leases import PREFIX

WATCHING = ("idle", "notify", "polling")
STATES = (*WATCHING, "connecting", "reconnecting", "off")


def state_key(account_id: int) -> str:
    """The Redis key of a scanner's watch state."""
    return f"{PREFIX}:state:{int(account_id)}"


@dataclass
class WatchState:
    """What a watcher says about one scanner; times are Unix seconds."""

    state: str
    watcher: str
    reason: str | None = None
    connected_at: float | None = None
    last_event_at: float | None = None
    updated_at: float = 0.0
    connections: int = 0
    uidnext: dict[str, int] = field(default_factory=dict)  # folder → UIDNEXT the watcher saw last

    @property
    def watching(self) -> bool:
        return self.state in WATCHING

    def when(self, name: str) -> datetime | None:
        """``connected_at``, ``last_event_at`` or ``updated_at`` as a naive UTC datetime, for pages."""
        value = getattr(self, name)
        return datetime.fromtimestamp(value, UTC).replace(tzinfo=None) if value else None


def write_states(conn: redis.Redis, states: Mapping[int, WatchState], ttl: float) -> None:
    """Write (and keep alive for ``ttl`` seconds) the states of a watcher's scanners."""
    if not states:
        return
    now = time.time()
    pipe = conn.pipeline(transaction=False)
    for account_id, state in states.items():
        state.updated_at = now
        pipe.set(state_key(account_id), json.dumps(asdict(state), separators=(",", ":")), ex=max(1, int(ttl)))
    pipe.execute()


def clear_states(conn: redis.Redis, account_ids: Iterable[int]) -> None:
    """Forget the states of scanners this watcher no longer watches."""
    keys = [state_key(a) for a in account_ids]
    if keys:
        conn.delete(*keys)


def read_states(conn: redis.Redis, account_ids: Iterable[int]) -> dict[int, WatchState]:
    """The watch states of ``account_ids`` that have one (the others are "off")."""
    ids = list(account_ids)
    if not ids:
        return {}
    found = {}
    for account_id, raw in zip(ids, conn.mget([state_key(a) for a in ids]), strict=True):
        if raw:
            try:
                found[account_id] = WatchState(**json.loads(raw))
            except (TypeError, ValueError):
                continue  # written by another version: treated as off until rewritten
    return found


def watched_ids(conn: redis.Redis, account_ids: Iterable[int]) -> set[int]:
    """The scanners among ``account_ids`` that a live watcher watches (IDLE, NOTIFY or polling)."""
    return {a for a, state in read_states(conn, account_ids).items() if state.watching}
