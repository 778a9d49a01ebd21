"""The watcher's settings, read once from the app's configuration (``WATCH_*`` in ``config.py``)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask


@dataclass(frozen=True)
class WatchSettings:
    """Intervals in seconds."""

    idle_renew: float = 25 * 60.0  # IDLE is ended and started again this often (RFC 2177: before 29 min)
    heartbeat: float = 5.0  # heartbeat, leases, states and figures are written this often
    lease_ttl: float = 30.0  # a dead watcher's scanners are taken over after at most this
    refresh: float = 3.0  # the scanners are read from the database this often
    poll_override: float | None = None  # polling interval instead of the check frequency (tests)
    reconnect_first: float = 1.0
    reconnect_longest: float = 20.0
    auth_retry_longest: float = 900.0  # a refused login is retried at most this far apart
    healthy_after: float = 60.0  # a connection that lived this long resets the back-off
    command_timeout: float = 30.0
    connect_at_once: int = 50  # connections being opened at the same time, over all scanners

    @property
    def state_ttl(self) -> float:
        """How long a state or figures record outlives the last heartbeat that wrote it."""
        return max(3 * self.heartbeat, 15.0)

    @classmethod
    def from_app(cls, app: Flask) -> WatchSettings:
        """The settings of ``app.config`` (``WATCH_IDLE_RENEW_SECONDS`` and the like)."""
        config = app.config
        poll = config.get("WATCH_POLL_SECONDS")
        return cls(idle_renew=float(config.get("WATCH_IDLE_RENEW_SECONDS", 1500)),
                   heartbeat=float(config.get("WATCH_HEARTBEAT_SECONDS", 5)),
                   lease_ttl=float(config.get("WATCH_LEASE_SECONDS", 30)),
                   refresh=float(config.get("WATCH_REFRESH_SECONDS", 3)),
                   poll_override=float(poll) if poll else None,
                   reconnect_longest=float(config.get("WATCH_RECONNECT_MAX_SECONDS", 20)),
                   healthy_after=float(config.get("WATCH_HEALTHY_SECONDS", 60)))
