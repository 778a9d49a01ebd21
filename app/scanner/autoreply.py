"""Recognize auto-replies, bounces and bulk mail: they are stored but never open or reopen tickets."""

from __future__ import annotations

from app.scanner.types import ParsedMessage

_BULK_PRECEDENCE = frozenset({"bulk", "junk", "list"})
_BOUNCE_LOCALPARTS = frozenset({"mailer-daemon", "postmaster"})
_FALSE_VALUES = frozenset({"", "no", "false", "0", "off"})


def automatic_reason(parsed: ParsedMessage) -> str | None:
    """A short human reason why ``parsed`` is automatic mail, or None for a message from a person.

    Checked in this order (the first hit wins):
    RFC 3834 ``Auto-Submitted`` other than ``no``; ``X-Autoreply`` / ``X-Autorespond`` (any value
    but no/false/0); ``Precedence: bulk|junk|list``; ``List-Id`` (mailing-list traffic is bulk
    even without Precedence; ``List-Unsubscribe`` alone is *not* enough, many person-written
    mails carry it); ``X-Auto-Response-Suppress`` containing ``All`` or ``OOF`` (Exchange marks its
    own automatic mail this way); ``Return-Path: <>`` (null sender = bounce/notification);
    a sender ``mailer-daemon@`` / ``postmaster@``; a ``multipart/report`` body (DSN/MDN).
    """
    headers: dict[str, str] = {}
    for name, text in parsed.header_items:
        # The first occurrence wins: trace headers added later sit on top, but for these
        # fields a message normally carries one.
        headers.setdefault(name, text.strip())
    return _marked_automatic(headers) or _bulk(headers) or _bounce_or_report(headers, parsed.from_addr or "")


def _marked_automatic(headers: dict[str, str]) -> str | None:
    """Auto-Submitted, X-Autoreply / X-Autorespond."""
    value = headers.get("auto-submitted")
    if value is not None:
        token = value.split(";", 1)[0].strip().lower()
        if token and token != "no":
            kind = "auto-reply" if token == "auto-replied" else "automatic message"
            return f"{kind} (Auto-Submitted: {token})"
    for name, label in (("x-autoreply", "X-Autoreply"), ("x-autorespond", "X-Autorespond")):
        value = headers.get(name)
        if value is not None and value.lower() not in _FALSE_VALUES:
            return f"auto-reply ({label}: {value[:40]})"
    return None


def _bulk(headers: dict[str, str]) -> str | None:
    """Precedence, List-Id, X-Auto-Response-Suppress."""
    value = headers.get("precedence")
    if value is not None and value.lower() in _BULK_PRECEDENCE:
        return f"bulk mail (Precedence: {value.lower()})"
    value = headers.get("list-id")
    if value:
        return f"mailing list (List-Id: {value[:80]})"
    value = headers.get("x-auto-response-suppress")
    if value is not None:
        tokens = {t.strip().lower() for t in value.replace(";", ",").split(",")}
        if tokens & {"all", "oof"}:
            return f"automatic message (X-Auto-Response-Suppress: {value[:40]})"
    return None


def _bounce_or_report(headers: dict[str, str], sender: str) -> str | None:
    """A null Return-Path, a mailer-daemon sender, a multipart/report body."""
    value = headers.get("return-path")
    if value is not None and value.replace(" ", "") == "<>":
        return "bounce or notification (Return-Path: <>)"
    if sender.partition("@")[0] in _BOUNCE_LOCALPARTS:
        return f"bounce (from {sender})"
    value = headers.get("content-type")
    if value is not None and value.split(";", 1)[0].strip().lower() == "multipart/report":
        return "delivery or read report (multipart/report)"
    return None
