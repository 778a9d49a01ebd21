"""Start page."""

from flask import render_template
from flask_login import current_user, login_required

from app.desk.blueprint import bp
from app.services import scanner_board, start_page
from app.services.email_access import is_admin


@bp.route("/")
@login_required
def index():
    """The start page after login: the user's mailboxes, tickets and mail; for administrators, the scanner board."""
    board = scanner_board.board() if is_admin(current_user) else None
    return render_template("desk/index.html", page=start_page.start_page(current_user), board=board,
                           spark=scanner_board)
