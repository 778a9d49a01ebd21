"""Settings read from the environment, with documented defaults.

Every setting is an environment variable of the same name. ``load_config``
picks the class from ``CM_ENV`` (``development`` by default, ``production``
or ``testing``). Development keeps generated secrets in the instance folder so
that a restart does not log everybody out or make stored mail secrets
unreadable; production refuses to start without them.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent


def env_bool(name: str, default: bool) -> bool:
    """Read a yes/no environment variable ("1", "true", "yes", "on" are yes)."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    """Read an integer environment variable, failing loudly on garbage."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise RuntimeError(f"{name} must be a whole number, got {raw!r}") from exc


class Config:
    """Defaults shared by every environment."""

    ENV_NAME = "base"
    INSTANCE_PATH = os.environ.get("CM_INSTANCE_PATH", str(BASE_DIR / "instance"))
    SQLALCHEMY_DATABASE_URI = os.environ.get("DATABASE_URL") or ""
    SQLALCHEMY_TRACK_MODIFICATIONS = False
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    # "redis" runs scans on RQ workers; "inline" runs them in the web process
    # (the demo without Redis, and unit tests).
    QUEUE_MODE = os.environ.get("QUEUE_MODE", "redis")
    SECRET_KEY = os.environ.get("SECRET_KEY")
    # Fernet key (urlsafe base64, 32 bytes) that encrypts mail passwords and tokens at rest.
    MAIL_ENCRYPTION_KEY = os.environ.get("MAIL_ENCRYPTION_KEY")
    ROUNDCUBE_URL = os.environ.get("ROUNDCUBE_URL", "http://127.0.0.1:18090/")
    # Shared secret the Roundcube plugin presents when it redeems an autologin token.
    BRIDGE_SECRET = os.environ.get("BRIDGE_SECRET")
    AUTOLOGIN_TOKEN_TTL = env_int("AUTOLOGIN_TOKEN_TTL", 60)
    # Hand-offs one user may start within AUTOLOGIN_MINT_WINDOW seconds (each mints a token).
    AUTOLOGIN_MINT_LIMIT = env_int("AUTOLOGIN_MINT_LIMIT", 10)
    AUTOLOGIN_MINT_WINDOW = env_int("AUTOLOGIN_MINT_WINDOW", 60)
    # Retention of the tables anyone can make grow, pruned hourly by the worker (app/services/retention.py).
    AUTOLOGIN_EVENT_RETENTION_DAYS = env_int("AUTOLOGIN_EVENT_RETENTION_DAYS", 90)
    AUTOLOGIN_TOKEN_RETENTION_HOURS = env_int("AUTOLOGIN_TOKEN_RETENTION_HOURS", 24)
    LOGIN_MAX_FAILURES = env_int("LOGIN_MAX_FAILURES", 5)
    LOGIN_LOCK_SECONDS = env_int("LOGIN_LOCK_SECONDS", 300)
    # werkzeug's generate_password_hash method for new passwords; unset: werkzeug's default (scrypt).
    PASSWORD_HASH_METHOD = os.environ.get("PASSWORD_HASH_METHOD") or None
    # Failed logins of one account from every address before addresses that failed for it are held back.
    LOGIN_ACCOUNT_MAX_FAILURES = env_int("LOGIN_ACCOUNT_MAX_FAILURES", 20)
    # Failed logins from one address over every account before that address is refused.
    LOGIN_ADDRESS_MAX_FAILURES = env_int("LOGIN_ADDRESS_MAX_FAILURES", 50)
    # Reverse proxies in front of the app that set X-Forwarded-For/-Proto; 0 trusts no such header.
    TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)
    MAIL_CONNECT_TIMEOUT = env_int("MAIL_CONNECT_TIMEOUT", 10)
    # CSV imports are refused as a whole past these (flask records import).
    IMPORT_MAX_BYTES = env_int("IMPORT_MAX_BYTES", 50 * 1024 * 1024)
    IMPORT_MAX_ROWS = env_int("IMPORT_MAX_ROWS", 200_000)
    # An import from the web page of a file up to this size runs in the request; a bigger one on a worker.
    IMPORT_INLINE_MAX_BYTES = env_int("IMPORT_INLINE_MAX_BYTES", 256 * 1024)
    MAX_MESSAGE_BYTES = env_int("MAX_MESSAGE_BYTES", 25 * 1024 * 1024)
    WTF_CSRF_TIME_LIMIT = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    PER_PAGE = 50
    TESTING = False
    # Operations: log format, /metrics token, alerts.
    LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")  # "text" or "json" (one object per line)
    LOG_LEVEL = os.environ.get("LOG_LEVEL", "INFO")
    # Bearer token for /metrics; unset means /metrics answers 404.
    METRICS_TOKEN = os.environ.get("METRICS_TOKEN") or None
    # The watcher (watcher.py): IDLE re-issued this often (RFC 2177 asks for less than 29 minutes);
    # heartbeat and leases in Redis (a dead watcher's scanners are taken over within the lease);
    # the scanners re-read this often; reconnects wait at most this long (doubling, with jitter).
    WATCH_IDLE_RENEW_SECONDS = env_int("WATCH_IDLE_RENEW_SECONDS", 25 * 60)
    WATCH_HEARTBEAT_SECONDS = env_int("WATCH_HEARTBEAT_SECONDS", 5)
    WATCH_LEASE_SECONDS = env_int("WATCH_LEASE_SECONDS", 30)
    WATCH_REFRESH_SECONDS = env_int("WATCH_REFRESH_SECONDS", 3)
    WATCH_RECONNECT_MAX_SECONDS = env_int("WATCH_RECONNECT_MAX_SECONDS", 20)
    WATCH_HEALTHY_SECONDS = env_int("WATCH_HEALTHY_SECONDS", 60)
    # Folders without IDLE are polled at the check frequency of the mail configuration unless this is set.
    WATCH_POLL_SECONDS = env_int("WATCH_POLL_SECONDS", 0) or None
    # The schedule still scans a watched scanner this often, as a backstop (unwatched ones: check frequency).
    WATCH_BACKSTOP_MINUTES = env_int("WATCH_BACKSTOP_MINUTES", 60)
    # A worker running a job heartbeats this often (RQ's job monitoring interval); three missed heartbeats
    # and it is taken for dead on every host.
    WORKER_HEARTBEAT_SECONDS = env_int("WORKER_HEARTBEAT_SECONDS", 30)
    # One run reads at most "Max per run" messages and stops after this many seconds (between batches):
    # a slow server then gives the worker back to the other mailboxes' scans at least this often. A run
    # that stops at either bound is continued at once (in place when no other scan waits).
    SCAN_RUN_SECONDS = env_int("SCAN_RUN_SECONDS", 5)
    SCAN_CONTINUE_IN_PLACE = env_bool("SCAN_CONTINUE_IN_PLACE", True)
    # A run on another host whose RQ job is gone is taken for dead once its heartbeat is this old.
    RUN_DEAD_GRACE_SECONDS = env_int("RUN_DEAD_GRACE_SECONDS", 120)
    ALERT_NO_SUCCESS_MINUTES = env_int("ALERT_NO_SUCCESS_MINUTES", 120)
    # Alert e-mails to administrators; unset host means alerts are only shown as a banner.
    ALERT_SMTP_HOST = os.environ.get("ALERT_SMTP_HOST") or None
    ALERT_SMTP_PORT = env_int("ALERT_SMTP_PORT", 25)
    ALERT_SMTP_FROM = os.environ.get("ALERT_SMTP_FROM", "corporate-mailboxes@localhost")
    ALERT_SMTP_SECURITY = os.environ.get("ALERT_SMTP_SECURITY", "none")  # none / starttls / ssl
    ALERT_SMTP_USER = os.environ.get("ALERT_SMTP_USER") or None
    ALERT_SMTP_PASSWORD = os.environ.get("ALERT_SMTP_PASSWORD") or None


