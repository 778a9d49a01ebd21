"""Recognize mail that the server's spam filter flagged, or that sits in a Junk folder.

Only the verdicts of the receiving server's filter count, so only the first (topmost) occurrence
of each header is read: a filter adds its header on top of whatever the message already carried,
and a sender's own outgoing filter (further down) says nothing about how we received it.
"""

from __future__ import annotations

import re

from app.scanner.types import ParsedMessage

# rspamd's actions that mean spam ("soft reject" is greylisting, "no action" is clean).
_RSPAMD_SPAM_ACTIONS = frozenset({"reject", "add header", "rewrite subject"})
# "[4.50 / 15.00]": rspamd's score and its reject threshold in X-Spamd-Result.
_SPAMD_RESULT_SCORE = re.compile(r"\[\s*(-?\d+(?:\.\d+)?)\s*/\s*-?\d+(?:\.\d+)?\s*\]")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# Folder names that mean junk mail in the clients and servers people use (compared in lower case,
# on the last level of the name).
JUNK_NAMES = frozenset({"junk", "spam", "junk e-mail", "junk email", "junk mail", "bulk mail", "spamverdacht",
                        "courrier indésirable", "correo no deseado", "posta indesiderata", "ongewenste e-mail"})


def is_junk_folder(name: str, attributes: frozenset[str] = frozenset()) -> bool:
    """True for a folder marked ``\\Junk`` (RFC 6154 special use) or named like a junk folder.

    ``attributes`` are the folder's LIST attributes, any case. The name is compared on its last
    level (``INBOX.Junk``, ``INBOX/Spam``, ``[Gmail]/Spam``).
    """
    if any(a.lower() == "\\junk" for a in attributes):
        return True
    last = re.split(r"[./]", name.strip())[-1].strip().lower()
    return last in JUNK_NAMES


def spam_reason(parsed: ParsedMessage, threshold: float, junk_folder: bool = False) -> str | None:
    """Why ``parsed`` is spam, in words, or None when nothing says it is.

    Checked in this order (the first hit wins): ``X-Spam-Flag: YES``; ``X-Spam-Status: Yes…``
    (SpamAssassin); ``X-Rspamd-Action`` reject / add header / rewrite subject; the score of
    ``X-Spamd-Result`` or ``X-Rspamd-Score`` above ``threshold``; a Junk folder.
    """
    headers: dict[str, str] = {}
    for name, value in parsed.header_items:
        headers.setdefault(name, value.strip())
    flag = headers.get("x-spam-flag", "")
    if flag.lower() == "yes":
        return "X-Spam-Flag: YES"
    status = headers.get("x-spam-status", "")
    if re.match(r"yes\b", status, re.IGNORECASE):
        return f"X-Spam-Status: {status[:60]}"
    action = " ".join(headers.get("x-rspamd-action", "").lower().split())
    if action in _RSPAMD_SPAM_ACTIONS:
        return f"X-Rspamd-Action: {action}"
    score = _score(headers)
    if score is not None and score > threshold:
        return f"spam score {score:g} above {threshold:g}"
    if junk_folder:
        return "it is in a Junk folder"
    return None


def _score(headers: dict[str, str]) -> float | None:
    """rspamd's score, from X-Spamd-Result ("default: True [7.50 / 15.00]; …") or X-Rspamd-Score."""
    match = _SPAMD_RESULT_SCORE.search(headers.get("x-spamd-result", ""))
    if match:
        return float(match.group(1))
    match = _NUMBER.match(headers.get("x-rspamd-score", ""))
    return float(match.group(0)) if match else None
