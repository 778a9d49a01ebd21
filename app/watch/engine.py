"""The watcher: which scanners this process watches, and the loops that keep that true.

Three loops share one asyncio event loop with every ``MailboxWatch``:

- *refresh* reads the scanners from the database every ``refresh`` seconds (in a thread): a
  scanner added, changed, disabled or deleted is picked up within seconds, without a restart.
  The database down: the watches go on as they are.
- *leases* heartbeats in Redis, works out this watcher's share of the scanners (rendezvous
  hashing over the live watchers), takes or renews their leases, and writes the watch states and
  this watcher's figures. Redis down: the watches and the leases stay as they are.
- *outbox* enqueues the scans the watches ask for (``app.jobqueue.jobs.submit_scan_job``, in a
  thread). Redis down: the scans owed are kept, one per scanner with its first event's time,
  and enqueued once Redis answers. A scan that is already running when mail comes may have
  looked before the mail: it is asked for again until a new job is queued behind it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterable

from flask import Flask
from redis.exceptions import RedisError

from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.watch import leases, state, telemetry
from app.watch.mailbox import MailboxWatch
from app.watch.settings import WatchSettings
from app.watch.state import WatchState
from app.watch.targets import Rows, WatchTarget, build_targets, read_rows

logger = logging.getLogger(__name__)

TRIGGER = "watch"  # the trigger recorded on the runs a watcher asks for


def new_watcher_id() -> str:
    """``host:pid:random``: unique among live watchers, and says where a watcher runs."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(2)}"


