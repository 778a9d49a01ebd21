"""User accounts: creation, authentication with a throttle, safe redirects."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from sqlalchemy import select

from app.extensions import db
from app.models import LoginThrottle, User
from app.models.base import utcnow


class AccountError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass
class AuthResult:
    """The outcome of a login: the user, or the words that say why not (and whether the login is locked)."""

    user: User | None
    error: str = ""
    locked: bool = False


def create_user(username: str, password: str, *, admin: bool = False, email: str | None = None,
                full_name: str = "") -> User:
    """Create a user; refuses a taken username or a short password."""
    username = (username or "").strip()
    if not username or len(username) > 80:
        raise AccountError("A username of 1 to 80 characters is required.")
    if len(password or "") < 8:
        raise AccountError("The password must have at least 8 characters.")
    if db.session.scalar(select(User).where(User.username == username)):
        raise AccountError(f"The username {username!r} is taken.")
    user = User(username=username, is_admin=admin, full_name=full_name)
    user.set_password(password)
    user.set_email(email)
    db.session.add(user)
    db.session.commit()
    return user


def authenticate(username: str, password: str, *, client: str) -> AuthResult:
    """Check a login, counting failures per username and per client address."""
    keys = [f"user:{username.strip().lower()}", f"ip:{client}"]
    now = utcnow()
    throttles = {t.key: t for t in db.session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(keys)))}
    if any(t.locked_until and t.locked_until > now for t in throttles.values()):
        return AuthResult(None, "Too many failed logins. Wait a few minutes and try again.", locked=True)
    user = db.session.scalar(select(User).where(User.username == username.strip()))
    if user is not None and user.is_active and user.check_password(password):
        for t in throttles.values():
            db.session.delete(t)
        db.session.commit()
        return AuthResult(user)
    limit = current_app.config["LOGIN_MAX_FAILURES"]
    window = timedelta(seconds=current_app.config["LOGIN_LOCK_SECONDS"])
    locked = False
    for key in keys:
        t = throttles.get(key)
        if t is None or now - t.first_failure_at > window:
            if t is not None:
                db.session.delete(t)
                db.session.flush()
            t = LoginThrottle(key=key, failures=0, first_failure_at=now)
            db.session.add(t)
        t.failures += 1
        if t.failures >= limit:
            t.locked_until = now + window
            locked = True
    db.session.commit()
    if locked:
        return AuthResult(None, "Too many failed logins. Wait a few minutes and try again.", locked=True)
    return AuthResult(None, "Wrong username or password.")


def safe_next(target: str | None, default: str) -> str:
    """Only follow ``next`` to a path on this site; anything else goes to ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target
