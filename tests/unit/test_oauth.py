"""The OAuth token service against the local OAuth provider (a real HTTP server; no Dovecot needed).

Refresh, rotation, the row lock that keeps two processes from spending one refresh token, and the
failures an administrator must be able to tell apart: revoked (reconnect), provider down (retry),
app misconfigured (fix the server).
"""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest

from app import create_app
from app.connect import oauth_tokens as oauth
from app.crypto import decrypt_secret, encrypt_secret
from app.extensions import db
from app.models import MailAccount, MailServer
from app.models.base import utcnow
from tests.conftest import postgresql_only
from tests.oauth_provider import OAuthProvider, free_port


@pytest.fixture(scope="module")
def provider():
    provider = OAuthProvider().start()
    yield provider
    provider.stop()


def make_account(app, provider, *, login="box@corp.test", token_url=None, client_secret=None,
                 expired=True) -> MailAccount:
    key = app.config["MAIL_ENCRYPTION_KEY"]
    server = MailServer(name=f"OAuth {login}", imap_host="127.0.0.1", imap_port=1, imap_security="none",
                        smtp_host="127.0.0.1", smtp_port=1, smtp_security="none", auth_method="oauth2",
                        oauth_provider="generic", oauth_client_id=provider.client_id,
                        oauth_client_secret_enc=encrypt_secret(key, client_secret or provider.client_secret),
                        oauth_authorize_url=provider.authorize_url,
                        oauth_token_url=token_url or provider.token_url, oauth_scopes="mail")
    issued = provider.issue(login)
    account = MailAccount(name=login, server=server, login=login,
                          oauth_refresh_token_enc=encrypt_secret(key, issued["refresh_token"]),
                          oauth_access_token_enc=encrypt_secret(key, issued["access_token"]),
                          oauth_expires_at=utcnow() + (timedelta(minutes=-1) if expired else timedelta(hours=1)))
    db.session.add_all([server, account])
    db.session.commit()
    account.issued = issued  # for the assertions; not a column
    return account


def stored_refresh(app, account_id: int) -> str:
    db.session.expire_all()
    return decrypt_secret(app.config["MAIL_ENCRYPTION_KEY"],
                          db.session.get(MailAccount, account_id).oauth_refresh_token_enc)


def test_rotated_refresh_token_is_committed_before_the_access_token_is_returned(app, provider):
    account = make_account(app, provider)
    token = oauth.access_token(account)
    assert provider.access_active(token)
    # Committed: a brand-new session (another process) sees the rotated token.
    db.session.remove()
    new_refresh = stored_refresh(app, account.id)
    assert new_refresh != account.issued["refresh_token"]
    assert provider.refresh_state(new_refresh) == "active"
    assert provider.refresh_state(account.issued["refresh_token"]) == "used"


def test_a_provider_that_does_not_rotate_keeps_the_refresh_token(app, provider):
    account = make_account(app, provider)
    provider.rotate = False
    try:
        assert provider.access_active(oauth.access_token(account))
    finally:
        provider.rotate = True
    assert stored_refresh(app, account.id) == account.issued["refresh_token"]


def test_revoked_grant_needs_reconnect_in_plain_words(app, provider):
    account = make_account(app, provider, login="revoked@corp.test")
    provider.revoke_user("revoked@corp.test")
    with pytest.raises(oauth.OAuthReconnectNeeded) as raised:
        oauth.access_token(account)
    assert str(raised.value) == "The mailbox's OAuth authorization was revoked or expired: reconnect the account"
    assert raised.value.kind == "auth"
    db.session.expire_all()
    stored = db.session.get(MailAccount, account.id)
    assert stored.health == "reconnect" and "Connect account" in stored.blocked_reason
    assert account.issued["refresh_token"] not in stored.blocked_reason


def test_unreachable_provider_is_a_retryable_failure_that_changes_nothing(app, provider):
    account = make_account(app, provider, token_url=f"http://127.0.0.1:{free_port()}/token")
    with pytest.raises(oauth.OAuthError) as raised:
        oauth.access_token(account)
    assert raised.value.kind == "refused" and "cannot be reached" in str(raised.value)
    db.session.expire_all()
    stored = db.session.get(MailAccount, account.id)
    assert stored.health == "active"
    assert stored_refresh(app, account.id) == account.issued["refresh_token"]


def test_wrong_client_secret_points_at_the_server_settings_not_at_reconnect(app, provider):
    account = make_account(app, provider, client_secret="not-the-secret")
    with pytest.raises(oauth.OAuthError) as raised:
        oauth.access_token(account)
    assert not isinstance(raised.value, oauth.OAuthReconnectNeeded)
    assert "client id or client secret" in str(raised.value)
    assert "not-the-secret" not in str(raised.value)
    db.session.expire_all()
    assert db.session.get(MailAccount, account.id).health == "active"


