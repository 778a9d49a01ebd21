"""An administrator connects an OAuth 2.0 mailbox by clicking, in headless Chromium (Playwright).

Real parts only: the Flask app (werkzeug in a thread), the test OAuth provider with its consent
page (tests/oauth_provider.py), and a private Dovecot whose ``oauth2`` passdb asks that provider
whether each XOAUTH2 token is good (tests/oauth_stack.py). The browser adds the server (picking
the provider fills its presets), adds the scanner, presses Connect account, allows access on the
provider's page, comes back, and scans. Chromium enforces the app's Content-Security-Policy, so
a ``form-action`` that blocks the redirect to the provider fails this test.
"""

from __future__ import annotations

import re
import secrets
import threading
from email.message import EmailMessage
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from app import create_app
from app.extensions import db
from app.models import User
from app.services.mail_servers import OAUTH_PROVIDERS
from tests.autologin_stack import PASSWORD, free_port
from tests.oauth_provider import OAuthProvider
from tests.oauth_stack import oauth_dovecot_or_fail

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"


@pytest.fixture(scope="module")
def provider():
    provider = OAuthProvider(consent_page=True).start()
    yield provider
    provider.stop()


@pytest.fixture(scope="module")
def oauth_dovecot(provider):
    dovecot = oauth_dovecot_or_fail(provider)
    yield dovecot
    dovecot.stop()


@pytest.fixture(scope="module")
def live_app(tmp_path_factory):
    """The app on a loopback port, with one administrator; scans run inline (QUEUE_MODE of testing)."""
    tmp = tmp_path_factory.mktemp("oauth-browser")
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp / 'app.db'}",
                     INSTANCE_PATH=str(tmp / "instance"))
    with app.app_context():
        db.create_all()
        admin = User(username="admin", is_admin=True, full_name="Admin")
        admin.set_password(PASSWORD)
        db.session.add(admin)
        db.session.commit()
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, name="flask-under-test", daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    server.shutdown()


