"""The Content-Security-Policy of our pages.

Every page may submit forms only to this site and to Roundcube (the mailbox
hand-off posts its one-time token there). A page that carries a *Connect
account* form also allows the origins of the OAuth 2.0 providers it connects
to: Chromium applies ``form-action`` to every redirect that follows a form
submission, so the POST to our connect route, answered by a redirect to the
provider's sign-in page, would otherwise be blocked.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from flask import has_request_context, request

# Kept with the request (not in ``g``, which outlives a request when an app context is already open).
_KEY = "corporate_mailboxes.csp_form_targets"

# A host name, an IPv4 address or an IPv6 address: nothing that could end or extend the header's list.
_HOST = re.compile(r"[A-Za-z0-9.\-:]+")

_BASE = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
         "frame-src 'self'; object-src 'none'; base-uri 'self'")


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL (never its user or password), or None for anything else."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not host or not _HOST.fullmatch(host):
        return None
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def allow_form_targets(urls: Iterable[str | None]) -> None:
    """Let the page being rendered submit forms to the origins of ``urls`` (for this response only)."""
    extra = request.environ.setdefault(_KEY, set())
    extra.update(o for o in (origin_of(u) for u in urls) if o)


def policy(roundcube_url: str | None) -> str:
    """The policy of the current response: the base rules and the form targets it allows."""
    targets = ["'self'"]
    roundcube = origin_of(roundcube_url)
    if roundcube:
        targets.append(roundcube)
    extra = request.environ.get(_KEY, set()) if has_request_context() else set()
    targets.extend(sorted(extra - set(targets)))
    return f"{_BASE}; form-action {' '.join(targets)}"
