"""Helpers for the watcher's tests: a watcher on a thread, an IMAP proxy that changes the server's
manners, and the scan jobs a watcher queued.

``ImapProxy`` forwards a loopback port to an IMAP server and can hide capabilities (a server
without NOTIFY, or without IDLE), cut connections that stayed silent for a few seconds (a server
or NAT box that drops idle connections), and counts the connections it was asked for.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from rq.exceptions import NoSuchJobError
from rq.job import Job

from app.jobqueue import jobs
from app.jobqueue.connection import redis_connection
from app.watch.engine import Watcher
from app.watch.settings import WatchSettings
from tests.faults.redis_server import free_port

FAST = WatchSettings(heartbeat=0.5, lease_ttl=3.0, refresh=0.3, reconnect_first=0.2, reconnect_longest=3.0,
                     healthy_after=5.0, command_timeout=10.0)


class WatcherThread:
    """A ``Watcher`` running on an event loop of its own thread, for a test."""

    def __init__(self, app, settings: WatchSettings = FAST, watcher_id: str | None = None) -> None:
        self.watcher = Watcher(app, settings, watcher_id)
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._main, name="watcher", daemon=True)
        self._ready = threading.Event()

    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)

        async def go() -> None:
            self._stop = asyncio.Event()
            self._ready.set()
            await self.watcher.run(self._stop)

        self._loop.run_until_complete(go())

    def __enter__(self) -> WatcherThread:
        self._thread.start()
        self._ready.wait(5)
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        """Stop the watcher (it logs out and hands its scanners back) and wait for the thread."""
        if self._thread.is_alive() and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
            self._thread.join(30)

    def state(self, account_id: int) -> str | None:
        record = self.watcher.states.get(account_id)
        return record.state if record else None


def queued_scan(app, account_id: int) -> dict | None:
    """The meta of the scanner's scan job when one exists (queued by anybody), else None."""
    try:
        job = Job.fetch(jobs.scan_job_id(account_id), connection=redis_connection(app))
    except NoSuchJobError:
        return None
    return dict(job.get_meta(refresh=True) or {}, status=str(job.get_status(refresh=True)))


def forget_scan(app, account_id: int) -> None:
    """Delete the scanner's scan job, so the next one can be told apart."""
    try:
        Job.fetch(jobs.scan_job_id(account_id), connection=redis_connection(app)).delete(remove_from_queue=True)
    except NoSuchJobError:
        pass


def wait_for_scan(app, account_id: int, timeout: float = 10.0) -> dict:
    """Wait until the watcher queued a scan of the scanner; returns its meta."""
    deadline = time.monotonic() + timeout
    while True:
        meta = queued_scan(app, account_id)
        if meta and meta.get("trigger") == "watch":
            return meta
        if time.monotonic() > deadline:
            raise AssertionError(f"no scan of scanner {account_id} was queued within {timeout} s (found {meta})")
        time.sleep(0.05)


class ImapProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``, hiding capabilities and cutting silent connections."""

    def __init__(self, upstream: tuple[str, int], *, hide: tuple[str, ...] = (), cut_silent_after: float = 0.0):
        self.upstream = upstream
        self.hide = tuple(h.upper().encode() for h in hide)
        self.cut_silent_after = cut_silent_after
        self.port = free_port()
        self.connections = 0
        self.open = 0
        self.cuts = 0
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopping = False
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stopping = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self.connections += 1
                self.open += 1
            last = [time.monotonic()]
            threading.Thread(target=self._up, args=(client, server, last), daemon=True).start()
            threading.Thread(target=self._down, args=(server, client, last), daemon=True).start()
            if self.cut_silent_after:
                threading.Thread(target=self._cutter, args=(client, server, last), daemon=True).start()

    def _up(self, client: socket.socket, server: socket.socket, last: list[float]) -> None:
        try:
            while data := client.recv(65536):
                last[0] = time.monotonic()
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _down(self, server: socket.socket, client: socket.socket, last: list[float]) -> None:
        buffer = b""
        try:
            while data := server.recv(65536):
                buffer += data
                lines, _, buffer = buffer.rpartition(b"\r\n")
                if lines:
                    client.sendall(self._rewrite(lines + b"\r\n"))
        except OSError:
            pass
        finally:
            _close(client)
            with self._lock:
                self.open -= 1

    def _rewrite(self, chunk: bytes) -> bytes:
        if not self.hide or b"CAPABILITY" not in chunk.upper():
            return chunk
        out = []
        for line in chunk.split(b"\r\n"):
            if b"CAPABILITY" in line.upper():
                words: list[bytes] = []
                for word in line.split(b" "):
                    if word.upper().rstrip(b"]") not in self.hide:
                        words.append(word)
                    elif word.endswith(b"]") and words:
                        words[-1] += b"]"
                line = b" ".join(words)
            out.append(line)
        return b"\r\n".join(out)

    def _cutter(self, client: socket.socket, server: socket.socket, last: list[float]) -> None:
        while not self._stopping:
            time.sleep(0.1)
            if client.fileno() < 0:
                return
            if time.monotonic() - last[0] > self.cut_silent_after:
                with self._lock:
                    self.cuts += 1
                _close(client)
                _close(server)
                return


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
