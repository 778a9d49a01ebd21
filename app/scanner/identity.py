"""The identity of a message's content: the same message delivered to several mailboxes has one.

One message sent to support@ and sales@ reaches each mailbox with its own trace headers
(Received, Delivered-To, Return-Path, X-Original-To, spam scores ...), so the raw bytes differ
between the copies. What the sender wrote does not: the Message-ID, the addresses, the subject,
the date, the structure and the body. The identity is a SHA-256 over exactly those, taken from
the raw bytes, so two copies of one message share it, and a different message that reuses a
Message-ID (forged, or by a broken mailer) does not.
"""

from __future__ import annotations

import hashlib
import re

from app.scanner.types import RawMessage

# The header fields the sender's client wrote and no relay or delivery agent adds or changes.
SENDER_FIELDS = frozenset({b"message-id", b"from", b"sender", b"to", b"cc", b"subject", b"date",
                           b"in-reply-to", b"references", b"mime-version", b"content-type",
                           b"content-transfer-encoding"})

_SPACE = re.compile(rb"\s+")


def split_message(data: bytes) -> tuple[bytes, bytes]:
    """(header block, body) of raw message bytes; the body is b"" for a message that is all header."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        at = data.find(separator)
        if at >= 0:
            return data[:at], data[at + len(separator):]
    return data, b""


def sender_fields(header: bytes) -> list[bytes]:
    """The sender's header fields (``SENDER_FIELDS``) of a raw header block, unfolded, whitespace
    collapsed, names lower-cased, in their order."""
    fields: list[bytes] = []
    keep = False
    for line in header.split(b"\n"):
        if line[:1] in (b" ", b"\t"):
            if keep:
                fields[-1] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        name = name.strip().lower()
        keep = bool(colon) and name in SENDER_FIELDS
        if keep:
            fields.append(name + b":" + value.strip())
    return [_SPACE.sub(b" ", f) for f in fields]


def content_identity(message_id: str | None, raw: RawMessage) -> str:
    """The hex SHA-256 of what the sender wrote: the parsed Message-ID, their header fields and the
    body, as bytes.

    A message over the size limit is stored with its header only: its identity covers the
    header fields (and says it was cut, so it never equals the whole message's).
    """
    header, body = split_message(raw.data)
    digest = hashlib.sha256((message_id or "").encode("utf-8", "replace"))
    digest.update(b"\n")
    digest.update(b"\n".join(sender_fields(header)))
    digest.update(b"\n\n")
    digest.update(b"(truncated)" if raw.truncated else body)
    return digest.hexdigest()
