""""Open in webmail" on an e-mail's page: that very message in Roundcube, ready to reply.

The e-mail's page offers the mailboxes it reached that the user may open
(``places_for``). The click asks the mail server, with the mailbox's own login,
whether the message is still where it was stored (``locate``): the same folder
UIDVALIDITY and the UID still there, or else the same Message-ID in that folder
under a new UID. Only then is a "show" target built for the hand-off; a message
that is gone is reported in words and no token is minted.
"""

from __future__ import annotations

import imaplib
import logging
import re
from dataclasses import dataclass

from flask import current_app
from imap_tools.errors import ImapToolsError
from sqlalchemy import select

from app.connect import credentials
from app.connect.errors import CredentialError, MailConnectError
from app.connect.imap import close_quietly, open_imap
from app.extensions import db
from app.models import Email, EmailMailbox, MailAccount
from app.scanning.imap_reads import FolderMissing, ImapReadError, examine, folder_status
from app.services.autologin import targets
from app.services.autologin.grants import mailboxes_for
from app.services.email_access import Viewer

log = logging.getLogger(__name__)

NOT_GRANTED = ("This e-mail's mailbox is not granted to you, so it cannot be opened in webmail. "
               "Ask an administrator to grant it to you.")
_SEARCH_NUMBERS = re.compile(rb"\d+")
# A Message-ID searched for on the server: printable ASCII without quotes or backslashes.
_SEARCHABLE_ID = re.compile(r"^<?[\x21\x23-\x5b\x5d-\x7e]{1,250}>?$")


class WebmailRefused(Exception):
    """The message cannot be opened in webmail; the message says why in plain words."""


class MessageGone(WebmailRefused):
    """The message is no longer on the mail server where it was stored."""


@dataclass(frozen=True)
class Place:
    """Where a stored e-mail lies on a mailbox's server."""

    account_id: int
    account_name: str
    folder: str
    uidvalidity: int
    uid: int


def places_for(user: Viewer, email: Email) -> list[Place]:
    """The places of ``email`` in the mailboxes ``user`` may open (granted and switched on), in the
    order the mailboxes first met it (one message sent to several mailboxes is stored once)."""
    granted = {account.id: account for account in mailboxes_for(user)}
    links = db.session.scalars(select(EmailMailbox).where(EmailMailbox.email_id == email.id)
                               .order_by(EmailMailbox.first_seen_at, EmailMailbox.id)).all()
    return [Place(account_id=link.account_id, account_name=granted[link.account_id].name, folder=link.folder,
                  uidvalidity=int(link.uidvalidity), uid=int(link.uid))
            for link in links if link.account_id in granted]


def _uids(client: imaplib.IMAP4, *criteria: str) -> list[int]:
    typ, data = client.uid("SEARCH", *criteria)
    if typ != "OK":
        raise ImapReadError("The mail server refused to search the folder.")
    return [int(n) for line in data or [] if isinstance(line, bytes) for n in _SEARCH_NUMBERS.findall(line)]


def _find(client: imaplib.IMAP4, place: Place, message_id: str | None) -> int | None:
    """The message's UID in the folder now, or None when it is not there."""
    status = folder_status(client, place.folder)
    examine(client, place.folder)
    if status.uidvalidity == place.uidvalidity and place.uid in _uids(client, "UID", str(place.uid)):
        return place.uid
    # The UID is gone, or the folder was rebuilt (new UIDVALIDITY): the same message may still be there.
    if message_id and _SEARCHABLE_ID.match(message_id):
        found = _uids(client, "HEADER", "Message-ID", f'"{message_id}"')
        if found:
            return max(found)
    return None


def locate(account: MailAccount, place: Place, message_id: str | None) -> int:
    """The UID of the stored message on the server now; raises MessageGone or WebmailRefused."""
    try:
        secret = credentials.login_secret(account)
        box = open_imap(account.server, account.login, secret,
                        timeout=current_app.config.get("MAIL_CONNECT_TIMEOUT"))
    except (CredentialError, MailConnectError) as exc:
        raise WebmailRefused(f"The mail server of {account.name} could not be asked for this message: {exc}") \
            from None
    try:
        uid = _find(box.client, place, message_id)
    except FolderMissing:
        raise MessageGone(f"The folder {place.folder!r} no longer exists in {account.name}, so this message "
                          "cannot be opened in webmail. The copy stored here stays readable.") from None
    except (ImapReadError, ImapToolsError, imaplib.IMAP4.error, OSError) as exc:
        log.warning("webmail: locating a message in mailbox %s failed: %s", account.id, type(exc).__name__)
        raise WebmailRefused(f"The mail server of {account.name} did not answer the search for this message. "
                             "Try again in a moment.") from None
    finally:
        close_quietly(box)
    if uid is None:
        raise MessageGone(f"This message is no longer on the mail server in {account.name} (folder "
                          f"{place.folder}): it was moved or deleted there. The copy stored here stays readable.")
    return uid


def show_target(user: Viewer, email: Email, account_id: int | None) -> tuple[int, targets.Target]:
    """(mailbox id, "show" target) for opening ``email`` in webmail in the chosen mailbox.

    ``email`` is one the user may see (the caller checked it with email_access);
    ``account_id`` picks among :func:`places_for` (None: the first). Raises
    WebmailRefused when no such mailbox is granted, MessageGone when the message
    is no longer on the server.
    """
    places = places_for(user, email)
    place = next((p for p in places if account_id in (None, p.account_id)), None)
    if place is None:
        raise WebmailRefused(NOT_GRANTED)
    account = db.session.get(MailAccount, place.account_id)
    uid = locate(account, place, email.message_id)
    return place.account_id, targets.show(place.folder, uid)
