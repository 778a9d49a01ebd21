"""One scanner's watch: its connections, and how each of them hears of new mail.

A watch logs in, asks STATUS of every folder (new mail that came while nobody listened is
reported at once: UIDNEXT moved since the last look, or beyond what the scans stored), then
listens, in the best way the server offers:

- NOTIFY (RFC 5465): one connection for all the folders; the server sends a STATUS when a folder
  gets mail. The connection waits in IDLE so the notifications flow, re-issued every
  ``idle_renew`` seconds.
- IDLE (RFC 2177): a connection per folder, EXAMINEd (read-only) and idling; ``* n EXISTS``
  with a larger n is new mail. At most ``target.watch_connections`` connections: the folders
  beyond them are polled with STATUS over the first connection, between two IDLEs.
- neither: STATUS of every folder at the check frequency over the one kept-open connection.

Any failure closes every connection of the watch and starts again after a back-off
(``backoff.Backoff``); the STATUS after each reconnect is what makes a dropped connection lose
no mail.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Coroutine
from typing import Any, Protocol

from flask import Flask

from app.watch.backoff import Backoff
from app.watch.imap import ImapConnection, ImapError, Response
from app.watch.settings import WatchSettings
from app.watch.targets import WatchTarget, watch_secret

logger = logging.getLogger(__name__)


_contexts: dict[bool, ssl.SSLContext] = {}


def _ssl_context(validate: bool) -> ssl.SSLContext:
    """One TLS context per certificate policy, shared by every connection (each holds the CA store)."""
    if validate not in _contexts:
        context = ssl.create_default_context()
        if not validate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        _contexts[validate] = context
    return _contexts[validate]


async def _all_or_nothing(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run the coroutines together; the first to fail (or end) ends the others, and its error is raised."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class Watcher(Protocol):
    """What a watch needs of the watcher that runs it (``app.watch.engine.Watcher``)."""

    app: Flask
    settings: WatchSettings
    poll_seconds: float
    connections: int
    connect_slots: asyncio.Semaphore

    def report(self, account_id: int, name: str, *, reason: str | None = None, connected: bool = False,
               connections: int | None = None) -> None: ...

    def new_mail(self, account_id: int, folder: str) -> None: ...

    def reconnected(self, account_id: int) -> None: ...


class MailboxWatch:
    """Watches one scanner's folders until stopped; reports new mail and its state to the watcher."""

    def __init__(self, target: WatchTarget, watcher: Watcher) -> None:
        self.target = target
        self.watcher = watcher
        settings = watcher.settings
        self.backoff = Backoff(first=settings.reconnect_first, longest=settings.reconnect_longest,
                               healthy=settings.healthy_after)
        self.auth_backoff = Backoff(first=60.0, longest=settings.auth_retry_longest, healthy=settings.healthy_after,
                                    shortest=30.0)
        self.uidnext: dict[str, int] = {}  # folder → UIDNEXT when last seen
        self.messages: dict[str, int] = {}
        self.validity: dict[str, int] = {}
        self.connections: list[ImapConnection] = []
        self.task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ life

    def start(self) -> None:
        """Start watching in a task of its own."""
        self.task = asyncio.create_task(self._run(), name=f"watch-{self.target.account_id}")

    async def stop(self) -> None:
        """Stop watching and log out of every connection."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await asyncio.gather(*(c.logout(timeout=2.0) for c in self.connections), return_exceptions=True)
        self._drop_connections()
        await asyncio.sleep(0)  # let the cancelled reads finish

    async def _run(self) -> None:
        account_id = self.target.account_id
        while True:
            self.watcher.report(account_id, "connecting" if not self.uidnext else "reconnecting")
            connected_at: list[float] = []
            reason, kind = "the connection ended", "protocol"
            try:
                await self._session(connected_at)
            except ImapError as exc:
                reason, kind = exc.message, exc.kind
            except (OSError, asyncio.IncompleteReadError) as exc:
                reason = f"{self.target.host}:{self.target.port}: {exc.__class__.__name__}: {exc}"
            except Exception as exc:  # a watch never takes the watcher down; it reconnects
                logger.exception("watch of scanner %s failed", account_id)
                reason = f"internal error: {exc.__class__.__name__}"
            self._drop_connections()
            lived = time.monotonic() - connected_at[0] if connected_at else 0.0
            backoff = self.auth_backoff if kind == "auth" else self.backoff
            wait = backoff.next_wait(lived)
            self.watcher.reconnected(account_id)
            self.watcher.report(account_id, "reconnecting", reason=f"{reason} (next try in {wait:.0f} s)")
            logger.info("watch of scanner %s: %s; connecting again in %.1f s", account_id, reason, wait)
            await asyncio.sleep(wait)

    def _drop_connections(self) -> None:
        for conn in self.connections:
            conn.abort()
        self.watcher.connections -= len(self.connections)
        self.connections = []

    async def _open(self, secret: str | None) -> ImapConnection:
        target = self.target
        async with self.watcher.connect_slots:
            context = _ssl_context(target.validate_cert) if target.security != "none" else None
            conn = await ImapConnection.open(target.host, target.port, target.security, ssl_context=context,
                                             timeout=self.watcher.settings.command_timeout)
            self.connections.append(conn)
            self.watcher.connections += 1
            if not secret:
                raise ImapError("auth", f"No password or token stored for {target.login}.")
            await conn.login(target.login, secret, oauth=target.oauth)
        return conn

    async def _session(self, connected_at: list[float]) -> None:
        app = self.watcher.app
        async with self.watcher.connect_slots:
            secret = await asyncio.to_thread(watch_secret, app, self.target.account_id)
        main = await self._open(secret)
        await self._catch_up(main)
        connected_at.append(time.monotonic())
        if "NOTIFY" in main.capabilities:
            await self._notify(main)
        elif "IDLE" in main.capabilities:
            folders = list(self.target.folders)
            slots = self.target.watch_connections
            idling, polled = folders[:slots], folders[slots:]
            coros = [self._idle(main, idling[0], polled)]
            for folder in idling[1:]:
                coros.append(self._idle(await self._open(secret), folder, []))
            self.watcher.report(self.target.account_id, "idle", connected=True,
                                connections=len(self.connections))
            await _all_or_nothing(coros)
        else:
            await self._poll(main)
        raise ImapError("protocol", "the watch ended")  # never reached in normal operation

    # ------------------------------------------------------------------ what the server says

    def _seen(self, folder: str, values: dict[str, int]) -> None:
        """A folder's STATUS (or EXAMINE) figures: report new mail when UIDNEXT (or the count) grew."""
        uidnext, messages, validity = values.get("UIDNEXT"), values.get("MESSAGES"), values.get("UIDVALIDITY")
        moved = False
        if validity is not None and folder in self.validity and validity != self.validity[folder]:
            moved = True  # the folder was renumbered: the scan sorts it out
        elif uidnext is not None:
            if folder in self.uidnext:
                moved = uidnext > self.uidnext[folder]
            else:  # first look since the watcher started: compare with what the scans stored
                stored_validity, last_uid = self.target.progress.get(folder, (None, 0))
                moved = (validity is not None and stored_validity is not None and validity != stored_validity) \
                    or uidnext > last_uid + 1
        elif messages is not None and folder in self.messages:
            moved = messages > self.messages[folder]
        if uidnext is not None:
            self.uidnext[folder] = uidnext
        if messages is not None:
            self.messages[folder] = messages
        if validity is not None:
            self.validity[folder] = validity
        if moved:
            self.watcher.new_mail(self.target.account_id, folder)

    def _status_items(self, conn: ImapConnection) -> tuple[str, ...]:
        items = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
        return (*items, "HIGHESTMODSEQ") if "CONDSTORE" in conn.capabilities else items

    async def _catch_up(self, conn: ImapConnection, folders: list[str] | None = None) -> None:
        """STATUS of each folder: mail that came while nobody listened is reported now."""
        for folder in self.target.folders if folders is None else folders:
            self._seen(folder, await conn.status(folder, self._status_items(conn)))

    # ------------------------------------------------------------------ the three ways to listen

    async def _notify(self, conn: ImapConnection) -> None:
        folders = set(self.target.folders)
        for response in await conn.notify(self.target.folders):
            self._take_status(response, folders)
        self.watcher.report(self.target.account_id, "notify", connected=True, connections=1)
        renew = self.watcher.settings.idle_renew
        while True:
            for response in await conn.idle_start():  # a notification may come before IDLE's go-ahead
                self._take_status(response, folders)
            deadline = time.monotonic() + renew
            while (left := deadline - time.monotonic()) > 0:
                heard = await conn.idle_wait(left)
                if heard is not None:
                    self._take_status(heard, folders)
            for response in await conn.idle_done():
                self._take_status(response, folders)

    def _take_status(self, response: Response, folders: set[str]) -> None:
        status = response.status()
        if status is not None and status[0] in folders:
            self._seen(status[0], status[1])

    async def _idle(self, conn: ImapConnection, folder: str, polled: list[str]) -> None:
        opened = await conn.examine(folder)
        self._seen(folder, opened)
        exists = opened.get("EXISTS", 0)
        settings = self.watcher.settings
        poll_every = self.watcher.poll_seconds
        renew_at = time.monotonic() + settings.idle_renew
        poll_at = time.monotonic() + poll_every if polled else float("inf")
        while True:
            exists = self._exists(folder, await conn.idle_start(), exists)
            while (left := min(renew_at, poll_at) - time.monotonic()) > 0:
                response = await conn.idle_wait(left)
                if response is None:
                    break
                exists = self._exists(folder, [response], exists)
            exists = self._exists(folder, await conn.idle_done(), exists)
            now = time.monotonic()
            if now >= poll_at:
                await self._catch_up(conn, polled)
                poll_at = now + self.watcher.poll_seconds
            if now >= renew_at:
                renew_at = now + settings.idle_renew

    def _exists(self, folder: str, responses: list[Response], exists: int) -> int:
        """Follow the message count of an idling folder; a count that grew is new mail."""
        for response in responses:
            numbered = response.numbered()
            if numbered is None:
                continue
            count, what = numbered
            if what == "EXISTS":
                if count > exists:
                    if folder in self.uidnext:
                        self.uidnext[folder] += count - exists  # UIDNEXT grew by at least as much
                    self.watcher.new_mail(self.target.account_id, folder)
                exists = count
            elif what == "EXPUNGE":
                exists = max(0, exists - 1)
        return exists

    async def _poll(self, conn: ImapConnection) -> None:
        self.watcher.report(self.target.account_id, "polling", connected=True, connections=1)
        while True:
            await asyncio.sleep(self.watcher.poll_seconds)
            await self._catch_up(conn)
