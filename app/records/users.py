"""Users as records: who they are and the e-mails related to them."""

from __future__ import annotations

from flask import abort, render_template
from sqlalchemy import select

from app.extensions import db
from app.models import User
from app.records.blueprint import bp
from app.records.common import like_any, paginate, related_emails, search_term


@bp.route("/users")
def users():
    """List users, with a search over username, name and address."""
    q = search_term()
    query = select(User).order_by(User.username)
    if q:
        query = query.where(like_any(q, User.username, User.full_name, User.email))
    return render_template("records/users.html", page=paginate(query), q=q)


@bp.route("/users/<int:user_id>")
def user_detail(user_id: int):
    """One user and the e-mails related to them."""
    person = db.session.get(User, user_id) or abort(404)
    return render_template("records/user_detail.html", person=person,
                           emails=related_emails("user", person.id))
