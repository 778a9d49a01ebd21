"""Mail servers, the corporate mailboxes scanned on them, and who may open them."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.extensions import db
from app.models.base import utcnow

SECURITY_CHOICES = ("ssl", "starttls", "none")
AUTH_METHODS = ("password", "oauth2")
ACTIONS = ("create_email", "bind_email", "open_ticket", "create_ticket")
SEARCH_FIELDS = ("contacts", "organizations", "leads", "users")
# What a scanner does on the server with a message once it is stored.
AFTER_STORE_ACTIONS = ("keep", "mark_read", "move", "delete")


class MailServer(db.Model):
    """An IMAP + SMTP server pair that mailboxes live on."""

    __tablename__ = "mail_servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    imap_host: Mapped[str] = mapped_column(String(255))
    imap_port: Mapped[int] = mapped_column(Integer, default=993)
    imap_security: Mapped[str] = mapped_column(String(10), default="ssl")
    smtp_host: Mapped[str] = mapped_column(String(255))
    smtp_port: Mapped[int] = mapped_column(Integer, default=465)
    smtp_security: Mapped[str] = mapped_column(String(10), default="ssl")
    smtp_auth: Mapped[bool] = mapped_column(Boolean, default=True)
    # Certificates are checked unless an administrator explicitly turns it off.
    validate_cert: Mapped[bool] = mapped_column(Boolean, default=True)
    auth_method: Mapped[str] = mapped_column(String(10), default="password")
    oauth_provider: Mapped[str | None] = mapped_column(String(30))
    oauth_client_id: Mapped[str | None] = mapped_column(String(255))
    oauth_client_secret_enc: Mapped[str | None] = mapped_column(Text)
    oauth_authorize_url: Mapped[str | None] = mapped_column(String(500))
    oauth_token_url: Mapped[str | None] = mapped_column(String(500))
    oauth_scopes: Mapped[str | None] = mapped_column(String(500))
    oauth_redirect_uri: Mapped[str | None] = mapped_column(String(500))
    visible: Mapped[bool] = mapped_column(Boolean, default=True)
    # The most connections the watcher opens to one mailbox at once (one more is left for its scan);
    # providers limit them per account (Gmail: 15). Folders beyond them are polled over those it has.
    max_connections: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)

    accounts: Mapped[list[MailAccount]] = relationship(back_populates="server")


class MailAccount(db.Model):
    """A corporate mailbox: the scanner that reads it and the button users click."""

    __tablename__ = "mail_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    server_id: Mapped[int] = mapped_column(ForeignKey("mail_servers.id"))
    login: Mapped[str] = mapped_column(String(255))
    password_enc: Mapped[str | None] = mapped_column(Text)
    oauth_refresh_token_enc: Mapped[str | None] = mapped_column(Text)
    oauth_access_token_enc: Mapped[str | None] = mapped_column(Text)
    oauth_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Comma-separated names from ACTIONS and SEARCH_FIELDS.
    actions: Mapped[str] = mapped_column(String(200), default="create_email,bind_email")
    search_fields: Mapped[str] = mapped_column(String(200), default="contacts,organizations,leads,users")
    assignee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # After storing a message: keep it as it is, mark it read, move it to after_store_folder, or delete it.
    after_store: Mapped[str] = mapped_column(String(20), default="keep", server_default="keep")
    after_store_folder: Mapped[str | None] = mapped_column(String(255))
    # Import the mail already in the mailbox as an archive: stored and bound, but it opens no ticket,
    # reopens nothing and counts toward no loop. What is "already there" is recorded per folder
    # (ScanFolder.archive_below_uid) at the first run after the option is set.
    archive_existing: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Only mail the server received on or after this day is read (IMAP SEARCH SINCE).
    since_date: Mapped[date | None] = mapped_column(Date)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # active / blocked (after repeated login failures) / reconnect (OAuth token dead)
    health: Mapped[str] = mapped_column(String(20), default="active")
    blocked_reason: Mapped[str | None] = mapped_column(Text)
    login_failures: Mapped[int] = mapped_column(Integer, default=0)
    # The run holding this mailbox; set by compare-and-set so two workers never scan it at once.
    running_run_id: Mapped[int | None] = mapped_column(Integer)
    last_run_at: Mapped[datetime | None] = mapped_column(DateTime)
    last_run_status: Mapped[str | None] = mapped_column(String(20))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_success_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Messages the server holds beyond what the scans stored, as the last run counted them (None: not
    # counted yet). A run that stops at its budget leaves a backlog, which its job continues at once.
    backlog: Mapped[int | None] = mapped_column(Integer)
    unread_count: Mapped[int | None] = mapped_column(Integer)
    unread_checked_at: Mapped[datetime | None] = mapped_column(DateTime)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)

    server: Mapped[MailServer] = relationship(back_populates="accounts")
    folders: Mapped[list[ScanFolder]] = relationship(
        back_populates="account", cascade="all, delete-orphan", order_by="ScanFolder.id")

    @property
    def action_list(self) -> list[str]:
        return [a for a in (self.actions or "").split(",") if a]

    @property
    def search_field_list(self) -> list[str]:
        return [f for f in (self.search_fields or "").split(",") if f]


class ScanFolder(db.Model):
    """A folder a scanner reads, with how far it got (UIDVALIDITY + last UID)."""

    __tablename__ = "scan_folders"
    __table_args__ = (UniqueConstraint("account_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    direction: Mapped[str] = mapped_column(String(10), default="incoming")  # incoming / outgoing
    uidvalidity: Mapped[int | None] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    # With the scanner's archive import: the folder's UIDNEXT when the import began; messages with
    # a lower UID were already there, and are stored as archive.
    archive_below_uid: Mapped[int | None] = mapped_column(BigInteger)

    account: Mapped[MailAccount] = relationship(back_populates="folders")


class PendingMailAction(db.Model):
    """An action owed on the server for a stored message (mark read, move, delete).

    Written in the transaction that stores the message and deleted once the server confirmed
    the action, so a run killed in between performs it on the next run, and never loses the
    message. ``step`` says how far a COPY + STORE + EXPUNGE fallback got: pending, copied
    (the copy exists in the target), flagged (marked deleted, waiting for a safe expunge).
    """

    __tablename__ = "pending_mail_actions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"), index=True)
    folder: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(20))
    target: Mapped[str | None] = mapped_column(String(255))
    step: Mapped[str] = mapped_column(String(20), default="pending", server_default="pending")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class AutologinGrant(db.Model):
    """A user allowed to open a mailbox in Roundcube."""

    __tablename__ = "autologin_grants"
    __table_args__ = (UniqueConstraint("account_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class AutologinToken(db.Model):
    """A one-time hand-off token; only its hash is stored."""

    __tablename__ = "autologin_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account_id: Mapped[int] = mapped_column(ForeignKey("mail_accounts.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime)
    used_at: Mapped[datetime | None] = mapped_column(DateTime)
    # SHA-256 of the key the Roundcube plugin set as a cookie in the browser that clicked; set once, by the
    # product's bind step (which only that browser's session can pass). Redeem needs the key itself.
    browser_hash: Mapped[str | None] = mapped_column(String(64))
    bound_at: Mapped[datetime | None] = mapped_column(DateTime)
    # What Roundcube opens after the login (app/services/autologin/targets.py): None = the inbox,
    # "compose" or "show"; the details (recipient and subject, or folder and UID) as JSON. Kept here, on
    # the server, so that no URL of the hand-off carries a recipient, a subject or a message's place.
    target_kind: Mapped[str | None] = mapped_column(String(20))
    target_json: Mapped[str | None] = mapped_column(Text)


class AutologinEvent(db.Model):
    """Who opened which mailbox, when, from where, and how it ended."""

    __tablename__ = "autologin_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("mail_accounts.id", ondelete="SET NULL"))
    address: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(40))  # issued / redeemed / webmail lookup / refused: <why>
