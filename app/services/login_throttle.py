"""The login throttle: failed logins counted so that no one can lock another person out.

Three counters, each a ``LoginThrottle`` row, each counting failures within
``LOGIN_LOCK_SECONDS`` of the first one:

- per (account, address) pair (``pair:<address>|<name>``): after
  ``LOGIN_MAX_FAILURES`` that address is refused for that account until the
  lock ends. Nobody else is affected.
- per account (``user:<name>``), over every address: after
  ``LOGIN_ACCOUNT_MAX_FAILURES`` the account is under attack, and until that
  ends every address that has a failure of its own for the account is refused
  (so a guesser spread over many addresses gets one try per address). An
  address that has not failed for the account still logs in with the right
  password: the owner is never locked out by someone else's guessing.
- per address (``ip:<address>``), over every account: after
  ``LOGIN_ADDRESS_MAX_FAILURES`` that address is refused for every account.
  It catches spraying one password over many names; only that address's own
  failures count, and a success does not reset it.

A success resets only the counter of its own (account, address) pair. Locks
end by themselves; rows that ended are deleted by :func:`prune`.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import LoginThrottle
from app.models.base import utcnow

KEY_LENGTH = 300


def normalize_username(raw: str | None) -> str:
    """The one spelling of a username used for lookups and counters: no surrounding spaces, lower case."""
    return (raw or "").strip().lower()


def _keys(name: str, address: str) -> dict[str, str]:
    # The address never holds "|", so the pair key is unambiguous whatever the name holds.
    address = (address or "?")[:64]
    return {"pair": f"pair:{address}|{name}"[:KEY_LENGTH], "account": f"user:{name}"[:KEY_LENGTH],
            "address": f"ip:{address}"}


def _window() -> timedelta:
    return timedelta(seconds=int(current_app.config["LOGIN_LOCK_SECONDS"]))


def _limits() -> dict[str, int]:
    cfg = current_app.config
    return {"pair": int(cfg["LOGIN_MAX_FAILURES"]),
            "account": int(cfg.get("LOGIN_ACCOUNT_MAX_FAILURES", 20)),
            "address": int(cfg.get("LOGIN_ADDRESS_MAX_FAILURES", 50))}


def _live(row: LoginThrottle | None, now: datetime, window: timedelta) -> bool:
    """True while a row counts: locked, or its first failure is within the window."""
    if row is None:
        return False
    if row.locked_until is not None:
        return row.locked_until > now
    return now - row.first_failure_at <= window


def _rows(keys: dict[str, str]) -> dict[str, LoginThrottle]:
    found = {t.key: t for t in db.session.scalars(select(LoginThrottle).where(LoginThrottle.key.in_(keys.values())))}
    return {kind: found[key] for kind, key in keys.items() if key in found}


def refused(name: str, address: str) -> bool:
    """True when a login for ``name`` from ``address`` must be refused before its password is checked."""
    now, window = utcnow(), _window()
    rows = _rows(_keys(name, address))

    def locked(kind: str) -> bool:
        row = rows.get(kind)
        return row is not None and row.locked_until is not None and row.locked_until > now

    if locked("pair") or locked("address"):
        return True
    # The account is under attack: only addresses that failed for it themselves are held back.
    return locked("account") and _live(rows.get("pair"), now, window) and rows["pair"].failures > 0


def failed(name: str, address: str) -> bool:
    """Count a failed login; True when it locked the pair or the address (the answer says so)."""
    for attempt in range(3):
        try:
            return _count_failure(name, address)
        except IntegrityError:  # a concurrent failure created the same row first: count again on top of it
            db.session.rollback()
            if attempt == 2:
                raise
    return False


def _count_failure(name: str, address: str) -> bool:
    now, window, limits = utcnow(), _window(), _limits()
    keys = _keys(name, address)
    rows = _rows(keys)
    locked_now = False
    for kind, key in keys.items():
        row = rows.get(kind)
        if row is not None and not _live(row, now, window):
            row.failures, row.first_failure_at, row.locked_until = 0, now, None
        if row is None:
            row = LoginThrottle(key=key, failures=0, first_failure_at=now)
            db.session.add(row)
        row.failures += 1
        if row.failures >= limits[kind] and (row.locked_until is None or row.locked_until <= now):
            row.locked_until = now + window
            locked_now = locked_now or kind in ("pair", "address")
    db.session.commit()
    return locked_now


def succeeded(name: str, address: str) -> None:
    """A right password from ``address``: that pair starts again from zero; other counters are kept."""
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == _keys(name, address)["pair"]))
    db.session.commit()


def prune(now: datetime | None = None) -> int:
    """Delete counters that no longer count (lock over, or window over without a lock); returns how many."""
    now = now or utcnow()
    window = _window()
    result = db.session.execute(delete(LoginThrottle).where(or_(
        LoginThrottle.locked_until <= now,
        (LoginThrottle.locked_until.is_(None)) & (LoginThrottle.first_failure_at < now - window))))
    db.session.commit()
    return result.rowcount or 0
