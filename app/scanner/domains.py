"""Mail domains: their one written form, the public mail domains, and binding by domain.

An organization may own mail domains (``acme.test``): mail from or to any address at such a
domain binds to the organization, even when no contact has that address. A domain is kept in
one form, lower-case ASCII (an internationalized name in its IDNA form, ``bücher.test`` →
``xn--bcher-kva.test``), so that matching is one equality on an indexed column.

The match is exact: ``eu.acme.test`` does not bind to the owner of ``acme.test`` unless it is
listed too. Subdomains are often run by someone else (a hosting provider, a partner), and an
exact list is what the administrator can see and check.

Public mail domains (gmail.com, outlook.com, …) never bind to an organization: thousands of
unrelated people write from them. Their subdomains count as public too (``eu.gmail.com``).

Pure: the batch looks every domain up with the addresses in one query, under the key
``domain_key(domain)`` of the address index, and ``refs_of`` reads both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

import idna

# Free mail and big consumer providers, as the administrator finds them on the mail configuration
# page (they edit the list there).
DEFAULT_PUBLIC_DOMAINS: tuple[str, ...] = (
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "hotmail.co.uk", "hotmail.de", "hotmail.fr",
    "live.com", "msn.com", "yahoo.com", "yahoo.co.uk", "yahoo.de", "yahoo.fr", "ymail.com", "rocketmail.com",
    "aol.com", "icloud.com", "me.com", "mac.com", "gmx.com", "gmx.net", "gmx.de", "gmx.at", "gmx.ch", "web.de",
    "t-online.de", "freenet.de", "posteo.de", "mailbox.org", "proton.me", "protonmail.com", "pm.me",
    "tutanota.com", "tuta.io", "zoho.com", "yandex.com", "yandex.ru", "mail.ru", "qq.com", "163.com",
    "orange.fr", "free.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "o2.pl", "interia.pl",
    "fastmail.com", "hey.com",
)

MAX_DOMAIN_LENGTH = 253
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_SEPARATORS = re.compile(r"[\s,;]+")

Ref = TypeVar("Ref")


def domain_key(domain: str) -> str:
    """The key of a domain in the batch's address index (an address never starts with ``@``)."""
    return "@" + domain


def ascii_domain(domain: str) -> str | None:
    """A domain in its one stored form (lower-case ASCII, IDNA for international names), or None
    when it cannot be one (empty, or not encodable)."""
    domain = domain.strip().rstrip(".").lower()
    if not domain:
        return None
    if domain.isascii():
        return domain
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def readable_domain(domain: str) -> str:
    """A stored domain as people write it: ``xn--bcher-kva.test`` → ``bücher.test`` (ASCII ones as they are)."""
    if "xn--" not in domain:
        return domain
    try:
        return idna.decode(domain)
    except (idna.IDNAError, UnicodeError):
        return domain


def domain_of(address: str | None) -> str | None:
    """The domain of an address in its stored form, or None (no ``@``, or no usable domain)."""
    if not address or "@" not in address:
        return None
    return ascii_domain(address.rpartition("@")[2])


def normalize_domain(text: str) -> str:
    """A domain as typed by a person (``Acme.TEST``, ``@acme.test``, ``bücher.test``) in its stored
    form; ``ValueError`` saying what is wrong when it is no domain name."""
    typed = (text or "").strip()
    shown = typed[:80]
    if not typed:
        raise ValueError("Write a domain name such as acme.example.")
    if "@" in typed.lstrip("@"):
        raise ValueError(f"{shown!r} is an e-mail address: write only the part after the @, "
                         f"e.g. {typed.rpartition('@')[2][:60]}.")
    if any(ch in typed for ch in "/:") or any(ch.isspace() for ch in typed):
        raise ValueError(f"{shown!r} is not a domain name: write only the domain, such as acme.example "
                         "(no https://, no path, no spaces).")
    domain = ascii_domain(typed.lstrip("@"))
    if domain is None:
        raise ValueError(f"{shown!r} is not a domain name that mail can use.")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.fullmatch(label) for label in labels) or labels[-1].isdigit():
        raise ValueError(f"{shown!r} is not a domain name: write a name such as acme.example "
                         "(letters, digits and hyphens, with at least one dot).")
    if len(domain) > MAX_DOMAIN_LENGTH:
        raise ValueError(f"{shown!r} is too long for a domain name (at most {MAX_DOMAIN_LENGTH} characters).")
    return domain


def split_domains(text: str | None) -> list[str]:
    """The entries of a list of domains written with commas, spaces or one per line (not checked)."""
    return [part for part in _SEPARATORS.split(text or "") if part]


def parse_domains(text: str | None) -> list[str]:
    """Every domain of a typed list, normalized, each once, in order; ``ValueError`` names the first
    entry that is no domain."""
    out: list[str] = []
    for part in split_domains(text):
        domain = normalize_domain(part)
        if domain not in out:
            out.append(domain)
    return out


def stored_domains(text: str | None) -> frozenset[str]:
    """A stored list of domains as a set; entries that are no domain are left out, not refused
    (what is stored was checked when it was saved)."""
    found = set()
    for part in split_domains(text):
        domain = ascii_domain(part.lstrip("@"))
        if domain:
            found.add(domain)
    return frozenset(found)


def is_public(domain: str, public: frozenset[str]) -> bool:
    """True when ``domain`` or one of its parent domains is a public mail domain."""
    while True:
        if domain in public:
            return True
        _, dot, parent = domain.partition(".")
        if not dot or "." not in parent:
            return False
        domain = parent


def domains_to_look_up(addresses: Iterable[str], never: frozenset[str]) -> set[str]:
    """The domains of ``addresses`` that may bind to an organization: not in ``never`` (the public
    domains and our own), nor a subdomain of a public one."""
    out: set[str] = set()
    for address in addresses:
        domain = domain_of(address)
        if domain and domain not in out and not is_public(domain, never):
            out.add(domain)
    return out


def refs_of(address: str, index: Mapping[str, Sequence[Ref]]) -> list[Ref]:
    """The records of an address: those of the address itself, then those of its domain."""
    own = index.get(address, ())
    domain = domain_of(address)
    by_domain = index.get(domain_key(domain), ()) if domain else ()
    if not by_domain:
        return list(own)
    return [*own, *by_domain]