def test_never_connected_account_says_connect_first(app, provider):
    account = make_account(app, provider)
    account.oauth_refresh_token_enc = account.oauth_access_token_enc = None
    db.session.commit()
    with pytest.raises(oauth.OAuthNotConnected, match="not connected yet"):
        oauth.access_token(account)


def _race(app, account_id: int, provider: OAuthProvider, workers: int = 4) -> list[str]:
    """``workers`` threads (separate sessions, like separate processes) ask for a token at once."""
    results, errors, barrier = [], [], threading.Barrier(workers)

    def attempt():
        with app.app_context():
            try:
                account = db.session.get(MailAccount, account_id)
                barrier.wait()
                results.append(oauth.access_token(account))
            except Exception as exc:  # collected: the assertion names it
                errors.append(repr(exc))
            finally:
                db.session.remove()

    provider.token_delay = 0.3  # the first refresh is still in flight when the others ask
    try:
        threads = [threading.Thread(target=attempt) for _ in range(workers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        provider.token_delay = 0.0
    assert not errors, errors
    return results


def _check_one_refresh(app, provider, account_id: int, before: int, results: list[str]) -> None:
    # One refresh at the provider, everyone got the same working token, and no one spent the old
    # refresh token a second time (which would have marked the mailbox "reconnect").
    assert provider.count("/token", grant_type="refresh_token") == before + 1
    assert len(set(results)) == 1 and provider.access_active(results[0])
    with app.app_context():
        assert db.session.get(MailAccount, account_id).health == "active"
        assert provider.refresh_state(stored_refresh(app, account_id)) == "active"


@postgresql_only  # in-memory SQLite is one connection; the file-database variant below covers SQLite
def test_concurrent_refreshes_spend_the_refresh_token_once(app, provider):
    account = make_account(app, provider, login="race@corp.test")
    before = provider.count("/token", grant_type="refresh_token")
    results = _race(app, account.id, provider)
    _check_one_refresh(app, provider, account.id, before, results)


def test_concurrent_refreshes_on_a_sqlite_file_database(provider, tmp_path):
    app = create_app("testing", SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'race.db'}",
                     INSTANCE_PATH=str(tmp_path / "instance"))
    with app.app_context():
        db.create_all()
        account_id = make_account(app, provider, login="race-file@corp.test").id
        before = provider.count("/token", grant_type="refresh_token")
    results = _race(app, account_id, provider)
    _check_one_refresh(app, provider, account_id, before, results)
    with app.app_context():
        db.engine.dispose()


def test_describe_error_words():
    assert "access was denied" in oauth.describe_error("access_denied", "The user declined")
    assert "The user declined" in oauth.describe_error("access_denied", "The user declined")
    assert 'error "weird_thing"' in oauth.describe_error("weird_thing")


def test_pointing_a_scanner_at_another_mailbox_drops_its_oauth_tokens(app, provider):
    from app.services import scanners

    account = make_account(app, provider, login="first@corp.test", expired=False)
    scanners.update_scanner(account.id, name=account.name, server_id=account.server_id, login="second@corp.test",
                            folders=[("INBOX", "incoming")], actions=["create_email"], search_fields=["contacts"])
    db.session.expire_all()
    stored = db.session.get(MailAccount, account.id)
    assert stored.oauth_refresh_token_enc is None and stored.oauth_access_token_enc is None
    with pytest.raises(oauth.OAuthNotConnected):
        oauth.access_token(stored)


def test_scan_with_the_provider_down_fails_readably_and_may_be_retried(app, provider):
    from app.models import ScanFolder
    from app.scanning.errors import RETRYABLE_KINDS
    from app.scanning.run import run_scan

    account = make_account(app, provider, login="down@corp.test", token_url=f"http://127.0.0.1:{free_port()}/token")
    account.folders.append(ScanFolder(name="INBOX", direction="incoming"))
    db.session.commit()
    run = run_scan(account.id)
    assert run.status == "failed" and "cannot be reached" in run.message
    assert run.failure_kind in RETRYABLE_KINDS  # the scan job retries it with back-off
    db.session.expire_all()
    stored = db.session.get(MailAccount, account.id)
    assert stored.health == "active" and stored.login_failures == 0


def test_oauth_failures_reach_the_administrator_in_words(app, provider, client, auth, admin):
    """OAuthError is a CredentialError, not a ScannerError: every admin path still turns it into words."""
    from app.services import mail_servers, scanner_login
    from app.services.mail_servers import ServerError
    from app.services.scanners import ScannerError
    from tests import factories

    revoked = make_account(app, provider, login="gone@corp.test")
    provider.revoke_user("gone@corp.test")
    check = scanner_login.test_login(revoked.id)
    assert not check.ok and "reconnect the account" in check.message

    down = make_account(app, provider, login="down2@corp.test", token_url=f"http://127.0.0.1:{free_port()}/token")
    with pytest.raises(ScannerError, match="cannot be reached") as listing:
        scanner_login.list_server_folders(down.server_id, down.login, None, down.id)
    assert listing.value.field == "oauth"
    with pytest.raises(ServerError, match="cannot be reached") as tested:
        mail_servers.test_server(down.server_id, account_id=down.id)
    assert tested.value.field == "account_id"

    auth.login("admin")
    page = client.get("/admin/scanners")
    answer = client.post("/admin/scanners/folders", data={
        "server_id": down.server_id, "login": down.login, "account_id": down.id,
        "csrf_token": factories.csrf_from(page)})
    assert answer.status_code == 400 and "cannot be reached" in answer.get_json()["error"]
    flashed = client.post(f"/admin/scanners/{down.id}/test-login", data={"csrf_token": factories.csrf_from(page)},
                          follow_redirects=True).get_data(as_text=True)
    assert "Login to down2@corp.test failed" in flashed and "cannot be reached" in flashed


def test_an_oauth_scanner_is_scheduled_only_once_connected(app, provider):
    from app.tasks import schedule

    connected = make_account(app, provider, login="connected@corp.test")
    unconnected = make_account(app, provider, login="unconnected@corp.test")
    unconnected.oauth_refresh_token_enc = unconnected.oauth_access_token_enc = None
    db.session.commit()
    due = schedule.due_scanners()
    assert connected.id in due and unconnected.id not in due
    # Connect account stores the tokens: from then on the scanner is scheduled like any other.
    unconnected.oauth_refresh_token_enc = connected.oauth_refresh_token_enc
    db.session.commit()
    assert unconnected.id in schedule.due_scanners()


def test_scanner_pages_may_post_connect_account_to_the_provider_and_no_further(app, provider, client, auth, admin):
    account = make_account(app, provider, login="csp@corp.test")
    auth.login("admin")
    for url in ("/admin/scanners", f"/admin/scanners/{account.id}/edit"):
        policy = client.get(url).headers["Content-Security-Policy"]
        form_action = policy.split("form-action", 1)[1].split(";")[0].split()
        # Chromium checks form-action on the redirect that follows the POST: the provider must be listed.
        assert provider.url in form_action, (url, policy)
        assert "'self'" in form_action
    # Other pages keep the strict list: this site and Roundcube only.
    other = client.get("/admin/servers").headers["Content-Security-Policy"]
    assert provider.url not in other


def test_an_unconnected_scanner_says_so_and_cannot_be_scanned_yet(app, provider, client, auth, admin):
    account = make_account(app, provider, login="fresh@corp.test")
    account.oauth_refresh_token_enc = account.oauth_access_token_enc = None
    db.session.commit()
    auth.login("admin")
    page = client.get("/admin/scanners").get_data(as_text=True)
    assert "Not connected yet: press Connect account" in page
    assert 'title="Connect the account first">Scan now' in page


def test_test_connection_of_an_oauth_server_speaks_of_authorization(app, provider, client, auth, admin):
    account = make_account(app, provider, login="tested@corp.test")
    auth.login("admin")
    page = client.get(f"/admin/servers/{account.server_id}/test").get_data(as_text=True)
    assert 'name="password"' not in page
    assert "with its authorization" in page and "No password is involved" in page
    from app.services import mail_servers

    imap, smtp = mail_servers.test_server(account.server_id, login="tested@corp.test", password="guess")
    assert not imap.ok and "not a password" in imap.message and "connected scanner's authorization" in imap.message


def test_a_refused_xoauth2_login_asks_to_connect_again_not_for_a_password():
    from app.connect.errors import login_refused

    oauth_text = login_refused("The server", "box@corp.test", "AUTHENTICATIONFAILED credentials invalid",
                               oauth=True)
    assert "password" not in oauth_text.lower()
    assert "credentials invalid. The mailbox's access token" in oauth_text  # the server's words get a full stop
    assert "Connect account" in oauth_text
    password_text = login_refused("The server", "box@corp.test", "Authentication failed.", oauth=False)
    assert password_text.endswith("Authentication failed. Check the login and the password.")


def test_a_form_target_is_only_ever_an_origin():
    from app.csp import origin_of

    assert origin_of("https://login.example.com/common/oauth2/v2.0/authorize?x=1") == "https://login.example.com"
    assert origin_of("http://127.0.0.1:8080/authorize") == "http://127.0.0.1:8080"
    assert origin_of("https://[::1]:9443/a") == "https://[::1]:9443"
    # Credentials in the URL never reach the header; neither does anything that is not http(s).
    assert origin_of("https://user:secret@idp.example.com/authorize") == "https://idp.example.com"
    for bad in ("javascript:alert(1)", "https://", "https://exa mple.com/", "https://a.test:99999/", "",
                None, "https://a.test;script-src *"):
        assert origin_of(bad) is None, bad
