"""An administrator, in headless Chromium, gives an organization its mail domains; mail from a new person
at one of them shows on the organization's page.

Real parts: the Flask app (werkzeug in a thread) on a file SQLite database, the scan's store step, Chromium.
Screenshots go to tests/artifacts/.
"""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from app.extensions import db
from tests import factories
from tests.autologin_stack import free_port
from tests.browser.test_users_and_import_browser import ARTIFACTS, _login
from tests.scan_helpers import shared_app
from tests.unit.scanning.store_helpers import make_account, msg, store

pytestmark = pytest.mark.browser


@pytest.fixture
def site(tmp_path, redis_url):
    """The app served over HTTP with an administrator (nothing is queued: no worker)."""
    app, _ = shared_app(tmp_path, redis_url)
    with app.app_context():
        factories.user("admin", admin=True)
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    threading.Thread(target=server.serve_forever, name="flask-under-test", daemon=True).start()
    yield app, f"http://127.0.0.1:{port}"
    server.shutdown()
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_admin_gives_acme_its_domains_and_sees_mail_from_a_new_person(site, browser):
    app, base = site
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20000)
    try:
        page = _login(context, base, "admin", factories.PASSWORD)
        page.goto(f"{base}/records/organizations/new")
        page.fill("input[name=name]", "Acme")
        page.fill("textarea[name=domains]", "gmail.com")
        page.click("input[type=submit][value=Save]")
        error = page.inner_text(".field-error")
        assert "gmail.com is a public mail domain" in error
        page.screenshot(path=str(ARTIFACTS / "organization-domains-1-public-refused.png"))

        page.fill("textarea[name=domains]", "acme.test\nBücher.test")
        page.click("input[type=submit][value=Save]")
        page.wait_for_selector("text=Organization Acme created.")
        assert "/records/organizations/" in page.url
        details = page.inner_text(".card.grid2")
        assert "acme.test" in details and "bücher.test (xn--bcher-kva.test)" in details

        with app.app_context():
            account = make_account(actions="create_email,bind_email")
            store(account, [msg(1, frm="new.person@acme.test", subject="Our first order"),
                            msg(2, frm="someone@gmail.com", subject="Hello from Gmail")])
        page.reload()
        text = page.inner_text("body")
        assert "Our first order" in text and "new.person@acme.test" in text
        assert "Hello from Gmail" not in text
        page.screenshot(path=str(ARTIFACTS / "organization-domains-2-mail-by-domain.png"), full_page=True)

        # The organization list finds it by its domain.
        page.goto(f"{base}/records/organizations?q=bcher")
        assert page.locator("table a:has-text('Acme')").count() == 1
    finally:
        context.close()
