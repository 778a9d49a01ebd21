"""The one-time hand-off from a mailbox button to Roundcube, bound to the browser that clicked, and its log.

The flow (``docs/roundcube.md`` and ``docs/security.md`` say why each step is there):

1. A user clicks a mailbox button → ``open_mailbox`` checks the grant and mints a
   one-time token (only its hash is stored). The product gives the token to that
   browser twice: in an HttpOnly cookie of its own (path /bridge/bind) and in a
   form the page posts to Roundcube (a POST body, never a URL).
2. The Roundcube plugin keeps the token with a random browser key in a Roundcube
   cookie and sends the browser back to the product's /bridge/bind with the key's hash.
3. ``bind``: the product reads the token from its own cookie, checks that the
   logged-in user is the one it was minted for, records the browser key's hash on
   the token, and sends the browser to Roundcube with a confirmation (an HMAC
   under the shared secret) that the plugin checks before it calls the product.
4. ``redeem``: the plugin calls the product server-to-server with the shared
   secret, the token, the browser key and the confirmation; the token is spent by
   compare-and-set, the grant is checked again, and only then are the mailbox's
   login, secret and IMAP/SMTP settings handed out, with the token's target
   (``targets``: a compose window or one message; none opens the inbox).

Every step that concerns a known token, refusals included, is an ``AutologinEvent``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import NoReturn

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, select, update

from app.connect import credentials
from app.connect.errors import CredentialError
from app.connect.oauth_tokens import OAuthError, OAuthReconnectNeeded
from app.extensions import db
from app.models import AutologinEvent, AutologinToken, MailAccount, MailServer, User
from app.models.base import utcnow
from app.services.autologin import targets
from app.services.autologin.grants import has_grant
from roundcube_bridge import tokens

log = logging.getLogger(__name__)

# Refusal reasons, their HTTP status on the redeem endpoint, and what a person is told.
REFUSALS: dict[str, tuple[int, str]] = {
    "no_grant": (403, "You are not allowed to open this mailbox. Ask an administrator to grant it to you."),
    "unknown": (404, "This mailbox link is not valid."),
    "used": (410, "This mailbox link was already used. Open the mailbox again from Corporate Mailboxes."),
    "expired": (410, "This mailbox link has expired. Open the mailbox again from Corporate Mailboxes."),
    "revoked": (403, "You are no longer allowed to open this mailbox. Ask an administrator."),
    "disabled": (403, "This mailbox is switched off. Ask an administrator."),
    "throttled": (429, "Too many invalid mailbox links from your address. Wait a few minutes."),
    "too_many": (429, "You opened mailboxes very often in a short time. Wait a minute, then try again."),
    # The link was opened in another browser than the one that clicked, or by another person: answered
    # like a link that does not exist (404), as for objects of other users.
    "wrong_browser": (404, "This mailbox link belongs to another browser or another person. Open the mailbox "
                           "from Corporate Mailboxes in this browser."),
    "no_secret": (409, "This mailbox has no password stored. Ask an administrator to set it."),
    "bad_server": (409, "This mailbox's server settings are not usable. Ask an administrator to check them."),
    # OAuth 2.0 mailboxes: the provider refused the grant, or cannot be reached.
    "reconnect": (409, "This mailbox's OAuth authorization was revoked or expired. Ask an administrator to "
                       "reconnect the account (Mail tools → Mail scanner)."),
    "oauth_unavailable": (503, "The mailbox's sign-in provider cannot be reached right now. Try again in a few "
                               "minutes."),
}

# Host names as a mail server form accepts them; anything else (a "%" placeholder that
# Roundcube would expand, a scheme, a path, spaces) never reaches the plugin.
_HOST_RE = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+$|^\[[0-9A-Fa-f:.]+\]$")
_SECURITIES = ("ssl", "starttls", "none")


class AutologinRefused(Exception):
    """A hand-off step was refused; ``reason`` is a key of REFUSALS."""

    def __init__(self, reason: str):
        self.reason = reason
        self.status, self.message = REFUSALS[reason]
        super().__init__(self.message)


@dataclass
class Handoff:
    """What the plugin needs to log in to one mailbox (only ever sent server-to-server)."""

    account_id: int
    name: str
    login: str
    password: str
    auth_type: str  # "password" or "xoauth2" (then ``password`` is "Bearer <access token>")
    imap_host: str
    imap_port: int
    imap_security: str
    smtp_host: str
    smtp_port: int
    smtp_security: str
    smtp_auth: bool
    validate_cert: bool
    # What Roundcube opens after the login (targets.Target.as_json()); None: the inbox.
    target: dict | None = None

    def as_json(self) -> dict:
        """The redeem endpoint's answer."""
        return {"ok": True, **asdict(self)}


