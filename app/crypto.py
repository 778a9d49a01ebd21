"""Encryption of mail secrets at rest (passwords, OAuth tokens)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken
from flask import current_app

from app.logging_setup import register_secret


class SecretError(Exception):
    """A stored secret cannot be read with the configured key."""


def app_key() -> str:
    """The running app's MAIL_ENCRYPTION_KEY."""
    return current_app.config["MAIL_ENCRYPTION_KEY"]


def _fernet(key: str) -> Fernet:
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise SecretError("MAIL_ENCRYPTION_KEY is not a valid Fernet key "
                          "(32 url-safe base64-encoded bytes)") from exc


def encrypt_secret(key: str, plaintext: str | None) -> str | None:
    """Encrypt ``plaintext``; ``None`` and "" stay ``None`` (no secret)."""
    if not plaintext:
        return None
    register_secret(plaintext)
    return _fernet(key).encrypt(plaintext.encode()).decode()


def decrypt_secret(key: str, token: str | None) -> str | None:
    """Decrypt a value made by ``encrypt_secret``."""
    if not token:
        return None
    try:
        plaintext = _fernet(key).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise SecretError("A stored mail secret cannot be decrypted: "
                          "was MAIL_ENCRYPTION_KEY changed?") from exc
    # Every secret this process handles is masked in its log lines from now on.
    register_secret(plaintext)
    return plaintext
