"""The `desk` blueprint object and what applies to all of its routes; the routes import it from here."""

from flask import Blueprint

bp = Blueprint("desk", __name__)
