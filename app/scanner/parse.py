"""Parse one raw message into a ``ParsedMessage``, whatever the bytes.

Built on the stdlib ``email`` package with the ``compat32`` policy: it is the fastest parser the
stdlib has and never raises while parsing (problems become ``defects``). The newer
``email.policy.default`` builds header objects on access and raises on some malformed headers, and
measured 2-3x slower on 3 KB messages (``python -m tests.unit.scanner.parse_speed`` compares
them), so every header is decoded by our own small, forgiving code
(``app.scanner.headers``). Well-formed messages are cut into parts by ``app.scanner.mime``, the
rest by the stdlib; bodies and attachments are collected by ``app.scanner.bodies``.

``parse_message`` never raises: any unexpected error ends in a minimal message with the reason in
``defects``, so one bad message never stops a run.
"""

from __future__ import annotations

import hashlib
import re
from email.parser import BytesParser
from email.policy import compat32

from app.scanner.autoreply import automatic_reason
from app.scanner.bodies import Walker, html_to_text
from app.scanner.headers import (
    SURROGATES,
    address_list,
    decode_header_value,
    message_ids,
    normalize_message_id,
    parse_date,
)
from app.scanner.mime import Part, split_message
from app.scanner.sanitize import sanitize_html
from app.scanner.types import RECEIVED_DATE_DEFECT, TRUNCATED_DEFECT, AttachmentData, ParsedMessage, RawMessage

MAX_NAME_LENGTH = 300
MAX_HEADER_VALUE = 20_000  # a header value longer than this is cut (display and filters only)

_PARSER = BytesParser(policy=compat32)
# Well-formed messages are cut by app.scanner.mime (same tree, several times faster on multiparts);
# the rest goes to _PARSER. Tests set this to False to compare against the stdlib alone.
FAST_MIME = True
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")


# --- the message -----------------------------------------------------------


def parse_message(raw: RawMessage) -> ParsedMessage:
    """Parse ``raw`` (see the module docstring); never raises, problems land in ``defects``."""
    try:
        return _parse(raw)
    except Exception as exc:  # noqa: BLE001 - the promise is "never raises" (RecursionError included)
        return _unparseable(raw, f"could not be parsed ({type(exc).__name__}: {str(exc)[:200]})")


def _unparseable(raw: RawMessage, reason: str) -> ParsedMessage:
    data = raw.data or b""
    defects = [reason]
    if raw.truncated:
        defects.append(TRUNCATED_DEFECT)
    return ParsedMessage(
        raw=raw, message_id=None, message_key="sha256:" + hashlib.sha256(data).hexdigest(),
        in_reply_to=None, references=[], subject="", from_addr=None, from_name="", to=[], cc=[],
        reply_to=[], date=None, headers_text="", header_items=[],
        body_text=_clean(data[:100_000].decode("utf-8", "replace")), body_html="", has_remote_content=False,
        attachments=[], defects=defects,
    )


def _parse(raw: RawMessage) -> ParsedMessage:
    data = raw.data or b""
    defects: list[str] = []
    if raw.truncated:
        defects.append(TRUNCATED_DEFECT)
    msg: Part | None = split_message(data, headers_only=raw.truncated) if FAST_MIME else None
    if msg is None:
        msg = _PARSER.parsebytes(data, headersonly=raw.truncated)

    raw_by_name, decoded_by_name, header_items, lines = _read_headers(msg, defects)
    message_id = _message_id(raw_by_name.get("message-id", []), defects)
    irt_values = raw_by_name.get("in-reply-to")
    irt = message_ids(irt_values[0] if irt_values else None)
    references = message_ids(" ".join(raw_by_name.get("references", ())))
    addr = _addresses(raw_by_name, defects)
    from_addr, from_name = (addr["from"][0] if addr["from"] else (None, ""))
    if from_addr is None and not from_name:
        from_name = _display_only(decoded_by_name.get("from"))
    subject = decoded_by_name.get("subject", "")
    date = parse_date(decoded_by_name.get("date"), defects)
    if date is None and raw.internal_date is not None:
        # Dated and sorted by when the server received it, rather than not at all.
        date = raw.internal_date
        defects.append(RECEIVED_DATE_DEFECT)
    body_text, body_html, had_remote, attachments = ("", "", False, []) if raw.truncated else _bodies(msg, defects)

    parsed = ParsedMessage(
        raw=raw,
        message_id=message_id,
        message_key=message_id or "sha256:" + hashlib.sha256(data).hexdigest(),
        in_reply_to=irt[0] if irt else None,
        references=references,
        subject=subject.replace("\r", " ").replace("\n", " ").replace("\t", " "),
        from_addr=from_addr,
        from_name=_clean(from_name[:MAX_NAME_LENGTH]),
        to=[a for a, _ in addr["to"]],
        cc=[a for a, _ in addr["cc"]],
        reply_to=[a for a, _ in addr["reply-to"]],
        date=date,
        headers_text="\n".join(lines),
        header_items=header_items,
        body_text=_clean(body_text),
        body_html=_clean(body_html),
        has_remote_content=had_remote,
        attachments=attachments,
        defects=_dedupe(defects),
    )
    parsed.automatic_reason = automatic_reason(parsed)
    return parsed


