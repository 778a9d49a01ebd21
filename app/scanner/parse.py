"""Parse one raw message into a ``ParsedMessage``, whatever the bytes.

Built on the stdlib ``email`` package with the ``compat32`` policy: it is the fastest parser the
stdlib has and never raises while parsing (problems become ``defects``). The newer
``email.policy.default`` builds header objects on access and raises on some malformed headers, and
measured 2-3x slower on 3 KB messages (see tests/unit/scanner/test_parse.py's docstring and the
helper's report), so every header here is decoded by our own small, forgiving code:

- raw 8-bit bytes in headers: UTF-8 when valid, else Windows-1252 (what such mailers really send);
- RFC 2047 encoded words: adjacent words joined before decoding (a character may be split
  between two words), unknown charsets and broken base64/quoted-printable kept as readable text;
- addresses parsed from the raw header (so a comma in an encoded display name cannot split it),
  normalized to lower case, invalid ones dropped with a defect.

``parse_message`` never raises: any unexpected error ends in a minimal message with the reason in
``defects``, so one bad message never stops a run.
"""

from __future__ import annotations

import binascii
import hashlib
import mimetypes
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import getaddresses, mktime_tz, parsedate_tz
from html import unescape
from html.parser import HTMLParser

from app.scanner.autoreply import automatic_reason
from app.scanner.mime import FastPart, split_message
from app.scanner.sanitize import sanitize_html
from app.scanner.types import AttachmentData, ParsedMessage, RawMessage

TRUNCATED_DEFECT = "message over the size limit: only its header was stored"
MAX_ID_LENGTH = 250  # message ids longer than this are replaced by a hash (database columns hold 300)
MAX_FILENAME_LENGTH = 150
MAX_NAME_LENGTH = 300
MAX_DEPTH = 30  # nested multiparts deeper than this are not descended into
MAX_HEADER_VALUE = 20_000  # a header value longer than this is cut (display and filters only)

_PARSER = BytesParser(policy=compat32)
# Well-formed messages are cut by app.scanner.mime (same tree, several times faster on multiparts);
# the rest goes to _PARSER. Tests set this to False to compare against the stdlib alone.
FAST_MIME = True
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"^[ \t\r\n]+$")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_ADDRESS = re.compile(r"^[^\s@<>(),;:\"\[\]\\]{1,64}@[\w-]+(?:\.[\w-]+)*$")
_NEEDS_FULL_PARSER = re.compile(r'["()\\;:\[\]]')
_SIMPLE_ANGLE = re.compile(r"^([^<>]*)<([^<>]*)>$")
_CHARSET_PARAM = re.compile(r"\bcharset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_COMMON_DATE = re.compile(
    r"^\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})"
    r"(?:\s*\(.*\))?\s*$"
)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
_SURROGATES = re.compile("[\udc80-\udcff]")  # raw 8-bit bytes kept by the parser as surrogate escapes
_ANY_SURROGATE = re.compile("[\ud800-\udfff]")
_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')
_FALLBACK_EXT = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "message/rfc822": ".eml",
    "image/jpeg": ".jpg", "application/octet-stream": ".bin", "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt", "message/disposition-notification": ".txt", "application/zip": ".zip",
}
_ADDRESS_HEADERS = ("from", "to", "cc", "reply-to")
_BLOCK_TAGS = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "hr",
    "ul", "ol", "section", "article", "header", "footer",
})
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})


# --- text decoding ---------------------------------------------------------


