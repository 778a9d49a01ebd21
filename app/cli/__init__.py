"""Command line for operators: ``flask --app wsgi <group> <command>``."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    from app.cli.demo import demo_cli
    from app.cli.logs import logs_cli
    from app.cli.records import records_cli
    from app.cli.roundcube import roundcube_cli
    from app.cli.scanners import scanners_cli
    from app.cli.servers import servers_cli
    from app.cli.users import users_cli
    from app.ops.cli import ops_cli

    app.cli.add_command(users_cli)
    app.cli.add_command(servers_cli)
    app.cli.add_command(roundcube_cli)
    app.cli.add_command(scanners_cli)
    app.cli.add_command(logs_cli)
    app.cli.add_command(demo_cli)
    app.cli.add_command(records_cli)
    app.cli.add_command(ops_cli)
