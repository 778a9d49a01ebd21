"""Start page."""

from flask import render_template, url_for
from flask_login import current_user, login_required

from app.desk.blueprint import bp
from app.services import scanner_board, start_page
from app.services.email_access import is_admin

# A scanner id no database hands out: each board link is built once and split around it.
_MARK = 987654321


def _link_parts(endpoint: str, argument: str) -> tuple[str, str]:
    """(before, after) the scanner id in the address of ``endpoint``: a thousand board rows, one url_for each."""
    before, _, after = url_for(endpoint, **{argument: _MARK}).partition(str(_MARK))
    return before, after


@bp.route("/")
@login_required
def index():
    """The start page after login: the user's mailboxes, tickets and mail; for administrators, the scanner board."""
    board = links = None
    if is_admin(current_user):
        board = scanner_board.board()
        links = {"edit": _link_parts("admin.scanner_edit", "account_id"),
                 "history": _link_parts("admin.history", "mailbox")}
    return render_template("desk/index.html", page=start_page.start_page(current_user), board=board,
                           links=links, spark=scanner_board)
