"""The Queues page against a real Redis: a failed scan job is shown with its error, retried, cancelled.

Jobs run in-process with rq's SimpleWorker in burst mode. The tests use their
own Redis database (index 14, emptied before and after) so that they never
touch the queues of a worker running on the shared database 0.
"""

from __future__ import annotations

import pytest
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus
from rq.registry import FailedJobRegistry, FinishedJobRegistry

from app.extensions import db
from app.models import AuditEntry, MailAccount, MailServer
from tests import factories

pytestmark = pytest.mark.integration

def failing_scan(account_id: int) -> None:
    """Stands in for a scan whose mail server refuses the login."""
    raise RuntimeError(f"IMAP login failed for account {account_id}: <b>AUTHENTICATIONFAILED</b>")


def quick_scan(account_id: int) -> int:
    """A scan that succeeds at once."""
    return account_id


def _account(name="Support box") -> MailAccount:
    server = db.session.query(MailServer).filter_by(name="Main").first() or MailServer(
        name="Main", imap_host="127.0.0.1", imap_port=10143, imap_security="none",
        smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
    account = MailAccount(name=name, server=server, login="support@corp.test")
    db.session.add_all([server, account])
    db.session.commit()
    return account


def _run_burst(conn, queue) -> None:
    SimpleWorker([queue], connection=conn).work(burst=True)


def test_failed_job_is_shown_with_its_error_and_retry_requeues_it(queue_redis, client, admin, auth):
    account = _account()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    q.enqueue(failing_scan, account.id, job_id=job_id)
    _run_burst(queue_redis, q)
    assert job_id in FailedJobRegistry("scan", connection=queue_redis)

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    row = page[page.index(f'id="job-{job_id}"'):]
    row = row[:row.index("</tbody>")]
    assert "Support box" in row
    assert "IMAP login failed for account" in row
    # The error is escaped, not rendered as markup.
    assert "&lt;b&gt;AUTHENTICATIONFAILED&lt;/b&gt;" in row
    assert "Retry" in row

    token = factories.csrf_from(client.get("/admin/queues"))
    response = client.post(f"/admin/queues/jobs/{job_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "is queued again" in response.get_data(as_text=True)
    assert job_id in q.get_job_ids()
    assert job_id not in FailedJobRegistry("scan", connection=queue_redis)
    assert db.session.query(AuditEntry).filter_by(action="queue.retry", target=job_id).count() == 1

    # Retrying a job that has not failed is refused in plain words.
    response = client.post(f"/admin/queues/jobs/{job_id}/retry", data={"csrf_token": token}, follow_redirects=True)
    assert "has not failed" in response.get_data(as_text=True)


def test_cancel_removes_a_queued_job(queue_redis, client, admin, auth):
    account = _account()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    q.enqueue(quick_scan, account.id, job_id=job_id)

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    assert f'id="job-{job_id}"' in page
    token = factories.csrf_from(client.get("/admin/queues"))
    response = client.post(f"/admin/queues/jobs/{job_id}/cancel", data={"csrf_token": token},
                           follow_redirects=True)
    assert "was cancelled before it started" in response.get_data(as_text=True)
    assert job_id not in q.get_job_ids()
    assert Job.fetch(job_id, connection=queue_redis).get_status() == JobStatus.CANCELED
    # Nothing runs any more.
    _run_burst(queue_redis, q)
    assert job_id not in FinishedJobRegistry("scan", connection=queue_redis)
    assert db.session.query(AuditEntry).filter_by(action="queue.cancel", target=job_id).count() == 1


def test_finished_jobs_and_live_workers_are_listed(queue_redis, client, admin, auth):
    account = _account("Sales box")
    q = Queue("scan", connection=queue_redis)
    q.enqueue(quick_scan, account.id, job_id=f"scan-{account.id}")
    _run_burst(queue_redis, q)

    worker = SimpleWorker([q], connection=queue_redis, name="ops-test-worker")
    worker.register_birth()
    try:
        auth.login("admin")
        page = client.get("/admin/queues").get_data(as_text=True)
    finally:
        worker.register_death()
    finished = page[page.index("jobs-finished"):]
    assert f"scan-{account.id}" in finished and "Sales box" in finished
    assert 'data-worker="ops-test-worker"' in page
    assert "1 finished" in page


def test_unknown_job_is_reported_not_500(queue_redis, client, admin, auth):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/queues"))
    response = client.post("/admin/queues/jobs/scan-999/cancel", data={"csrf_token": token}, follow_redirects=True)
    assert response.status_code == 200
    assert "no longer exists" in response.get_data(as_text=True)


def slow_scan(account_id: int) -> None:
    """A scan that runs until it is stopped."""
    import time

    time.sleep(60)


def _worker_running(app, q, account_id, name):
    """A real `rq worker --burst` process that has started the slow scan of ``account_id``."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    job = q.enqueue(slow_scan, account_id, job_id=f"scan-{account_id}", job_timeout=120)
    root = Path(__file__).resolve().parents[2]
    worker = subprocess.Popen([sys.executable, "-m", "rq.cli", "worker", "--burst", "--url", app.config["REDIS_URL"],
                               "--path", str(root), "--name", name, "scan"],
                              cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while job.get_status() != JobStatus.STARTED:
        if time.monotonic() > deadline:
            worker.kill()
            worker.wait()
            raise AssertionError("the worker never started the job")
        time.sleep(0.1)
    return job, worker


def _end(worker) -> None:
    if worker.poll() is None:
        worker.kill()
        worker.wait()


def test_stop_a_running_job_on_a_real_worker(queue_redis, app, client, admin, auth):
    account = _account()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    job, worker = _worker_running(app, q, account.id, "ops-stop-test")
    try:
        auth.login("admin")
        page = client.get("/admin/queues").get_data(as_text=True)
        running = page[page.index("jobs-running"):]
        assert f'id="job-{job_id}"' in running and ">Stop<" in running
        assert 'data-worker="ops-stop-test"' in page
        token = factories.csrf_from(client.get("/admin/queues"))
        response = client.post(f"/admin/queues/jobs/{job_id}/cancel", data={"csrf_token": token},
                               follow_redirects=True)
        assert "was stopped on its worker" in response.get_data(as_text=True)
        worker.wait(timeout=30)
    finally:
        _end(worker)
    assert job.get_status() == JobStatus.STOPPED
    assert job_id in FailedJobRegistry("scan", connection=queue_redis)


def test_stop_a_running_scan_asks_the_run_to_stop(queue_redis, app, client, admin, auth):
    from app.models import ScanRun

    account = _account()
    run = ScanRun(account_id=account.id, status="running", trigger="manual")
    db.session.add(run)
    db.session.commit()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    job, worker = _worker_running(app, q, account.id, "ops-stop-run-test")
    try:
        auth.login("admin")
        token = factories.csrf_from(client.get("/admin/queues"))
        response = client.post(f"/admin/queues/jobs/{job_id}/cancel", data={"csrf_token": token},
                               follow_redirects=True)
        assert "was asked to stop" in response.get_data(as_text=True)
        db.session.expire_all()
        stopped = db.session.get(ScanRun, run.id)
        assert stopped.stop_requested and stopped.stopped_by_id == admin.id
        # The scan's own stop is cooperative: the job is still running on its worker.
        assert job.get_status() == JobStatus.STARTED
    finally:
        _end(worker)


def test_waiting_retry_is_shown_with_its_last_error_and_can_be_cancelled(queue_redis, client, admin, auth):
    from rq import Retry

    account = _account()
    account.last_error = "The server Main did not answer on 127.0.0.1:10143 (connection refused)."
    db.session.commit()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    q.enqueue(failing_scan, account.id, job_id=job_id, retry=Retry(max=2, interval=[600]))
    _run_burst(queue_redis, q)
    assert Job.fetch(job_id, connection=queue_redis).get_status() == JobStatus.SCHEDULED

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    assert "Scheduled" in page
    section = page[page.index("jobs-scheduled"):]
    row = section[section.index(f'id="job-{job_id}"'):]
    row = row[:row.index("</tbody>")]
    assert "retry at" in row and "Support box" in row
    assert "Last run: The server Main did not answer" in row
    token = factories.csrf_from(client.get("/admin/queues"))
    response = client.post(f"/admin/queues/jobs/{job_id}/cancel", data={"csrf_token": token},
                           follow_redirects=True)
    assert "was cancelled" in response.get_data(as_text=True)
    assert Job.fetch(job_id, connection=queue_redis).get_status() == JobStatus.CANCELED
    assert "jobs-scheduled" not in client.get("/admin/queues").get_data(as_text=True)


def test_scan_refused_by_the_server_is_shown_as_failed_without_retry(queue_redis, app, client, admin, auth, dovecot):
    """A wrong password is not retried by RQ (the job finishes); the page must still show the failure."""
    from app.crypto import encrypt_secret
    from app.models import ScanFolder
    from app.tasks import scan_job

    login, _password = dovecot.new_user("queuefail")
    server = MailServer(name="Dovecot", imap_host=dovecot.host, imap_port=dovecot.port, imap_security="none",
                        smtp_host="127.0.0.1", smtp_port=10025, smtp_security="none")
    account = MailAccount(name="Wrong password box", server=server, login=login,
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "not-the-password"))
    db.session.add_all([server, account, ScanFolder(account=account, name="INBOX", direction="incoming")])
    db.session.commit()
    scan_job.use_app(app)  # the real job, run in this process on the test's database
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    q.enqueue(scan_job.scan_mailbox, account.id, "manual", job_id=job_id)
    _run_burst(queue_redis, q)
    assert job_id in FinishedJobRegistry("scan", connection=queue_redis)

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    row = page[page.index(f'id="job-{job_id}"'):]
    row = row[:row.index("</tbody>")]
    assert "Run failed:" in row
    assert "refused the login" in row
    assert "not-the-password" not in page

    # The job did not fail, its scan did: no Retry, the way out is the scanner's Scan now.
    assert ">Retry<" not in row and "Scan now" in row

    # A Retry posted from a page of before still queues a fresh scan.
    response = client.post(f"/admin/queues/jobs/{job_id}/retry", data={"csrf_token": factories.csrf_from(
        client.get("/admin/queues"))})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/queues"
    assert job_id in q.get_job_ids()  # a fresh scan is queued under the same id


def scan_refused(account_id: int) -> dict:
    """A job that ends normally with the outcome of a scan whose login was refused."""
    return {"status": "failed", "message": f"The server refused the login for box {account_id}."}


def test_retry_is_shown_only_on_failed_jobs_and_the_first_retry_is_the_failed_one(queue_redis, client, admin, auth):
    refused, failed = _account("Refused box"), _account("Failing box")
    q = Queue("scan", connection=queue_redis)
    q.enqueue(scan_refused, refused.id, job_id=f"scan-{refused.id}")
    q.enqueue(failing_scan, failed.id, job_id=f"scan-{failed.id}")
    _run_burst(queue_redis, q)

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    # Finished jobs are listed before failed ones: the first Retry on the page must still be the failed job's.
    first_retry = page.index(">Retry<")
    assert page.rindex('<tbody id="job-', 0, first_retry) == page.index(f'<tbody id="job-scan-{failed.id}"')
    assert page.count(">Retry<") == 1
    finished = page[page.index("jobs-finished"):page.index("jobs-failed")]
    assert f"scan-{refused.id}" in finished and "Run failed:" in finished


def test_a_queued_job_read_from_the_started_registry_shows_under_queued(queue_redis, client, admin, auth):
    """The queue and the started registry are read one after the other while a worker moves a job between them."""
    import time

    from rq.registry import StartedJobRegistry

    account = _account()
    q = Queue("scan", connection=queue_redis)
    job_id = f"scan-{account.id}"
    q.enqueue(quick_scan, account.id, job_id=job_id)
    # What a reader sees mid-move: the job still queued (by its status and in the queue) and already in the
    # started registry.
    queue_redis.zadd(StartedJobRegistry("scan", connection=queue_redis).key, {f"{job_id}:e1": time.time() + 600})
    assert Job.fetch(job_id, connection=queue_redis).get_status() == JobStatus.QUEUED

    auth.login("admin")
    page = client.get("/admin/queues").get_data(as_text=True)
    assert page.count(f'id="job-{job_id}"') == 1
    queued = page[page.index("jobs-queued"):]
    assert f'id="job-{job_id}"' in queued[:queued.index("</table>")]
    assert "No running jobs." in page
