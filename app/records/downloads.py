"""Responses that hand stored mail data to the browser as a download, never as a page."""

from __future__ import annotations

import re
import unicodedata
from urllib.parse import quote

from flask import Response

_TOKEN = r"[a-z0-9!#$&^_.+-]+"
_CONTENT_TYPE = re.compile(rf"^{_TOKEN}/{_TOKEN}$")
# Characters that mean something to a file system or to the header itself.
_UNSAFE = set('/\\"<>:|?*;%')


def safe_filename(name: str | None, default: str = "attachment") -> str:
    """The last path component of ``name``, without control, format or separator characters."""
    name = unicodedata.normalize("NFC", name or "").replace("\\", "/").split("/")[-1]
    # isprintable() is False for control characters and for bidi overrides (U+202E) that disguise extensions.
    name = "".join(ch for ch in name if ch.isprintable() and ch not in _UNSAFE)
    name = name.strip(" .")
    return name[:200] or default


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and the exact name in RFC 5987 ``filename*``."""
    name = safe_filename(filename)
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in ascii_name).strip(" .") or "attachment"
    value = f'attachment; filename="{ascii_name}"'
    if ascii_name != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value


def safe_content_type(value: str | None) -> str:
    """The stored type when it is a plain ``type/subtype``, else ``application/octet-stream``."""
    value = (value or "").split(";")[0].strip().lower()
    return value if _CONTENT_TYPE.match(value) else "application/octet-stream"


def download(data: bytes | None, filename: str, content_type: str) -> Response:
    """A response the browser saves to disk: attachment disposition, no sniffing, sandboxed if opened."""
    response = Response(data or b"", mimetype=None, content_type=safe_content_type(content_type))
    response.headers["Content-Disposition"] = content_disposition(filename)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cache-Control"] = "private, no-store"
    return response
