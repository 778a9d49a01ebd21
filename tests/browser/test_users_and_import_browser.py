"""An administrator, in headless Chromium: creates a user, disables them, and imports a big CSV file.

Real parts only: the Flask app (werkzeug in a thread) on a file SQLite database, a real RQ worker
(``python worker.py``) on a private Redis database that imports the file, and Chromium. The user's
own browser sees their session end and their mailbox button go. Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import fcntl
import re
import threading
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from werkzeug.serving import make_server

from app.extensions import db
from app.models import Contact, MailAccount, MailServer, User
from tests import factories
from tests.autologin_stack import free_port
from tests.scan_helpers import kill_worker, shared_app, start_worker

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
REDIS_DB = 11
ROWS = 150_000


@pytest.fixture
def site(tmp_path, redis_url):
    """The app served over HTTP, with an administrator, a mailbox, and a worker on the tasks queue."""
    lock = open(ROOT / ".state" / "test_users_import_browser.lock", "w")
    fcntl.flock(lock, fcntl.LOCK_EX)  # other test sessions on this machine take turns on this Redis database
    url = re.sub(r"/\d*$", "", redis_url.rstrip("/")) + f"/{REDIS_DB}"
    conn = redis.Redis.from_url(url)
    conn.flushdb()
    app, worker_env = shared_app(tmp_path, url)
    with app.app_context():
        factories.user("admin", admin=True)
        server = MailServer(name="Local", imap_host="127.0.0.1", imap_port=1, imap_security="none",
                            smtp_host="127.0.0.1", smtp_port=1, smtp_security="none")
        db.session.add_all([server, MailAccount(name="Support desk", server=server, login="support@corp.test")])
        db.session.commit()
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="flask-under-test", daemon=True).start()
    worker = start_worker(worker_env, "--no-schedule")
    yield app, f"http://127.0.0.1:{port}"
    kill_worker(worker, app)
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    conn.flushdb()
    fcntl.flock(lock, fcntl.LOCK_UN)
    lock.close()


def _login(context, base: str, username: str, password: str):
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirmations of Disable and the like
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit], input[type=submit]")
    return page


def _create_carol(page, base: str) -> str:
    page.goto(f"{base}/")
    page.click("nav.menus summary:has-text('Settings')")
    page.click("nav.menus a[href='/admin/users']")  # Settings → Users
    page.click("text=Add user")
    page.fill("input[name=username]", "carol")
    page.fill("input[name=full_name]", "Carol Danvers")
    page.fill("input[name=email]", "carol@corp.test")
    page.click("button:has-text('Add user')")
    page.wait_for_selector("#generated-password")
    page.screenshot(path=str(ARTIFACTS / "users-1-generated-password.png"))
    return page.inner_text("#generated-password")


def test_admin_creates_and_disables_a_user_and_imports_a_big_csv(site, browser, tmp_path):
    app, base = site
    admin_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    carol_ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    admin_ctx.set_default_timeout(20000)
    carol_ctx.set_default_timeout(20000)
    try:
        admin = _login(admin_ctx, base, "admin", factories.PASSWORD)
        password = _create_carol(admin, base)
        with app.app_context():
            carol = db.session.scalar(select(User).where(User.username == "carol"))
            factories.grant(carol, db.session.scalar(select(MailAccount)))
            carol_id = carol.id

        # Carol logs in with the generated password and has her mailbox button.
        carol_page = _login(carol_ctx, base, "carol", password)
        carol_page.wait_for_selector(".topbar .who")
        assert "Support desk" in carol_page.inner_text(".topbar")

        # The administrator disables her: her next page is the login page, without the button.
        admin.goto(f"{base}/admin/users")
        admin.click(f"#user-{carol_id} button:has-text('Disable')")
        admin.wait_for_selector("text=carol is disabled")
        assert admin.inner_text(f"#user-{carol_id}").count("disabled") == 1
        admin.screenshot(path=str(ARTIFACTS / "users-2-disabled.png"))
        carol_page.reload()
        assert "/login" in carol_page.url
        assert "Support desk" not in carol_page.content()
        carol_page.fill("input[name=username]", "carol")
        carol_page.fill("input[name=password]", password)
        carol_page.click("button[type=submit], input[type=submit]")
        assert "/login" in carol_page.url and carol_page.locator(".topbar .who").count() == 0

        # A CSV of 150,000 contacts: uploaded, previewed, imported on the worker with a progress bar.
        csv_path = tmp_path / "contacts.csv"
        lines = ["first_name,last_name,email,organization"] + [
            f"Person,{n},person{n}@customers.test,Customer {n % 50}" for n in range(ROWS)]
        lines[500] = "Nameless,,not-an-address,"
        csv_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        admin.goto(f"{base}/records/contacts")
        admin.click("text=Import CSV")
        admin.set_input_files("input[name=file]", str(csv_path))
        admin.click("button:has-text('Upload and preview')")
        admin.wait_for_selector("#preview")
        assert "<td>first_name</td><td>first_name</td>" in admin.inner_html("#mapping")
        assert "Person" in admin.inner_text("#preview-rows")
        assert "of the first 1,000 rows checked" in admin.inner_text("#preview")  # a big file: its first rows
        assert "invalid e-mail 'not-an-address'" in admin.inner_text("#problems")
        admin.screenshot(path=str(ARTIFACTS / "import-1-preview.png"), full_page=True)
        admin.click("button:has-text('Import')")
        admin.wait_for_selector("#import-progress")
        seen = []
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and admin.locator("#import-summary").count() == 0:
            if admin.locator("#import-progress").count():
                try:
                    value = int(admin.get_attribute("#import-progress", "value") or 0)
                except Exception:  # the page reloaded itself between the two calls
                    continue
                if 0 < value < 100 and not any(0 < v < 100 for v in seen):
                    admin.screenshot(path=str(ARTIFACTS / "import-2-progress.png"))
                seen.append(value)
            time.sleep(0.1)
        admin.wait_for_selector("#import-summary")
        admin.screenshot(path=str(ARTIFACTS / "import-3-done.png"), full_page=True)
        assert f"Imported {ROWS - 1:,}, skipped 1." in admin.inner_text("#import-summary")
        assert "invalid e-mail 'not-an-address'" in admin.inner_text("#problems")
        assert any(0 < value < 100 for value in seen), f"the progress bar never moved: {seen}"
        assert seen == sorted(seen)
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(Contact)) == ROWS - 1
    finally:
        admin_ctx.close()
        carol_ctx.close()
