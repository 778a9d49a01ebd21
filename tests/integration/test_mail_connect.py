"""app.connect against real servers: the private Dovecot, and aiosmtpd servers started here.

Each failure kind is produced for real (a refused port, a .invalid name, TLS
spoken to a plain port, a server that never greets, a wrong password) and
the message a person reads is checked, including that it never holds the password.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select

from app.connect.checks import test_connection
from app.connect.errors import MailConnectError
from app.connect.imap import open_imap
from app.connect.smtp import check_smtp
from app.crypto import encrypt_secret
from app.extensions import db
from app.models import AuditEntry, MailAccount, MailServer
from app.services import mail_servers
from tests import factories

pytestmark = pytest.mark.integration

TIMEOUT = 5.0
SMTP_LOGIN, SMTP_PASSWORD = "relay@corp.test", "Relay-Pass-314"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server(**overrides) -> MailServer:
    """A MailServer row (not saved): app.connect needs only its fields."""
    fields = dict(name="Test", imap_host="127.0.0.1", imap_port=10143, imap_security="none",
                  smtp_host="127.0.0.1", smtp_port=9, smtp_security="none", smtp_auth=True,
                  validate_cert=True, auth_method="password")
    fields.update(overrides)
    return MailServer(**fields)


@pytest.fixture
def mailbox(dovecot):
    login, password = dovecot.new_user("connect")
    yield login, password
    dovecot.reset_mailbox(login)


# --------------------------------------------------------------------------- IMAP


def test_good_login_returns_a_logged_in_mailbox(dovecot, mailbox):
    login, password = mailbox
    box = open_imap(_server(imap_host=dovecot.host, imap_port=dovecot.port), login, password, timeout=TIMEOUT)
    try:
        assert "INBOX" in [f.name for f in box.folder.list()]
    finally:
        box.logout()


def test_wrong_password_is_auth_in_words(dovecot, mailbox):
    login, _ = mailbox
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_host=dovecot.host, imap_port=dovecot.port), login, "Wrong-Pass-2718",
                  timeout=TIMEOUT)
    assert info.value.kind == "auth"
    assert str(info.value).startswith(f"The server refused the login for {login}: ")
    assert "Authentication failed" in str(info.value)
    assert "Wrong-Pass-2718" not in str(info.value)


def test_dead_port_is_refused(dovecot):
    port = _free_port()
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_port=port), "demo@corp.test", "x", timeout=TIMEOUT)
    assert info.value.kind == "refused"
    assert str(info.value) == (f"Nothing answers at 127.0.0.1:{port} — connection refused. "
                               f"Is the port right and the server running?")


def test_unknown_host_is_dns():
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_host="imap.example.invalid"), "demo@corp.test", "x", timeout=TIMEOUT)
    assert info.value.kind == "dns"
    assert "imap.example.invalid" in str(info.value) and "DNS" in str(info.value)


def test_ssl_spoken_to_the_plain_port_is_tls(dovecot, mailbox):
    login, password = mailbox
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_host=dovecot.host, imap_port=dovecot.port, imap_security="ssl"), login, password,
                  timeout=TIMEOUT)
    assert info.value.kind == "tls"
    assert "does not speak TLS" in str(info.value) and "STARTTLS or none" in str(info.value)
    assert password not in str(info.value)


def test_starttls_on_a_server_without_it_is_tls(dovecot, mailbox):
    login, password = mailbox
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_host=dovecot.host, imap_port=dovecot.port, imap_security="starttls"),
                  login, password, timeout=TIMEOUT)
    assert info.value.kind == "tls"
    assert "does not offer STARTTLS" in str(info.value)


def test_a_server_that_never_greets_is_a_timeout():
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever speaks
        port = silent.getsockname()[1]
        with pytest.raises(MailConnectError) as info:
            open_imap(_server(imap_port=port), "demo@corp.test", "x", timeout=0.5)
    assert info.value.kind == "timeout"
    assert f"No answer from 127.0.0.1:{port} within 0.5 seconds" in str(info.value)


def test_imap_spoken_to_an_smtp_port_is_protocol(smtp_server):
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(imap_port=smtp_server.port), "demo@corp.test", "x", timeout=TIMEOUT)
    assert info.value.kind == "protocol"
    assert f"127.0.0.1:{smtp_server.port}" in str(info.value) and "IMAP" in str(info.value)


def test_oauth_server_without_token_asks_to_connect_the_account():
    with pytest.raises(MailConnectError) as info:
        open_imap(_server(auth_method="oauth2"), "demo@corp.test", None, timeout=TIMEOUT)
    assert info.value.kind == "auth"
    assert "connect" in str(info.value).lower()


# --------------------------------------------------------------------------- SMTP


class _Sink:
    """The test server's handler, keeping the login attempts each check made and whether they were accepted."""

    def __init__(self):
        self.logins: list[tuple[str, bool]] = []

    async def handle_DATA(self, server, session, envelope):
        return "250 OK"

    def check_login(self, server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and \
            (auth_data.login, auth_data.password) == (SMTP_LOGIN.encode(), SMTP_PASSWORD.encode())
        login = auth_data.login.decode() if isinstance(auth_data, LoginPassword) else repr(auth_data)
        self.logins.append((login, ok))
        return AuthResult(success=ok, handled=False)


def _self_signed_context() -> ssl.SSLContext:
    """A server TLS context with a fresh self-signed certificate for 127.0.0.1."""
    import tempfile

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    with tempfile.TemporaryDirectory() as tmp:
        cert_path, key_path = f"{tmp}/cert.pem", f"{tmp}/key.pem"
        with open(cert_path, "wb") as fh:
            fh.write(cert.public_bytes(serialization.Encoding.PEM))
        with open(key_path, "wb") as fh:
            fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
    return context


def _start(**kwargs) -> Controller:
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=_free_port(), authenticator=sink.check_login,
                            auth_require_tls=False, **kwargs)
    controller.start()
    controller.sink = sink
    return controller