# ---------------------------------------------------------------- events


def _event(outcome: str, *, user_id: int | None = None, account_id: int | None = None,
           address: str | None = None) -> None:
    db.session.add(AutologinEvent(at=utcnow(), user_id=user_id, account_id=account_id,
                                  address=(address or None) and address[:64], outcome=outcome[:40]))


def record_refusal(reason: str, *, address: str | None = None) -> None:
    """Record a refusal that happened before any token or user was known (e.g. a bad shared secret).

    At most one row per reason and address a minute: such calls come from anyone on the network,
    and each one must not add a row (the log line of the request is kept either way).
    """
    outcome = f"refused: {reason}"[:40]
    recent = db.session.scalar(select(AutologinEvent.id).where(
        AutologinEvent.outcome == outcome, AutologinEvent.address == ((address or None) and address[:64]),
        AutologinEvent.at > utcnow() - timedelta(seconds=60)).limit(1))
    if recent is None:
        _event(outcome, address=address)
        db.session.commit()
    else:
        db.session.rollback()
    log.info("autologin refused reason=%s address=%s", reason, address)


# ---------------------------------------------------------------- hand-off


def open_mailbox(user: User, account_id: int, address: str | None,
                 target: targets.Target | None = None) -> str:
    """Mint a one-time token for ``user`` to open mailbox ``account_id``; returns the plain token.

    ``target`` is what Roundcube opens after the login (None: the inbox); it is kept
    with the token and reaches only the plugin, in the redeem answer. The caller has
    checked that the user may open it (the record, the e-mail).

    Raises AutologinRefused("no_grant") without making a token when the user
    has no grant (or the mailbox does not exist or is switched off), and
    AutologinRefused("reconnect") when it is an OAuth mailbox needing a reconnect.
    """
    account = db.session.get(MailAccount, account_id)
    if account is None or not account.enabled or not has_grant(user.id, account_id):
        _event("refused: no grant", user_id=user.id,
               account_id=account.id if account is not None else None, address=address)
        db.session.commit()
        raise AutologinRefused("no_grant")
    if account.health == "reconnect":
        # An OAuth mailbox whose grant the provider refused: say so here, in the product, rather
        # than sending the user to a Roundcube login that cannot work.
        _event("refused: reconnect", user_id=user.id, account_id=account.id, address=address)
        db.session.commit()
        raise AutologinRefused("reconnect")
    now = utcnow()
    if _minting_too_fast(user.id, now):
        _event("refused: too many", user_id=user.id, account_id=account.id, address=address)
        db.session.commit()
        raise AutologinRefused("too_many")
    minted = tokens.mint(now, current_app.config.get("AUTOLOGIN_TOKEN_TTL", 60))
    target_kind, target_json = targets.dump(target)
    db.session.add(AutologinToken(token_hash=minted.token_hash, user_id=user.id, account_id=account.id,
                                  created_at=now, expires_at=minted.expires_at,
                                  target_kind=target_kind, target_json=target_json))
    _event("issued", user_id=user.id, account_id=account.id, address=address)
    # The ids are read before the commit: after it, touching the expired user and mailbox would
    # cost two more SELECTs per hand-off just for this log line.
    user_id, mailbox_id = user.id, account.id
    db.session.commit()
    log.info("autologin token issued user=%s mailbox=%s", user_id, mailbox_id)
    return minted.value


LOOKUP_EVENT = "webmail lookup"


def count_lookup(user: User, address: str | None) -> None:
    """Count one look-up of a stored message on its mail server for *Open in webmail*, or refuse it.

    Each look-up logs in to the mail server from the web process, and one that finds nothing mints
    no token, so the token limit alone would not bound them: a user gets AUTOLOGIN_MINT_LIMIT
    look-ups within AUTOLOGIN_MINT_WINDOW seconds, then AutologinRefused("too_many").
    """
    now = utcnow()
    limit = int(current_app.config.get("AUTOLOGIN_MINT_LIMIT", 10))
    window = timedelta(seconds=int(current_app.config.get("AUTOLOGIN_MINT_WINDOW", 60)))
    done = db.session.scalar(select(func.count(AutologinEvent.id)).where(
        AutologinEvent.user_id == user.id, AutologinEvent.outcome == LOOKUP_EVENT,
        AutologinEvent.at > now - window)) or 0
    if done >= limit:
        _event("refused: too many", user_id=user.id, address=address)
        db.session.commit()
        raise AutologinRefused("too_many")
    _event(LOOKUP_EVENT, user_id=user.id, address=address)
    db.session.commit()


