"""A deterministic mailbox for the benchmarks: messages of 2–5 KB, a third multipart with attachments.

Written straight into a Dovecot Maildir, which is much faster than APPEND
and gives the server the same work to do when it is read.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

WORDS = ("order invoice delivery question support printer account renewal meeting contract quote "
         "shipment warranty report update request schedule payment offer feedback").split()


def contact_address(i: int) -> str:
    """The address of the i-th benchmark contact."""
    return f"customer{i}@client{i % 997}.test"


def build_message(i: int, rng: random.Random, *, matching_contacts: int) -> bytes:
    """Message ``i``: a fifth of senders are known contacts; every third has an attachment."""
    msg = EmailMessage()
    if i % 5 == 0 and matching_contacts:
        sender = contact_address(rng.randrange(matching_contacts))
    else:
        sender = f"stranger{i}@nowhere{i % 311}.test"
    msg["From"] = f"Sender {i} <{sender}>"
    msg["To"] = "bench@corp.test"
    if i % 4 == 0:
        msg["Cc"] = f"colleague{i % 50}@corp.test, {contact_address(rng.randrange(max(1, matching_contacts)))}"
    msg["Subject"] = " ".join(rng.choice(WORDS) for _ in range(6)).capitalize() + f" #{i}"
    msg["Message-ID"] = f"<bench-{i}@corp.test>"
    msg["Date"] = format_datetime(datetime.fromtimestamp(1_700_000_000 + i * 60, UTC))
    body_words = rng.randint(220, 480)
    body = " ".join(rng.choice(WORDS) for _ in range(body_words))
    msg.set_content("\n".join(body[k:k + 72] for k in range(0, len(body), 72)))
    if i % 3 == 0:
        msg.add_alternative(f"<html><body><p>{body[:500]}</p><img src='https://tracker.test/p.gif'></body></html>",
                            subtype="html")
        msg.add_attachment(bytes(rng.getrandbits(8) for _ in range(400)), maintype="application",
                           subtype="octet-stream", filename=f"report-{i}.bin")
    return msg.as_bytes()


def fill_maildir(maildir: Path, count: int, *, matching_contacts: int, seed: int = 7,
                 owner: tuple[int, int] | None = None) -> int:
    """Write ``count`` messages into ``maildir/cur`` (replacing what is there); returns bytes written."""
    rng = random.Random(seed)
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for stale in list(maildir.glob("cur/*")) + list(maildir.glob("new/*")):
        stale.unlink()
    for index_file in maildir.glob("dovecot*"):
        index_file.unlink()
    total = 0
    base = int(time.time())
    for i in range(count):
        data = build_message(i, rng, matching_contacts=matching_contacts)
        total += len(data)
        # Maildir names must be unique and sort in arrival order; Dovecot assigns UIDs in that order.
        path = maildir / "cur" / f"{base + i:012d}.M{i}P{os.getpid()}.bench,S={len(data)}:2,"
        path.write_bytes(data)
    if owner is not None:
        for root, dirs, files in os.walk(maildir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), *owner)
            os.chown(root, *owner)
    return total
