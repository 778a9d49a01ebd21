"""Fixtures for tests that need the real services (see tests/services.py)."""

from tests.services import dovecot, redis_url, smtp_sink  # noqa: F401  (pytest fixtures)