@pytest.fixture
def smtp_server():
    """A plain SMTP server with AUTH (no TLS)."""
    controller = _start()
    yield controller
    controller.stop()


@pytest.fixture
def smtp_starttls_server():
    """An SMTP server offering STARTTLS with a self-signed certificate."""
    controller = _start(tls_context=_self_signed_context(), require_starttls=False)
    yield controller
    controller.stop()


@pytest.fixture
def smtps_server():
    """An SMTP server speaking TLS from the first byte, with a self-signed certificate."""
    controller = _start(ssl_context=_self_signed_context())
    yield controller
    controller.stop()


def test_smtp_login_accepted(smtp_server):
    assert check_smtp(_server(smtp_port=smtp_server.port), SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT) is None
    # The check logged in, and the server accepted that login.
    assert smtp_server.sink.logins == [(SMTP_LOGIN, True)]


def test_smtp_wrong_password_is_auth_in_words(smtp_server):
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=smtp_server.port), SMTP_LOGIN, "Wrong-Smtp-Pass", timeout=TIMEOUT)
    assert info.value.kind == "auth"
    assert str(info.value).startswith(f"The SMTP server refused the login for {SMTP_LOGIN}: 535")
    # The server's reply has no full stop of its own; the advice after it starts a new sentence.
    assert "Authentication credentials invalid. Check the login" in str(info.value)
    assert "Wrong-Smtp-Pass" not in str(info.value)


def test_smtp_without_auth_only_greets(smtp_server):
    server = _server(smtp_port=smtp_server.port, smtp_auth=False)
    assert check_smtp(server, SMTP_LOGIN, "not used", timeout=TIMEOUT) is None
    assert smtp_server.sink.logins == []  # no login tried


def test_smtp_dead_port_is_refused():
    port = _free_port()
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=port), SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT)
    assert info.value.kind == "refused" and f"127.0.0.1:{port}" in str(info.value)


def test_smtp_ssl_to_the_plain_port_is_tls(smtp_server):
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=smtp_server.port, smtp_security="ssl"), SMTP_LOGIN, SMTP_PASSWORD,
                   timeout=TIMEOUT)
    assert info.value.kind == "tls" and "does not speak TLS" in str(info.value)


def test_smtp_starttls_on_a_server_without_it_is_tls(smtp_server):
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=smtp_server.port, smtp_security="starttls"), SMTP_LOGIN, SMTP_PASSWORD,
                   timeout=TIMEOUT)
    assert info.value.kind == "tls" and "does not offer STARTTLS" in str(info.value)


def test_self_signed_certificate_fails_verification_and_names_the_switch(smtp_starttls_server):
    server = _server(smtp_port=smtp_starttls_server.port, smtp_security="starttls")
    with pytest.raises(MailConnectError) as info:
        check_smtp(server, SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT)
    assert info.value.kind == "tls"
    assert "failed verification" in str(info.value) and "Validate certificate" in str(info.value)
    assert smtp_starttls_server.sink.logins == []
    # The explicit per-server switch makes the same server work.
    check_smtp(_server(smtp_port=smtp_starttls_server.port, smtp_security="starttls", validate_cert=False),
               SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT)
    assert smtp_starttls_server.sink.logins == [(SMTP_LOGIN, True)]