def _message(i: int, to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"client{i}@example.test"
    msg["To"] = to
    msg["Subject"] = f"OAuth mailbox question {i}"
    msg["Message-ID"] = f"<oauth-browser-{i}-{secrets.token_hex(4)}@example.test>"
    msg.set_content(f"Question number {i}.")
    return bytes(msg)


def _add_server(page, base: str, provider: OAuthProvider, dovecot, name: str) -> str:
    """Fill and save the server form; returns the address of its Test connection page."""
    page.goto(f"{base}/admin/servers/new")
    # The OAuth settings show once Authentication is OAuth 2.0 ...
    assert page.is_hidden("#oauth-fields")
    page.select_option("#auth_method", "oauth2")
    assert page.is_visible("#oauth-fields")
    # ... and picking a provider fills its presets at once, before anything is saved.
    page.select_option("#oauth_provider", "microsoft")
    microsoft = OAUTH_PROVIDERS["microsoft"]
    assert page.input_value("#oauth_authorize_url") == microsoft["authorize_url"]
    assert page.input_value("#oauth_token_url") == microsoft["token_url"]
    assert page.input_value("#oauth_scopes") == microsoft["scopes"]
    assert page.input_value("#imap_host") == "outlook.office365.com"
    page.select_option("#oauth_provider", "google")
    assert page.input_value("#oauth_authorize_url") == OAUTH_PROVIDERS["google"]["authorize_url"]
    # The generic provider has no presets: the URLs another provider filled in are cleared.
    page.select_option("#oauth_provider", "generic")
    assert page.input_value("#oauth_authorize_url") == ""
    page.screenshot(path=str(ARTIFACTS / "oauth-1-server-form.png"))

    page.fill("#name", name)
    page.fill("#imap_host", dovecot.host)
    page.fill("#imap_port", str(dovecot.port))
    page.select_option("#imap_security", "none")
    page.fill("#smtp_host", "127.0.0.1")
    page.fill("#smtp_port", "10025")
    page.select_option("#smtp_security", "none")
    page.uncheck("#smtp_auth")
    page.fill("#oauth_client_id", provider.client_id)
    page.fill("#oauth_client_secret", provider.client_secret)
    page.fill("#oauth_authorize_url", provider.authorize_url)
    page.fill("#oauth_token_url", provider.token_url)
    page.fill("#oauth_scopes", "mail offline_access")
    page.click("#server-form button[type=submit]")
    page.wait_for_url(re.compile(r"/admin/servers/\d+/test$"))
    return page.url


def test_admin_connects_an_oauth_mailbox_by_clicking_and_it_scans_with_xoauth2(live_app, browser, provider,
                                                                              oauth_dovecot):
    login, password = f"oauth-{secrets.token_hex(4)}@corp.test", secrets.token_urlsafe(12)
    oauth_dovecot.add_user(login, password)  # the password only lets the test APPEND
    for i in (1, 2):
        oauth_dovecot.append(login, password, "INBOX", _message(i, login))
    server_name = f"Provider mail {secrets.token_hex(3)}"
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20000)
    try:
        page = context.new_page()
        page.goto(f"{live_app}/login")
        page.fill("input[name=username]", "admin")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit], input[type=submit]")
        page.wait_for_selector(".topbar .who")

        test_url = _add_server(page, live_app, provider, oauth_dovecot, server_name)
        # Test connection speaks of authorization: no password to type, nobody connected yet.
        test_page = page.content()
        assert "No scanner on this server is authorized yet" in test_page
        assert page.locator(".test-connection input[name=password]").count() == 0

        page.goto(f"{live_app}/admin/scanners/new")
        page.fill("#name", "OAuth box")
        page.select_option("#server_id", label=server_name)
        page.fill("#login", login)
        assert page.is_hidden("#password-field") and page.is_visible("#oauth-note")
        page.click("#scanner-form button[type=submit].primary")
        page.wait_for_url(re.compile(r"/admin/scanners$"))

        row = page.locator("tr", has_text="OAuth box")
        assert "Not connected yet" in row.inner_text()
        assert row.locator("button:has-text('Scan now')").is_disabled()
        page.screenshot(path=str(ARTIFACTS / "oauth-2-not-connected.png"))

        # Connect account: a POST answered by a redirect to the provider's consent page.
        row.locator("button:has-text('Connect account')").click()
        page.wait_for_url(re.compile("^" + re.escape(provider.url) + "/authorize"))
        assert page.input_value("input[name=user]") == login  # the login hint reached the provider
        page.screenshot(path=str(ARTIFACTS / "oauth-3-consent.png"))
        page.click("#allow")
        page.wait_for_url(re.compile(re.escape(live_app) + r"/admin/scanners"))
        assert f"Account {login} connected" in page.inner_text(".flash, .flashes, main")

        row = page.locator("tr", has_text="OAuth box")
        assert "Not connected yet" not in row.inner_text()
        row.locator("button:has-text('Scan now')").click()  # inline queue mode: the scan runs now
        page.goto(f"{live_app}/records/emails")
        listing = page.inner_text("main")
        assert "OAuth mailbox question 1" in listing and "OAuth mailbox question 2" in listing
        page.screenshot(path=str(ARTIFACTS / "oauth-4-scanned.png"))
        # Dovecot asked the provider about our token: the login really was XOAUTH2.
        assert re.search(rf"Login: user=<{re.escape(login)}>, method=XOAUTH2", oauth_dovecot.log())

        # The server's Test connection now offers the scanner's authorization, and it works.
        page.goto(test_url)
        page.click(".test-connection button[type=submit]")
        page.wait_for_selector(".test-results")
        assert "IMAP login: OK" in page.inner_text(".test-results")
        assert "password" not in page.inner_text(".test-results").lower()
    finally:
        context.close()
