"""Command line for operators: ``flask --app wsgi <group> <command>``."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Attach every command group to the app."""
    from app.cli.users import users_cli

    app.cli.add_command(users_cli)
