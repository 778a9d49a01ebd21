"""Start page."""

from flask import render_template
from flask_login import current_user, login_required

from app.desk.blueprint import bp
from app.desk.board_rows import board_rows
from app.services import scanner_board, start_page
from app.services.email_access import is_admin


@bp.route("/")
@login_required
def index():
    """The start page after login: the user's mailboxes, tickets and mail; for administrators, the scanner board."""
    board = rows = None
    if is_admin(current_user):
        board = scanner_board.board()
        rows = board_rows(board)
    return render_template("desk/index.html", page=start_page.start_page(current_user), board=board, rows=rows)
