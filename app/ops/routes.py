"""/healthz and /metrics. Neither needs a session; /metrics needs the bearer token."""

from __future__ import annotations

import hmac
import logging

import redis
from flask import abort, current_app, jsonify, request
from flask_login import current_user
from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.jobqueue.connection import redis_connection
from app.ops.blueprint import bp
from app.ops.metrics import render_metrics

logger = logging.getLogger(__name__)


@bp.get("/healthz")
def healthz():
    """Database and Redis reachable: 200, else 503, with which part failed."""
    result = {"database": "ok", "redis": "ok"}
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        db.session.rollback()
        logger.warning("healthz: database unreachable: %s", exc.__class__.__name__)
        result["database"] = "error"
    if current_app.config.get("QUEUE_MODE") == "inline":
        result["redis"] = "skipped"
    else:
        try:
            redis_connection().ping()
        except redis.RedisError as exc:
            logger.warning("healthz: Redis unreachable: %s", exc.__class__.__name__)
            result["redis"] = "error"
    code = 503 if "error" in result.values() else 200
    response = jsonify(result)
    response.status_code = code
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/metrics")
def metrics():
    """Prometheus text format; 404 unless METRICS_TOKEN is set, 401 without the right bearer token."""
    expected = current_app.config.get("METRICS_TOKEN")
    if not expected:
        abort(404)
    header = request.headers.get("Authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.strip().encode(), str(expected).encode()):
        return ("Missing or wrong bearer token for /metrics.\n", 401,
                {"WWW-Authenticate": 'Bearer realm="metrics"', "Content-Type": "text/plain; charset=utf-8"})
    return render_metrics(), 200, {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4, "Cache-Control": "no-store"}


@bp.app_context_processor
def inject_alerts() -> dict:
    """Open alerts for the administrators' banner (templates/_alerts.html)."""
    try:
        if not (current_user and current_user.is_authenticated and current_user.is_admin):
            return {"open_alerts": []}
    except Exception:  # outside a request or before login is set up
        return {"open_alerts": []}
    from app.services.alerts import open_alerts

    try:
        return {"open_alerts": open_alerts(limit=10)}
    except SQLAlchemyError:
        # A broken database must not break the error page that reports it.
        db.session.rollback()
        return {"open_alerts": []}
