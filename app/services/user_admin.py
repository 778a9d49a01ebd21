"""Managing users: create, edit, disable and enable, reset a password, make or unmake an administrator.

The web pages (Settings → Users) and ``flask users …`` both come here, so each
change is checked and audited the same way. Two rules protect the product from
locking its administrators out: nobody disables or demotes their own account,
and the last active administrator can be neither disabled nor demoted.
Passwords never reach the audit log; a generated one is returned once to the
caller, which shows it once and keeps it nowhere.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import func, select

from app.extensions import db
from app.models import User
from app.models.base import normalize_email
from app.services import accounts, audit
from app.services.accounts import AccountError
from app.services.validation import has_control_chars

GENERATED_PASSWORD_BYTES = 12  # 16 characters of base64url: about 96 bits


class UserNotFound(LookupError):
    """No user has that id."""


@dataclass(frozen=True)
class NewUser:
    """What an administrator fills in to create a user; an empty password asks for a generated one."""

    username: str
    full_name: str = ""
    email: str | None = None
    is_admin: bool = False
    password: str | None = None


@dataclass(frozen=True)
class Profile:
    """The parts of a user an administrator edits on the user's form."""

    full_name: str
    email: str | None


def _target(user: User) -> str:
    return f"user {user.id} ({user.username})"


def get_user(user_id: int) -> User:
    """The user with that id; raises :class:`UserNotFound`."""
    user = db.session.get(User, user_id)
    if user is None:
        raise UserNotFound(user_id)
    return user


def list_users() -> list[User]:
    """Every user, administrators first, then by username."""
    return list(db.session.scalars(select(User).order_by(User.is_admin.desc(), func.lower(User.username))))


def generate_password() -> str:
    """A random password for a reset, shown once to the administrator who asked for it."""
    return secrets.token_urlsafe(GENERATED_PASSWORD_BYTES)


def _refuse_taken_email(email: str | None, own_id: int | None) -> None:
    """One user per address, so that mail from it relates to one user."""
    address = normalize_email(email)
    if address is None:
        return
    query = select(User.id).where(User.email == address)
    if own_id is not None:
        query = query.where(User.id != own_id)
    if db.session.scalar(query.limit(1)) is not None:
        raise AccountError(f"Another user already has the e-mail address {address}.")


def create_user(new: NewUser) -> tuple[User, str | None]:
    """Create a user, audited; returns (the user, the generated password or None when one was given)."""
    _refuse_taken_email(accounts.check_email(new.email), None)
    generated = None if new.password else generate_password()
    user = accounts.create_user(new.username, new.password or generated or "", admin=new.is_admin,
                                email=new.email, full_name=new.full_name, commit=False)
    db.session.flush()
    audit.record("user.create", _target(user),
                 f"role={'administrator' if user.is_admin else 'user'}; email={user.email or ''}; "
                 f"password={'generated' if generated else 'set by the administrator'}")
    db.session.commit()
    return user, generated


def _clean_name(full_name: str | None) -> str:
    full_name = (full_name or "").strip()
    if len(full_name) > 200 or has_control_chars(full_name):
        raise AccountError("A full name has at most 200 characters and no control characters.")
    return full_name


def update_profile(user: User, profile: Profile) -> list[str]:
    """Change a user's full name and e-mail address, audited; returns what changed, in words."""
    full_name = _clean_name(profile.full_name)
    email = accounts.check_email(profile.email)
    _refuse_taken_email(email, user.id)
    before = (user.full_name or "", user.email)
    user.full_name = full_name
    user.set_email(email)
    changes = [f"{label}: {old or '(none)'} → {new or '(none)'}"
               for label, old, new in (("name", before[0], user.full_name), ("e-mail", before[1], user.email))
               if (old or "") != (new or "")]
    if changes:
        audit.record("user.update", _target(user), "; ".join(changes))
    db.session.commit()
    return changes


def _other_active_admins(user: User) -> int:
    return db.session.scalar(select(func.count()).select_from(User).where(
        User.is_admin.is_(True), User.active.is_(True), User.id != user.id)) or 0


def _refuse_lockout(user: User, actor: User | None, doing: str) -> None:
    """Refuse to disable or demote oneself, or the last active administrator."""
    if actor is not None and actor.id == user.id:
        raise AccountError(f"You cannot {doing} your own account; ask another administrator.")
    if user.is_admin and user.active and _other_active_admins(user) == 0:
        raise AccountError(f"{user.username} is the last active administrator: make another user an "
                           f"administrator before you {doing} this one.")


def set_active(user: User, active: bool, actor: User | None = None) -> bool:
    """Enable or disable ``user``, audited; disabling ends their sessions. False when nothing changed."""
    if bool(user.active) == bool(active):
        return False
    if not active:
        _refuse_lockout(user, actor, "disable")
    audit.record("user.enable" if active else "user.disable", _target(user),
                 "" if active else "every session of the user ended")
    accounts.set_active(user, active)
    return True


def set_admin(user: User, admin: bool, actor: User | None = None) -> bool:
    """Make ``user`` an administrator or an ordinary user, audited. False when nothing changed."""
    if bool(user.is_admin) == bool(admin):
        return False
    if not admin:
        _refuse_lockout(user, actor, "demote")
    user.is_admin = bool(admin)
    audit.record("user.promote" if admin else "user.demote", _target(user),
                 "role=administrator" if admin else "role=user")
    db.session.commit()
    return True


def reset_password(user: User, password: str | None) -> str | None:
    """Set ``password``, or a generated one when it is empty; every session of the user ends, audited.

    Returns the generated password (to be shown once), or None when the administrator typed one.
    """
    generated = None if password else generate_password()
    accounts.check_password(password or generated)
    audit.record("user.password_reset", _target(user),
                 "password generated" if generated else "password set by the administrator")
    accounts.change_password(user, password or generated or "")
    return generated


def end_sessions(user: User) -> None:
    """Log ``user`` out everywhere, audited (the CLI's ``users end-sessions``)."""
    audit.record("user.end_sessions", _target(user))
    accounts.end_sessions(user)