def _minting_too_fast(user_id: int, now) -> bool:
    """True when ``user_id`` minted AUTOLOGIN_MINT_LIMIT tokens within AUTOLOGIN_MINT_WINDOW seconds."""
    limit = int(current_app.config.get("AUTOLOGIN_MINT_LIMIT", 10))
    window = timedelta(seconds=int(current_app.config.get("AUTOLOGIN_MINT_WINDOW", 60)))
    count = db.session.scalar(select(func.count(AutologinToken.id)).where(
        AutologinToken.user_id == user_id, AutologinToken.created_at > now - window))
    return (count or 0) >= limit


def bind(user: User, token: str | None, browser_hash: str | None, address: str | None = None) -> str:
    """Bind ``token`` (read from the product's own cookie) to the plugin's browser key; returns the confirmation.

    Only the browser that clicked holds the cookie, and only its logged-in user
    may bind: a token of someone else is spent and refused as "wrong_browser",
    so a link passed to another person (login CSRF) opens nothing. A token is
    bound once. An unknown or malformed value is refused without a row (anyone
    can send one), with a log line.
    """
    if not tokens.looks_like_token(token) or not tokens.looks_like_hex64(browser_hash):
        log.info("autologin bind refused: no hand-off cookie or browser key user=%s", user.id)
        raise AutologinRefused("wrong_browser")
    token_hash = tokens.hash_token(token)
    now = utcnow()
    row = db.session.scalar(select(AutologinToken).where(AutologinToken.token_hash == token_hash))
    if row is None:
        log.info("autologin bind refused: unknown token user=%s", user.id)
        raise AutologinRefused("unknown")
    if row.user_id != user.id:
        _spend(row.id, now)
        return _refuse("wrong_browser", user_id=user.id, account_id=row.account_id, address=address)
    bound = db.session.execute(
        update(AutologinToken)
        .where(AutologinToken.id == row.id, AutologinToken.used_at.is_(None), AutologinToken.browser_hash.is_(None),
               AutologinToken.expires_at > now)
        .values(browser_hash=browser_hash, bound_at=now)
        .execution_options(synchronize_session=False))
    if bound.rowcount != 1:
        db.session.rollback()
        db.session.refresh(row)
        reason = "expired" if row.used_at is None and row.expires_at <= now else "used"
        _spend(row.id, now)
        return _refuse(reason, user_id=row.user_id, account_id=row.account_id, address=address)
    db.session.commit()
    return tokens.confirmation(current_app.config["BRIDGE_SECRET"], token_hash, browser_hash)


def _spend(token_id: int, now) -> None:
    """Make a token unusable (a failed step spends it: it is never retried)."""
    db.session.execute(update(AutologinToken).where(AutologinToken.id == token_id, AutologinToken.used_at.is_(None))
                       .values(used_at=now).execution_options(synchronize_session=False))


def _guessing(address: str | None) -> bool:
    """True when ``address`` sent too many unknown tokens lately (throttle against guessing)."""
    if not address:
        return False
    limit = int(current_app.config.get("AUTOLOGIN_GUESS_LIMIT", 20))
    window = timedelta(seconds=int(current_app.config.get("AUTOLOGIN_GUESS_WINDOW", 600)))
    count = db.session.scalar(select(func.count(AutologinEvent.id)).where(
        AutologinEvent.at > utcnow() - window, AutologinEvent.address == address[:64],
        AutologinEvent.outcome == "refused: unknown"))
    return (count or 0) >= limit


