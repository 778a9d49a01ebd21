"""Dedupe: the key each message is stored under, which messages of a batch are new, and which
were already stored from another mailbox.

A message's key is its Message-ID (or a hash of its bytes when it has none). A mailbox holds each
key once, so a message seen again in the same mailbox (another folder, a renumbered folder) is
counted as a duplicate. A different message that reuses a Message-ID the mailbox already holds is
stored under its Message-ID plus a hash of its content; a copy of that one is a duplicate again.

A message is stored once whichever mailboxes it reached: its content identity
(``app.scanner.identity``: Message-ID, the sender's header fields and the body) is unique among
the stored e-mails, and a message whose identity is stored already, from another mailbox, is
linked to this mailbox instead (``LinkedMessage``). The unique identity is also what stops two
workers that scan two mailboxes at once from storing it twice: the second insert fails, and the
batch is stored again, message by message, which then finds and links the first one's e-mail.
"""

from __future__ import annotations

import hashlib

from app.scanner.identity import content_identity
from app.scanner.types import BatchItem, LinkedMessage, NewMessage, RunCounters
from app.scanning.store.lookups import KnownMessages, StoredEmail, known_messages
from app.scanning.store.rows import clean_text


def storage_key(key: str) -> str:
    """A message key that fits its column: long Message-IDs are replaced by their hash."""
    key = clean_text(key) or ""
    if len(key) <= 300:
        return key
    return "mid-sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def content_key(key: str, identity: str) -> str:
    """The key of a message that reuses a Message-ID another, different message already has."""
    return f"{key[:200]}#sha256:{identity[:40]}"


def _same_content(stored: StoredEmail, identity: str, size: int) -> bool:
    # Mail stored before identities existed is compared by size, as it was then.
    return stored.identity == identity if stored.identity is not None else stored.size == size


class _Dedupe:
    """The decision of each message of one batch, against what is stored and what came before it."""

    def __init__(self, known: KnownMessages, counters: RunCounters) -> None:
        self.known = known
        self.counters = counters
        self.fresh: list[NewMessage] = []
        self.linked: list[LinkedMessage] = []

    def held(self, key: str) -> StoredEmail | None:
        return self.known.held.get(key)

    def add(self, it: BatchItem, key: str, identity: str) -> None:
        size = it.parsed.raw.size
        reused = False
        held = self.held(key)
        if held is not None:
            # Without a Message-ID the key is the hash of the bytes: the same key is the same message.
            if it.parsed.message_key.startswith("sha256:") or _same_content(held, identity, size):
                self.counters.duplicates += 1
                return
            key, reused = content_key(key, identity), True
            if self.held(key) is not None:
                self.counters.duplicates += 1
                return
        stored = self.known.by_identity.get(identity)
        if stored is not None and stored.in_this_mailbox:
            self.counters.duplicates += 1  # held under another key (say, before its Message-ID was reused)
            return
        # From here on this mailbox holds the key, and the identity is stored (by this batch or before).
        self.known.held[key] = StoredEmail(stored.email_id if stored else 0, size, identity,
                                           stored.stored_from if stored else 0, True)
        if stored is not None:
            self.known.by_identity[identity] = StoredEmail(stored.email_id, stored.size, identity,
                                                           stored.stored_from, True)
            self.linked.append(LinkedMessage(it, key, stored.email_id, stored.stored_from))
            self.counters.add_also_in(stored.stored_from)
            return
        self.known.by_identity[identity] = StoredEmail(0, size, identity, 0, True)
        self.fresh.append(NewMessage(it, key, reused, identity))


def new_messages(account_id: int, items: list[BatchItem],
                 counters: RunCounters) -> tuple[list[NewMessage], list[LinkedMessage]]:
    """The messages of ``items`` to store (not stored anywhere yet) and those to link (stored from
    another mailbox), in order; the others count as duplicates. One query."""
    keyed = [(it, storage_key(it.parsed.message_key), content_identity(it.parsed.message_id, it.parsed.raw))
             for it in items]
    keys = {key for _, key, _ in keyed}
    # The content keys too, in the same query: a message whose key is taken needs its own.
    keys.update(content_key(key, identity) for it, key, identity in keyed
                if not it.parsed.message_key.startswith("sha256:"))
    dedupe = _Dedupe(known_messages(account_id, keys, {identity for _, _, identity in keyed}), counters)
    for it, key, identity in keyed:
        dedupe.add(it, key, identity)
    return dedupe.fresh, dedupe.linked
