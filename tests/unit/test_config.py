"""Configuration: production refuses missing secrets, development keeps generated ones."""

import pytest

from app import create_app
from app.crypto import SecretError, decrypt_secret, encrypt_secret


def test_production_refuses_to_start_without_secrets(monkeypatch, tmp_path):
    for name in ("SECRET_KEY", "MAIL_ENCRYPTION_KEY", "BRIDGE_SECRET", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production", SECRET_KEY=None, MAIL_ENCRYPTION_KEY=None, BRIDGE_SECRET=None,
                   SQLALCHEMY_DATABASE_URI="", INSTANCE_PATH=str(tmp_path))


def test_development_generates_and_keeps_secrets(tmp_path):
    first = create_app("development", SECRET_KEY=None, MAIL_ENCRYPTION_KEY=None, BRIDGE_SECRET=None,
                       SQLALCHEMY_DATABASE_URI="", INSTANCE_PATH=str(tmp_path))
    second = create_app("development", SECRET_KEY=None, MAIL_ENCRYPTION_KEY=None, BRIDGE_SECRET=None,
                        SQLALCHEMY_DATABASE_URI="", INSTANCE_PATH=str(tmp_path))
    assert first.config["SECRET_KEY"] and first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["MAIL_ENCRYPTION_KEY"] == second.config["MAIL_ENCRYPTION_KEY"]
    assert first.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite:///")
    assert (tmp_path / "secret_key.secret").stat().st_mode & 0o077 == 0


def test_unknown_environment_name_is_explained():
    with pytest.raises(RuntimeError, match="CM_ENV must be one of"):
        create_app("staging")


def test_secrets_round_trip_and_are_not_plaintext():
    from cryptography.fernet import Fernet

    key = Fernet.generate_key().decode()
    token = encrypt_secret(key, "hunter2")
    assert "hunter2" not in token
    assert decrypt_secret(key, token) == "hunter2"
    assert encrypt_secret(key, "") is None


def test_secret_under_another_key_says_what_happened():
    from cryptography.fernet import Fernet

    token = encrypt_secret(Fernet.generate_key().decode(), "pw")
    with pytest.raises(SecretError, match="MAIL_ENCRYPTION_KEY"):
        decrypt_secret(Fernet.generate_key().decode(), token)


def test_the_sqlite_database_and_its_companions_are_private(tmp_path):
    """The SQLite file holds all stored mail: it, its -wal/-shm files and the writer lock are 0600."""
    import os
    import stat

    from sqlalchemy import text

    from app.extensions import db
    from app.scanning.runtime import WriterTurn

    old = os.umask(0o022)  # a usual umask, which would give 0644 files
    try:
        instance = tmp_path / "instance"
        app = create_app("development", SECRET_KEY=None, MAIL_ENCRYPTION_KEY=None, BRIDGE_SECRET=None,
                         SQLALCHEMY_DATABASE_URI="", INSTANCE_PATH=str(instance))
        with app.app_context():
            db.create_all()
            with db.engine.begin() as conn:
                conn.execute(text("INSERT INTO organizations (name, created_at) VALUES ('x', '2026-01-01')"))
            turn = WriterTurn()
            turn.take()
            turn.release()
            files = sorted(p.name for p in instance.iterdir())
            assert {"corporate_mailboxes.db", "corporate_mailboxes.db-wal", "corporate_mailboxes.db-shm",
                    "corporate_mailboxes.db-writer.lock", "secret_key.secret"} <= set(files), files
            for name in files:
                mode = stat.S_IMODE((instance / name).stat().st_mode)
                assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
            assert stat.S_IMODE(instance.stat().st_mode) & 0o077 == 0
            db.engine.dispose()
    finally:
        os.umask(old)
