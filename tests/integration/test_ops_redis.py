"""/healthz and /metrics against a real Redis."""

from __future__ import annotations

import re

import pytest
import redis
from rq import Queue, SimpleWorker

pytestmark = pytest.mark.integration

TEST_DB = 14


def boom() -> None:
    """A job that fails."""
    raise ValueError("broken on purpose")


@pytest.fixture
def live_redis(app, redis_url, monkeypatch):
    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{TEST_DB}"
    monkeypatch.setitem(app.config, "QUEUE_MODE", "redis")
    monkeypatch.setitem(app.config, "REDIS_URL", url)
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    yield conn
    conn.flushdb()
    conn.close()


def test_healthz_ok_with_database_and_redis(live_redis, client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"database": "ok", "redis": "ok"}


def test_metrics_show_queue_lengths_and_failed_jobs(live_redis, app, client, monkeypatch):
    monkeypatch.setitem(app.config, "METRICS_TOKEN", "scrape-token-123")
    q = Queue("scan", connection=live_redis)
    q.enqueue(boom, job_id="scan-1")
    SimpleWorker([q], connection=live_redis).work(burst=True)
    q.enqueue(boom, job_id="scan-2")
    body = client.get("/metrics", headers={"Authorization": "Bearer scrape-token-123"}).get_data(as_text=True)
    lines = set(body.splitlines())
    assert "cm_redis_up 1" in lines
    assert 'cm_queue_jobs{queue="scan",registry="queued"} 1' in lines
    assert 'cm_queue_jobs{queue="scan",registry="failed"} 1' in lines
    assert 'cm_queue_failed_jobs{queue="scan"} 1' in lines
    assert "cm_workers 0" in lines
