"""Several watchers share the scanners through Redis: heartbeats, rendezvous hashing and leases.

- Each watcher heartbeats into one sorted set (``cm:watch:watchers``, member = watcher id,
  score = when its heartbeat runs out). A watcher whose score passed is dead.
- A scanner belongs to the live watcher with the highest weight ``hash(watcher, scanner)``
  (rendezvous or highest-random-weight hashing): adding a watcher moves only the scanners it
  now wins, removing one moves only its own.
- Before connecting, a watcher takes the scanner's lease (``SET NX PX``) and renews it on every
  heartbeat; it drops the lease (and the connection) only when the scanner moved away. A dead
  watcher's leases run out, and the new owners take them.

These functions are synchronous (redis-py); the watcher calls them in a thread.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterable

import redis

PREFIX = "cm:watch"
WATCHERS = f"{PREFIX}:watchers"

# Release only our own lease.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"
# Every lease of a watcher in one call: the first ARGV[3] keys are taken (when free) or renewed (when
# ours), the others released (when ours). Returns 1 for each key held afterwards, else 0.
_SYNC = """
local out, me, ms, wanted = {}, ARGV[1], ARGV[2], tonumber(ARGV[3])
for i, key in ipairs(KEYS) do
  local holder = redis.call('get', key)
  if i <= wanted then
    if not holder then
      redis.call('set', key, me, 'PX', ms)
      out[i] = 1
    elseif holder == me then
      redis.call('pexpire', key, ms)
      out[i] = 1
    else
      out[i] = 0
    end
  else
    if holder == me then redis.call('del', key) end
    out[i] = 0
  end
end
return out
"""


def lease_key(account_id: int) -> str:
    """The Redis key of a scanner's watch lease (its value: the holding watcher's id)."""
    return f"{PREFIX}:lease:{int(account_id)}"


def heartbeat(conn: redis.Redis, watcher_id: str, ttl: float) -> list[str]:
    """Say this watcher lives for ``ttl`` more seconds; returns the ids of every live watcher."""
    now = time.time()
    pipe = conn.pipeline()
    pipe.zadd(WATCHERS, {watcher_id: now + ttl})
    pipe.zremrangebyscore(WATCHERS, "-inf", now)
    pipe.zrange(WATCHERS, 0, -1)
    return sorted(w.decode() if isinstance(w, bytes) else w for w in pipe.execute()[2])


def live_watchers(conn: redis.Redis) -> list[str]:
    """The ids of the watchers whose heartbeat has not run out."""
    found: list = conn.zrangebyscore(WATCHERS, time.time(), "+inf")
    return sorted(w.decode() if isinstance(w, bytes) else str(w) for w in found)


def leave(conn: redis.Redis, watcher_id: str, held: Iterable[int]) -> None:
    """A watcher stopping: its heartbeat and its leases go at once, so others take over now."""
    release = conn.register_script(_RELEASE)
    pipe = conn.pipeline()
    pipe.zrem(WATCHERS, watcher_id)
    for account_id in held:
        release(keys=[lease_key(account_id)], args=[watcher_id], client=pipe)
    pipe.execute()


def weight(watcher_id: str, account_id: int) -> int:
    """The rendezvous weight of a (watcher, scanner) pair: stable across processes and hosts."""
    digest = hashlib.blake2b(f"{watcher_id}|{account_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def owner(account_id: int, watchers: Iterable[str]) -> str | None:
    """The live watcher a scanner belongs to, or None when no watcher lives."""
    return max(watchers, key=lambda w: weight(w, account_id), default=None)


def sync_leases(conn: redis.Redis, watcher_id: str, wanted: Iterable[int], held: Iterable[int],
                ttl: float) -> set[int]:
    """Take or renew the leases of ``wanted``, release those of ``held`` no longer wanted (one Redis call).

    Returns the scanners whose lease this watcher holds now. A lease another watcher still holds
    (it has not let go yet, or died and its lease has not run out) is not taken.
    """
    wanted = sorted(set(wanted))
    dropped = sorted(set(held) - set(wanted))
    if not wanted and not dropped:
        return set()
    keys = [lease_key(a) for a in (*wanted, *dropped)]
    results = conn.register_script(_SYNC)(keys=keys, args=[watcher_id, max(1, int(ttl * 1000)), len(wanted)])
    return {account_id for account_id, got in zip(wanted, results, strict=False) if got}


def lease_holders(conn: redis.Redis, account_ids: Iterable[int]) -> dict[int, str]:
    """Which watcher holds the lease of each of ``account_ids`` (scanners without one are left out)."""
    ids = list(account_ids)
    if not ids:
        return {}
    values = conn.mget([lease_key(a) for a in ids])
    return {a: (v.decode() if isinstance(v, bytes) else v) for a, v in zip(ids, values, strict=True) if v}
