"""The rows a batch writes, built from the decisions, and the text hygiene every row goes through.

Rows are plain dicts with every column they need: the bulk writes apply no Python-side defaults.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import datetime
from typing import Any

from app.scanner.types import TRUNCATED_DEFECT, MessageDecision, NewTicket, RawMessage

Row = dict[str, Any]

# The defect of a message stored under a content key because another message has its Message-ID.
REUSED_MESSAGE_ID = "Its Message-ID is also used by a different message."


def row_values(columns: list[str]) -> Callable[[Row], tuple[Any, ...]]:
    """A function giving a row's values in ``columns`` order, as a tuple (for the bulk writes)."""
    if len(columns) > 1:
        return operator.itemgetter(*columns)
    only = columns[0]
    return lambda r: (r[only],)


def clean_text(value: str | None, limit: int | None = None) -> str | None:
    """Text every database accepts: no NUL (PostgreSQL refuses it), no lone surrogates, within ``limit``."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    # isascii() is a flag check: most values skip the encode that looks for lone surrogates.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(value) > limit:
        value = value[:limit]
    return value


def email_row(account_id: int, decision: MessageDecision, now: datetime) -> Row:
    """The ``emails`` row of one decided message."""
    message = decision.message
    p = message.item.parsed
    raw = p.raw
    defects = list(p.defects)
    if message.reused_message_id:
        defects.append(REUSED_MESSAGE_ID)
    if raw.truncated and TRUNCATED_DEFECT not in defects:
        defects.append(TRUNCATED_DEFECT)  # parse_message notes it; a message parsed elsewhere may not
    return {
        "account_id": account_id,
        "folder": clean_text(raw.folder, 255),
        "uidvalidity": raw.uidvalidity,
        "uid": raw.uid,
        "message_key": message.key,
        "identity": message.identity,
        "message_id": clean_text(p.message_id, 300),
        "in_reply_to": clean_text(p.in_reply_to, 300),
        "references": clean_text(" ".join(p.references)) if p.references else None,
        "subject": clean_text(p.subject or ""),
        "from_addr": clean_text(p.from_addr, 254),
        "from_name": clean_text(p.from_name, 300),
        "to_addrs": clean_text(", ".join(p.to)),
        "cc_addrs": clean_text(", ".join(p.cc)),
        "reply_to": clean_text(", ".join(p.reply_to)),
        "date": p.date,
        "direction": decision.direction,
        "body_text": clean_text(p.body_text or ""),
        "body_html": clean_text(p.body_html or ""),
        "has_remote_content": bool(p.has_remote_content),
        "headers": clean_text(p.headers_text or ""),
        "raw": raw.data,
        "size": raw.size,
        "defects": clean_text("\n".join(defects)) if defects else None,
        "is_automatic": p.automatic_reason is not None,
        "no_action": decision.held,
        "no_action_reason": clean_text(decision.held_reason) if decision.held else None,
        "created_at": now,
    }


def mailbox_row(email_id: int, account_id: int, key: str, raw: RawMessage, now: datetime) -> Row:
    """The ``email_mailboxes`` row linking a stored e-mail to a mailbox it reached (``raw``: where)."""
    return {"email_id": email_id, "account_id": account_id, "message_key": key,
            "folder": clean_text(raw.folder, 255), "uidvalidity": raw.uidvalidity, "uid": raw.uid,
            "first_seen_at": now}


def ticket_row(ticket: NewTicket, account_id: int, assignee_id: int | None, now: datetime) -> Row:
    """The ``tickets`` row of a ticket opened by the batch (without its id and number).

    ``account_id`` is the scanned mailbox: who may see the ticket follows that mailbox's grants.
    """
    return {
        "subject": clean_text(ticket.subject, 500), "status": "open",
        "contact_id": ticket.contact_id, "organization_id": ticket.organization_id, "assignee_id": assignee_id,
        "parent_id": ticket.parent_id, "requester_email": clean_text(ticket.requester_email, 254),
        "account_id": account_id, "created_at": now, "updated_at": now,
    }


def attachment_and_link_rows(decisions: list[MessageDecision], email_ids: list[int],
                             ticket_ids: dict[int, int]) -> tuple[list[Row], list[Row]]:
    """The ``email_attachments`` and ``email_links`` rows of the stored e-mails.

    ``ticket_ids`` maps the placeholder id of each ticket opened by the batch to its real id.
    """
    attachment_rows: list[Row] = []
    link_rows: list[Row] = []
    for decision, email_id in zip(decisions, email_ids, strict=True):
        for a in decision.message.item.parsed.attachments:
            attachment_rows.append({
                "email_id": email_id, "filename": clean_text(a.filename or "attachment", 255),
                "content_type": clean_text(a.content_type or "application/octet-stream", 255),
                "size": len(a.data or b""), "content_id": clean_text(a.content_id, 300),
                "is_inline": bool(a.is_inline), "data": a.data or b""})
        for rtype, rid in sorted(decision.links):
            link_rows.append({"email_id": email_id, "record_type": rtype, "record_id": ticket_ids.get(rid, rid)})
    return attachment_rows, link_rows
