"""Helpers of the store tests: a scanner, parsed messages built directly, and one batch stored."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.extensions import db
from app.models import Email, EmailLink, MailAccount, MailServer, MailSettings
from app.scanner.types import BatchItem, FilterVerdict, ParsedMessage, RawMessage, RunCounters
from app.scanning.store.batch import load_context, store_batch

T0 = datetime(2026, 11, 1, 9, 0, 0)


def make_account(actions="create_email,bind_email,open_ticket,create_ticket",
                 search_fields="contacts,organizations,leads,users", assignee=None) -> MailAccount:
    server = MailServer(name=f"srv-{db.session.scalar(select(func.count(MailServer.id)))}", imap_host="127.0.0.1",
                        imap_port=10143, imap_security="none", smtp_host="127.0.0.1", smtp_port=10025,
                        smtp_security="none")
    account = MailAccount(name="Support", server=server, login="support@corp.test", actions=actions,
                          search_fields=search_fields, assignee_id=assignee.id if assignee else None)
    db.session.add_all([server, account])
    db.session.commit()
    return account


def msg(uid, *, frm="jane@acme.test", to=("support@corp.test",), cc=(), subject="Printer broken", mid=None,
        in_reply_to=None, refs=(), date=None, folder="INBOX", automatic=None, attachments=(),
        body=b"") -> ParsedMessage:
    mid = mid if mid is not None else f"m{uid}@acme.test"
    data = b"Subject: " + subject.encode("utf-8", "replace") + b"\r\n\r\n" + (body or f"body {uid}".encode())
    raw = RawMessage(folder=folder, uidvalidity=7, uid=uid, data=data, size=len(data))
    return ParsedMessage(
        raw=raw, message_id=mid or None, message_key=mid or f"sha256:{uid:064d}", in_reply_to=in_reply_to,
        references=list(refs), subject=subject, from_addr=frm, from_name="", to=list(to), cc=list(cc),
        reply_to=[], date=date or T0 + timedelta(minutes=uid * 30), headers_text=f"Subject: {subject}",
        header_items=[("subject", subject)], body_text=f"body {uid}", body_html="", has_remote_content=False,
        attachments=list(attachments), automatic_reason=automatic)


def store(account, messages, *, direction="incoming", verdicts=None) -> RunCounters:
    ctx = load_context(account, MailSettings.get())
    items = [BatchItem(m, direction, (verdicts or {}).get(m.raw.uid, FilterVerdict()))
             for m in messages]
    counters = RunCounters()
    store_batch(ctx, items, counters)
    db.session.commit()
    return counters


def links_of(uid) -> set[tuple[str, int]]:
    email_id = db.session.scalar(select(Email.id).where(Email.uid == uid))
    return {(t, i) for t, i in db.session.execute(
        select(EmailLink.record_type, EmailLink.record_id).where(EmailLink.email_id == email_id))}