class Watcher:
    """One watcher process's share of the scanners."""

    def __init__(self, app: Flask, settings: WatchSettings | None = None, watcher_id: str | None = None) -> None:
        self.app = app
        self.settings = settings or WatchSettings.from_app(app)
        self.id = watcher_id or new_watcher_id()
        self.targets: dict[int, WatchTarget] = {}
        self.poll_seconds = 300.0
        self.watches: dict[int, MailboxWatch] = {}
        self.held: set[int] = set()
        self.states: dict[int, WatchState] = {}
        self._dirty: set[int] = set()  # states changed since they were last written to Redis
        self._written: set[int] = set()  # states Redis holds for this watcher
        self.live: list[str] | None = None
        self.redis_up = True
        self.connections = self.reconnects = self.events = self.enqueued = 0
        self.owed: dict[int, float] = {}  # scanner → Unix time of the first event not yet enqueued
        self.connect_slots = asyncio.Semaphore(self.settings.connect_at_once)
        self._leases_due = asyncio.Event()
        self._owed_added = asyncio.Event()
        self.loaded = asyncio.Event()  # the scanners were read at least once
        self._rows: Rows | None = None
        self._reconciling = asyncio.Lock()  # the refresh and the lease loops both reconcile

    # ------------------------------------------------------------------ what the watches tell us

    def report(self, account_id: int, name: str, *, reason: str | None = None, connected: bool = False,
               connections: int | None = None) -> None:
        """A watch's state changed."""
        old = self.states.get(account_id)
        record = WatchState(state=name, watcher=self.id, reason=reason,
                            last_event_at=old.last_event_at if old else None,
                            connected_at=time.time() if connected else None,
                            updated_at=time.time(), connections=connections or 0)
        self.states[account_id] = record
        self._dirty.add(account_id)

    def new_mail(self, account_id: int, folder: str) -> None:
        """A watch saw new mail: owe a scan of its scanner."""
        now = time.time()
        self.events += 1
        self.owed.setdefault(account_id, now)
        record = self.states.get(account_id)
        if record is not None:
            record.last_event_at = now
            self._dirty.add(account_id)
        logger.info("new mail in %s of scanner %s", folder, account_id)
        self._owed_added.set()

    def reconnected(self, account_id: int) -> None:
        """A watch lost its connection and will connect again."""
        self.reconnects += 1

    # ------------------------------------------------------------------ running

    async def run(self, stop: asyncio.Event) -> None:
        """Watch until ``stop`` is set; then log out everywhere and hand the scanners back."""
        loops = [asyncio.create_task(coro, name=name) for name, coro in (
            ("refresh", self._refresh_loop()), ("leases", self._lease_loop()), ("outbox", self._outbox_loop()))]
        try:
            await stop.wait()
        finally:
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self._stop_watches(list(self.watches))
            await self._flush_owed()
            try:
                await asyncio.to_thread(self._leave, set(self.held))
            except RedisError:
                logger.warning("could not hand the scanners back (Redis unreachable); their leases run out")

    async def _refresh_loop(self) -> None:
        while True:
            try:
                rows = await asyncio.to_thread(read_rows, self.app)
            except Exception:  # the database down: keep watching what we watch
                logger.warning("could not read the scanners; the watches go on as they are", exc_info=True)
            else:
                if rows == self._rows:
                    await asyncio.sleep(self.settings.refresh)
                    continue
                self._rows = rows
                found = build_targets(rows, self.settings.poll_override)
                changed = {a for a in found.by_id.keys() | self.targets.keys()
                           if (a in found.by_id) != (a in self.targets)
                           or (a in found.by_id and found.by_id[a].fingerprint != self.targets[a].fingerprint)}
                self.targets, self.poll_seconds = found.by_id, found.poll_seconds
                self.loaded.set()
                if changed:
                    self._leases_due.set()
                await self._reconcile()
            await asyncio.sleep(self.settings.refresh)

    async def _lease_loop(self) -> None:
        await self.loaded.wait()
        while True:
            self._leases_due.clear()
            changed = {a: self._state_json(a) for a in self._dirty & self.held}
            self._dirty -= changed.keys()  # a state that changes while Redis is written is dirty again
            try:
                self.live, held, kept = await asyncio.to_thread(self._redis_tick, set(self.targets), set(self.held),
                                                                changed)
            except RedisError as exc:
                if self.redis_up:
                    logger.warning("Redis unreachable (%s): the watches and leases stay as they are", exc)
                self.redis_up = False
                self._dirty |= changed.keys()
            else:
                if not self.redis_up:
                    logger.info("Redis answers again")
                self.redis_up = True
                self.held = held
                self._written = (self._written | changed.keys()) & held
                if not kept:  # the states hash was gone (Redis restarted): write every state again
                    self._written = set()
                    self._dirty |= held
                self._dirty |= held - self._written
                self._owed_added.set()
            await self._reconcile()
            try:
                await asyncio.wait_for(self._leases_due.wait(), self.settings.heartbeat)
            except TimeoutError:
                pass

    def _state_json(self, account_id: int) -> str:
        record = self.states.get(account_id) or WatchState(state="connecting", watcher=self.id,
                                                           updated_at=time.time())
        watch = self.watches.get(account_id)
        if watch is not None:
            record.uidnext = dict(watch.uidnext)
        return record.to_json()

    def _redis_tick(self, targets: set[int], held: set[int], changed: dict[int, str]
                    ) -> tuple[list[str], set[int], bool]:
        """Heartbeat, leases, states and figures in Redis (in a thread).

        Returns (live watchers, leases held now, whether the states hash was still there).
        """
        conn = redis_connection(self.app)
        settings = self.settings
        live = leases.heartbeat(conn, self.id, settings.state_ttl)
        wanted = {a for a in targets if leases.owner(a, live) == self.id}
        now_held = leases.sync_leases(conn, self.id, wanted, held, settings.lease_ttl)
        kept = state.write_states(conn, self.id, {a: v for a, v in changed.items() if a in now_held},
                                  (self._written | held) - now_held, settings.state_ttl)
        telemetry.write_figures(conn, self.id, {
            "connections": self.connections, "reconnects": self.reconnects, "events": self.events,
            "enqueued": self.enqueued, "scanners": len(now_held), "owed": len(self.owed),
            "host": socket.gethostname(), "pid": os.getpid()}, settings.state_ttl)
        return live, now_held, kept

    def _leave(self, held: set[int]) -> None:
        conn = redis_connection(self.app)
        leases.leave(conn, self.id, held)
        state.clear_watcher(conn, self.id)

    async def _reconcile(self) -> None:
        """Run a watch for every scanner whose lease we hold; stop the others; restart changed ones."""
        async with self._reconciling:
            await self._reconcile_now()

    async def _reconcile_now(self) -> None:
        should = {a for a in self.held if a in self.targets}
        stale = [a for a, w in self.watches.items()
                 if a not in should or w.target.fingerprint != self.targets[a].fingerprint]
        await self._stop_watches(stale)
        for account_id in sorted(should - self.watches.keys()):
            watch = MailboxWatch(self.targets[account_id], self)
            self.watches[account_id] = watch
            watch.start()
        for account_id, watch in self.watches.items():
            watch.target = self.targets[account_id]  # the same connection settings; newer progress

    async def _stop_watches(self, account_ids: Iterable[int]) -> None:
        watches = [self.watches.pop(a) for a in list(account_ids) if a in self.watches]
        await asyncio.gather(*(w.stop() for w in watches), return_exceptions=True)
        for watch in watches:
            self.states.pop(watch.target.account_id, None)
            self._dirty.discard(watch.target.account_id)

    # ------------------------------------------------------------------ enqueueing

    async def _outbox_loop(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._owed_added.wait(), 1.0)
            except TimeoutError:
                pass
            self._owed_added.clear()
            await self._flush_owed()

    async def _flush_owed(self) -> None:
        if not self.owed:
            return
        batch = dict(self.owed)
        done = await asyncio.to_thread(self._submit, batch)
        for account_id in done:
            if self.owed.get(account_id) == batch[account_id]:
                del self.owed[account_id]
        self.enqueued += len(done)

    def _submit(self, batch: dict[int, float]) -> list[int]:
        """Enqueue the owed scans (in a thread); returns the scanners whose scan is queued now."""
        done = []
        for account_id, event_at in batch.items():
            try:
                _job_id, outcome = jobs.submit_scan_job(self.app, account_id, TRIGGER, event_at=event_at)
            except RedisError as exc:
                if self.redis_up:
                    logger.warning("cannot enqueue scans (%s); %d kept until Redis answers", exc, len(batch))
                self.redis_up = False
                break
            except Exception:  # the database (the job timeout is read from it): tried again in a second
                logger.warning("could not enqueue the scan of scanner %s", account_id, exc_info=True)
                continue
            if outcome != "running":
                done.append(account_id)
        return done