_HeaderBlock = tuple[dict[str, list[str]], dict[str, str], list[tuple[str, str]], list[str]]


def _read_headers(msg: Part, defects: list[str]) -> _HeaderBlock:
    """The header block: raw values by lower-case name (in order), the first decoded value by
    name, (lower-case name, decoded value) pairs in order, and the display lines."""
    raw_by_name: dict[str, list[str]] = {}
    decoded_by_name: dict[str, str] = {}
    header_items: list[tuple[str, str]] = []
    lines: list[str] = []
    for name, value in msg.raw_items():
        name, value = str(name), str(value)
        if not name.isascii():
            name = _display_name(name)
        lname = name.lower()
        if (
            value.isascii() and len(value) < MAX_HEADER_VALUE
            and "=?" not in value and "\n" not in value and "\x00" not in value
        ):
            text = value.strip()  # the common case, inlined: this loop runs for every header
        else:
            text = _clean(decode_header_value(value[:MAX_HEADER_VALUE], defects, name))
        known = raw_by_name.get(lname)
        if known is None:
            raw_by_name[lname] = [value]
            decoded_by_name[lname] = text
        else:
            known.append(value)
        header_items.append((lname, text))
        lines.append(f"{name}: {text}")
    return raw_by_name, decoded_by_name, header_items, lines


def _message_id(raw_mid: list[str], defects: list[str]) -> str | None:
    """The first Message-ID, normalized; a missing, empty or repeated one is a defect."""
    message_id = normalize_message_id(raw_mid[0]) if raw_mid else None
    if not raw_mid:
        defects.append("no Message-ID header")
    elif message_id is None:
        defects.append("empty Message-ID header")
    if len(raw_mid) > 1:
        defects.append("more than one Message-ID header: the first was used")
    return message_id


def _addresses(raw_by_name: dict[str, list[str]], defects: list[str]) -> dict[str, list[tuple[str, str]]]:
    """(address, display name) pairs of From, To, Cc and Reply-To; a message without From has a defect."""
    addr: dict[str, list[tuple[str, str]]] = {}
    for name in _ADDRESS_HEADERS:
        values = raw_by_name.get(name)
        addr[name] = address_list(values, defects, name.title()) if values else []
    if "from" not in raw_by_name:
        defects.append("no From header")
    return addr


def _bodies(msg: Part, defects: list[str]) -> tuple[str, str, bool, list[AttachmentData]]:
    """(text body, sanitized HTML body, whether the HTML had remote content, attachments)."""
    body_text = body_html = ""
    had_remote = False
    walker = Walker(defects)
    walker.walk(msg)
    html = "\n".join(walker.html_parts)
    if html.strip():
        body_html, had_remote = sanitize_html(html)
    if walker.text_parts:
        body_text = "\n\n".join(t.strip("\r\n") for t in walker.text_parts).replace("\r\n", "\n")
    elif html.strip():
        body_text = html_to_text(html)
    return body_text, body_html, had_remote, walker.attachments


def _display_name(name: str) -> str:
    if not name.isascii() and SURROGATES.search(name):
        return name.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    return name


def _display_only(decoded_from: str | None) -> str:
    """The display part of a From header that held no valid address ("Support Team <broken>")."""
    if not decoded_from:
        return ""
    return decoded_from.split("<", 1)[0].strip().strip('"').strip()


def _clean(text: str) -> str:
    """Text safe for every database we run on: PostgreSQL refuses NUL characters, and no
    driver can encode a lone surrogate."""
    if text.isascii():
        return text.replace("\x00", "") if "\x00" in text else text
    if "\x00" in text:
        text = text.replace("\x00", "")
    if _ANY_SURROGATE.search(text):
        text = _ANY_SURROGATE.sub("\ufffd", text)
    return text


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))

