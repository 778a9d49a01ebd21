"""content_identity: copies of one message share it, a different message reusing its Message-ID does not."""

from __future__ import annotations

from app.scanner.identity import content_identity, sender_fields, split_message
from app.scanner.types import RawMessage

MESSAGE = (b"From: Jane <jane@acme.test>\r\nTo: support@corp.test, sales@corp.test\r\n"
           b"Subject: Printer\r\n broken again\r\nDate: Mon, 02 Nov 2026 10:00:00 +0000\r\n"
           b"Message-ID: <p1@acme.test>\r\nContent-Type: text/plain\r\n\r\nIt is broken.\r\n")


def raw(data: bytes, truncated: bool = False) -> RawMessage:
    return RawMessage(folder="INBOX", uidvalidity=1, uid=1, data=data, size=len(data), truncated=truncated)


def test_copies_delivered_to_two_mailboxes_share_the_identity():
    """Each mailbox's copy has its own trace headers; what the sender wrote is the same."""
    support = (b"Return-Path: <jane@acme.test>\r\nDelivered-To: support@corp.test\r\n"
               b"Received: from mx by corp.test; Mon, 02 Nov 2026 10:00:01 +0000\r\nX-Spam-Score: 0.1\r\n" + MESSAGE)
    sales = (b"Return-Path: <jane@acme.test>\r\nDelivered-To: sales@corp.test\r\n"
             b"Received: from mx by corp.test; Mon, 02 Nov 2026 10:00:02 +0000\r\n" + MESSAGE)
    assert content_identity("p1@acme.test", raw(support)) == content_identity("p1@acme.test", raw(sales))


def test_other_content_under_the_same_message_id_differs():
    forged = MESSAGE.replace(b"It is broken.", b"Please pay this invoice.")
    assert content_identity("p1@acme.test", raw(forged)) != content_identity("p1@acme.test", raw(MESSAGE))
    other_subject = MESSAGE.replace(b"broken again", b"fixed")
    assert content_identity("p1@acme.test", raw(other_subject)) != content_identity("p1@acme.test", raw(MESSAGE))


def test_the_message_id_is_part_of_the_identity():
    assert content_identity("p1@acme.test", raw(MESSAGE)) != content_identity("p2@acme.test", raw(MESSAGE))


def test_a_truncated_copy_is_not_the_whole_message():
    header, _ = split_message(MESSAGE)
    assert content_identity("p1@acme.test", raw(header + b"\r\n\r\n", truncated=True)) \
        != content_identity("p1@acme.test", raw(MESSAGE))


def test_sender_fields_are_unfolded_and_only_the_senders():
    header, body = split_message(b"Received: x\nSubject: a\n  b\nX-Other: y\nTo: t@x.test\n\nbody")
    assert sender_fields(header) == [b"subject:a b", b"to:t@x.test"]
    assert body == b"body"
    assert split_message(b"Subject: only a header") == (b"Subject: only a header", b"")
