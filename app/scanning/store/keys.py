"""Dedupe: the key each message is stored under, and which messages of a batch are new.

A message's key is its Message-ID (or a hash of its bytes when it has none). A mailbox holds each
key once, so a message seen again (another folder, a renumbered folder, a second worker) is
counted as a duplicate. A different message that reuses a Message-ID already taken is stored
under its Message-ID plus a hash of its content; a copy of that one is a duplicate again.
"""

from __future__ import annotations

import hashlib

from app.scanner.types import BatchItem, NewMessage, RunCounters
from app.scanning.store.lookups import existing_keys
from app.scanning.store.rows import clean_text


def storage_key(key: str) -> str:
    """A message key that fits its column: long Message-IDs are replaced by their hash."""
    key = clean_text(key) or ""
    if len(key) <= 300:
        return key
    return "mid-sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def content_key(key: str, raw: bytes) -> str:
    """The key of a message that reuses a Message-ID another, different message already has."""
    return f"{key[:200]}#sha256:{hashlib.sha256(raw).hexdigest()[:40]}"


def new_messages(account_id: int, items: list[BatchItem], counters: RunCounters) -> list[NewMessage]:
    """The messages of ``items`` this mailbox does not hold yet, in order; the others count as duplicates.

    One query for the keys; a second, only when a key is taken, for the content keys.
    """
    keyed = [(it, storage_key(it.parsed.message_key)) for it in items]
    known = existing_keys(account_id, {key for _, key in keyed})
    # Only a message whose key is taken (stored already, or earlier in this batch) can be another
    # message reusing a Message-ID, so only those need the content key and its lookup.
    alt: dict[int, str] = {}
    seen: set[str] = set()
    for it, key in keyed:
        if (key in known or key in seen) and not it.parsed.message_key.startswith("sha256:"):
            alt[id(it)] = content_key(key, it.parsed.raw.data)
        seen.add(key)
    if alt:
        known.update(existing_keys(account_id, set(alt.values())))
    fresh: list[NewMessage] = []
    for it, key in keyed:
        reused = False
        if key in known:
            other = alt.get(id(it))
            if known[key] == it.parsed.raw.size or other is None or other in known:
                counters.duplicates += 1
                continue
            key, reused = other, True
        known[key] = it.parsed.raw.size
        fresh.append(NewMessage(it, key, reused))
    return fresh
