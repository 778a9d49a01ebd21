"""Pieces shared by the record pages: pagination, search terms, related e-mails."""

from __future__ import annotations

from flask import current_app, request
from flask_login import current_user
from sqlalchemy import Select, or_, select
from sqlalchemy.orm import joinedload, load_only

from app.extensions import db
from app.models import Email, EmailLink, MailAccount
from app.services.email_access import email_visibility

# The columns an e-mail row of a list shows; bodies, headers and the raw message stay unloaded.
EMAIL_LIST_COLUMNS = (Email.id, Email.subject, Email.from_addr, Email.from_name, Email.date,
                      Email.direction, Email.account_id, Email.folder, Email.size)


def paginate(query: Select):
    """One page of ``query`` (``?page=N``, PER_PAGE rows): one count and one row query."""
    per_page = current_app.config.get("PER_PAGE", 50)
    return db.paginate(query, per_page=per_page, max_per_page=per_page, error_out=False, count=True)


def search_term() -> str:
    """The search box's text, trimmed and bounded."""
    return (request.args.get("q") or "").strip()[:200]


def like_any(term: str, *columns):
    """Case-insensitive "contains" over several columns."""
    pattern = "%" + term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    return or_(*(column.ilike(pattern, escape="\\") for column in columns))


def email_list_query() -> Select:
    """E-mails the current user may see, with the list columns and the mailbox name, newest first."""
    return (select(Email)
            .where(email_visibility(current_user))
            .options(load_only(*EMAIL_LIST_COLUMNS, raiseload=True),
                     joinedload(Email.account).load_only(MailAccount.name, raiseload=True))
            .order_by(Email.date.desc(), Email.id.desc()))


def related_emails(record_type: str, record_id: int):
    """A page of the e-mails related to one record that the current user may see, newest first."""
    query = email_list_query().join(EmailLink, EmailLink.email_id == Email.id).where(
        EmailLink.record_type == record_type, EmailLink.record_id == record_id)
    return paginate(query)
