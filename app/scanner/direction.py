"""Direction of a message: received, sent or internal."""

from __future__ import annotations

from app.scanner.types import ParsedMessage


def is_ours(address: str | None, our_addresses: frozenset[str], our_domains: frozenset[str]) -> bool:
    """True when the (normalized) address is one of ours, by address or by domain."""
    if not address:
        return False
    address = address.lower()
    if address in our_addresses:
        return True
    return address.rpartition("@")[2] in our_domains


def direction_of(
    parsed: ParsedMessage, folder_direction: str, our_addresses: frozenset[str], our_domains: frozenset[str]
) -> str:
    """"internal" when the sender and every To/Cc recipient are ours (at least one recipient);
    "sent" when the folder is outgoing or the sender is ours; otherwise "received".

    A message with no sender is never internal; a message of ours with no visible recipient
    (Bcc only) is "sent".
    """
    sender_ours = is_ours(parsed.from_addr, our_addresses, our_domains)
    recipients = [*parsed.to, *parsed.cc]
    if sender_ours and recipients and all(is_ours(a, our_addresses, our_domains) for a in recipients):
        return "internal"
    if folder_direction == "outgoing" or sender_ours:
        return "sent"
    return "received"
