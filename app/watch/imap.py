"""A small IMAP client on asyncio streams: just what watching a mailbox needs.

It speaks TLS from the first byte, STARTTLS or plain; logs in with LOGIN, AUTHENTICATE PLAIN
(UTF-8) or XOAUTH2; and knows CAPABILITY, EXAMINE, STATUS, IDLE (RFC 2177) with DONE, NOTIFY
(RFC 5465), NOOP and LOGOUT. Fetching mail is the scan's job (``app.scanning``), not this one's.

Why our own client instead of aioimaplib, measured against Dovecot 2.3 with one process holding
1,000 connections idling in IDLE (``python -m bench.watch_cost``; ``bench/results/watch_cost.json``):
this module 8.6 KB per connection and 0.07 % of a core over 60 s idle (opened in 14.9 s);
aioimaplib 2.0.3 18.9 KB per connection and 0.15 % (opened in 17.6 s). aioimaplib also has no NOTIFY,
no STARTTLS method and no AUTHENTICATE PLAIN, which we would have added through its internals.
A first version of this module took 146 KB per connection: ``ssl.create_default_context()`` (which
loads the CA store) was made for every connection, TLS or not; now only for TLS, and shared.

Every read may be waited on with a timeout without losing a half-read response: the read in
progress is kept as a task and picked up by the next wait (``next_response``).
"""

from __future__ import annotations

import asyncio
import base64
import re
import socket
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field

from imap_tools.imap_utf7 import utf7_decode, utf7_encode

COMMAND_TIMEOUT = 30.0
_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_TAGGED = re.compile(rb"^(\S+) (OK|NO|BAD)\b ?(.*)$", re.S)
_CODE = re.compile(rb"^\[([^\]]*)\]")
_NUMBERED = re.compile(rb"^\* (\d+) (EXISTS|EXPUNGE|RECENT)\b", re.I)
_STATUS_ITEMS = re.compile(rb"([A-Z]+) (\d+)")
_QUOTED = re.compile(rb'^"((?:[^"\\]|\\.)*)"')


