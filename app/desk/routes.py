"""Start page."""

from flask import render_template
from flask_login import login_required

from app.desk.blueprint import bp


@bp.route("/")
@login_required
def index():
    """The start page after login."""
    return render_template("desk/index.html")
