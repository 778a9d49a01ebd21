"""Small builders for pipeline tests: a ParsedMessage from a few fields, or from raw bytes."""

from __future__ import annotations

from app.scanner.parse import parse_message
from app.scanner.types import ParsedMessage, RawMessage


def raw(data: bytes, *, uid: int = 1, folder: str = "INBOX", truncated: bool = False) -> RawMessage:
    """A RawMessage around ``data`` as the fetch step would hand it over."""
    return RawMessage(folder=folder, uidvalidity=7, uid=uid, data=data, size=len(data), truncated=truncated)


def parse(data: bytes | str, **kw) -> ParsedMessage:
    """Parse a message given as bytes, or as text with LF line ends (turned into CRLF)."""
    if isinstance(data, str):
        data = data.lstrip("\n").replace("\n", "\r\n").encode("utf-8")
    return parse_message(raw(data, **kw))


def message(
    *,
    from_addr: str | None = "alice@customer.example",
    to: list[str] | None = None,
    cc: list[str] | None = None,
    reply_to: list[str] | None = None,
    subject: str = "Hello",
    headers: list[tuple[str, str]] | None = None,
    message_id: str | None = "m1@customer.example",
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    automatic_reason: str | None = None,
) -> ParsedMessage:
    """A ParsedMessage built directly from fields (no parsing) for the pure steps."""
    return ParsedMessage(
        raw=raw(b""),
        message_id=message_id,
        message_key=message_id or "sha256:0",
        in_reply_to=in_reply_to,
        references=references or [],
        subject=subject,
        from_addr=from_addr,
        from_name="",
        to=to if to is not None else ["support@corp.test"],
        cc=cc or [],
        reply_to=reply_to or [],
        date=None,
        headers_text="",
        header_items=headers or [],
        body_text="",
        body_html="",
        has_remote_content=False,
        attachments=[],
        automatic_reason=automatic_reason,
    )
