"""``flask records …``: import contacts, organizations and leads from CSV."""

from __future__ import annotations

import time
from pathlib import Path

import click
from flask.cli import AppGroup

from app.services import records_import

records_cli = AppGroup("records", help="Import contacts, organizations and leads.")


@records_cli.command("import")
@click.argument("kind", type=click.Choice(sorted(records_import.KINDS)))
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_command(kind: str, path: Path):
    """Import KIND (contacts, organizations or leads) from the CSV file PATH.

    \b
    Columns, by header name, in any order:
      contacts:      first_name,last_name,email,phone,organization (by name; created if missing)
      organizations: name,email,phone,website,domains (mail domains, space separated)
      leads:         name,company,email,status
    UTF-8, with or without a byte-order mark. Rows without a name, with an
    invalid e-mail address, or with an address already used are skipped and
    listed with their line number.
    """
    started = time.perf_counter()
    try:
        report = records_import.import_records(kind, path)
    except records_import.ImportFailed as exc:
        raise click.ClickException(str(exc)) from exc
    seconds = time.perf_counter() - started
    click.echo(f"{report.summary[:-1]} ({kind}, {seconds:.1f} s).")
    if report.organizations_created:
        click.echo(f"Created {report.organizations_created} organization(s) named in the file.")
    for note in report.notes:
        click.echo(note)
    for row in report.skipped:
        click.echo(f"  line {row.line}: {row.reason}")
