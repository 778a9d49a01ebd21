"""Corporate Mailboxes: the Flask application factory."""

from __future__ import annotations

from flask import Flask, render_template
from werkzeug.routing import IntegerConverter

import config as config_module
from app.extensions import create_private_sqlite_file, csrf, db, install_sqlite_pragmas, login_manager, migrate


def create_app(config_object: type | str | None = None, **overrides) -> Flask:
    """Build the app from a settings class (or its name) plus keyword overrides.

    No I/O happens at import time; this is where secrets are loaded, and
    nothing here connects to Redis or a mail server.
    """
    if config_object is None or isinstance(config_object, str):
        config_object = config_module.load_config(config_object)
    app = Flask(__name__, instance_path=config_object.INSTANCE_PATH, instance_relative_config=False)
    app.config.from_object(config_object)
    app.config.update(overrides)
    config_module.finalize(app.config)
    _trust_proxies(app)

    from app.logging_setup import configure_logging

    configure_logging(app)

    install_sqlite_pragmas()
    create_private_sqlite_file(app.config["SQLALCHEMY_DATABASE_URI"])
    db.init_app(app)
    migrate.init_app(app, db, directory=str(config_module.BASE_DIR / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to see this page."

    from app import models  # noqa: F401  (register every table)

    _register_blueprints(app)
    _register_cli(app)
    _register_security_headers(app)
    _register_errors(app)

    from app import formatting
    from app.navigation import inject_navigation

    formatting.register(app)
    app.context_processor(inject_navigation)
    return app


def _trust_proxies(app: Flask) -> None:
    """Read the client's address and scheme from X-Forwarded-* only behind ``TRUSTED_PROXY_HOPS`` proxies.

    With 0 (the default) those headers are ignored, so a client cannot choose the address the login
    throttle counts. Behind one nginx, 1 takes the address nginx saw, which a client cannot forge.
    """
    hops = int(app.config.get("TRUSTED_PROXY_HOPS") or 0)
    if hops < 0:
        raise RuntimeError(f"TRUSTED_PROXY_HOPS must be 0 or more, got {hops}")
    if hops:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)


class _IdConverter(IntegerConverter):
    """``<int:…>`` up to 2**31 - 1: a bigger id does not match (404) instead of reaching the database.

    Every int in our URLs is a row id in an INTEGER column; PostgreSQL answered a forged
    /bridge/open/2147483655 with "integer out of range" (a 500). Found by tests/security.
    """

    def __init__(self, map, *args, **kwargs):
        kwargs.setdefault("max", 2**31 - 1)
        super().__init__(map, *args, **kwargs)


def _register_blueprints(app: Flask) -> None:
    app.url_map.converters["int"] = _IdConverter
    from app.admin import bp as admin_bp
    from app.auth import bp as auth_bp
    from app.bridge import bp as bridge_bp
    from app.desk import bp as desk_bp
    from app.records import bp as records_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(desk_bp)
    app.register_blueprint(records_bp, url_prefix="/records")
    app.register_blueprint(admin_bp, url_prefix="/admin")
    app.register_blueprint(bridge_bp, url_prefix="/bridge")

    from app.ops import bp as ops_bp

    app.register_blueprint(ops_bp)


def _register_cli(app: Flask) -> None:
    from app.cli import register

    register(app)


def _register_security_headers(app: Flask) -> None:
    from app import csp

    @app.after_request
    def add_headers(response):
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        # E-mail bodies are shown in a sandboxed iframe with their own, stricter policy.
        response.headers.setdefault("Content-Security-Policy", csp.policy(app.config.get("ROUNDCUBE_URL")))
        return response


def _register_errors(app: Flask) -> None:
    from flask_wtf.csrf import CSRFError

    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return render_template("error.html", code=400,
                               message="The form expired or was not sent by this site. "
                                       "Reload the page and try again."), 400

    for code, message in ((403, "You are not allowed to open this page."),
                          (404, "There is nothing at this address."),
                          (405, "This address does not accept that kind of request.")):
        app.register_error_handler(
            code, lambda exc, code=code, message=message: (
                render_template("error.html", code=code, message=message), code))
