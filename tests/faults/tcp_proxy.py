"""A small loopback TCP proxy between the scanner and Dovecot that can break a FETCH on purpose.

Bytes pass through unchanged. The proxy watches the client's commands for
``BODY.PEEK[]`` (the scanner's body fetch) and, on the n-th one, lets
``nbytes`` of the server's answer through and then either cuts the connection
(both sides closed, as a dropped link or a NAT timeout would) or stalls it
(holds the rest until released: a test can then act while the scanner is in
the middle of reading a batch). With ``delay`` set, every body fetch reaches the
server that many seconds late: a slow server. ``fetched_uids`` counts the UIDs
the body fetches asked for.
"""

from __future__ import annotations

import re
import socket
import threading
import time

from tests.faults.redis_server import free_port

BODY_FETCH = b"BODY.PEEK[]"
_FETCH_SET = re.compile(rb"UID FETCH ([0-9,:]+) \([^)]*BODY\.PEEK\[\]\)")


def _uid_count(uid_set: bytes) -> int:
    """How many UIDs a UID set such as ``1,2,5:7`` names."""
    count = 0
    for part in uid_set.split(b","):
        low, _, high = part.partition(b":")
        count += int(high) - int(low) + 1 if high else 1
    return count


class FetchBreakingProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; break the ``nth`` body fetch after ``nbytes``."""

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.mode: str | None = None  # None (healthy), "cut" or "stall"
        self.nth = 0
        self.nbytes = 0
        self.fetches = 0  # body fetches seen since the last arm()
        self.fetched_uids = 0  # UIDs the body fetches asked for (never reset)
        self.delay = 0.0  # seconds every body fetch is held before it goes to the server
        self.connections = 0
        self.triggered = threading.Event()  # the break happened
        self.triggered_at: float | None = None  # time.monotonic() of the break
        self.released = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._stopping = False
        threading.Thread(target=self._accept, name="proxy-accept", daemon=True).start()

    def arm(self, mode: str, nth: int, nbytes: int) -> None:
        """Break the ``nth`` body fetch from now on (``mode`` "cut" or "stall") after ``nbytes`` of answer."""
        assert mode in ("cut", "stall")
        with self._lock:
            self.mode, self.nth, self.nbytes, self.fetches = mode, nth, nbytes, 0
            self.triggered.clear()
            self.triggered_at = None
            self.released.clear()

    def heal(self) -> None:
        """Pass everything through again (and let a stalled answer go on)."""
        with self._lock:
            self.mode = None
        self.released.set()

    def close(self) -> None:
        self._stopping = True
        self.released.set()
        self._listener.close()
        for sock in list(self._sockets):
            _close(sock)

    # ----------------------------------------------------------------- plumbing

    def _accept(self) -> None:
        while not self._stopping:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=10)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            self.connections += 1
            self._sockets += [client, server]
            state = {"remaining": None}  # bytes still allowed through before the break, when armed
            threading.Thread(target=self._client_to_server, args=(client, server, state), daemon=True).start()
            threading.Thread(target=self._server_to_client, args=(server, client, state), daemon=True).start()

    def _client_to_server(self, client: socket.socket, server: socket.socket, state: dict) -> None:
        try:
            while data := client.recv(65536):
                if BODY_FETCH in data:
                    if self.delay:
                        time.sleep(self.delay)
                    with self._lock:
                        self.fetched_uids += sum(_uid_count(m) for m in _FETCH_SET.findall(data))
                        self.fetches += 1
                        if self.mode and self.fetches == self.nth:
                            # Armed before the command reaches the server, so its whole answer is counted.
                            state["remaining"] = self.nbytes
                server.sendall(data)
        except OSError:
            pass
        finally:
            _close(server)

    def _server_to_client(self, server: socket.socket, client: socket.socket, state: dict) -> None:
        try:
            while data := server.recv(65536):
                remaining = state["remaining"]
                if remaining is not None:
                    if len(data) < remaining:
                        state["remaining"] = remaining - len(data)
                    else:
                        client.sendall(data[:remaining])
                        state["remaining"] = None
                        data = data[remaining:]
                        self.triggered_at = time.monotonic()
                        self.triggered.set()
                        if self.mode == "cut":
                            _close(client)
                            _close(server)
                            return
                        self.released.wait()  # "stall": hold the rest of the answer
                        if self._stopping:
                            return
                client.sendall(data)
        except OSError:
            pass
        finally:
            _close(client)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass
