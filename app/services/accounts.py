"""User accounts: creation, checking a login, changing a password, disabling, ending sessions, safe redirects.

Sessions: every user row has a ``session_version``, and it is part of the id
that flask-login keeps in the session cookie and in the remember-me cookie
(``User.get_id``). The user loader accepts a cookie only when its version is
the row's current one, so :func:`end_sessions` (called by log-out, a password
change and disabling a user) makes every session and remember-me cookie of
that user worthless at once, on every device.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

from sqlalchemy import func, or_, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models import User
from app.models.users import password_hash_options
from app.services import login_throttle
from app.services.records import is_valid_email
from app.services.validation import has_control_chars

MIN_PASSWORD = 8
MAX_PASSWORD = 200
LOCKED_MESSAGE = "Too many failed logins. Wait a few minutes and try again."
_SESSION_ID = re.compile(r"([0-9]{1,10}):([0-9]{1,10})", re.ASCII)


class AccountError(ValueError):
    """A user cannot be created or changed as asked."""


@dataclass
class AuthResult:
    """The outcome of a login: the user, or the words that say why not (and whether the login is locked)."""

    user: User | None
    error: str = ""
    locked: bool = False


def _check_username(username: str) -> str:
    username = (username or "").strip()
    if not username or len(username) > 80:
        raise AccountError("A username of 1 to 80 characters is required.")
    if has_control_chars(username):
        raise AccountError("A username has no control characters (line breaks, tabs, escapes…).")
    return username


def check_password(password: str | None) -> str:
    """``password`` when its length is allowed; raises :class:`AccountError` saying the limit."""
    if len(password or "") < MIN_PASSWORD:
        raise AccountError(f"The password must have at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"The password may have at most {MAX_PASSWORD} characters (the login form's limit).")
    return password


def check_email(email: str | None) -> str | None:
    """The address stripped (None when empty); raises :class:`AccountError` when it is not an address."""
    email = (email or "").strip() or None
    if email is not None and not is_valid_email(email):
        raise AccountError(f"{email!r} is not an e-mail address (expected name@example.com).")
    return email


def find_user(username: str | None) -> User | None:
    """The user of that name, ignoring case and surrounding spaces."""
    name = login_throttle.normalize_username(username)
    if not name:
        return None
    return db.session.scalar(select(User).where(or_(User.username == name, func.lower(User.username) == name))
                             .order_by((User.username == name).desc(), User.id).limit(1))


def create_user(username: str, password: str, *, admin: bool = False, email: str | None = None,
                full_name: str = "", commit: bool = True) -> User:
    """Create a user; refuses a taken name (ignoring case), control characters, a short password or a bad address.

    ``commit=False`` leaves the commit to the caller (which adds its audit entry first).
    """
    username = _check_username(username)
    password = check_password(password)
    email = check_email(email)
    full_name = (full_name or "").strip()
    if len(full_name) > 200 or has_control_chars(full_name):
        raise AccountError("A full name has at most 200 characters and no control characters.")
    if find_user(username) is not None:
        raise AccountError(f"The username {username!r} is taken.")
    user = User(username=username, is_admin=admin, full_name=full_name)
    user.set_password(password)
    user.set_email(email)
    db.session.add(user)
    if commit:
        db.session.commit()
    return user


@lru_cache(maxsize=4)
def _dummy_hash(method: str | None) -> str:
    # Hashed the same way as real passwords, so that an unknown name costs as long as a known one.
    return generate_password_hash(secrets.token_urlsafe(16), **({"method": method} if method else {}))


def _password_matches(user: User | None, password: str) -> bool:
    if user is None:
        check_password_hash(_dummy_hash(password_hash_options().get("method")), password)
        return False
    return user.check_password(password)


def authenticate(username: str, password: str, *, client: str) -> AuthResult:
    """Check a login; failures are counted per (account, address) pair (see app.services.login_throttle)."""
    name = login_throttle.normalize_username(username)
    if login_throttle.refused(name, client):
        return AuthResult(None, LOCKED_MESSAGE, locked=True)
    user = find_user(name)
    # The hash runs for unknown and disabled users too: the answer's timing tells nothing.
    if _password_matches(user, password) and user.is_active:
        login_throttle.succeeded(name, client)
        return AuthResult(user)
    if login_throttle.failed(name, client):
        return AuthResult(None, LOCKED_MESSAGE, locked=True)
    return AuthResult(None, "Wrong username or password.")


def end_sessions(user: User) -> None:
    """Log ``user`` out everywhere: every session cookie and remember-me cookie of theirs stops working.

    The web UI's "disable" and "reset password" go through :func:`set_active`
    and :func:`change_password`, which call this; call it alone for a
    "log out everywhere" button.
    """
    db.session.execute(update(User).where(User.id == user.id)
                       .values(session_version=func.coalesce(User.session_version, 0) + 1)
                       .execution_options(synchronize_session=False))
    db.session.commit()
    db.session.refresh(user)


def change_password(user: User, new_password: str) -> None:
    """Store a new password for ``user`` and end all of their sessions."""
    user.set_password(check_password(new_password))
    db.session.commit()
    end_sessions(user)


def set_active(user: User, active: bool) -> None:
    """Enable or disable ``user``; disabling ends all of their sessions (a disabled user cannot log in)."""
    user.active = bool(active)
    db.session.commit()
    if not active:
        end_sessions(user)


def user_for_session(session_id: str | None) -> User | None:
    """The user a session or remember-me cookie names ("<id>:<version>"), if that session is still valid."""
    match = _SESSION_ID.fullmatch(session_id or "")
    if match is None or int(match[1]) > 2**31 - 1:
        return None
    user_id, version = match.groups()
    user = db.session.get(User, int(user_id))
    if user is None or not user.is_active or int(user.session_version or 0) != int(version):
        return None
    return user


def safe_next(target: str | None, default: str) -> str:
    """Only follow ``next`` to a path on this site; anything else goes to ``default``."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return default
    return target
