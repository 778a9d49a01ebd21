"""The demo mailbox on the private Dovecot of scripts/services.sh, and appending the sample messages to it."""

from __future__ import annotations

import imaplib
import os

from app.demo.report import DemoError, SeedReport
from app.demo.samples import Sample

SERVER_NAME = "Demo Dovecot"
MAILBOX_NAME = "Demo mailbox"
MAILBOX_LOGIN = "demo@corp.test"
MAILBOX_PASSWORD = "demopw"
# The private Dovecot and SMTP sink of scripts/services.sh (same port overrides as the script).
IMAP = ("127.0.0.1", int(os.environ.get("CM_DOVECOT_PORT") or 10143))
SMTP = ("127.0.0.1", int(os.environ.get("CM_SMTP_PORT") or 10025))


def append_samples(samples: list[Sample], report: SeedReport, *, host: str = IMAP[0], port: int = IMAP[1],
                   login: str = MAILBOX_LOGIN, password: str = MAILBOX_PASSWORD) -> None:
    """Append each sample unless a message with its Message-ID is already in its folder."""
    try:
        conn = imaplib.IMAP4(host, port, timeout=15)
    except OSError as exc:
        raise DemoError(f"The demo mailbox server at {host}:{port} is not reachable ({exc.strerror or exc}). "
                        "Start it with `scripts/services.sh start dovecot`, then run the seed again.") from exc
    try:
        try:
            conn.login(login, password)
        except imaplib.IMAP4.error as exc:
            raise DemoError(f"The demo mailbox {login} refused its password. It should be in "
                            ".state/dovecot/users; `scripts/services.sh start dovecot` adds it.") from exc
        for folder in sorted({s.folder for s in samples}):
            if folder != "INBOX" and conn.select(folder, readonly=True)[0] != "OK":
                conn.create(folder)
                conn.subscribe(folder)
        for sample in samples:
            conn.select(sample.folder, readonly=True)
            typ, data = conn.uid("SEARCH", "HEADER", "Message-ID", sample.message_id)
            if typ == "OK" and data and data[0].split():
                report.already_there += 1
                continue
            when = sample.message["Date"].datetime if sample.message["Date"] else None
            flags = "(\\Seen)" if sample.folder != "INBOX" else None
            typ, data = conn.append(sample.folder, flags, imaplib.Time2Internaldate(when) if when else None,
                                    sample.message.as_bytes())
            if typ != "OK":
                raise DemoError(f"The demo mailbox refused a sample message: {data!r}")
            report.appended += 1
    finally:
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError):
            pass