def test_implicit_tls_with_certificate_check_off(smtps_server):
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=smtps_server.port, smtp_security="ssl"), SMTP_LOGIN, SMTP_PASSWORD,
                   timeout=TIMEOUT)
    assert info.value.kind == "tls" and "failed verification" in str(info.value)
    assert smtps_server.sink.logins == []  # the refused certificate stopped it before any login
    check_smtp(_server(smtp_port=smtps_server.port, smtp_security="ssl", validate_cert=False),
               SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT)
    assert smtps_server.sink.logins == [(SMTP_LOGIN, True)]  # over TLS, without the certificate check
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_port=smtps_server.port, smtp_security="ssl", validate_cert=False),
                   SMTP_LOGIN, "Wrong-Over-TLS", timeout=TIMEOUT)
    assert info.value.kind == "auth"
    assert smtps_server.sink.logins[-1] == (SMTP_LOGIN, False)


# --------------------------------------------------------------------------- Test connection


def test_test_connection_reports_both_checks(dovecot, smtp_server):
    dovecot.add_user(SMTP_LOGIN, SMTP_PASSWORD)
    server = _server(imap_host=dovecot.host, imap_port=dovecot.port, smtp_port=smtp_server.port)
    imap, smtp = test_connection(server, SMTP_LOGIN, SMTP_PASSWORD, timeout=TIMEOUT)
    assert (imap.name, imap.ok) == ("IMAP login", True)
    assert f"Logged in to {dovecot.host}:{dovecot.port}" in imap.message
    assert (smtp.name, smtp.ok) == ("SMTP", True) and "accepted the login" in smtp.message
    imap, smtp = test_connection(server, SMTP_LOGIN, "Wrong-Both", timeout=TIMEOUT)
    assert not imap.ok and not smtp.ok
    assert "Wrong-Both" not in imap.message + smtp.message


def test_test_connection_page_against_dovecot(client, auth, admin, dovecot, mailbox, smtp_server):
    login, password = mailbox
    server = mail_servers.create_server({
        "name": "Private Dovecot", "imap_host": dovecot.host, "imap_port": dovecot.port, "imap_security": "none",
        "smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_security": "none", "smtp_auth": False})
    auth.login("admin")
    page = client.get(f"/admin/servers/{server.id}/test")
    token = factories.csrf_from(page)
    good = client.post(f"/admin/servers/{server.id}/test",
                       data={"login": login, "password": password, "csrf_token": token}).data.decode()
    assert "IMAP login: OK" in good and "SMTP: OK" in good
    assert password not in good
    bad = client.post(f"/admin/servers/{server.id}/test",
                      data={"login": login, "password": "Wrong-On-Page", "csrf_token": token}).data.decode()
    assert "IMAP login: failed" in bad and "Authentication failed" in bad
    assert "Wrong-On-Page" not in bad


def test_stored_scanner_credentials_unblock_a_blocked_scanner(app, dovecot, mailbox, smtp_server):
    login, password = mailbox
    server = mail_servers.create_server({
        "name": "Private Dovecot", "imap_host": dovecot.host, "imap_port": dovecot.port, "imap_security": "none",
        "smtp_host": "127.0.0.1", "smtp_port": smtp_server.port, "smtp_security": "none", "smtp_auth": False})
    account = MailAccount(name="Support", server_id=server.id, login=login, health="blocked", login_failures=3,
                          blocked_reason="[AUTHENTICATIONFAILED] Authentication failed.",
                          password_enc=encrypt_secret(app.config["MAIL_ENCRYPTION_KEY"], password))
    db.session.add(account)
    db.session.commit()
    imap, smtp = mail_servers.test_server(server.id, account_id=account.id, timeout=TIMEOUT)
    assert imap.ok and "unblocked" in imap.message and smtp.ok
    db.session.refresh(account)
    assert (account.health, account.login_failures, account.blocked_reason) == ("active", 0, None)
    assert db.session.scalar(select(AuditEntry.action).where(AuditEntry.action == "mail_scanner.unblock"))


def test_smtp_spoken_to_the_imap_port_is_protocol(dovecot):
    with pytest.raises(MailConnectError) as info:
        check_smtp(_server(smtp_host=dovecot.host, smtp_port=dovecot.port), SMTP_LOGIN, SMTP_PASSWORD,
                   timeout=TIMEOUT)
    assert info.value.kind == "protocol"
    assert "did not greet like an SMTP server" in str(info.value) and "Dovecot" in str(info.value)
