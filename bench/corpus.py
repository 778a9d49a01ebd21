"""A deterministic mailbox for the benchmarks: messages of 2–5 KB, a third multipart with attachments.

Written straight into a Dovecot Maildir, which is much faster than APPEND
and gives the server the same work to do when it is read.
"""

from __future__ import annotations

import base64
import json
import os
import random
import time
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

WORDS = ("order invoice delivery question support printer account renewal meeting contract quote "
         "shipment warranty report update request schedule payment offer feedback").split()


# How many domains the contacts and the strangers write from.
CLIENT_DOMAINS = 997
STRANGER_DOMAINS = 311


def contact_address(i: int) -> str:
    """The address of the i-th benchmark contact."""
    return f"customer{i}@client{i % CLIENT_DOMAINS}.test"


def corpus_domains() -> list[str]:
    """Every domain a corpus message is written from or copied to, besides ours (corp.test)."""
    return [f"nowhere{k}.test" for k in range(STRANGER_DOMAINS)] + [f"client{k}.test" for k in range(CLIENT_DOMAINS)]


def build_message(i: int, rng: random.Random, *, matching_contacts: int, ids: str = "bench") -> bytes:
    """Message ``i``: a fifth of senders are known contacts; every third has an attachment.

    Written from a template rather than with ``email.message.EmailMessage``,
    which took about 10 ms a message (a 100,000-message mailbox would take
    many minutes to fill); the result is the same MIME structure: a
    text/plain message, or multipart/mixed holding multipart/alternative
    (text + HTML with a remote image) and a base64 attachment. Boundaries
    come from ``rng``, so a mailbox is the same on every run.
    """
    if i % 5 == 0 and matching_contacts:
        sender = contact_address(rng.randrange(matching_contacts))
    else:
        sender = f"stranger{i}@nowhere{i % STRANGER_DOMAINS}.test"
    head = [f"From: Sender {i} <{sender}>", "To: bench@corp.test"]
    if i % 4 == 0:
        head.append(f"Cc: colleague{i % 50}@corp.test, "
                    f"{contact_address(rng.randrange(max(1, matching_contacts)))}")
    subject = " ".join(rng.choice(WORDS) for _ in range(6)).capitalize() + f" #{i}"
    head += [f"Subject: {subject}", f"Message-ID: <{ids}-{i}@corp.test>",
             f"Date: {format_datetime(datetime.fromtimestamp(1_700_000_000 + i * 60, UTC))}",
             "MIME-Version: 1.0"]
    body = " ".join(rng.choices(WORDS, k=rng.randint(220, 420)))
    text = "\n".join(body[k:k + 72] for k in range(0, len(body), 72)) + "\n"
    plain = 'Content-Type: text/plain; charset="utf-8"\nContent-Transfer-Encoding: 7bit\n'
    if i % 3:
        return ("\n".join(head) + "\n" + plain + "\n" + text).encode()
    outer, inner = f"=={rng.getrandbits(64):020d}==", f"=={rng.getrandbits(64):020d}=="
    html = f"<html><body><p>{body[:500]}</p><img src='https://tracker.test/p.gif'></body></html>\n"
    data = base64.encodebytes(rng.randbytes(400)).decode()
    parts = [
        *head, f'Content-Type: multipart/mixed; boundary="{outer}"', "",
        f"--{outer}", f'Content-Type: multipart/alternative; boundary="{inner}"', "",
        f"--{inner}", plain, text,
        f"--{inner}", 'Content-Type: text/html; charset="utf-8"\nContent-Transfer-Encoding: 7bit\n', html,
        f"--{inner}--", "",
        f"--{outer}", "Content-Type: application/octet-stream", "Content-Transfer-Encoding: base64",
        f'Content-Disposition: attachment; filename="report-{i}.bin"', "", data,
        f"--{outer}--", "",
    ]
    return "\n".join(parts).encode()


def fill_maildir(maildir: Path, count: int, *, matching_contacts: int, seed: int = 7,
                 owner: tuple[int, int] | None = None, ids: str = "bench") -> int:
    """Write ``count`` messages into ``maildir/cur`` (replacing what is there); returns bytes written.

    ``ids`` starts every Message-ID: mailboxes filled with different ones hold different messages
    (a message that reached two scanned mailboxes is stored once, so two mailboxes with the same
    messages would measure linking, not storing).

    A mailbox already filled with the same parameters is kept as it is (a
    marker file records them), so repeated runs do not rewrite it.
    """
    marker = maildir / "bench-fill.json"
    wanted = json.dumps({"count": count, "contacts": matching_contacts, "seed": seed, "format": 2,
                         **({"ids": ids} if ids != "bench" else {})})
    if marker.exists() and marker.read_text() == wanted and len(list((maildir / "cur").iterdir())) == count:
        return sum(f.stat().st_size for f in (maildir / "cur").iterdir())
    rng = random.Random(seed)
    # Directories made here (the domain's one included) must belong to the server's user too,
    # or Dovecot cannot create the next user's mailbox beside this one.
    created = [d for d in (maildir, *maildir.parents) if not d.exists()]
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    for stale in list(maildir.glob("cur/*")) + list(maildir.glob("new/*")):
        stale.unlink()
    for index_file in maildir.glob("dovecot*"):
        index_file.unlink()
    total = 0
    base = int(time.time())
    for i in range(count):
        data = build_message(i, rng, matching_contacts=matching_contacts, ids=ids)
        total += len(data)
        # Maildir names must be unique and sort in arrival order; Dovecot assigns UIDs in that order.
        path = maildir / "cur" / f"{base + i:012d}.M{i}P{os.getpid()}.bench,S={len(data)}:2,"
        path.write_bytes(data)
    if owner is not None:
        for root, dirs, files in os.walk(maildir):
            for name in dirs + files:
                os.chown(os.path.join(root, name), *owner)
            os.chown(root, *owner)
        for directory in created:
            os.chown(directory, *owner)
    marker.write_text(wanted)
    return total
