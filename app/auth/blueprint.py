"""The `auth` blueprint object and what applies to all of its routes; the routes import it from here."""

from flask import Blueprint

bp = Blueprint("auth", __name__)
