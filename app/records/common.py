"""Pieces shared by the record pages: pagination, search terms, related e-mails."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app, request
from flask_login import current_user
from sqlalchemy import Select, func, or_, select

from app.extensions import db
from app.models import Email, EmailLink
from app.pagination import IdsFirstPagination, requested_page
from app.services.email_access import email_visibility, mailbox_names


@dataclass(frozen=True)
class EmailListRow:
    """One e-mail of a list: the columns it shows (bodies, headers and the raw message stay unread)
    and a mailbox it reached that the viewer may read."""

    id: int
    subject: str | None
    from_addr: str | None
    from_name: str | None
    date: datetime | None
    direction: str
    mailbox: str



def paginate(query: Select):
    """One page of ``query`` (``?page=N``, PER_PAGE rows): one count and one row query."""
    per_page = current_app.config.get("PER_PAGE", 50)
    return db.paginate(query, page=requested_page(), per_page=per_page, max_per_page=per_page, error_out=False,
                       count=True)


def search_term() -> str:
    """The search box's text, trimmed and bounded, without control characters (PostgreSQL refuses NUL)."""
    text = "".join(ch if ch.isprintable() else " " for ch in (request.args.get("q") or "")[:200])
    return text.strip()


def like_any(term: str, *columns):
    """Case-insensitive "contains" over several columns."""
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def email_list_query() -> Select:
    """Ids of the e-mails the current user may see, newest first: add filters, then :func:`paginate_emails`."""
    return select(Email.id).where(email_visibility(current_user)).order_by(Email.date.desc(), Email.id.desc())


def _load_email_rows(session, ids: list[int]) -> list[EmailListRow]:
    """The page's e-mails, list columns only (rows are wide: bodies, the raw message)."""
    names = mailbox_names(current_user, ids)
    rows = session.execute(select(Email.id, Email.subject, Email.from_addr, Email.from_name, Email.date,
                                  Email.direction).where(Email.id.in_(ids)))
    return [EmailListRow(*row, mailbox=names.get(row.id, "")) for row in rows]


def paginate_emails(id_query: Select):
    """One page of e-mails from a query of their ids: one count, one id query, one row query."""
    per_page = current_app.config.get("PER_PAGE", 50)
    return IdsFirstPagination(select=id_query, load=_load_email_rows, session=db.session(), page=requested_page(),
                              per_page=per_page, max_per_page=per_page, error_out=False, count=True)


def related_emails(record_type: str, record_id: int):
    """A page of the e-mails related to one record that the current user may see, newest first."""
    # Ordered by an expression on purpose: it matches no index, so the database starts from the record's
    # links (usually few) and sorts them, instead of walking every e-mail by date looking for them, which
    # is what PostgreSQL chose for a record whose mail is old (measured: 107 ms vs 2 ms at 100,000 e-mails).
    newest = func.coalesce(Email.date, Email.created_at)
    query = (select(Email.id).join(EmailLink, EmailLink.email_id == Email.id)
             .where(EmailLink.record_type == record_type, EmailLink.record_id == record_id,
                    email_visibility(current_user))
             .order_by(newest.desc(), Email.id.desc()))
    return paginate_emails(query)