def redeem(token: str | None, address: str | None, *, browser_key: str | None = None,
           confirmation: str | None = None) -> Handoff:
    """Spend ``token`` once, for the browser it was bound to, and return the mailbox's login settings.

    ``browser_key`` is the plugin's cookie value whose hash ``bind`` recorded, and
    ``confirmation`` what ``bind`` returned; ``address`` is where the browser came
    from (as Roundcube saw it), kept in the event log. Raises AutologinRefused with
    the reason: unknown (forged or malformed), used, expired, wrong_browser (not
    bound, or bound to another browser), revoked (grant removed after minting),
    disabled, throttled, no_secret, bad_server. Every refusal of a known token spends it.
    """
    if _guessing(address):
        _event("refused: throttled", address=address)
        db.session.commit()
        raise AutologinRefused("throttled")
    if not tokens.looks_like_token(token):
        return _refuse("unknown", address=address)
    token_hash = tokens.hash_token(token)
    now = utcnow()
    browser_hash = tokens.hash_browser(browser_key) if tokens.looks_like_hex64(browser_key) else None
    confirmed = browser_hash is not None and tokens.confirmation_matches(
        current_app.config.get("BRIDGE_SECRET"), token_hash, browser_hash, confirmation)
    # Compare-and-set: of two concurrent redeems of the same token only one UPDATE matches a row
    # whose used_at is still NULL; the other gets rowcount 0. Only the browser it was bound to may spend it.
    spent = db.session.execute(
        update(AutologinToken)
        .where(AutologinToken.token_hash == token_hash, AutologinToken.used_at.is_(None),
               AutologinToken.expires_at > now, AutologinToken.browser_hash == browser_hash)
        .values(used_at=now)
        .execution_options(synchronize_session=False)) if confirmed else None
    row = db.session.scalar(select(AutologinToken).where(AutologinToken.token_hash == token_hash))
    if spent is None or spent.rowcount != 1:
        if row is None:
            return _refuse("unknown", address=address)
        if row.used_at is not None:
            reason = "used"
        elif row.expires_at <= now:
            reason = "expired"
        else:
            reason = "wrong_browser"
        _spend(row.id, now)
        return _refuse(reason, user_id=row.user_id, account_id=row.account_id, address=address)
    account = db.session.get(MailAccount, row.account_id)
    user = db.session.get(User, row.user_id)
    if account is None or user is None or not user.is_active or not has_grant(row.user_id, row.account_id):
        return _refuse("revoked", user_id=row.user_id, account_id=row.account_id, address=address)
    if not account.enabled:
        return _refuse("disabled", user_id=row.user_id, account_id=row.account_id, address=address)
    try:
        handoff = _handoff_for(account)
    except AutologinRefused as exc:
        return _refuse(exc.reason, user_id=row.user_id, account_id=row.account_id, address=address)
    target = targets.load(row.target_kind, row.target_json)
    handoff.target = target.as_json() if target is not None else None
    _event("redeemed", user_id=row.user_id, account_id=row.account_id, address=address)
    db.session.commit()
    log.info("autologin token redeemed user=%s mailbox=%s", row.user_id, row.account_id)
    return handoff


def _refuse(reason: str, *, user_id: int | None = None, account_id: int | None = None,
            address: str | None = None) -> NoReturn:
    # The spent token (if any) stays spent: a refused hand-off is not retried with the same link.
    _event(f"refused: {reason}", user_id=user_id, account_id=account_id, address=address)
    db.session.commit()
    log.info("autologin refused reason=%s user=%s mailbox=%s", reason, user_id, account_id)
    raise AutologinRefused(reason)


def _valid_host(host: str | None) -> bool:
    return bool(host) and len(host) <= 253 and _HOST_RE.match(host) is not None


def _handoff_for(account: MailAccount) -> Handoff:
    """Build the plugin's login settings from the configured server only (never from the request)."""
    server: MailServer = account.server
    if (not _valid_host(server.imap_host) or not _valid_host(server.smtp_host)
            or server.imap_security not in _SECURITIES or server.smtp_security not in _SECURITIES
            or not (0 < int(server.imap_port) < 65536) or not (0 < int(server.smtp_port) < 65536)):
        raise AutologinRefused("bad_server")
    secret = _login_secret(account)
    if server.auth_method == "oauth2":
        auth_type, password = "xoauth2", f"Bearer {secret}" if secret else None
    else:
        auth_type, password = "password", secret
    if not password:
        raise AutologinRefused("no_secret")
    return Handoff(
        account_id=account.id, name=account.name, login=account.login, password=password, auth_type=auth_type,
        imap_host=server.imap_host, imap_port=int(server.imap_port), imap_security=server.imap_security,
        smtp_host=server.smtp_host, smtp_port=int(server.smtp_port), smtp_security=server.smtp_security,
        smtp_auth=bool(server.smtp_auth), validate_cert=bool(server.validate_cert))


def _login_secret(account: MailAccount) -> str | None:
    """The mailbox's password or OAuth access token; OAuth failures become refusals in words."""
    try:
        return credentials.login_secret(account)
    except OAuthReconnectNeeded:
        raise AutologinRefused("reconnect") from None
    except OAuthError:
        # The provider is unreachable or refused the app: nothing the user can fix; say so plainly.
        raise AutologinRefused("oauth_unavailable") from None
    except CredentialError:
        # The stored password cannot be decrypted (the encryption key changed): it must be entered again.
        raise AutologinRefused("no_secret") from None


# ---------------------------------------------------------------- log


def events_page(page: int, per_page: int) -> Pagination:
    """The hand-off log, newest first, paginated."""
    return db.paginate(select(AutologinEvent).order_by(AutologinEvent.at.desc(), AutologinEvent.id.desc()),
                       page=page, per_page=per_page, error_out=False)

