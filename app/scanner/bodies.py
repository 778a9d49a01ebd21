"""Bodies and attachments of a parsed message tree (the stdlib's, or ``app.scanner.mime``'s).

``Walker`` collects the text and HTML bodies and the attachments without descending into attached
messages. The stdlib's ``get_content_type`` / ``get_param`` re-parse every parameter on each call;
the part helpers here read the one token needed (the parser is a third of a message's cost, those
lookups were another third).
"""

from __future__ import annotations

import mimetypes
import re
import unicodedata
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from html import unescape
from html.parser import HTMLParser
from typing import cast

from app.scanner.headers import decode_bytes, decode_header_value, normalize_message_id
from app.scanner.mime import FastPart, Part
from app.scanner.types import AttachmentData

MAX_FILENAME_LENGTH = 150
MAX_DEPTH = 30  # nested multiparts deeper than this are not descended into

_CHARSET_PARAM = re.compile(r"\bcharset\s*=\s*\"?([^\";\s]+)", re.IGNORECASE)
_UNSAFE_NAME_CHARS = re.compile(r'[<>:"|?*\x00-\x1f\x7f]')
_FALLBACK_EXT = {
    "text/plain": ".txt", "text/html": ".html", "text/calendar": ".ics", "message/rfc822": ".eml",
    "image/jpeg": ".jpg", "application/octet-stream": ".bin", "message/delivery-status": ".txt",
    "text/rfc822-headers": ".txt", "message/disposition-notification": ".txt", "application/zip": ".zip",
}
_BLOCK_TAGS = frozenset({
    "p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "blockquote", "pre", "hr",
    "ul", "ol", "section", "article", "header", "footer",
})
_SKIP_TAGS = frozenset({"script", "style", "head", "title", "noscript", "template"})


class _TextFromHtml(HTMLParser):
    """Plain text of an HTML body, for the text column and search when a message has no text part."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: D102
        if tag in _SKIP_TAGS:
            self.skip += 1
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:  # noqa: D102
        if tag in _SKIP_TAGS:
            self.skip = max(0, self.skip - 1)
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:  # noqa: D102
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


# A boundary line: "--" and up to 70 of RFC 2046's boundary characters (a space only inside),
# or the closing line with "--" after it.
_BOUNDARY_LINE = re.compile(r"^--([0-9A-Za-z'()+_,./:=?-](?:[0-9A-Za-z'()+_,./:=? -]{0,68}[0-9A-Za-z'()+_,./:=?-])?)"
                            r"[ \t]*\r?$", re.MULTILINE)
_PARSER = BytesParser(policy=compat32)


def used_boundary(payload: str) -> str | None:
    """The boundary the parts of a multipart body actually use when it is not the declared one:
    a boundary line seen at least twice, or seen once and closed (``--b--``); None when there is none."""
    opened: dict[str, int] = {}
    closed: set[str] = set()
    for match in _BOUNDARY_LINE.finditer(payload):
        token = match.group(1)
        if token.endswith("--") and len(token) > 2:
            closed.add(token[:-2])
        else:
            opened[token] = opened.get(token, 0) + 1
    for token, count in opened.items():  # in the order they first appear
        if count >= 2 or token in closed:
            return token
    return None


def _with_used_boundary(ctype: str, payload: str, defects: list[str]) -> Message | None:
    """The multipart ``payload`` parsed again with the boundary its parts use, or None when they use none."""
    boundary = used_boundary(payload)
    if boundary is None or '"' in boundary:
        return None
    head = f'Content-Type: {ctype}; boundary="{boundary}"\r\n\r\n'.encode("ascii", "replace")
    reparsed = _PARSER.parsebytes(head + payload.encode("utf-8", "surrogateescape"))
    if not isinstance(reparsed.get_payload(), list):
        return None
    defects.append(f"MIME problem: the parts use the boundary {boundary[:70]!r}, not the one declared")
    return reparsed


class Walker:
    """Collects bodies and attachments from a message tree without descending into attached messages."""

    def __init__(self, defects: list[str]) -> None:
        self.defects = defects
        self.text_parts: list[str] = []
        self.html_parts: list[str] = []
        self.attachments: list[AttachmentData] = []
        self._seen_defects: set[str] = set()

    def note_defects(self, part: Part) -> None:
        for d in getattr(part, "defects", ()) or ():
            words = _defect_words(d)
            if words not in self._seen_defects:
                self._seen_defects.add(words)
                self.defects.append(words)

    def walk(self, part: Part, depth: int = 0) -> None:
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
                # A multipart whose declared boundary never appears: its parts may use another one.
                recovered = None if depth >= MAX_DEPTH - 1 else _with_used_boundary(ctype, payload, self.defects)
                if recovered is not None:
                    self.walk(recovered, depth + 1)
                else:  # one opaque blob: keep it as text
                    self._add_text_like(part, hdrs, "text/plain")
            return
        self._leaf(part, hdrs, ctype)

    def _leaf(self, part: Part, hdrs: dict[str, str], ctype: str) -> None:
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

    def _add_text_like(self, part: Part, hdrs: dict[str, str], ctype: str) -> None:
        data = _payload_bytes(part, ctype, self.defects)
        text = decode_bytes(data, _charset(part, hdrs), self.defects, f"a {ctype} part")
        if ctype == "text/html":
            self.html_parts.append(text)
        else:
            self.text_parts.append(text)


# The stdlib's get_content_type/get_param re-parse every parameter on each call; these read the
# one token we need (the parser is a third of a message's cost, these lookups were another third).


def _part_headers(part: Part) -> dict[str, str]:
    """A part's headers by lower-case name (first occurrence wins), built once per part:
    ``Message.get`` lower-cases every header name on each call."""
    hdrs: dict[str, str] = {}
    for key, value in part.raw_items():
        hdrs.setdefault(str(key).lower(), str(value))
    return hdrs


def _content_type(part: Part, hdrs: dict[str, str]) -> str:
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


def _charset(part: Part, hdrs: dict[str, str]) -> str | None:
    value = hdrs.get("content-type", "")
    if "*" in value:  # RFC 2231 parameters: let the stdlib collapse them
        try:
            return part.get_content_charset()
        except Exception:  # noqa: BLE001
            return None
    m = _CHARSET_PARAM.search(value)
    return m.group(1).lower() if m else None


def _filename(part: Part, hdrs: dict[str, str], defects: list[str]) -> str | None:
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


def _payload_bytes(part: Part, ctype: str, defects: list[str]) -> bytes:
    try:
        if ctype.startswith("message/") and part.is_multipart():
            # message/rfc822, message/delivery-status ...: compat32 parsed it into sub-messages;
            # store them as text again (the attached message downloads as .eml).
            payload = part.get_payload()
            return b"\n".join(
                sub.as_bytes(policy=compat32) if isinstance(sub, Message) else str(sub).encode()
                for sub in payload
            )
        data = cast("bytes | None", part.get_payload(decode=True))  # a leaf's bytes (None for a multipart)
        if data is None:
            payload = part.get_payload()
            data = payload.encode("utf-8", "surrogateescape") if isinstance(payload, str) else b""
        return data
    except Exception as exc:  # noqa: BLE001
        defects.append(f"unreadable {ctype} part ({type(exc).__name__})")
        return b""
