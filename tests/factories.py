"""Small factories for test data; each commits what it makes."""

from __future__ import annotations

import re

from app.extensions import db
from app.models import Contact, Lead, Organization, Ticket, User, ticket_number
from app.models.users import password_hash_options

PASSWORD = "correct horse battery"
_CSRF = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')


def csrf_from(response) -> str:
    """The CSRF token of the first form on a page."""
    match = _CSRF.search(response.data)
    assert match, "no CSRF token on the page"
    return (match.group(1) or match.group(2)).decode()


_hashes: dict[tuple[str, str | None], str] = {}


CSRF_REFUSAL = b"The form expired or was not sent by this site"


def csrf_refused(response) -> bool:
    """True for the CSRF refusal itself: 400 with its page, not some other 400 (a form error, a bad id)."""
    return response.status_code == 400 and CSRF_REFUSAL in response.data


def user(username="alice", admin=False, email=None, password=PASSWORD) -> User:
    u = User(username=username, is_admin=admin, full_name=username.title())
    # Salted hashes are slow on purpose; one per password and hash method serves every test user (each
    # login still checks it). Keyed on the method too: an app with another PASSWORD_HASH_METHOD hashes
    # its own way, and a user of it must carry that app's kind of hash.
    key = (password, password_hash_options().get("method"))
    if key not in _hashes:
        u.set_password(password)
        _hashes[key] = u.password_hash
    u.password_hash = _hashes[key]
    u.set_email(email or f"{username}@corp.test")
    db.session.add(u)
    db.session.commit()
    return u


def organization(name="Acme", email="info@acme.test") -> Organization:
    o = Organization(name=name, email=email)
    db.session.add(o)
    db.session.commit()
    return o


def contact(email="jane@acme.test", first="Jane", last="Doe", org=None) -> Contact:
    c = Contact(first_name=first, last_name=last, email=email, organization=org)
    db.session.add(c)
    db.session.commit()
    return c


def lead(email="lead@prospect.test", name="Prospect") -> Lead:
    le = Lead(name=name, email=email)
    db.session.add(le)
    db.session.commit()
    return le


def ticket(subject="Printer on fire", status="open", contact=None, org=None, requester=None, account=None,
           assignee=None, parent=None) -> Ticket:
    """A ticket; ``account`` is the mailbox it was made from (None: made by hand)."""
    t = Ticket(subject=subject, status=status, contact=contact, organization=org,
               requester_email=requester or (contact.email if contact else None),
               account_id=account.id if account is not None else None,
               assignee_id=assignee.id if assignee is not None else None,
               parent_id=parent.id if parent is not None else None)
    db.session.add(t)
    db.session.flush()
    t.number = ticket_number(t.id)
    db.session.commit()
    return t


# --- mailboxes and stored e-mails (records helper) ---------------------------------------------

_email_seq = {"n": 0}


def mail_account(name="Support", login="support@corp.test", server_name="Local Dovecot"):
    """A mailbox (scanner account) on a server of that name, made when missing."""
    from app.models import MailAccount, MailServer

    server = MailServer.query.filter_by(name=server_name).first()
    if server is None:
        server = MailServer(name=server_name, imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                            smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
        db.session.add(server)
    account = MailAccount(name=name, server=server, login=login)
    db.session.add(account)
    db.session.commit()
    return account


def grant(user_obj, account):
    """Let ``user_obj`` open (and read the mail of) ``account``."""
    from app.models import AutologinGrant

    g = AutologinGrant(user_id=user_obj.id, account_id=account.id)
    db.session.add(g)
    db.session.commit()
    return g


def email(account=None, subject="Hello", from_addr="jane@acme.test", *, date=None, direction="received",
          body_html="", body_text="Hello there.", raw=None, attachments=(), related=(), folder="INBOX",
          has_remote_content=False, message_id=None, to_addrs="support@corp.test", commit=True):
    """A stored e-mail; ``attachments`` are dicts of EmailAttachment fields, ``related`` records to link."""
    from datetime import datetime, timedelta

    from app.models import Email, EmailAttachment, EmailLink, EmailMailbox

    account = account or mail_account()
    _email_seq["n"] += 1
    n = _email_seq["n"]
    message_id = message_id or f"msg-{n}@test"
    raw = raw if raw is not None else (
        f"From: {from_addr}\r\nTo: {to_addrs}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n\r\n"
        f"{body_text}\r\n").encode("utf-8", "surrogateescape")
    e = Email(account_id=account.id, folder=folder, uidvalidity=1, uid=n, message_key=message_id,
              message_id=message_id, subject=subject, from_addr=from_addr, to_addrs=to_addrs,
              date=date or datetime(2026, 1, 1) + timedelta(minutes=n), direction=direction,
              body_text=body_text, body_html=body_html, has_remote_content=has_remote_content,
              headers="", raw=raw, size=len(raw))
    for spec in attachments:
        data = spec.get("data", b"")
        e.attachments.append(EmailAttachment(size=len(data), **{"content_type": "application/octet-stream",
                                                                 **spec}))
    # Stored from ``account``, as a scan does: the e-mail is linked to the mailbox it reached.
    e.mailboxes.append(EmailMailbox(account_id=account.id, message_key=message_id, folder=folder, uidvalidity=1,
                                    uid=n))
    db.session.add(e)
    db.session.flush()
    kinds = {"Contact": "contact", "Organization": "organization", "Lead": "lead", "Ticket": "ticket",
             "User": "user"}
    for record in related:
        db.session.add(EmailLink(email_id=e.id, record_type=kinds[type(record).__name__], record_id=record.id))
    if commit:
        db.session.commit()
    return e


# --- autologin hand-offs -------------------------------------------------------------------------

_TOKEN_FIELD = re.compile(r'name="_autologin" value="([A-Za-z0-9_-]+)"')


def handoff_token(response) -> str:
    """The one-time token of a hand-off page (POST /bridge/open/<id>), as the page posts it to Roundcube."""
    assert response.status_code == 200, response.status_code
    match = _TOKEN_FIELD.search(response.get_data(as_text=True))
    assert match, "no hand-off form on the page"
    return match.group(1)


def bind_token(token: str) -> tuple[str, str]:
    """(browser key, confirmation): the bind step for the token's own user, as the browser and the plugin do it."""
    import secrets

    from sqlalchemy import select

    from app.models import AutologinToken
    from app.services.autologin import handoff
    from roundcube_bridge import tokens

    row = db.session.scalar(select(AutologinToken).where(AutologinToken.token_hash == tokens.hash_token(token)))
    assert row is not None, "no such token"
    key = secrets.token_hex(32)
    return key, handoff.bind(db.session.get(User, row.user_id), token, tokens.hash_browser(key))


def redeem_bound(token: str, address: str | None = None):
    """Bind ``token`` for its user, then redeem it (the whole hand-off, in process)."""
    from app.services.autologin import handoff

    key, confirmation = bind_token(token)
    return handoff.redeem(token, address, browser_key=key, confirmation=confirmation)
