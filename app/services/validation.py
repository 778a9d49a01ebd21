"""Checking what administrators type: one error class with a message per field, and the shared cleaners.

Every ``clean_*`` helper returns the clean value or raises ``ValueError`` whose
text is meant for people ("The IMAP port must be from 1 to 65535."). A service
collects those messages per form field with ``collect`` and raises its own
subclass of ``FieldErrors`` (``ScannerError``, ``ServerError``, ``SettingsError``),
so the admin pages put each message next to its field and the CLI prints them.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar
from urllib.parse import urlsplit

import idna

T = TypeVar("T")
# A row id as forms, URLs and the CLI hand it over: an int, or its text.
RowId = int | str

# Unicode categories refused in names, logins, hosts and filter values: control and format characters,
# and the line and paragraph separators (U+2028, U+2029) that break a log line or a header as \n does.
CONTROL_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})
TRUE_WORDS = frozenset({"1", "true", "yes", "on", "y"})
# The largest id an INTEGER column holds on every database we run on.
MAX_DB_ID = 2**31 - 1

_DNS_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_SCHEME_PREFIXES = ("imap:", "imaps:", "smtp:", "smtps:", "http:", "https:")


class FieldErrors(ValueError):
    """Input that cannot be used as given, with one message per form field.

    ``errors`` maps a field name ("name", "imap_port", ...) to its message;
    "__all__" holds a message that belongs to no single field. ``field`` is the
    field of the first message. ``str()`` joins every message into one
    sentence, for the CLI and flash messages.
    """

    def __init__(self, errors: Mapping[str, str] | str, field: str = "__all__") -> None:
        if isinstance(errors, str):
            errors = {field: errors}
        self.errors: dict[str, str] = dict(errors)
        self.field: str = next(iter(self.errors), field)
        super().__init__(" ".join(self.errors.values()))

    def __str__(self) -> str:
        return " ".join(self.errors.values())


def collect(errors: dict[str, str], field: str, clean: Callable[..., T], *args: Any) -> T | None:
    """``clean(*args)``; when it raises ``ValueError``, its message goes to ``errors[field]`` and None comes back."""
    try:
        return clean(*args)
    except ValueError as exc:
        errors[field] = str(exc)
        return None


# ---------------------------------------------------------------- plain values


def text(value: object) -> str:
    """A submitted value as stripped text; None becomes ""."""
    return "" if value is None else str(value).strip()


def has_control_chars(value: str) -> bool:
    """True when ``value`` holds a control, format, line- or paragraph-separator character."""
    return any(unicodedata.category(ch) in CONTROL_CATEGORIES for ch in value)


def clean_bool(value: object) -> bool:
    """A checkbox or CLI flag: "1", "true", "yes", "on", "y" (any case) are true, other text false."""
    if isinstance(value, str):
        return value.strip().lower() in TRUE_WORDS
    return bool(value)


def clean_choice(value: object, allowed: Collection[str], what: str) -> str:
    """One of ``allowed`` (compared in lower case), or ``ValueError`` naming the choices."""
    choice = text(value).lower()
    if choice not in allowed:
        raise ValueError(f"Choose the {what}: {', '.join(allowed)}.")
    return choice


def clean_int(value: object, label: str, low: int, high: int) -> int:
    """A whole number from ``low`` to ``high``; ``label`` names it in the message."""
    number = text(value)
    if isinstance(value, bool) or not re.fullmatch(r"-?\d{1,9}", number):
        raise ValueError(f"{label} must be a whole number from {low} to {high}.")
    result = int(number)
    if not low <= result <= high:
        raise ValueError(f"{label} must be from {low} to {high}, not {result}.")
    return result


def db_id(value: object) -> int | None:
    """A row id from a form, a URL or the CLI; None when it cannot be one.

    Ids beyond what an INTEGER column holds are None too: a forged
    99999999999999999999 must not reach the database (an OverflowError on
    SQLite, an out-of-range error on PostgreSQL: a 500).
    """
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 < number <= MAX_DB_ID else None


# ---------------------------------------------------------------- network addresses


def clean_port(value: object, what: str) -> int:
    """A TCP port from 1 to 65535, or ``ValueError`` for ``what`` (e.g. "IMAP port")."""
    port = text(value)
    if not port:
        raise ValueError(f"The {what} is required (a number from 1 to 65535).")
    if isinstance(value, bool) or not port.isdigit() or len(port) > 5:
        raise ValueError(f"The {what} must be a whole number from 1 to 65535, not {port[:20]!r}.")
    number = int(port)
    if not 1 <= number <= 65535:
        raise ValueError(f"The {what} must be from 1 to 65535.")
    return number


def _refuse_host_shape(host: str, what: str) -> None:
    """Refuse what a host field must not hold: nothing, too much, a scheme, a path, spaces."""
    if not host:
        raise ValueError(f"The {what} is required, e.g. imap.example.com.")
    if len(host) > 253:
        raise ValueError(f"The {what} is too long (at most 253 characters).")
    if "://" in host or host.lower().startswith(_SCHEME_PREFIXES):
        raise ValueError(f"Write the {what} without a scheme: imap.example.com, not imaps://imap.example.com.")
    if "/" in host or "\\" in host:
        raise ValueError(f"Write only the {what}, without a path: imap.example.com.")
    if any(ch.isspace() for ch in host) or has_control_chars(host):
        raise ValueError(f"The {what} cannot contain spaces or control characters.")


def _ip_address(host: str) -> str | None:
    """The IP address written in ``host`` (IPv6 with or without brackets), normalized; None otherwise."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return str(ipaddress.ip_address(bare))
    except ValueError:
        return None


def _dns_name(host: str, what: str) -> str:
    """A DNS name in lower case; an internationalized one in its DNS form (xn--...)."""
    if ":" in host:
        raise ValueError(f"Write the {what} without a port (there is a separate port field).")
    if "@" in host:
        raise ValueError(f"The {what} is a server name such as imap.example.com, not an e-mail address.")
    name = host.rstrip(".")
    if not name.isascii():
        try:
            name = idna.encode(name, uts46=True).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise ValueError(f"The {what} is not a valid international domain name.") from None
    labels = name.split(".")
    if not name or not all(_DNS_LABEL.match(label) for label in labels):
        raise ValueError(f"The {what} may contain only letters, digits, dots and hyphens "
                         f"(no label may start or end with a hyphen), e.g. imap.example.com.")
    if all(label.isdigit() for label in labels):
        raise ValueError(f"The {what} {host} is not a valid IP address.")
    return name.lower()


def clean_host(value: object, what: str) -> str:
    """A host name or IP address, or ``ValueError`` in words for ``what`` (e.g. "IMAP host")."""
    host = text(value)
    _refuse_host_shape(host, what)
    return _ip_address(host) or _dns_name(host, what)


def clean_url(value: object, what: str) -> str:
    """An http(s) URL with a host, or ``ValueError`` for ``what`` (e.g. "token URL")."""
    url = text(value)
    if len(url) > 500:
        raise ValueError(f"The {what} is too long (at most 500 characters).")
    if any(ch.isspace() for ch in url) or has_control_chars(url):
        raise ValueError(f"The {what} cannot contain spaces or control characters.")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        raise ValueError(f"The {what} is not a valid address.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"The {what} must be a full http:// or https:// address, e.g. "
                         f"https://login.example.com/oauth2/token.")
    return url
