"""A tiny SMTP sink for the demo and the tests: accepts mail and keeps it on disk.

    python scripts/smtp_sink.py --port 10025 --dir .state/smtp/messages --users .state/dovecot/users

Every accepted message is written as ``<dir>/<time>-<n>.eml`` (the bytes exactly as received)
with ``<same name>.json`` beside it holding the envelope: who authenticated, MAIL FROM, RCPT TO.
The JSON file is written first, so an .eml that exists always has its envelope.

AUTH PLAIN and LOGIN are offered without TLS (loopback only). Credentials are checked against
the Dovecot passwd-file given with --users (``login:{PLAIN}password:...``), re-read on every
attempt, so a mailbox's SMTP login is the same as its IMAP login. With --accept-any, or when the
users file does not exist, any credentials are accepted. Sending without AUTH is allowed too.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import signal
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

_counter = itertools.count(1)


def read_users(path: Path) -> dict[str, str]:
    """Map login -> plain password from a Dovecot passwd-file ({PLAIN} scheme only)."""
    users: dict[str, str] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return users
    for line in lines:
        login, _, rest = line.partition(":")
        secret = rest.split(":", 1)[0]
        if login and secret.startswith("{PLAIN}"):
            users[login.lower()] = secret[len("{PLAIN}"):]
    return users


class Authenticator:
    """Check SMTP AUTH credentials against the users file."""

    def __init__(self, users_file: Path | None, accept_any: bool):
        self.users_file = users_file
        self.accept_any = accept_any

    def __call__(self, server, session, envelope, mechanism, auth_data):
        # handled=False: aiosmtpd then sends the 535 itself; with the default
        # (handled=True) nothing is sent and the client waits for its timeout.
        refuse = AuthResult(success=False, handled=False, message="535 5.7.8 Authentication credentials invalid")
        if not isinstance(auth_data, LoginPassword):
            return refuse
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        if self.accept_any or self.users_file is None or not self.users_file.exists():
            return AuthResult(success=True, auth_data=auth_data)
        expected = read_users(self.users_file).get(login.lower())
        if expected is not None and expected == password:
            return AuthResult(success=True, auth_data=auth_data)
        return refuse


class SaveToDisk:
    """aiosmtpd handler that writes each message and its envelope to a folder."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    async def handle_DATA(self, server, session, envelope):
        stem = f"{time.time_ns()}-{next(_counter):05d}"
        auth_user = None
        if session.authenticated and session.login_data is not None:
            auth_user = session.login_data.decode("utf-8", "replace") if isinstance(
                session.login_data, bytes) else str(session.login_data)
        meta = {
            "auth_user": auth_user,
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "peer": list(session.peer) if isinstance(session.peer, tuple) else str(session.peer),
            "received_at": time.time(),
        }
        _write_atomic(self.folder / f"{stem}.json", json.dumps(meta, indent=1).encode())
        _write_atomic(self.folder / f"{stem}.eml", envelope.original_content or envelope.content)
        print(f"accepted {stem}.eml from={envelope.mail_from} to={','.join(envelope.rcpt_tos)} "
              f"auth={auth_user}", flush=True)
        return "250 2.0.0 Message accepted"


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> None:
    """Run the sink until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10025)
    parser.add_argument("--dir", default=".state/smtp/messages", help="where messages are written")
    parser.add_argument("--users", default=None, help="Dovecot passwd-file to check AUTH against")
    parser.add_argument("--accept-any", action="store_true", help="accept any AUTH credentials")
    args = parser.parse_args(argv)

    handler = SaveToDisk(Path(args.dir))
    authenticator = Authenticator(Path(args.users) if args.users else None, args.accept_any)

    def factory():
        return SMTP(handler, authenticator=authenticator, auth_require_tls=False,
                    hostname="smtp-sink.localhost", decode_data=False)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    server = loop.run_until_complete(loop.create_server(factory, host=args.host, port=args.port))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, loop.stop)
    print(f"SMTP sink listening on {args.host}:{args.port}, writing to {args.dir}", flush=True)
    try:
        loop.run_forever()
    finally:
        server.close()
        loop.run_until_complete(server.wait_closed())
        loop.close()


if __name__ == "__main__":
    main()
