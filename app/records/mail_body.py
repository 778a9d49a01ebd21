"""Serving a stored (already sanitized) HTML body: cid: images and blocked remote images.

The scanner stores the body sanitized: no scripts, no event handlers, and every
remote image with its address moved out of ``src`` into ``data-remote-src``, so
that nothing is fetched until the reader asks. Here, at serve time, inline
``cid:`` images are resolved to the attachment they name and, only on request,
remote images get their ``src`` back. The frame's Content-Security-Policy is the
second line of defence should the stored HTML still hold something active.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Mapping

# An <img> start tag, quoted attribute values allowed to hold ">".
_IMG_TAG = re.compile(r"""<img\b(?:[^>"']|"[^"]*"|'[^']*')*>""", re.IGNORECASE)
_ATTR = re.compile(r"""(\s)([a-zA-Z_:][-a-zA-Z0-9_:.]*)(\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?""")
# Placeholders the sanitizer may leave for an inline image: src="cid:…", data-cid="…", data-cid-src="…".
_CID_ATTRS = ("src", "data-cid", "data-cid-src")
# Image types a browser shows from a data: URI without running anything (no SVG).
INLINE_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp",
                                "image/bmp", "image/x-icon", "image/vnd.microsoft.icon"})

BODY_CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; frame-ancestors 'self'"
REMOTE_BODY_CSP = "default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'"

_DOCUMENT = ('<!doctype html><html><head><meta charset="utf-8"><base target="_blank">'
             '<style>body{{font-family:system-ui,sans-serif;margin:.5rem;overflow-wrap:anywhere}}'
             'img{{max-width:100%}}pre{{white-space:pre-wrap}}</style></head><body>{body}</body></html>')


def normalize_cid(value: str) -> str:
    """A Content-ID as the placeholder names it: no ``cid:``, no angle brackets, lower-case."""
    value = html.unescape(value or "").strip()
    if value.lower().startswith("cid:"):
        value = value[4:]
    return value.strip().strip("<>").strip().lower()


def inline_image_uri(content_type: str, data: bytes) -> str | None:
    """A data: URI for an inline image, or None when the type is not a plain image."""
    content_type = (content_type or "").split(";")[0].strip().lower()
    if content_type not in INLINE_IMAGE_TYPES or data is None:
        return None
    return f"data:{content_type};base64,{base64.b64encode(data).decode('ascii')}"


def _is_web_url(value: str) -> bool:
    return value.strip().lower().startswith(("http://", "https://"))


def rewrite_images(body_html: str, cid_sources: Mapping[str, str], *, allow_remote: bool) -> str:
    """Resolve ``cid:`` images through ``cid_sources`` and, if allowed, give remote images their src back.

    A cid that names no attachment loses its src (a broken image, never a
    request); remote images keep no src unless ``allow_remote``.
    """

    def fix_tag(match: re.Match) -> str:
        tag = match.group(0)
        src: str | None = None
        remote: str | None = None
        kept: list[str] = []
        for attr in _ATTR.finditer(tag[4:]):
            name = attr.group(2).lower()
            value = next((g for g in attr.group(4, 5, 6) if g is not None), "")
            if name in _CID_ATTRS and (name != "src" or html.unescape(value).strip().lower().startswith("cid:")):
                src = cid_sources.get(normalize_cid(value), src)
                continue
            if name == "data-remote-src":
                remote = html.unescape(value)
                continue
            if name == "src":
                # A src the sanitizer left is data: or relative; anything remote waits for the reader.
                if _is_web_url(html.unescape(value)):
                    remote = remote or html.unescape(value)
                    continue
            kept.append(attr.group(0))
        if src is None and remote is not None and allow_remote and _is_web_url(remote):
            src = remote
        elif remote is not None and src is None:
            kept.append(f' data-remote-src="{html.escape(remote, quote=True)}"')
        if src is not None:
            kept.append(f' src="{html.escape(src, quote=True)}"')
        closing = "/>" if tag.rstrip(">").rstrip().endswith("/") else ">"
        return "<img" + "".join(a for a in kept if a.strip() != "/") + closing

    return _IMG_TAG.sub(fix_tag, body_html or "")


def body_document(body_html: str, body_text: str) -> str:
    """The full document served inside the sandboxed frame."""
    if body_html and body_html.strip():
        return _DOCUMENT.format(body=body_html)
    return _DOCUMENT.format(body=f"<pre>{html.escape(body_text or '')}</pre>")


def content_ids_in(body_html: str) -> set[str]:
    """The Content-IDs the body's images refer to (normalized)."""
    found: set[str] = set()
    for tag in _IMG_TAG.finditer(body_html or ""):
        for attr in _ATTR.finditer(tag.group(0)[4:]):
            name = attr.group(2).lower()
            value = next((g for g in attr.group(4, 5, 6) if g is not None), "")
            if name in ("data-cid", "data-cid-src") or (
                    name == "src" and html.unescape(value).strip().lower().startswith("cid:")):
                found.add(normalize_cid(value))
    return found
