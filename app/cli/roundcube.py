"""``flask roundcube install``: configure the Roundcube plugin to redeem tokens here."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import AppGroup

import config as config_module

roundcube_cli = AppGroup("roundcube", help="Configure the Roundcube autologin plugin.")

PLUGIN_CONFIG_NAME = "corporate_autologin.inc.php"
DEFAULT_CONFIG_DIR = config_module.BASE_DIR / ".state" / "roundcube" / "config"


def _php_string(value: str) -> str:
    """A PHP single-quoted literal (only backslash and quote need escaping there)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def plugin_config_text(redeem_url: str, secret: str, timeout: int = 10, bind_url: str | None = None) -> str:
    """The PHP config file the plugin loads from Roundcube's config folder."""
    bind_url = bind_url or redeem_url.rsplit("/bridge/redeem", 1)[0] + "/bridge/bind"
    return (
        "<?php\n"
        "// Written by `flask --app wsgi roundcube install`; run it again after changing BRIDGE_SECRET.\n"
        "// Holds the bridge's shared secret: keep it readable by the web server only.\n"
        f"$config['corporate_autologin_url'] = {_php_string(redeem_url)};\n"
        f"$config['corporate_autologin_bind_url'] = {_php_string(bind_url)};\n"
        f"$config['corporate_autologin_secret'] = {_php_string(secret)};\n"
        f"$config['corporate_autologin_timeout'] = {int(timeout)};\n"
    )


def write_plugin_config(config_dir: Path, redeem_url: str, secret: str, bind_url: str | None = None) -> Path:
    """Write the plugin's config atomically with owner-only permissions; returns its path."""
    config_dir.mkdir(parents=True, exist_ok=True)
    target = config_dir / PLUGIN_CONFIG_NAME
    tmp = config_dir / (PLUGIN_CONFIG_NAME + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "w") as fh:
        fh.write(plugin_config_text(redeem_url, secret, bind_url=bind_url))
    os.chmod(tmp, 0o640)
    os.replace(tmp, target)
    return target


@roundcube_cli.command("install")
@click.option("--config-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help=f"Roundcube's config folder (default: {DEFAULT_CONFIG_DIR}).")
@click.option("--base-url", default=None,
              help="This app's address as Roundcube's server reaches it "
                   "(default: $CM_BASE_URL, else http://127.0.0.1:5000).")
@click.option("--url", "redeem_url", default=None, help="The full redeem URL (overrides --base-url).")
@click.option("--browser-url", default=None,
              help="This app's address as users' browsers reach it, for the hand-off's bind step "
                   "(default: the same as --base-url).")
def install(config_dir: Path | None, base_url: str | None, redeem_url: str | None, browser_url: str | None):
    """Write the plugin's bridge URLs and shared secret (BRIDGE_SECRET) into Roundcube's config folder."""
    secret = current_app.config.get("BRIDGE_SECRET")
    if not secret:
        raise click.ClickException("BRIDGE_SECRET is not set: the plugin would have nothing to present.")
    if redeem_url is None:
        base = (base_url or current_app.config.get("BASE_URL") or os.environ.get("CM_BASE_URL")
                or "http://127.0.0.1:5000")
        redeem_url = base.rstrip("/") + "/bridge/redeem"
    if not redeem_url.startswith(("http://", "https://")):
        raise click.ClickException(f"The redeem URL must start with http:// or https://, got {redeem_url!r}.")
    bind_url = browser_url.rstrip("/") + "/bridge/bind" if browser_url else None
    if bind_url is not None and not bind_url.startswith(("http://", "https://")):
        raise click.ClickException(f"The browser URL must start with http:// or https://, got {browser_url!r}.")
    path = write_plugin_config(config_dir or DEFAULT_CONFIG_DIR, redeem_url, secret, bind_url)
    bind_url = bind_url or redeem_url.rsplit("/bridge/redeem", 1)[0] + "/bridge/bind"
    # The secret itself is never printed.
    click.echo(f"Wrote {path}: the plugin redeems tokens at {redeem_url} and binds them at {bind_url}.")