class ImapError(Exception):
    """An IMAP conversation that failed; ``kind`` as ``app.connect.errors.KINDS``, str() for people."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message

    def __str__(self) -> str:
        return self.message


@dataclass
class Response:
    """One server response: its text (literals left out) and the literals in order."""

    text: bytes
    literals: list[bytes] = field(default_factory=list)

    @property
    def untagged(self) -> bool:
        return self.text.startswith(b"* ")

    @property
    def continuation(self) -> bool:
        return self.text.startswith(b"+")

    def numbered(self) -> tuple[int, str] | None:
        """(n, "EXISTS" | "EXPUNGE" | "RECENT") for ``* n EXISTS`` and the like."""
        match = _NUMBERED.match(self.text)
        return (int(match.group(1)), match.group(2).decode().upper()) if match else None

    def code(self) -> tuple[str, str] | None:
        """The response code of ``* OK [UIDNEXT 5] ...`` as ("UIDNEXT", "5")."""
        rest = self.text[2:] if self.untagged else self.text.split(b" ", 1)[-1]
        parts = rest.split(b" ", 1)
        if len(parts) < 2:
            return None
        match = _CODE.match(parts[1])
        if not match:
            return None
        name, _, value = match.group(1).decode("ascii", "replace").partition(" ")
        return name.upper(), value

    def status(self) -> tuple[str, dict[str, int]] | None:
        """(folder, {"UIDNEXT": 5, ...}) for an untagged STATUS response."""
        if not self.text[:9].upper() == b"* STATUS ":
            return None
        rest = self.text[9:]
        if self.literals:
            name = self.literals[0]
            rest = rest.split(b"}", 1)[-1] if rest.startswith(b"{") else rest
        elif quoted := _QUOTED.match(rest):
            name, rest = re.sub(rb'\\(["\\])', rb"\1", quoted.group(1)), rest[quoted.end():]
        else:
            name, _, rest = rest.partition(b" ")
        items = rest[rest.find(b"(") + 1:rest.rfind(b")")]
        values = {key.decode().upper(): int(value) for key, value in _STATUS_ITEMS.findall(items.upper())}
        return utf7_decode(name), values


def quote_folder(name: str) -> bytes:
    """A folder name as an IMAP quoted string (modified UTF-7 for names beyond ASCII)."""
    raw = utf7_encode(name)
    return b'"' + raw.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _quote(text: str) -> bytes:
    return b'"' + text.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def _keepalive(sock: socket.socket | None) -> None:
    """Notice a silently dead peer within a few minutes, even while IDLE waits for 25 of them."""
    if sock is None:
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 20), ("TCP_KEEPCNT", 3)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


class ImapConnection:
    """One IMAP connection; open it with :meth:`open`, then log in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, where: str) -> None:
        self.reader, self.writer, self.where = reader, writer, where
        self.capabilities: set[str] = set()
        self._tag = 0
        self._pending: asyncio.Task[Response] | None = None

    # ------------------------------------------------------------------ opening

    @classmethod
    async def open(cls, host: str, port: int, security: str, *, ssl_context: ssl.SSLContext | None = None,
                   timeout: float = COMMAND_TIMEOUT) -> ImapConnection:
        """Connect, read the greeting and (for ``starttls``) switch to TLS; ``security``: ssl/starttls/none."""
        where = f"{host}:{port}"
        # A default context loads the CA store (about 100 KB and a millisecond each): only when TLS is used.
        context = (ssl_context or ssl.create_default_context()) if security != "none" else None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=context if security == "ssl" else None,
                server_hostname=host if security == "ssl" else None, limit=1 << 20), timeout)
        except TimeoutError:
            raise ImapError("timeout", f"No answer from {where} within {timeout:g} seconds.") from None
        except ConnectionRefusedError:
            raise ImapError("refused", f"Nothing answers at {where} (connection refused).") from None
        except ssl.SSLError as exc:
            raise ImapError("tls", f"The TLS handshake with {where} failed ({exc.reason or exc}).") from None
        except OSError as exc:
            raise ImapError("refused", f"Cannot connect to {where}: {exc.strerror or exc}.") from None
        _keepalive(writer.get_extra_info("socket"))
        conn = cls(reader, writer, where)
        try:
            greeting = await conn.next_response(timeout)
            if greeting is None or not greeting.text.upper().startswith((b"* OK", b"* PREAUTH")):
                said = greeting.text[:120].decode(errors="replace") if greeting else "nothing"
                raise ImapError("protocol", f"{where} did not greet like an IMAP server (it said: {said}).")
            conn._take_capabilities(greeting)
            if security == "starttls" and context is not None:
                await conn._starttls(host, context, timeout)
            if not conn.capabilities:
                await conn.capability()
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _starttls(self, host: str, context: ssl.SSLContext, timeout: float) -> None:
        if self.capabilities and "STARTTLS" not in self.capabilities:
            raise ImapError("tls", f"{self.where} does not offer STARTTLS.")
        await self.command(b"STARTTLS", timeout=timeout)
        try:
            await asyncio.wait_for(self.writer.start_tls(context, server_hostname=host), timeout)
        except (ssl.SSLError, TimeoutError) as exc:
            raise ImapError("tls", f"The TLS handshake with {self.where} failed ({exc}).") from None
        self.capabilities = set()
        await self.capability()

    # ------------------------------------------------------------------ reading

    async def _read_response(self) -> Response:
        line = await self.reader.readuntil(b"\r\n")
        text, literals = line[:-2], []
        while match := _LITERAL.search(text):
            literals.append(await self.reader.readexactly(int(match.group(1))))
            more = await self.reader.readuntil(b"\r\n")
            text = text[:match.start()] + b"{}" + more[:-2]
        return Response(text, literals)

    async def next_response(self, timeout: float | None, wake: asyncio.Event | None = None) -> Response | None:
        """The next response, or None when ``timeout`` passed or ``wake`` was set first.

        A read cut short by the timeout is not lost: the next call goes on with it.
        """
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._read_response())
        waits: set[asyncio.Future] = {self._pending}
        waiter = asyncio.ensure_future(wake.wait()) if wake is not None else None
        if waiter is not None:
            waits.add(waiter)
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if waiter is not None:
                waiter.cancel()
        if not self._pending.done():
            return None
        task, self._pending = self._pending, None
        try:
            return task.result()
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            raise ImapError("protocol", f"{self.where} closed the connection ({exc.__class__.__name__}).") \
                from None
        except asyncio.LimitOverrunError:
            raise ImapError("protocol", f"{self.where} sent a line longer than 1 MiB.") from None

    # ------------------------------------------------------------------ commands

    def _send(self, *lines: bytes) -> None:
        for line in lines:
            self.writer.write(line + b"\r\n")

    async def command(self, *parts: bytes, timeout: float = COMMAND_TIMEOUT,
                      continuation: bytes | None = None) -> tuple[list[Response], Response]:
        """Send one command; returns (its untagged responses, the tagged OK). NO/BAD raise ``ImapError``.

        ``continuation`` is sent when the server asks for more (``+``); a second ``+`` is answered
        with an empty line (XOAUTH2's error challenge).
        """
        self._tag += 1
        tag = b"W%d" % self._tag
        self._send(b" ".join((tag, *parts)))
        await self.writer.drain()
        untagged: list[Response] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            response = await self.next_response(max(0.0, deadline - loop.time()))
            if response is None:
                raise ImapError("timeout", f"{self.where} did not answer {parts[0].decode()} within "
                                           f"{timeout:g} seconds.")
            if response.continuation:
                self._send(continuation if continuation is not None else b"")
                continuation = b""
                await self.writer.drain()
                continue
            match = _TAGGED.match(response.text)
            if match and match.group(1) == tag:
                if match.group(2) != b"OK":
                    text = match.group(3).decode("utf-8", "replace")
                    raise ImapError("protocol", f"{self.where} answered {parts[0].decode()} with "
                                                f"{match.group(2).decode()}: {text}")
                self._take_capabilities(response)
                return untagged, response
            self._bye(response)
            untagged.append(response)

    def _bye(self, response: Response) -> None:
        if response.text[:6].upper() == b"* BYE ":
            reason = response.text[6:].decode("utf-8", "replace")
            raise ImapError("protocol", f"{self.where} ended the session: {reason}")

    def _take_capabilities(self, response: Response) -> None:
        code = response.code()
        if code and code[0] == "CAPABILITY":
            self.capabilities = {c.upper() for c in code[1].split()}

    async def capability(self) -> set[str]:
        """Ask the server what it offers; returns the upper-cased capability names."""
        untagged, _ = await self.command(b"CAPABILITY")
        for response in untagged:
            if response.text[:13].upper() == b"* CAPABILITY ":
                self.capabilities = {c.upper() for c in response.text[13:].decode().split()}
        return self.capabilities

    async def login(self, login: str, secret: str, *, oauth: bool = False) -> None:
        """Log in: XOAUTH2 with an access token, LOGIN for ASCII, AUTHENTICATE PLAIN for UTF-8."""
        before = self.capabilities
        try:
            if oauth:
                token = base64.b64encode(f"user={login}\x01auth=Bearer {secret}\x01\x01".encode())
                await self._authenticate(b"XOAUTH2", token)
            elif login.isascii() and secret.isascii() and "LOGINDISABLED" not in self.capabilities:
                await self.command(b"LOGIN", _quote(login), _quote(secret))
            else:
                await self._authenticate(b"PLAIN", base64.b64encode(f"\0{login}\0{secret}".encode()))
        except ImapError as exc:
            if exc.kind != "protocol":
                raise
            said = exc.message.replace(secret, "••••") if secret else exc.message
            raise ImapError("auth", f"The server refused the login for {login}: {said}") from None
        if self.capabilities is before:
            await self.capability()  # the server did not send the list that holds after the login

    async def _authenticate(self, mechanism: bytes, payload: bytes) -> None:
        if "SASL-IR" in self.capabilities:
            await self.command(b"AUTHENTICATE", mechanism, payload)
        else:
            await self.command(b"AUTHENTICATE", mechanism, continuation=payload)

    async def examine(self, folder: str) -> dict[str, int]:
        """Open ``folder`` read-only; returns {"EXISTS": n, "UIDNEXT": n, "UIDVALIDITY": n} as sent."""
        untagged, _ = await self.command(b"EXAMINE", quote_folder(folder))
        found: dict[str, int] = {}
        for response in untagged:
            numbered = response.numbered()
            if numbered and numbered[1] == "EXISTS":
                found["EXISTS"] = numbered[0]
            code = response.code()
            if code and code[0] in ("UIDNEXT", "UIDVALIDITY", "HIGHESTMODSEQ") and code[1].isdigit():
                found[code[0]] = int(code[1])
        return found

    async def status(self, folder: str, items: Iterable[str] = ("MESSAGES", "UIDNEXT", "UIDVALIDITY")
                     ) -> dict[str, int]:
        """STATUS of one folder: {"MESSAGES": n, "UIDNEXT": n, ...}."""
        untagged, _ = await self.command(b"STATUS", quote_folder(folder),
                                         b"(" + " ".join(items).encode() + b")")
        for response in untagged:
            status = response.status()
            if status is not None:
                return status[1]
        raise ImapError("protocol", f"{self.where} answered STATUS of {folder} without the figures.")

    async def notify(self, folders: Iterable[str]) -> list[Response]:
        """NOTIFY SET STATUS for new and expunged mail in ``folders``; returns the initial STATUS responses."""
        names = b" ".join(quote_folder(f) for f in folders)
        untagged, _ = await self.command(b"NOTIFY SET STATUS (mailboxes (" + names +
                                         b") (MessageNew MessageExpunge))")
        return untagged

    async def idle_start(self, timeout: float = COMMAND_TIMEOUT) -> list[Response]:
        """Send IDLE and wait for the server's go-ahead; returns untagged responses that came first."""
        self._tag += 1
        self._idle_tag = b"W%d" % self._tag
        self._send(self._idle_tag + b" IDLE")
        await self.writer.drain()
        early: list[Response] = []
        while True:
            response = await self.next_response(timeout)
            if response is None:
                raise ImapError("timeout", f"{self.where} did not start IDLE within {timeout:g} seconds.")
            if response.continuation:
                return early
            match = _TAGGED.match(response.text)
            if match and match.group(1) == self._idle_tag:
                raise ImapError("protocol", f"{self.where} refused IDLE: {response.text.decode(errors='replace')}")
            self._bye(response)
            early.append(response)

    async def idle_wait(self, timeout: float, wake: asyncio.Event | None = None) -> Response | None:
        """The next response during IDLE (None after ``timeout`` or on ``wake``); BYE raises."""
        response = await self.next_response(timeout, wake)
        if response is not None:
            self._bye(response)
        return response

    async def idle_done(self, timeout: float = COMMAND_TIMEOUT) -> list[Response]:
        """End IDLE; returns the untagged responses that came before the tagged OK."""
        self._send(b"DONE")
        await self.writer.drain()
        untagged: list[Response] = []
        while True:
            response = await self.next_response(timeout)
            if response is None:
                raise ImapError("timeout", f"{self.where} did not end IDLE within {timeout:g} seconds.")
            match = _TAGGED.match(response.text)
            if match and match.group(1) == self._idle_tag:
                return untagged
            self._bye(response)
            untagged.append(response)

    async def noop(self) -> list[Response]:
        """NOOP: keeps the session and collects what the server has to say."""
        untagged, _ = await self.command(b"NOOP")
        return untagged

    async def logout(self, timeout: float = 5.0) -> None:
        """LOGOUT politely, then close; never raises."""
        try:
            await self.command(b"LOGOUT", timeout=timeout)
        except (ImapError, OSError, asyncio.IncompleteReadError):
            pass
        self.abort()

    def abort(self) -> None:
        """Close the connection at once."""
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()
        self._pending = None
        try:
            self.writer.close()
        except (OSError, RuntimeError):
            pass
