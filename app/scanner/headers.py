"""Header values decoded by our own small, forgiving code: text, message ids, addresses, dates.

- raw 8-bit bytes in headers: UTF-8 when valid, else Windows-1252 (what such mailers really send);
- RFC 2047 encoded words: adjacent words joined before decoding (a character may be split
  between two words), unknown charsets and broken base64/quoted-printable kept as readable text;
- addresses parsed from the raw header (so a comma in an encoded display name cannot split it),
  normalized to lower case, invalid ones dropped with a defect;
- dates in the RFC 5322 form nearly every mailer writes read by a regular expression, the rest
  by the stdlib.

Nothing here raises on bad input: problems are appended to the ``defects`` list passed in.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from datetime import UTC, datetime, timedelta
from email.utils import getaddresses, mktime_tz, parsedate_tz

MAX_ID_LENGTH = 250  # message ids longer than this are replaced by a hash (database columns hold 300)

_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([QqBb])\?([^?]*)\?=")
_BETWEEN_WORDS = re.compile(r"^[ \t\r\n]+$")
_ANGLE_ID = re.compile(r"<([^<>]*)>")
_ADDRESS = re.compile(r"^[^\s@<>(),;:\"\[\]\\]{1,64}@[\w-]+(?:\.[\w-]+)*$")
_NEEDS_FULL_PARSER = re.compile(r'["()\\;:\[\]]')
_SIMPLE_ANGLE = re.compile(r"^([^<>]*)<([^<>]*)>$")
_COMMON_DATE = re.compile(
    r"^\s*(?:[A-Za-z]{3},\s*)?(\d{1,2})\s+([A-Za-z]{3})\s+(\d{4})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?\s+([+-])(\d{2})(\d{2})"
    r"(?:\s*\(.*\))?\s*$"
)
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
SURROGATES = re.compile("[\udc80-\udcff]")  # raw 8-bit bytes kept by the parser as surrogate escapes


# --- text ------------------------------------------------------------------


def decode_bytes(data: bytes, charset: str | None, defects: list[str], what: str) -> str:
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
    if SURROGATES.search(value):
        # compat32 keeps raw 8-bit header bytes as surrogate escapes.
        raw = value.encode("ascii", "surrogateescape")
        value = decode_bytes(raw, None, defects, f"the {name} header")
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
        out.append(decode_bytes(data, charset, defects, f"the {name} header"))
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
    if SURROGATES.search(value):
        value = value.encode("ascii", "surrogateescape").decode("utf-8", "replace")
    m = _ANGLE_ID.search(value)
    mid = (m.group(1) if m else value).strip().replace("\x00", "")
    mid = "".join(mid.split())
    if not mid:
        return None
    if len(mid) > MAX_ID_LENGTH:
        return "sha256:" + hashlib.sha256(mid.encode("utf-8", "surrogateescape")).hexdigest()
    return mid


def message_ids(value: str | None) -> list[str]:
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


def address_list(raw_values: list[str], defects: list[str], name: str) -> list[tuple[str, str]]:
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
        if SURROGATES.search(addr):
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


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
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
