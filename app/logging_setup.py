"""Logging for the web app and the workers: text or JSON lines, request/job ids, secrets masked.

``configure_logging(app)`` is called by ``create_app``. It installs one handler
on the root logger (stderr, resolved at each write so that process managers
and test capture see it) with two filters:

- ``ContextFilter`` stamps every record with the current request id (set per
  request, honouring a sane ``X-Request-ID``) and the id of the RQ job running
  in this context (``rq.get_current_job``);
- ``RedactionFilter`` masks every configured secret value and anything that
  looks like a password, token or credentials in a URL, in the message, the
  extra fields and the traceback, so no secret reaches a log line.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime

from flask import Flask, g, request
from rq import get_current_job

MASK = "***"
# Config keys whose values are secrets; their values are masked wherever they appear.
SECRET_CONFIG_KEYS = ("SECRET_KEY", "MAIL_ENCRYPTION_KEY", "BRIDGE_SECRET", "METRICS_TOKEN")
# Short values would mask ordinary words; real secrets are long.
MIN_SECRET_LENGTH = 6

_request_id: ContextVar[str | None] = ContextVar("cm_request_id", default=None)

# A client-supplied request id is kept only when it cannot smuggle anything into a log line.
_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers and XOAUTH2 strings: "Bearer <token>", "Basic <blob>".
    (re.compile(r"\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+", re.IGNORECASE), r"\1 " + MASK),
    # key=value, key: value, "key": "value" for secret-looking keys.
    (re.compile(
        r"""(?P<key>["']?\b[\w-]*(?:password|passwd|pwd|secret|token|api[_-]?key|authorization|"""
        r"""credentials?)\b["']?\s*[=:]\s*)(?P<q>["']?)(?P<val>[^\s"',;&}]+)""",
        re.IGNORECASE), r"\g<key>\g<q>" + MASK),
    # Credentials in URLs: scheme://user:password@host.
    (re.compile(r"(?P<pre>\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE), r"\g<pre>" + MASK + "@"),
]

# Attributes every LogRecord has; anything else on a record is an "extra" field.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))) | {
    "message", "asctime", "request_id", "job_id", "taskName"}

_known_secrets: set[str] = set()


# ---------------------------------------------------------------- context ids

def current_request_id() -> str | None:
    """The id of the request being served, or None outside a request."""
    return _request_id.get()


def current_job_id() -> str | None:
    """The id of the RQ job running in this context, or None."""
    job = get_current_job()
    return job.id if job is not None else None


# ---------------------------------------------------------------- redaction

def register_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (ignored when empty or very short)."""
    if value and isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """``text`` with known secret values and secret-looking patterns masked."""
    if not text:
        return text
    # Longest first, so a secret that contains another is masked whole.
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(value):
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class RedactionFilter(logging.Filter):
    """Masks secrets in the message, its arguments, extra fields and the traceback of a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            # The formatter would re-render the traceback from exc_info; keep only the masked text.
            record.exc_info = None
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key, value in list(vars(record).items()):
            if key not in _STANDARD_ATTRS:
                setattr(record, key, _redact_value(value))
        return True


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``job_id`` to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = _request_id.get()
        if not hasattr(record, "job_id"):
            record.job_id = current_job_id()
        return True


# ---------------------------------------------------------------- formatting

class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, job_id, extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
            "job_id": getattr(record, "job_id", None),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and key not in data:
                data[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            data["exc"] = record.exc_text
        return json.dumps(data, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """Human lines; the request/job id appear only when there is one."""

    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s%(ids)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        ids = []
        if getattr(record, "request_id", None):
            ids.append(f"req={record.request_id}")
        if getattr(record, "job_id", None):
            ids.append(f"job={record.job_id}")
        record.ids = f" [{' '.join(ids)}]" if ids else ""
        try:
            return super().format(record)
        finally:
            del record.ids


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of the write (test capture, gunicorn)."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value):  # StreamHandler.__init__ assigns it; the property ignores it
        pass


# ---------------------------------------------------------------- setup

def configure_logging(app: Flask) -> None:
    """Install the handler, filters and per-request id hooks for ``app``.

    Safe to call for several apps in one process (the test suite does): the
    previous handler is replaced, and secrets of every app stay masked. A plain
    console handler left by ``logging.basicConfig`` is replaced too, so a
    script that calls it first does not print every line twice.
    """
    for key in SECRET_CONFIG_KEYS:
        register_secret(app.config.get(key))
    for key in ("ALERT_SMTP_PASSWORD",):
        register_secret(app.config.get(key))

    fmt = str(app.config.get("LOG_FORMAT") or "text").lower()
    handler = _StderrHandler()
    handler.cm_handler = True
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())

    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "cm_handler", False) or _is_basic_console(h)]:
        root.removeHandler(old)
    # Other handlers (gunicorn's, pytest's) also get the masks and the ids.
    for other in root.handlers:
        if not any(isinstance(f, RedactionFilter) for f in other.filters):
            other.addFilter(ContextFilter())
            other.addFilter(RedactionFilter())
    root.addHandler(handler)
    level = str(app.config.get("LOG_LEVEL") or "INFO").upper()
    root.setLevel(getattr(logging, level, logging.INFO))
    # Flask's own logger would otherwise print a second copy through its default handler.
    app.logger.handlers.clear()
    app.logger.propagate = True
    app.extensions["log_handler"] = handler

    # Calling again (to switch format) must not stack the per-request hooks.
    if not app.extensions.get("log_hooks"):
        app.extensions["log_hooks"] = True
        app.before_request(_start_request)
        app.after_request(_finish_request)
        app.teardown_request(_end_request)


def _is_basic_console(handler: logging.Handler) -> bool:
    """A plain console handler such as ``logging.basicConfig`` installs: ours replaces it (no double lines)."""
    return type(handler) is logging.StreamHandler and handler.stream in (
        sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)


_access_log = logging.getLogger("app.request")


def _start_request() -> None:
    supplied = request.headers.get("X-Request-ID", "")
    rid = supplied if _SANE_REQUEST_ID.match(supplied) else uuid.uuid4().hex
    g.request_id = rid
    g.request_started = time.perf_counter()
    g.request_id_token = _request_id.set(rid)


def _finish_request(response):
    rid = g.get("request_id")
    if rid:
        response.headers["X-Request-ID"] = rid
        started = g.get("request_started")
        duration_ms = round((time.perf_counter() - started) * 1000, 1) if started else None
        # Probes and scrapes would drown the useful lines.
        quiet = request.path in ("/healthz", "/metrics") or request.path.startswith("/static/")
        _access_log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %s", request.method, request.path,
                        response.status_code, extra={"method": request.method, "path": request.path,
                                                     "status": response.status_code, "duration_ms": duration_ms})
    return response


def _end_request(exc) -> None:
    token = g.pop("request_id_token", None)
    if token is not None:
        try:
            _request_id.reset(token)
        except ValueError:  # set in another context (should not happen); just clear it
            _request_id.set(None)
