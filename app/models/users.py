"""People who log in to the product, and the login throttle."""

from __future__ import annotations

from datetime import datetime

from flask import current_app, has_app_context
from flask_login import UserMixin
from sqlalchemy import Boolean, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.models.base import normalize_email, utcnow


def password_hash_options() -> dict[str, str]:
    """Keyword arguments for ``generate_password_hash``: the configured method, when one is."""
    method = current_app.config.get("PASSWORD_HASH_METHOD") if has_app_context() else None
    return {"method": method} if method else {}


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254), index=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # Part of the id kept in session and remember-me cookies: raising it ends every session of the user.
    session_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    def get_id(self) -> str:  # flask-login stores this in the session and the remember-me cookie
        return f"{self.id}:{self.session_version or 0}"

    def set_password(self, password: str) -> None:
        """Store a salted hash, never the password (werkzeug's method, or ``PASSWORD_HASH_METHOD``)."""
        self.password_hash = generate_password_hash(password, **password_hash_options())

    def check_password(self, password: str) -> bool:
        """True when ``password`` matches the stored hash."""
        return check_password_hash(self.password_hash, password)

    def set_email(self, address: str | None) -> None:
        """Store the address normalized for lookups."""
        self.email = normalize_email(address)

    @property
    def is_active(self) -> bool:  # flask-login asks this
        return bool(self.active)

    @property
    def display_name(self) -> str:
        return self.full_name or self.username


class LoginThrottle(db.Model):
    """Failed logins per key in the current window: an (account, address) pair, an account or an address."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    first_failure_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
