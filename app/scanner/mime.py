"""A fast MIME splitter for well-formed messages, exact to the stdlib parser or not used at all.

``email.feedparser`` (what ``BytesParser(policy=compat32)`` runs) works line by line in Python
and compiles a new regular expression for every multipart boundary: boundaries are unique per
message, so the ``re`` cache never hits, and a three-part message cost ten times a plain one.
``split_message`` cuts the same tree with bytes searches instead.

The contract is strict: for every input it accepts, the tree it returns is the one the stdlib
builds, seen through the subset of ``email.message.Message`` that the parse step uses
(``raw_items``, ``is_multipart``, ``get_payload``, ``get_default_type``, ``defects`` and the
parameter getters). Whatever it is not sure about (bare CR line ends, an envelope ``From `` line,
malformed header lines, anything the stdlib would record a defect for, ``message/*`` parts,
``multipart/digest``, uuencode, very deep nesting) makes it return None, and the caller falls
back to the stdlib parser. ``tests/unit/scanner/test_mime.py`` compares the two on many messages.

Semantics reproduced (Python 3.11 ``feedparser``, ``_policybase.Compat32``, ``message``):

- text is the bytes decoded as ASCII with ``surrogateescape``, so one byte is one character and
  byte offsets are character offsets;
- a header is ``name:`` (name in ``\\041-\\071``, ``\\073-\\176``) plus continuation lines; the value
  is the rest of the first line with leading blanks removed, the continuation lines as they are,
  and trailing CR/LF removed; the header block ends at the first empty line;
- a part is a multipart when its first Content-Type's type (before ``;``, stripped, lower case,
  exactly one ``/``) has the main type ``multipart``; a boundary line is ``--boundary``, an
  optional ``--``, optional blanks, the line end; the line end before a boundary line belongs to
  the boundary, so one CRLF or LF is taken off the end of each part;
- ``get_payload(decode=True)`` applies the first Content-Transfer-Encoding (lower case, not
  stripped): ``quoted-printable`` and ``base64`` with the stdlib's own decoders, else raw bytes.
"""

from __future__ import annotations

import quopri
import re
from collections.abc import Iterator
from email import _encoded_words  # type: ignore[attr-defined]  # the stdlib's own base64 decoder
from email.message import Message
from email.policy import compat32
from typing import Any, cast

# Nesting refused beyond this depth: the stdlib path then handles (and reports) deep nesting,
# so our result never depends on where the walker of app.scanner.bodies stops (its MAX_DEPTH is larger).
MAX_NESTING = 16

# One header: name, colon, value over its first line and any continuation lines (which start
# with a space or a tab). Bare CR is refused up front, so LF alone ends every line.
_HEADER = re.compile(rb"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)(?:\n|\Z)")
# The plain ``type/subtype; boundary=...`` form (quoted or not, nothing else): its boundary can be
# read without the stdlib's parameter parser (6 µs a call). Characters whose stdlib handling is
# subtle (backslash, quotes, angle brackets, ``*`` of RFC 2231, ``=`` in the type) send the value
# to ``Message.get_boundary`` instead.
_SIMPLE_BOUNDARY = re.compile(
    r'[^;"\\=<>*]*;[ \t\r\n]*(?i:boundary)[ \t\r\n]*=[ \t\r\n]*'
    r'(?:"([^"\\<>*\r\n]*)"|([^";\\<>*\s]+))[ \t\r\n]*'
)
_UUENCODE = frozenset({"x-uuencode", "uuencode", "uue", "x-uue"})
_MULTIPART_CTE = frozenset({"7bit", "8bit", "binary"})


