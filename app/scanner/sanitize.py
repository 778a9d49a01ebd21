"""Make an e-mail's HTML safe to show inside our pages.

nh3 (the Rust ammonia sanitizer) does the cleaning from an allow-list, so anything it does not
know is dropped: scripts, event handlers, forms, iframes, objects, <style> blocks, <link>, <meta>,
``javascript:`` / ``data:`` / relative URLs (a relative URL would point at our own application,
e.g. ``<img src="/admin/...">`` firing a request with the reader's session).

Inline ``style`` attributes are kept to a small allow-list of presentation properties (colours,
fonts, spacing, borders, alignment, sizes), because mail layouts are unreadable without them; a
style value holding ``url(``, ``expression(``, ``@import`` or a CSS escape is dropped whole (those
load remote content or hide one), and positioning properties (``position``, ``z-index``,
``transform``...) are not in the list, so a message cannot lay a fake login box over our page.

Remote images are never fetched and blocked by default: ``<img src="https://...">`` becomes
``<img data-remote-src="https://...">`` (no ``src``), and the caller is told ``had_remote`` so the
page can offer "show remote content". ``cid:`` images keep ``src="cid:..."``; the view embeds the
matching inline attachment as a ``data:`` URI (a sandboxed frame sends no session cookie).
Links open in a new tab with ``rel="noopener noreferrer"``.
"""

from __future__ import annotations

import re

import nh3

_TAGS = set(nh3.ALLOWED_TAGS) | {"font", "tfoot"}
_TAGS -= {"area", "map"}  # image maps: links without visible text, not worth their risk
_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("*", set()).update({"style", "title", "dir", "lang", "align", "valign", "width", "height"})
_ATTRIBUTES["img"] = {"src", "alt", "width", "height", "align", "border", "data-remote-src"}
_ATTRIBUTES["a"] = {"href", "hreflang", "title"}
_ATTRIBUTES["font"] = {"color", "face", "size"}
for _t in ("table", "td", "th", "tr", "tbody", "thead", "tfoot"):
    _ATTRIBUTES.setdefault(_t, set()).update({"bgcolor", "border", "cellpadding", "cellspacing", "colspan", "rowspan"})

_STYLE_PROPERTIES = {
    "color", "background-color", "font", "font-family", "font-size", "font-style", "font-weight",
    "font-variant", "text-align", "text-decoration", "text-indent", "text-transform", "letter-spacing",
    "line-height", "white-space", "word-spacing", "word-break", "word-wrap", "vertical-align", "direction",
    "margin", "margin-top", "margin-right", "margin-bottom", "margin-left",
    "padding", "padding-top", "padding-right", "padding-bottom", "padding-left",
    "border", "border-top", "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-collapse", "border-spacing", "border-radius",
    "width", "max-width", "min-width", "height", "max-height", "min-height",
    "list-style-type", "table-layout", "caption-side", "empty-cells",
}
_BAD_STYLE = re.compile(r"url\s*\(|expression\s*\(|@import|\\|behavior|-moz-binding|javascript:", re.IGNORECASE)
_LINK_SCHEMES = ("http:", "https:", "mailto:", "tel:")
_IMG_SCHEMES = ("http:", "https:", "cid:")
_CLEAN_CONTENT = {"script", "style", "title", "head", "noscript", "template", "xml"}

# nh3's output is serialized by html5ever: every attribute value double-quoted with '"' escaped,
# so an <img> tag can be matched attribute by attribute without guessing at quoting.
_IMG_TAG = re.compile(r'<img((?:\s+[^\s=>"]+(?:="[^"]*")?)*)\s*/?>')
_SRC_ATTR = re.compile(r'(\s)src="(https?:[^"]*)"', re.IGNORECASE)
_REMOTE_ATTR = re.compile(r'\sdata-remote-src="[^"]*"')


def _attribute_filter(tag: str, attr: str, value: str) -> str | None:
    if attr == "style":
        return None if _BAD_STYLE.search(value) else value
    if tag == "img" and attr == "src":
        return value if value.strip().lower().startswith(_IMG_SCHEMES) else None
    if tag == "img" and attr == "data-remote-src":
        return None  # only we write this attribute; a message must not smuggle one in
    if tag == "a" and attr == "href":
        return value if value.strip().lower().startswith(_LINK_SCHEMES) else None
    return value


def _block_remote(match: re.Match) -> str:
    attrs = _REMOTE_ATTR.sub("", match.group(1))
    attrs = _SRC_ATTR.sub(r'\1data-remote-src="\2"', attrs)
    return f"<img{attrs}>"


# Built once: nh3.clean(html, **options) rebuilds the sanitizer from these sets on every call,
# which cost ~9x the cleaning itself on a typical mail body.
_CLEANER = nh3.Cleaner(
    tags=_TAGS,
    clean_content_tags=_CLEAN_CONTENT,
    attributes=_ATTRIBUTES,
    attribute_filter=_attribute_filter,
    strip_comments=True,
    link_rel="noopener noreferrer",
    set_tag_attribute_values={"a": {"target": "_blank"}},
    url_schemes={"http", "https", "mailto", "tel", "cid"},
    url_relative="deny",
    filter_style_properties=_STYLE_PROPERTIES,
)


def sanitize_html(html: str) -> tuple[str, bool]:
    """Return ``(safe_html, had_remote)`` for an e-mail's HTML body (see the module docstring)."""
    if not html:
        return "", False
    safe = _CLEANER.clean(html)
    had_remote = False
    if "<img" in safe:
        blocked = _IMG_TAG.sub(_block_remote, safe)
        had_remote = blocked != safe
        safe = blocked
    return safe, had_remote