def _decode_bytes(data: bytes, charset: str | None, defects: list[str], what: str) -> str:
    """Decode ``data`` in its declared charset, falling back to UTF-8, then Windows-1252."""
    if charset:
        charset = charset.strip().strip('"').lower()
        if charset in ("unknown-8bit", "x-unknown", "us-ascii", "ascii", "default"):
            charset = None  # "ascii" mail with 8-bit bytes is really UTF-8 or Latin-1
    if charset:
        try:
            return data.decode(charset)
        except UnicodeDecodeError:
            pass
        except (LookupError, ValueError):
            # Unknown or non-text codecs ("zlib", "base64" ...) are never applied.
            defects.append(f"unknown charset {charset[:40]!r} in {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if charset:
        try:
            text = data.decode(charset, "replace")
        except (LookupError, ValueError):
            text = None
        if text is not None:
            defects.append(f"invalid {charset[:40]} bytes in {what}")
            return text
    if not data.isascii():
        if charset is None:
            defects.append(f"8-bit bytes without a charset in {what}")
    return data.decode("cp1252", "replace")


def _decode_word(charset: str, encoding: str, text: str) -> bytes | None:
    try:
        if encoding in "bB":
            text = text.strip()
            return binascii.a2b_base64(text + "=" * (-len(text) % 4), strict_mode=True)
        return binascii.a2b_qp(text.replace("_", " ").encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return None


def decode_header_value(value: str, defects: list[str] | None = None, name: str = "message") -> str:
    """Unfold and decode one raw header value (8-bit bytes and RFC 2047 words) into text."""
    if value.isascii() and "=?" not in value and "\n" not in value:
        return value.strip()  # the common case, and surrogate escapes are never ASCII
    if defects is None:
        defects = []
    value = _FOLD.sub("", value).strip("\r\n")
    if _SURROGATES.search(value):
        # compat32 keeps raw 8-bit header bytes as surrogate escapes.
        raw = value.encode("ascii", "surrogateescape")
        value = _decode_bytes(raw, None, defects, f"the {name} header")
    if "=?" not in value:
        return value.strip()
    out: list[str] = []
    pos = 0
    pending: list[tuple[str, bytes]] = []  # consecutive decoded words not yet turned into text

    def flush() -> None:
        if not pending:
            return
        charset = pending[0][0]
        data = b"".join(d for _, d in pending)
        out.append(_decode_bytes(data, charset, defects, f"the {name} header"))
        pending.clear()

    for m in _ENCODED_WORD.finditer(value):
        gap = value[pos:m.start()]
        pos = m.end()
        charset = m.group(1).split("*", 1)[0].lower()  # drop an RFC 2231 language suffix
        data = _decode_word(charset, m.group(2), m.group(3))
        if data is None:
            defects.append(f"badly encoded word in the {name} header")
            flush()
            out.append(gap + m.group(0))  # keep it as it came: still readable
            continue
        if pending and (not gap or _BETWEEN_WORDS.match(gap)):
            # Whitespace between two encoded words is not part of the text (RFC 2047 §6.2).
            if pending[0][0] != charset:
                flush()
        else:
            flush()
            out.append(gap)
        pending.append((charset, data))
    flush()
    out.append(value[pos:])
    return "".join(out).strip()


# --- identifiers, addresses, dates -----------------------------------------


def normalize_message_id(value: str | None) -> str | None:
    """A Message-ID without <> and whitespace; over-long ids become a stable hash of themselves."""
    if not value:
        return None
    if _SURROGATES.search(value):
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    m = _ANGLE_ID.search(value)
    mid = (m.group(1) if m else value).strip().replace("\x00", "")
    mid = "".join(mid.split())
    if not mid:
        return None
    if len(mid) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(mid.encode("utf-8", "surrogateescape")).hexdigest()
    return mid


def _message_ids(value: str | None) -> list[str]:
    if not value:
        return []
    found = _ANGLE_ID.findall(value)
    if not found:
        found = value.split()
    out: dict[str, None] = {}
    for item in found:
        mid = normalize_message_id(item)
        if mid:
            out.setdefault(mid, None)
    return list(out)


def normalize_address(addr: str) -> str | None:
    """Lower-case ``addr`` when it is a plausible mailbox address, else None."""
    addr = addr.strip().strip("<>").strip().lower()
    if len(addr) > 254 or not _ADDRESS.match(addr):
        return None
    return addr


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """Fast path for the common forms (``a@b``, ``Name <a@b>``, comma-separated); None when a
    value has quotes, comments, groups or escapes and needs the stdlib's full RFC 5322 parser."""
    out: list[tuple[str, str]] = []
    for value in values:
        if _NEEDS_FULL_PARSER.search(value):
            return None
        for item in value.split(","):
            item = item.strip()
            if not item:
                continue
            m = _SIMPLE_ANGLE.match(item)
            if m:
                out.append((m.group(1).strip(), m.group(2).strip()))
            elif "<" in item or ">" in item:
                return None
            else:
                out.append(("", item))
    return out


def _addresses(raw_values: list[str], defects: list[str], name: str) -> list[tuple[str, str]]:
    """(normalized address, decoded display name) pairs of an address header, invalid ones dropped."""
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    unfolded = [_FOLD.sub("", v) for v in raw_values]
    pairs = _simple_addresses(unfolded)
    if pairs is None:
        try:
            pairs = getaddresses(unfolded)
        except Exception:  # noqa: BLE001 - the stdlib address parser has raised on hostile input before
            pairs = []
            defects.append(f"unreadable {name} header")
    for display, addr in pairs:
        if not addr and not display:
            continue
        if _SURROGATES.search(addr):
            addr = addr.encode("ascii", "surrogateescape").decode("utf-8", "replace")
        norm = normalize_address(addr)
        if norm is None:
            shown = (addr or display)[:80]
            defects.append(f"invalid address {shown!r} in {name} dropped")
            continue
        if norm in seen:
            continue
        seen.add(norm)
        out.append((norm, decode_header_value(display, defects, name) if display else ""))
    return out


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if not value:
        defects.append("no Date header")
        return None
    m = _COMMON_DATE.match(value)
    if m:  # the RFC 5322 form nearly every mailer writes; the stdlib's parser is slow pure Python
        day, mon, year, hh, mm, ss, sign, zh, zm = m.groups()
        month = _MONTHS.get(mon.lower())
        try:
            if month is None:
                raise ValueError(mon)
            local = datetime(int(year), month, int(day), int(hh), int(mm), int(ss or 0))
            offset = timedelta(hours=int(zh), minutes=int(zm))
            return local - offset if sign == "+" else local + offset
        except (ValueError, OverflowError):
            pass  # impossible values: let the general parser have its say
    try:
        parts = parsedate_tz(value)
        if parts is None:
            raise ValueError(value)
        if parts[9] is None:
            parts = parts[:9] + (0,)  # no zone given: RFC 5322 says treat it as UTC
        stamp = mktime_tz(parts)
        return datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None)
    except (ValueError, OverflowError, OSError, TypeError, IndexError):
        defects.append(f"unreadable Date header {value[:60]!r}")
        return None


# --- bodies and attachments ------------------------------------------------


class _TextFromHtml(HTMLParser):
    """Plain text of an HTML body, for the text column and search when a message has no text part."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag, attrs):  # noqa: D102
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):  # noqa: D102
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):  # noqa: D102
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable plain text from HTML: tags dropped, scripts and styles skipped, blocks on new lines."""
    parser = _TextFromHtml()
    try:
        parser.feed(html)
        parser.close()
        text = "".join(parser.parts)
    except Exception:  # noqa: BLE001 - HTMLParser can assert on broken markup; fall back to a crude strip
        text = unescape(re.sub(r"<[^>]*>", " ", html))
    lines = (" ".join(line.split()) for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def safe_filename(name: str | None, content_type: str, index: int) -> str:
    """A filename safe to store and serve: no directories, no control or bidi characters, no
    leading dots, at most ``MAX_FILENAME_LENGTH`` characters (extension kept), never empty
    (``attachment-<index>.<extension from the type>``)."""
    name = name or ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(
        c for c in name if unicodedata.category(c) not in ("Cc", "Cf", "Cs", "Co", "Zl", "Zp")
    )
    name = _UNSAFE_NAME_CHARS.sub("_", name)
    name = " ".join(name.split())  # collapse odd whitespace
    name = name.strip(". ")
    if len(name) > MAX_FILENAME_LENGTH:
        stem, dot, ext = name.rpartition(".")
        if dot and 0 < len(ext) <= 16 and stem:
            name = stem[: MAX_FILENAME_LENGTH - len(ext) - 1].rstrip(". ") + "." + ext
        else:
            name = name[:MAX_FILENAME_LENGTH].rstrip(". ")
    if not name:
        ext = _FALLBACK_EXT.get(content_type) or mimetypes.guess_extension(content_type, strict=False) or ".bin"
        name = f"attachment-{index}{ext}"
    return name


def _defect_words(defect: object) -> str:
    name = type(defect).__name__.removesuffix("Defect")
    words = re.sub(r"(?<!^)(?=[A-Z])", " ", name).lower()
    return f"MIME problem: {words}"


class _Walker:
    """Collects bodies and attachments from a message tree without descending into attached messages."""

    def __init__(self, defects: list[str]) -> None:
        self.defects = defects
        self.text_parts: list[str] = []
        self.html_parts: list[str] = []
        self.attachments: list[AttachmentData] = []
        self._seen_defects: set[str] = set()

    def note_defects(self, part: Message) -> None:
        for d in getattr(part, "defects", ()) or ():
            words = _defect_words(d)
            if words not in self._seen_defects:
                self._seen_defects.add(words)
                self.defects.append(words)

    def walk(self, part: Message, depth: int = 0) -> None:
        self.note_defects(part)
        hdrs = _part_headers(part)
        ctype = _content_type(part, hdrs)
        if ctype.startswith("multipart/") or (part.is_multipart() and not ctype.startswith("message/")):
            if depth >= MAX_DEPTH:
                self.defects.append(f"multipart nesting deeper than {MAX_DEPTH} levels: inner parts skipped")
                return
            payload = part.get_payload()
            if isinstance(payload, list):
                for sub in payload:
                    if isinstance(sub, (Message, FastPart)):
                        self.walk(sub, depth + 1)
            elif isinstance(payload, str) and payload.strip():
                # A multipart whose boundary never appears: its body is one opaque blob; keep it as text.
                self._add_text_like(part, hdrs, "text/plain")
            return
        self._leaf(part, hdrs, ctype)

    def _leaf(self, part: Message, hdrs: dict[str, str], ctype: str) -> None:
        disposition = _disposition(hdrs)
        filename = _filename(part, hdrs, self.defects)
        content_id = normalize_message_id(hdrs.get("content-id"))
        is_body = ctype in ("text/plain", "text/html") and not filename and disposition != "attachment"
        if is_body:
            self._add_text_like(part, hdrs, ctype)
            return
        data = _payload_bytes(part, ctype, self.defects)
        self.attachments.append(AttachmentData(
            filename=safe_filename(filename, ctype, len(self.attachments) + 1),
            content_type=ctype[:255],
            data=data,
            content_id=content_id[:300] if content_id else None,
            is_inline=bool(content_id) and disposition != "attachment",
        ))

    def _add_text_like(self, part: Message, hdrs: dict[str, str], ctype: str) -> None:
        data = _payload_bytes(part, ctype, self.defects)
        text = _decode_bytes(data, _charset(part, hdrs), self.defects, f"a {ctype} part")
        if ctype == "text/html":
            self.html_parts.append(text)
        else:
            self.text_parts.append(text)


# The stdlib's get_content_type/get_param re-parse every parameter on each call; these read the
# one token we need (the parser is a third of a message's cost, these lookups were another third).


def _part_headers(part: Message) -> dict[str, str]:
    """A part's headers by lower-case name (first occurrence wins), built once per part:
    ``Message.get`` lower-cases every header name on each call."""
    hdrs: dict[str, str] = {}
    for key, value in part.raw_items():
        hdrs.setdefault(str(key).lower(), str(value))
    return hdrs


def _content_type(part: Message, hdrs: dict[str, str]) -> str:
    value = hdrs.get("content-type", "")
    if not value:
        return part.get_default_type()
    ctype = value.split(";", 1)[0].strip().lower()
    if ctype.count("/") != 1 or len(ctype) > 100 or not ctype.isascii() or " " in ctype:
        return "text/plain"  # what RFC 2045 (and the stdlib) say an invalid type means
    return ctype


def _disposition(hdrs: dict[str, str]) -> str | None:
    value = hdrs.get("content-disposition", "")
    if not value:
        return None
    return value.split(";", 1)[0].strip().lower() or None


def _charset(part: Message, hdrs: dict[str, str]) -> str | None:
    value = hdrs.get("content-type", "")
    if "*" in value:  # RFC 2231 parameters: let the stdlib collapse them
        try:
            return part.get_content_charset()
        except Exception:  # noqa: BLE001
            return None
    m = _CHARSET_PARAM.search(value)
    return m.group(1).lower() if m else None


def _filename(part: Message, hdrs: dict[str, str], defects: list[str]) -> str | None:
    if "name" not in (hdrs.get("content-type", "") + hdrs.get("content-disposition", "")).lower():
        return None
    try:
        name = part.get_filename() or part.get_param("name")
    except Exception:  # noqa: BLE001 - RFC 2231 parameters with garbage
        name = None
    if isinstance(name, tuple):  # an RFC 2231 triple the stdlib could not collapse
        name = name[2] if len(name) == 3 else None
    if not name:
        return None
    if not isinstance(name, str):
        name = str(name)
    return decode_header_value(name, defects, "attachment name")


def _payload_bytes(part: Message, ctype: str, defects: list[str]) -> bytes:
    try:
        if ctype.startswith("message/") and part.is_multipart():
            # message/rfc822, message/delivery-status ...: compat32 parsed it into sub-messages;
            # store them as text again (the attached message downloads as .eml).
            payload = part.get_payload()
            return b"\n".join(
                sub.as_bytes(policy=compat32) if isinstance(sub, Message) else str(sub).encode()
                for sub in payload
            )
        data = part.get_payload(decode=True)
        if data is None:
            payload = part.get_payload()
            data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
        return data
    except Exception as exc:  # noqa: BLE001
        defects.append(f"unreadable {ctype} part ({type(exc).__name__})")
        return b""


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
    msg = split_message(data, headers_only=raw.truncated) if FAST_MIME else None
    if msg is None:
        msg = _PARSER.parsebytes(data, headersonly=raw.truncated)

    raw_by_name: dict[str, list[str]] = {}  # lower-case name -> raw values, in order
    decoded_by_name: dict[str, str] = {}  # lower-case name -> first decoded value
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

    raw_mid = raw_by_name.get("message-id", [])
    message_id = normalize_message_id(raw_mid[0]) if raw_mid else None
    if not raw_mid:
        defects.append("no Message-ID header")
    elif message_id is None:
        defects.append("empty Message-ID header")
    if len(raw_mid) > 1:
        defects.append("more than one Message-ID header: the first was used")
    message_key = message_id or "sha256:" + hashlib.sha256(data).hexdigest()

    irt = _message_ids((raw_by_name.get("in-reply-to") or [None])[0])
    references = _message_ids(" ".join(raw_by_name.get("references", ())))

    addr: dict[str, list[tuple[str, str]]] = {}
    for name in _ADDRESS_HEADERS:
        values = raw_by_name.get(name)
        addr[name] = _addresses(values, defects, name.title()) if values else []
    if "from" not in raw_by_name:
        defects.append("no From header")
    from_addr, from_name = (addr["from"][0] if addr["from"] else (None, ""))
    if from_addr is None and not from_name:
        from_name = _display_only(decoded_by_name.get("from"))

    subject = decoded_by_name.get("subject", "")
    date = _parse_date(decoded_by_name.get("date"), defects)

    body_text = body_html = ""
    had_remote = False
    attachments: list[AttachmentData] = []
    if not raw.truncated:
        walker = _Walker(defects)
        walker.walk(msg)
        attachments = walker.attachments
        html = "\n".join(walker.html_parts)
        if html.strip():
            body_html, had_remote = sanitize_html(html)
        if walker.text_parts:
            body_text = "\n\n".join(t.strip("\r\n") for t in walker.text_parts).replace("\r\n", "\n")
        elif html.strip():
            body_text = html_to_text(html)

    parsed = ParsedMessage(
        raw=raw,
        message_id=message_id,
        message_key=message_key,
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


def _display_name(name: str) -> str:
    if not name.isascii() and _SURROGATES.search(name):
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