class FastPart:
    """One part of a message cut by ``split_message``: the subset of ``email.message.Message``
    (compat32) that the parse step (``app.scanner.parse``, ``app.scanner.bodies``) uses, with the same results.

    Parameter lookups (filename, charset, any ``get_param``) are rare, so they go to a stdlib
    ``Message`` built on first use from the same raw headers: quoting and RFC 2231 rules stay
    the stdlib's own.
    """

    __slots__ = ("_headers", "_body", "_parts", "_cte", "_message", "defects")

    def __init__(self, headers: list[tuple[str, str]], body: bytes | None,
                 parts: list[FastPart] | None, cte: str) -> None:
        self._headers = headers
        self._body = body  # a leaf's payload bytes (None for a multipart)
        self._parts = parts  # a multipart's parts (None for a leaf)
        self._cte = cte  # first Content-Transfer-Encoding, lower case, as get_payload reads it
        self._message: Message | None = None
        # Only defect-free input is accepted; decoding base64 may still add one, as in the stdlib.
        self.defects: list[Any] = []

    def raw_items(self) -> Iterator[tuple[str, str]]:
        """(name, raw value) pairs of the headers, in order, as compat32 stores them."""
        return iter(list(self._headers))

    def is_multipart(self) -> bool:
        """True when the payload is a list of parts."""
        return self._parts is not None

    def get_default_type(self) -> str:
        """Always ``text/plain``: ``multipart/digest`` (whose parts default to message/rfc822) is refused."""
        return "text/plain"

    def get_payload(self, i: int | None = None, decode: bool = False) -> Any:
        """Like ``Message.get_payload`` in compat32: the parts of a multipart (None when
        ``decode``), a leaf's text, or with ``decode`` its bytes after the transfer encoding."""
        if self._parts is not None:
            if decode:
                return None
            return self._parts if i is None else self._parts[i]
        if i is not None:
            raise TypeError(f"Expected list, got {type(self._body)}")
        if not decode:
            return self._stdlib().get_payload()
        body = cast(bytes, self._body)  # a leaf always has its bytes
        if self._cte == "quoted-printable":
            return quopri.decodestring(body)
        if self._cte == "base64":
            value, defects = _encoded_words.decode_b(b"".join(body.splitlines()))
            self.defects.extend(defects)  # what compat32's handle_defect does
            return value
        return body  # uuencode is refused, so every other encoding means "as is"

    # Parameter getters: the stdlib's, on a Message holding the same headers.

    def get(self, name: str, failobj: Any = None) -> Any:
        """``Message.get``: the first header called ``name``."""
        return self._stdlib().get(name, failobj)

    def get_content_type(self) -> str:
        """``Message.get_content_type``."""
        return self._stdlib().get_content_type()

    def get_param(self, *args: Any, **kwargs: Any) -> Any:
        """``Message.get_param``."""
        return self._stdlib().get_param(*args, **kwargs)

    def get_params(self, *args: Any, **kwargs: Any) -> Any:
        """``Message.get_params``."""
        return self._stdlib().get_params(*args, **kwargs)

    def get_filename(self, failobj: Any = None) -> Any:
        """``Message.get_filename``."""
        return self._stdlib().get_filename(failobj)

    def get_boundary(self, failobj: Any = None) -> Any:
        """``Message.get_boundary``."""
        return self._stdlib().get_boundary(failobj)

    def get_content_charset(self, failobj: Any = None) -> Any:
        """``Message.get_content_charset``."""
        return self._stdlib().get_content_charset(failobj)

    def _stdlib(self) -> Message:
        if self._message is None:
            msg = Message(policy=compat32)
            for name, value in self._headers:
                msg.set_raw(name, value)
            if self._body is not None:
                msg.set_payload(self._body.decode("ascii", "surrogateescape"))
            self._message = msg
        return self._message


# A part of a message tree: the stdlib's (compat32) or ours.
Part = Message | FastPart


def split_message(data: bytes, *, headers_only: bool = False) -> FastPart | None:
    """The message tree of ``data`` as ``BytesParser(policy=compat32).parsebytes`` would build it,
    or None when ``data`` is not plainly well formed (the caller then uses the stdlib parser).

    With ``headers_only`` only the header block is read (``parsebytes(headersonly=True)``); the
    header block may then run to the end of ``data``.
    """
    # Bare CR ends a line for the stdlib; refusing it lets LF alone mark line ends here.
    # "From " first is an mbox envelope line, which the stdlib keeps apart from the headers.
    if data.startswith(b"From ") or data.count(b"\r") != data.count(b"\r\n"):
        return None
    if headers_only:
        blank = _blank_line(data, 0, len(data))
        if blank is None:
            head_end = body_start = len(data)  # the stdlib reads headers up to the end as well
        else:
            head_end, body_start = blank
        headers = _headers(data, 0, head_end)
        if headers is None:
            return None
        cte_value = _first(headers, "content-transfer-encoding")
        cte = cte_value.lower() if cte_value is not None else ""
        if cte in _UUENCODE:
            return None
        # What follows the header is the payload as it stands (the parse step does not read it).
        return FastPart(headers, data[body_start:], None, cte)
    return _part(data, 0, len(data), 0, None)


def _part(data: bytes, start: int, end: int, depth: int, boundary_above: str | None) -> FastPart | None:
    """The part in ``data[start:end]``: the whole message at depth 0, else the text between two
    boundary lines (its last line end still included)."""
    blank = _blank_line(data, start, end)
    if blank is None:
        return None  # no empty line after the headers: the stdlib notes a defect or reads on
    head_end, body_start = blank
    headers = _headers(data, start, head_end)
    if headers is None:
        return None
    ctype_value = _first(headers, "content-type")
    cte_value = _first(headers, "content-transfer-encoding")
    ctype = _content_type(ctype_value)
    maintype = ctype.split("/")[0]
    if maintype == "message":
        return None  # attached messages and delivery reports: nested parsing rules, left to the stdlib
    if maintype == "multipart" and ctype_value is not None:
        boundary = _multipart_boundary(ctype, ctype_value, cte_value, headers, depth, boundary_above)
        parts = _split(data, body_start, end, boundary, depth) if boundary is not None else None
        return FastPart(headers, None, parts, "") if parts is not None else None
    cte = cte_value.lower() if cte_value is not None else ""
    if cte in _UUENCODE:
        return None
    body_end = end
    if depth:
        # The line end before the next boundary line belongs to that boundary (RFC 2046).
        if data.endswith(b"\r\n", body_start, end):
            body_end -= 2
        elif data.endswith(b"\n", body_start, end):
            body_end -= 1
    return FastPart(headers, data[body_start:body_end], None, cte)


