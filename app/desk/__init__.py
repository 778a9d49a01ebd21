"""The user's start page and Virtual desk."""

from flask import Blueprint

bp = Blueprint("desk", __name__)

from app.desk import mailbox, routes  # noqa: E402,F401
