"""What Roundcube opens after a hand-off: the inbox (no target), a compose window, or one message.

A target is built by the product after its own access checks (``write`` for a record's
"Write e-mail", ``webmail`` for an e-mail's "Open in webmail"), stored with the one-time
token (``autologin_tokens.target_kind`` / ``target_json``) and given to the Roundcube plugin
only in the server-to-server redeem answer. No URL of the hand-off carries it. The plugin
opens only the actions in ``ACTIONS`` and checks the values again; anything else opens the
inbox.

Plain functions over a dataclass: no Flask, no database.
"""

from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from email.utils import formataddr

COMPOSE = "compose"
SHOW = "show"
ACTIONS = (COMPOSE, SHOW)

# Limits the plugin checks too (roundcube_bridge/plugin/corporate_autologin).
MAX_RECIPIENT = 500
MAX_SUBJECT = 500
MAX_FOLDER = 255
MAX_UID = 2**32 - 1


class TargetError(ValueError):
    """A target cannot be built from these values; the message says why in plain words."""


@dataclass(frozen=True)
class Target:
    """Where Roundcube goes after the login: compose (``to``, ``subject``) or show (``folder``, ``uid``)."""

    action: str
    to: str = ""
    subject: str = ""
    folder: str = ""
    uid: int = 0

    def as_json(self) -> dict:
        """The target as the plugin reads it from the redeem answer."""
        if self.action == COMPOSE:
            return {"action": COMPOSE, "to": self.to, "subject": self.subject}
        return {"action": SHOW, "folder": self.folder, "uid": self.uid}


def _has_control(value: str) -> bool:
    # Line breaks would let a value add a header of its own; other control and format characters
    # have no place in a recipient, a subject or a folder name either.
    return any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in value)


def single_line(value: str | None, limit: int) -> str:
    """``value`` on one line: control characters become spaces, runs of spaces one, cut to ``limit``."""
    text = "".join(" " if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") else ch for ch in value or "")
    return " ".join(text.split())[:limit]


def recipient(address: str, name: str | None = None) -> str:
    """``"Name" <address>`` (or the bare address without a name), as the To field shows it."""
    if not address or "@" not in address or _has_control(address) or any(c in address for c in ",;<>\" "):
        raise TargetError(f"{address!r} is not an e-mail address Webmail can write to.")
    shown = single_line(name, 200)
    return formataddr((shown, address)) if shown and shown != address else address


def compose(to: str, subject: str = "") -> Target:
    """A compose window to ``to`` (one recipient, as :func:`recipient` makes it) with ``subject``."""
    if not to or len(to) > MAX_RECIPIENT or _has_control(to):
        raise TargetError("The recipient is missing, too long or not on one line.")
    if len(subject) > MAX_SUBJECT or _has_control(subject):
        raise TargetError("The subject is too long or not on one line.")
    return Target(action=COMPOSE, to=to, subject=subject)


def show(folder: str, uid: int) -> Target:
    """One message of the mailbox: ``folder`` (its name as the server lists it) and its ``uid``."""
    if not folder or len(folder) > MAX_FOLDER or _has_control(folder):
        raise TargetError("The folder name is missing, too long or not on one line.")
    if isinstance(uid, bool) or not isinstance(uid, int) or not 0 < uid <= MAX_UID:
        raise TargetError("The message number (UID) is not a number the mail server can have.")
    return Target(action=SHOW, folder=folder, uid=uid)


def ticket_subject(number: str | None, subject: str | None) -> str:
    """The subject of mail about a ticket: ``[TT-000042] <its subject>``.

    The scanner binds incoming mail to a ticket by the number in brackets or not
    (``app.scanner.bind.ticket_numbers_in``), so the answer to this mail binds back.
    A subject that already quotes the number is kept as it is.
    """
    text = single_line(subject, MAX_SUBJECT)
    if not number:
        return text
    if number.upper() in text.upper():
        return text
    return f"[{number}] {text}".strip()[:MAX_SUBJECT]


def dump(target: Target | None) -> tuple[str | None, str | None]:
    """(target_kind, target_json) for the token row; (None, None) for the inbox."""
    if target is None:
        return None, None
    return target.action, json.dumps(target.as_json(), ensure_ascii=False, separators=(",", ":"))


def load(kind: str | None, raw: str | None) -> Target | None:
    """The target stored with a token; None for the inbox, or for anything that is not a valid target."""
    if kind not in ACTIONS or not raw:
        return None
    try:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("action") != kind:
            return None
        if kind == COMPOSE:
            return compose(str(data.get("to") or ""), str(data.get("subject") or ""))
        return show(str(data.get("folder") or ""), data.get("uid"))
    except (ValueError, TypeError):
        return None
