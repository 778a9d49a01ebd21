"""/healthz and /metrics against a real Redis."""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker

pytestmark = pytest.mark.integration

def boom() -> None:
    """A job that fails."""
    raise ValueError("broken on purpose")


def test_healthz_ok_with_database_and_redis(queue_redis, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "ok"}


def test_metrics_show_queue_lengths_and_failed_jobs(queue_redis, app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-token-123")
    q = Queue("scan", connection=queue_redis)
    q.enqueue(boom, job_id="scan-1")
    SimpleWorker([q], connection=queue_redis).work(burst=True)
    q.enqueue(boom, job_id="scan-2")
    body = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).get_data(as_text=True)
    lines = set(body.splitlines())
    assert "cm_redis_up 1.0" in lines
    assert 'cm_queue_jobs{queue="scan",registry="queued"} 1.0' in lines
    assert 'cm_queue_jobs{queue="scan",registry="failed"} 1.0' in lines
    assert 'cm_queue_failed_jobs{queue="scan"} 1.0' in lines
    assert "cm_workers 0.0" in lines


def log_inside_job() -> str:
    """A job that logs one line."""
    import logging

    logging.getLogger("app.test").info("hello from the job")
    return "ok"


def test_log_lines_inside_a_job_carry_its_id(queue_redis, app, capsys):
    import json

    from app.logging_setup import configure_logging

    app.config["LOG_FORMAT"] = "json"
    configure_logging(app)
    try:
        q = Queue("scan", connection=queue_redis)
        q.enqueue(log_inside_job, job_id="scan-77")
        capsys.readouterr()
        SimpleWorker([q], connection=queue_redis).work(burst=True)
        lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")]
    finally:
        app.config["LOG_FORMAT"] = "text"
        configure_logging(app)
    (entry,) = [e for e in lines if e["message"] == "hello from the job"]
    assert entry["job_id"] == "scan-77"