def _content_type(ctype_value: str | None) -> str:
    """A part's type as ``Message.get_content_type`` reads it (``text/plain`` when absent or invalid).

    Raw 8-bit bytes (here surrogate escapes) come back from Message.get as a Header whose str
    has U+FFFD for each: the type, the main type and the encoding compare the same either way.
    """
    if ctype_value is None:
        return "text/plain"
    ctype = ctype_value.partition(";")[0].strip().lower()
    return ctype if ctype.count("/") == 1 else "text/plain"


def _multipart_boundary(ctype: str, ctype_value: str, cte_value: str | None, headers: list[tuple[str, str]],
                        depth: int, boundary_above: str | None) -> str | None:
    """The boundary of a multipart this splitter reproduces exactly, or None to leave it to the stdlib."""
    if ctype == "multipart/digest" or depth >= MAX_NESTING or not ctype_value.isascii():
        return None  # (an 8-bit boundary parameter is not worth reproducing)
    if cte_value is not None and cte_value.lower() not in _MULTIPART_CTE:
        return None  # the stdlib notes a defect
    boundary = _boundary(ctype_value, headers)
    if not boundary or "\n" in boundary or "\r" in boundary or boundary == boundary_above:
        return None
    return boundary


def _split(data: bytes, start: int, end: int, boundary: str, depth: int) -> list[FastPart] | None:
    """The parts of the multipart body ``data[start:end]`` cut at ``boundary``'s lines, or None
    when the stdlib would see something irregular (no start or close line, an empty part)."""
    sep = b"--" + boundary.encode("ascii")
    size = len(sep)
    parts: list[FastPart] = []
    part_start = -1  # -1 while in the preamble
    pos = start
    while True:
        i = data.find(sep, pos, end)
        if i < 0:
            return None  # no start line, or no close line: the stdlib notes a defect
        pos = i + 1
        if i != start and data[i - 1] != 0x0A:
            continue  # not at the start of a line
        j = data.find(b"\n", i + size, end)
        line_end = end if j < 0 else j
        rest = data[i + size:line_end]
        if rest.endswith(b"\r"):
            rest = rest[:-1]  # the CR of CRLF (bare CR was refused)
        close = rest.startswith(b"--")
        if close:
            rest = rest[2:]
        if rest.strip(b" \t"):
            continue  # "--boundary-and-more": an ordinary line
        pos = end if j < 0 else j + 1
        if part_start < 0:
            if close:
                return None  # a close line before any start line
        else:
            if i == part_start:
                return None  # two boundary lines in a row: feedparser merges them, we do not try
            part = _part(data, part_start, i, depth + 1, boundary)
            if part is None:
                return None
            parts.append(part)
        if close:
            return parts  # the epilogue after the close line is not used
        part_start = pos


def _blank_line(data: bytes, start: int, end: int) -> tuple[int, int] | None:
    """(end of the header block, start of the body) for the first empty line in ``data[start:end]``."""
    if data.startswith(b"\n", start, end):
        return start, start + 1
    if data.startswith(b"\r\n", start, end):
        return start, start + 2
    lf = data.find(b"\n\n", start, end)
    # A CRLF blank line can only be the first if it starts before the first LF LF.
    crlf = data.find(b"\n\r\n", start, lf + 2 if lf >= 0 else end)
    if crlf >= 0:
        return crlf + 1, crlf + 3
    if lf >= 0:
        return lf + 1, lf + 2
    return None


def _headers(data: bytes, start: int, end: int) -> list[tuple[str, str]] | None:
    """(name, value) of each header in ``data[start:end]``, which must hold header lines only."""
    headers: list[tuple[str, str]] = []
    pos = start
    while pos < end:
        # Anchored at ``pos``: searching on (finditer) would retry from every position of a long
        # line without a colon, which costs the square of its length.
        m = _HEADER.match(data, pos, end)
        if m is None or m.end() == pos:
            return None  # a line that is neither a header nor a continuation
        pos = m.end()
        headers.append((m.group(1).decode("ascii"), m.group(2).decode("ascii", "surrogateescape").rstrip("\r\n")))
    return headers


def _first(headers: list[tuple[str, str]], lname: str) -> str | None:
    """The first value of header ``lname`` (lower case), as ``Message.get`` finds it."""
    for name, value in headers:
        if name.lower() == lname:
            return value
    return None


def _boundary(ctype_value: str, headers: list[tuple[str, str]]) -> str | None:
    """``Message.get_boundary`` of a part with these headers (ASCII Content-Type)."""
    m = _SIMPLE_BOUNDARY.fullmatch(ctype_value)
    if m:
        value = m.group(1) if m.group(1) is not None else m.group(2)
        return value.rstrip()
    msg = Message(policy=compat32)
    for name, value in headers:
        msg.set_raw(name, value)
    try:
        return msg.get_boundary()
    except Exception:  # noqa: BLE001 - whatever the stdlib raises on, its own parser will meet too
        return None
