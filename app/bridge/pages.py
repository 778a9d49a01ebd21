"""The answers every hand-off route shares: the page that posts the token to Roundcube, and refusals."""

from __future__ import annotations

from flask import current_app, make_response, render_template

from app.services.autologin import handoff as mailbox_handoff

# The product's own copy of the token, for the bind step: only the browser that clicked has it.
HANDOFF_COOKIE = "cm_autologin"
BIND_PATH = "/bridge/bind"


def roundcube_url(**params: str) -> str:
    """Roundcube's address, with ``params`` added to its query."""
    base = current_app.config["ROUNDCUBE_URL"]
    if not params:
        return base
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"{base}{'&' if '?' in base else '?'}{query}"


def private(response, status: int):
    """``response`` with ``status``, never cached and sending no referrer."""
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def handoff_page(token: str):
    """The page that posts ``token`` to Roundcube, with the product's HttpOnly copy for the bind step.

    The page posts the token to Roundcube (a form, sent at once by app.js): a POST body, so no URL and
    no request log holds it. The same token goes into an HttpOnly cookie of this site that only the
    bind step reads: the proof, later, that the browser arriving there is the one that clicked.
    """
    response = make_response(render_template("bridge/handoff.html", token=token, roundcube_url=roundcube_url()))
    response.set_cookie(HANDOFF_COOKIE, token, max_age=int(current_app.config.get("AUTOLOGIN_TOKEN_TTL", 60)) + 5,
                        path=BIND_PATH, httponly=True, samesite="Lax",
                        secure=bool(current_app.config.get("SESSION_COOKIE_SECURE")))
    return private(response, 200)


def refused_page(exc: mailbox_handoff.AutologinRefused):
    """A refused click on a mailbox, "Write e-mail" or "Open in webmail" button, in words."""
    status = 429 if exc.reason == "too_many" else 403
    return render_template("error.html", code=status, message=exc.message), status