class DevelopmentConfig(Config):
    """Local use: generated secrets kept in the instance folder."""

    ENV_NAME = "development"


class TestConfig(Config):
    """The test suite: fixed throwaway secrets, in-process queue, no CSRF time limit."""

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key"
    MAIL_ENCRYPTION_KEY = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="
    BRIDGE_SECRET = "test-bridge-secret"
    QUEUE_MODE = os.environ.get("QUEUE_MODE", "inline")
    SQLALCHEMY_DATABASE_URI = os.environ.get("TEST_DATABASE_URL", "sqlite://")
    # A cheaper scrypt for the suite's hundreds of logins: the same kind of hash, a 16th of the work.
    PASSWORD_HASH_METHOD = "scrypt:2048:8:1"


class ProductionConfig(Config):
    """Production: every secret must come from the environment."""

    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    REMEMBER_COOKIE_SECURE = True


CONFIGS = {
    "development": DevelopmentConfig,
    "production": ProductionConfig,
    "testing": TestConfig,
}

REQUIRED_IN_PRODUCTION = ("SECRET_KEY", "MAIL_ENCRYPTION_KEY", "BRIDGE_SECRET", "DATABASE_URL")


def load_config(name: str | None = None) -> type[Config]:
    """Return the settings class for ``name`` (default: ``$CM_ENV`` or development)."""
    name = name or os.environ.get("CM_ENV", "development")
    try:
        return CONFIGS[name]
    except KeyError as exc:
        raise RuntimeError(f"CM_ENV must be one of {', '.join(CONFIGS)}, got {name!r}") from exc


def finalize(settings: dict) -> None:
    """Fill in secrets and the database URL, refusing to run production without them.

    Called by the app factory, not at import time, because development
    writes generated secrets to the instance folder.
    """
    instance = Path(settings["INSTANCE_PATH"])
    if settings["ENV_NAME"] == "production":
        missing = [k for k in REQUIRED_IN_PRODUCTION
                   if not (settings.get(k) or (k == "DATABASE_URL" and settings.get("SQLALCHEMY_DATABASE_URI")))]
        if missing:
            raise RuntimeError("Production refuses to start without: " + ", ".join(missing))
        return
    if not settings.get("SQLALCHEMY_DATABASE_URI"):
        instance.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{instance / 'corporate_mailboxes.db'}"
    for key, make in (("SECRET_KEY", lambda: secrets.token_urlsafe(48)),
                      ("MAIL_ENCRYPTION_KEY", _new_fernet_key),
                      ("BRIDGE_SECRET", lambda: secrets.token_urlsafe(32))):
        if not settings.get(key):
            settings[key] = _kept_secret(instance, key, make)


def _new_fernet_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def _kept_secret(instance: Path, key: str, make) -> str:
    """Read a generated secret from the instance folder, creating it on first use."""
    instance.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = instance / f"{key.lower()}.secret"
    if path.exists():
        return path.read_text().strip()
    value = make()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value)
    return value
