"""Mail servers: validation, the admin pages (with CSRF), secrets, delete guard, and the CLI."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.crypto import decrypt_secret
from app.extensions import db
from app.models import AuditEntry, MailAccount, MailServer
from app.services import mail_servers, validation
from app.services.mail_servers import ServerError, ServerInUse
from tests import factories

GOOD = {
    "name": "Corporate mail", "imap_host": "imap.corp.test", "imap_port": "993", "imap_security": "ssl",
    "smtp_host": "smtp.corp.test", "smtp_port": "465", "smtp_security": "ssl", "smtp_auth": "y",
    "validate_cert": "y", "auth_method": "password", "oauth_provider": "", "oauth_client_id": "",
    "oauth_client_secret": "", "oauth_authorize_url": "", "oauth_token_url": "", "oauth_scopes": "",
    "oauth_redirect_uri": "", "visible": "y",
}
CLIENT_SECRET = "s3cr3t-client-Value-42"


def _errors_of(data, server=None) -> dict:
    with pytest.raises(ServerError) as info:
        mail_servers.validate(data, server=server)
    return info.value.errors


def _post_form(client, url, data):
    page = client.get(url)
    assert page.status_code == 200
    return client.post(url, data={**data, "csrf_token": factories.csrf_from(page)})


def _make_server(**overrides) -> MailServer:
    data = {**GOOD, **overrides}
    data = {k: v for k, v in data.items() if not (k in ("smtp_auth", "validate_cert", "visible") and v == "")}
    return mail_servers.create_server(data)


def _scanner_on(server: MailServer, name="Support", login="support@corp.test") -> MailAccount:
    account = MailAccount(name=name, server_id=server.id, login=login)
    db.session.add(account)
    db.session.commit()
    return account


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("host", ["imap.example.com", "mail-1.corp.test", "127.0.0.1", "::1", "[::1]",
                                  "localhost", "IMAP.Example.COM."])
def test_good_hosts_are_accepted(app, host):
    assert validation.clean_host(host, "IMAP host")


@pytest.mark.parametrize("host, words", [
    ("", "required"),
    ("imaps://imap.example.com", "without a scheme"),
    ("imap.example.com/inbox", "without a path"),
    ("imap example.com", "spaces"),
    ("imap.example.com:993", "without a port"),
    ("bob@example.com", "not an e-mail address"),
    ("-bad-.example.com", "letters, digits, dots and hyphens"),
    ("imap_.example.com", "letters, digits, dots and hyphens"),
    ("imap<x>.test", "letters, digits, dots and hyphens"),
    ("999.1.1.1", "not a valid IP address"),
    ("a" * 300, "too long"),
    ("imap\x00.example.com", "control characters"),
])
def test_bad_hosts_get_a_message(app, host, words):
    with pytest.raises(ValueError) as info:
        validation.clean_host(host, "IMAP host")
    assert words in str(info.value)
    assert "IMAP host" in str(info.value)


@pytest.mark.parametrize("port", ["0", "65536", "-1", "abc", "99999999999999999999", "1.5", "", True])
def test_bad_ports_get_a_message(app, port):
    with pytest.raises(ValueError) as info:
        validation.clean_port(port, "IMAP port")
    assert "IMAP port" in str(info.value)


def test_international_host_is_stored_in_dns_form(app):
    assert validation.clean_host("mail.bücher.example", "IMAP host") == "mail.xn--bcher-kva.example"


def test_valid_server_is_cleaned(app):
    clean = mail_servers.validate({**GOOD, "imap_host": "IMAP.Corp.Test", "imap_port": " 993 "})
    assert clean["imap_host"] == "imap.corp.test"
    assert clean["imap_port"] == 993
    assert clean["validate_cert"] is True


def test_every_field_is_checked_at_once(app):
    errors = _errors_of({**GOOD, "name": "", "imap_host": "x y", "imap_port": "0", "imap_security": "tls13",
                         "smtp_host": "", "smtp_port": "nope", "smtp_security": "", "auth_method": "kerberos"})
    assert set(errors) >= {"name", "imap_host", "imap_port", "imap_security", "smtp_host", "smtp_port",
                           "smtp_security", "auth_method"}


def test_name_must_be_unique_ignoring_case(app):
    _make_server()
    assert "already exists" in _errors_of({**GOOD, "name": "CORPORATE MAIL"})["name"]


def test_starttls_on_the_ssl_port_is_refused(app):
    assert "993" in _errors_of({**GOOD, "imap_security": "starttls"})["imap_security"]


def test_oauth_needs_its_fields_and_takes_presets(app):
    errors = _errors_of({**GOOD, "auth_method": "oauth2"})
    assert {"oauth_provider", "oauth_client_id", "oauth_client_secret"} <= set(errors)
    clean = mail_servers.validate({**GOOD, "auth_method": "oauth2", "oauth_provider": "google",
                                   "oauth_client_id": "abc", "oauth_client_secret": CLIENT_SECRET})
    assert clean["oauth_token_url"] == "https://oauth2.googleapis.com/token"
    assert clean["oauth_scopes"] == "https://mail.google.com/"


def test_switching_provider_replaces_the_old_presets(app):
    server = _make_server(auth_method="oauth2", oauth_provider="microsoft", oauth_client_id="app-id",
                          oauth_client_secret=CLIENT_SECRET)
    assert "microsoftonline" in server.oauth_token_url
    mail_servers.update_server(server.id, {**GOOD, "auth_method": "oauth2", "oauth_provider": "google",
                                           "oauth_client_id": "app-id",
                                           "oauth_authorize_url": server.oauth_authorize_url,
                                           "oauth_token_url": server.oauth_token_url,
                                           "oauth_scopes": server.oauth_scopes})
    assert server.oauth_token_url == "https://oauth2.googleapis.com/token"
    assert server.oauth_scopes == "https://mail.google.com/"


def test_oauth_urls_must_be_http(app):
    errors = _errors_of({**GOOD, "auth_method": "oauth2", "oauth_provider": "generic", "oauth_client_id": "a",
                         "oauth_client_secret": "b", "oauth_authorize_url": "javascript:alert(1)",
                         "oauth_token_url": "ftp://x.test/token", "oauth_scopes": "mail"})
    assert "http" in errors["oauth_authorize_url"]
    assert "http" in errors["oauth_token_url"]


# --------------------------------------------------------------------------- service


def test_client_secret_is_encrypted_and_kept_when_left_empty(app):
    server = _make_server(auth_method="oauth2", oauth_provider="microsoft", oauth_client_id="app-id",
                          oauth_client_secret=CLIENT_SECRET)
    assert CLIENT_SECRET not in (server.oauth_client_secret_enc or "")
    key = app.config["MAIL_ENCRYPTION_KEY"]
    assert decrypt_secret(key, server.oauth_client_secret_enc) == CLIENT_SECRET
    mail_servers.update_server(server.id, {**GOOD, "auth_method": "oauth2", "oauth_provider": "microsoft",
                                           "oauth_client_id": "app-id", "oauth_client_secret": "",
                                           "imap_port": "9993"})
    db.session.refresh(server)
    assert server.imap_port == 9993
    assert decrypt_secret(key, server.oauth_client_secret_enc) == CLIENT_SECRET
    details = " ".join(db.session.scalars(select(AuditEntry.details)))
    assert CLIENT_SECRET not in details


def test_every_change_is_audited(app):
    server = _make_server()
    mail_servers.update_server(server.id, {**GOOD, "validate_cert": False})
    mail_servers.delete_server(server.id)
    actions = list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))
    assert actions == ["mail_server.create", "mail_server.update", "mail_server.delete"]


def test_delete_is_refused_while_scanners_use_the_server(app):
    server = _make_server()
    _scanner_on(server, "Support")
    _scanner_on(server, "Sales", "sales@corp.test")
    with pytest.raises(ServerInUse) as info:
        mail_servers.delete_server(server.id)
    assert '"Sales"' in str(info.value) and '"Support"' in str(info.value)
    assert db.session.get(MailServer, server.id) is not None


def test_test_server_without_password_says_so_and_still_greets_smtp(app):
    server = _make_server(smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    imap, smtp = mail_servers.test_server(server.id, login="demo@corp.test", password="")
    assert not imap.ok and "No password given" in imap.message
    assert smtp.name == "SMTP" and not smtp.ok and "connection refused" in smtp.message


def test_oauth_server_is_not_tested_with_a_typed_password(app):
    server = _make_server(auth_method="oauth2", oauth_provider="google", oauth_client_id="id",
                          oauth_client_secret=CLIENT_SECRET)
    imap, smtp = mail_servers.test_server(server.id, login="demo@corp.test", password="typed")
    assert not imap.ok and "OAuth 2.0" in imap.message and "connected scanner" in imap.message
    assert not smtp.ok and "Not tested" in smtp.message


def test_oauth_scanner_without_token_is_asked_to_connect(app):
    server = _make_server(auth_method="oauth2", oauth_provider="google", oauth_client_id="id",
                          oauth_client_secret=CLIENT_SECRET)
    account = _scanner_on(server)
    imap, _ = mail_servers.test_server(server.id, account_id=account.id)
    assert not imap.ok and "not connected yet" in imap.message


def test_test_server_refuses_a_scanner_of_another_server(app):
    server = _make_server()
    other = _make_server(name="Other")
    account = _scanner_on(other)
    with pytest.raises(ServerError) as info:
        mail_servers.test_server(server.id, account_id=account.id)
    assert "does not use this server" in str(info.value)


# --------------------------------------------------------------------------- pages


def test_admin_adds_edits_and_lists_a_server(client, auth, admin):
    auth.login("admin")
    response = _post_form(client, "/admin/servers/new", GOOD)
    assert response.status_code == 302
    server = db.session.scalar(select(MailServer))
    assert server.name == "Corporate mail" and server.imap_port == 993 and server.validate_cert
    assert response.headers["Location"].endswith(f"/admin/servers/{server.id}/test")

    edit = _post_form(client, f"/admin/servers/{server.id}/edit", {**GOOD, "imap_port": "1993",
                                                                    "validate_cert": ""})
    assert edit.status_code == 302
    db.session.refresh(server)
    assert server.imap_port == 1993 and server.validate_cert is False

    page = client.get("/admin/servers")
    assert page.status_code == 200
    assert b"imap.corp.test:1993" in page.data
    assert b"certificate check OFF" in page.data


def test_form_errors_are_shown_next_to_the_fields(client, auth, admin):
    auth.login("admin")
    response = _post_form(client, "/admin/servers/new", {**GOOD, "imap_host": "imaps://x.test", "smtp_port": "0"})
    assert response.status_code == 200
    assert b"without a scheme" in response.data
    assert b"SMTP port must be from 1 to 65535" in response.data
    assert db.session.scalar(select(MailServer)) is None


def test_post_without_csrf_token_is_refused(client, auth, admin):
    auth.login("admin")
    response = client.post("/admin/servers/new", data=GOOD)
    assert factories.csrf_refused(response)
    assert db.session.scalar(select(MailServer)) is None


def test_client_secret_never_appears_in_pages(client, auth, admin):
    auth.login("admin")
    data = {**GOOD, "auth_method": "oauth2", "oauth_provider": "google", "oauth_client_id": "app-id",
            "oauth_client_secret": CLIENT_SECRET}
    assert _post_form(client, "/admin/servers/new", data).status_code == 302
    server = db.session.scalar(select(MailServer))
    for url in ("/admin/servers", f"/admin/servers/{server.id}/edit", f"/admin/servers/{server.id}/test",
                f"/admin/servers/{server.id}/delete"):
        body = client.get(url).data
        assert CLIENT_SECRET.encode() not in body
        assert server.oauth_client_secret_enc.encode() not in body
    # A failed edit re-renders the form: the secret typed must not come back either.
    response = _post_form(client, f"/admin/servers/{server.id}/edit", {**data, "imap_port": "x"})
    assert response.status_code == 200 and CLIENT_SECRET.encode() not in response.data


def test_scanner_password_is_never_rendered_by_the_test_page(client, auth, admin, app):
    auth.login("admin")
    server = _make_server(imap_host="127.0.0.1", imap_port="9", imap_security="none",
                          smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    account = _scanner_on(server)
    from app.crypto import encrypt_secret

    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "Scanner-Pass-987")
    db.session.commit()
    page = client.get(f"/admin/servers/{server.id}/test")
    assert b"Support" in page.data and b"stored credentials" in page.data
    response = client.post(f"/admin/servers/{server.id}/test", data={
        "account_id": str(account.id), "login": "", "password": "", "csrf_token": factories.csrf_from(page)})
    assert response.status_code == 200
    assert b"connection refused" in response.data
    assert b"Scanner-Pass-987" not in response.data


def test_typed_password_is_not_rendered_back(client, auth, admin):
    auth.login("admin")
    server = _make_server(imap_host="127.0.0.1", imap_port="9", imap_security="none",
                          smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    page = client.get(f"/admin/servers/{server.id}/test")
    response = client.post(f"/admin/servers/{server.id}/test", data={
        "account_id": "", "login": "demo@corp.test", "password": "Typed-Secret-55",
        "csrf_token": factories.csrf_from(page)})
    assert response.status_code == 200
    text = response.data.decode()
    assert "IMAP login: failed" in text and "Nothing answers at 127.0.0.1:9" in text
    assert "Typed-Secret-55" not in text


def test_delete_page_names_the_scanners_and_post_refuses(client, auth, admin):
    auth.login("admin")
    server = _make_server()
    _scanner_on(server, "Helpdesk box")
    page = client.get(f"/admin/servers/{server.id}/delete")
    assert b"cannot be deleted" in page.data and b"Helpdesk box" in page.data
    response = client.post(f"/admin/servers/{server.id}/delete",
                           data={"csrf_token": factories.csrf_from(client.get("/admin/servers/new"))},
                           follow_redirects=True)
    assert b"Helpdesk box" in response.data and b"cannot be deleted" in response.data
    assert db.session.get(MailServer, server.id) is not None


def test_delete_with_confirmation(client, auth, admin):
    auth.login("admin")
    server = _make_server()
    page = client.get(f"/admin/servers/{server.id}/delete")
    assert b"This cannot be undone" in page.data
    response = client.post(f"/admin/servers/{server.id}/delete", data={"csrf_token": factories.csrf_from(page)})
    assert response.status_code == 302
    assert db.session.scalar(select(MailServer)) is None


def test_delete_without_csrf_is_refused(client, auth, admin):
    auth.login("admin")
    server = _make_server()
    assert factories.csrf_refused(client.post(f"/admin/servers/{server.id}/delete"))
    assert db.session.get(MailServer, server.id) is not None


def test_ordinary_user_gets_403(client, auth, user, admin):
    server = _make_server()
    auth.login("alice")
    for url in ("/admin/servers", "/admin/servers/new", f"/admin/servers/{server.id}/edit",
                f"/admin/servers/{server.id}/test", f"/admin/servers/{server.id}/delete"):
        assert client.get(url).status_code == 403
    assert client.post(f"/admin/servers/{server.id}/delete",
                       data={"csrf_token": factories.csrf_from(client.get("/"))}).status_code == 403
    assert db.session.get(MailServer, server.id) is not None


def test_unknown_server_is_404(client, auth, admin):
    auth.login("admin")
    assert client.get("/admin/servers/999999/edit").status_code == 404
    assert client.get("/admin/servers/99999999999999999999/test").status_code == 404


HOSTILE = ["", " ", "x" * 5000, "\x00\x01\x02", "<script>alert(1)</script>", "' OR 1=1 --", "../../etc/passwd",
           "\u202e\u200b", "-1", "1e9", "NaN", "[]", "{}", "🙂", "\r\nBcc: x@y"]


def test_hostile_values_in_every_field_give_messages_not_500s(client, auth, admin):
    auth.login("admin")
    token = factories.csrf_from(client.get("/admin/servers/new"))
    for value in HOSTILE:
        for key in GOOD:
            response = client.post("/admin/servers/new", data={**GOOD, key: value, "csrf_token": token})
            assert response.status_code in (200, 302), (key, value, response.status_code)
            if response.status_code == 200:
                assert b"field-error" in response.data or b"flash-error" in response.data, (key, value)
                assert db.session.scalar(select(MailServer)) is None, (key, value)  # no partial write
            else:
                db.session.execute(MailServer.__table__.delete())
                db.session.commit()
    assert b"<script>alert(1)</script>" not in client.get("/admin/servers").data


def test_hostile_test_connection_input(client, auth, admin):
    auth.login("admin")
    server = _make_server(imap_host="127.0.0.1", imap_port="9", imap_security="none",
                          smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    token = factories.csrf_from(client.get(f"/admin/servers/{server.id}/test"))
    for data in ({"account_id": "abc"}, {"account_id": "99999999999999999999"}, {"login": "x" * 5000},
                 {"login": "a\x00b", "password": "p"}, {"login": "ok@corp.test", "password": "a\r\nb"}):
        response = client.post(f"/admin/servers/{server.id}/test", data={**data, "csrf_token": token})
        assert response.status_code == 200
        assert b"field-error" in response.data or b"flash-error" in response.data


# --------------------------------------------------------------------------- CLI


def test_cli_add_prints_the_id_and_list_shows_it(runner):
    result = runner.invoke(args=["servers", "add", "Demo", "--imap-host", "127.0.0.1", "--imap-port", "10143",
                                 "--imap-security", "none", "--smtp-host", "127.0.0.1", "--smtp-port", "10025",
                                 "--smtp-security", "none", "--no-validate-cert"])
    assert result.exit_code == 0, result.output
    server = db.session.scalar(select(MailServer))
    assert result.stdout.strip() == str(server.id)
    assert server.imap_port == 10143 and server.validate_cert is False and server.smtp_auth is True
    listing = runner.invoke(args=["servers", "list"])
    assert listing.exit_code == 0
    assert re.search(rf"^{server.id}\tDemo\t127\.0\.0\.1:10143 none\t", listing.stdout, re.M)
    assert "certificate check OFF" in listing.output


def test_cli_add_refuses_bad_input_in_words(runner):
    result = runner.invoke(args=["servers", "add", "Bad", "--imap-host", "imaps://x", "--imap-port", "0",
                                 "--imap-security", "ssl", "--smtp-host", "smtp.x.test", "--smtp-port", "465",
                                 "--smtp-security", "ssl"])
    assert result.exit_code != 0
    assert "without a scheme" in result.output and "IMAP port" in result.output
    assert db.session.scalar(select(MailServer)) is None


def test_cli_test_reports_each_check(runner):
    _make_server(name="Dead", imap_host="127.0.0.1", imap_port="9", imap_security="none",
                 smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    result = runner.invoke(args=["servers", "test", "Dead", "--login", "x@corp.test", "--password", "pw"])
    assert result.exit_code == 1
    assert "IMAP login: FAILED" in result.output and "SMTP: FAILED" in result.output
    assert "connection refused" in result.output


def test_cli_test_without_login_uses_a_scanners_stored_credentials(runner, app):
    from app.crypto import encrypt_secret

    server = _make_server(name="Dead", imap_host="127.0.0.1", imap_port="9", imap_security="none",
                          smtp_host="127.0.0.1", smtp_port="9", smtp_security="none")
    bare = runner.invoke(args=["servers", "test", "Dead"])
    assert bare.exit_code == 1 and "give --login and --password" in bare.output
    account = _scanner_on(server, "Helpdesk", "helpdesk@corp.test")
    account.password_enc = encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], "Stored-Pass-77")
    db.session.commit()
    result = runner.invoke(args=["servers", "test", "Dead"])
    assert result.exit_code == 1
    assert "stored credentials of the scanner 'Helpdesk' (helpdesk@corp.test)" in result.output
    assert "IMAP login: FAILED" in result.output and "connection refused" in result.output
    assert "Stored-Pass-77" not in result.output
