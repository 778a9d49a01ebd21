"""``flask servers …``: add, list, test and delete mail servers."""

from __future__ import annotations

import click
from flask.cli import AppGroup

from app.models.mail import SECURITY_CHOICES
from app.services import mail_servers
from app.services.mail_servers import OAUTH_PROVIDERS, SECURITY_LABELS, ServerError

servers_cli = AppGroup("servers", help="Add, list, test and delete mail servers.")

_SECURITY = click.Choice(SECURITY_CHOICES, case_sensitive=False)


@servers_cli.command("add")
@click.argument("name")
@click.option("--imap-host", required=True, help="IMAP host name or IP address.")
@click.option("--imap-port", required=True, help="IMAP port (993 for ssl, 143 for starttls/none).")
@click.option("--imap-security", type=_SECURITY, required=True)
@click.option("--smtp-host", required=True, help="SMTP host name or IP address.")
@click.option("--smtp-port", required=True, help="SMTP port (465 for ssl, 587 for starttls, 25 for none).")
@click.option("--smtp-security", type=_SECURITY, required=True)
@click.option("--smtp-auth/--no-smtp-auth", default=True, help="Whether SMTP needs a login (default: yes).")
@click.option("--validate-cert/--no-validate-cert", default=True,
              help="Verify TLS certificates (default: yes; turn off only for a self-signed server you trust).")
@click.option("--hidden", is_flag=True, help="Add it as inactive (not offered for new scanners).")
@click.option("--auth-method", type=click.Choice(["password", "oauth2"]), default="password")
@click.option("--oauth-provider", type=click.Choice(list(OAUTH_PROVIDERS)), default=None)
@click.option("--oauth-client-id", default=None)
@click.option("--oauth-client-secret", default=None, help="Stored encrypted.")
@click.option("--oauth-authorize-url", default=None)
@click.option("--oauth-token-url", default=None)
@click.option("--oauth-scopes", default=None)
@click.option("--oauth-redirect-uri", default=None)
def add(name, hidden, **options):
    """Add a mail server; prints its id."""
    data = {"name": name, "visible": not hidden, **options}
    try:
        server = mail_servers.create_server(data)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(server.id)


@servers_cli.command("list")
def list_servers():
    """List mail servers: id, name, IMAP, SMTP, authentication, certificate check, scanners."""
    for s in mail_servers.list_servers():
        cert = "certificate check on" if s.validate_cert else "certificate check OFF"
        smtp_auth = "login" if s.smtp_auth else "no login"
        scanners = ",".join(sorted(a.name for a in s.accounts)) or "-"
        click.echo(f"{s.id}\t{s.name}\t{s.imap_host}:{s.imap_port} {s.imap_security}\t"
                   f"{s.smtp_host}:{s.smtp_port} {s.smtp_security} {smtp_auth}\t{s.auth_method}\t{cert}\t"
                   f"{'active' if s.visible else 'inactive'}\t{scanners}")


@servers_cli.command("test")
@click.argument("name")
@click.option("--login", default=None,
              help="A mailbox on the server (usually its address). Without it, the first scanner's "
                   "stored credentials are used.")
@click.option("--password", default=None, help="Used for this test only; never stored.")
@click.option("--scanner", "scanner_name", default=None,
              help="Use the stored credentials of this scanner (by name) instead.")
def test(name, login, password, scanner_name):
    """Log in to IMAP and greet SMTP; prints each check. Exit status 1 when one failed."""
    try:
        server = mail_servers.get_server_by_name(name)
        account_id = None
        using = mail_servers.scanners_using(server)
        if scanner_name:
            matches = [a for a in using if a.name == scanner_name]
            if not matches:
                raise ServerError(f"No scanner named {scanner_name!r} uses the server {server.name!r}.")
            account_id = matches[0].id
        elif not login:
            if not using:
                raise ServerError(f"No scanner uses {server.name!r} yet: give --login and --password "
                                  f"of a mailbox on it.")
            # Nothing typed: the first scanner's stored credentials show whether the server works.
            account_id = using[0].id
            click.echo(f"Using the stored credentials of the scanner {using[0].name!r} ({using[0].login}).")
        results = mail_servers.test_server(server.id, login=login, password=password, account_id=account_id)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"{server.name}: IMAP {server.imap_host}:{server.imap_port} "
               f"({SECURITY_LABELS.get(server.imap_security)}), SMTP {server.smtp_host}:{server.smtp_port} "
               f"({SECURITY_LABELS.get(server.smtp_security)})")
    for r in results:
        click.echo(f"{r.name}: {'OK' if r.ok else 'FAILED'} — {r.message}")
    if not all(r.ok for r in results):
        raise SystemExit(1)


@servers_cli.command("delete")
@click.argument("name")
def delete(name):
    """Delete a mail server no scanner uses."""
    try:
        server = mail_servers.get_server_by_name(name)
        mail_servers.delete_server(server.id)
    except ServerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"Deleted mail server {name}.")
