"""Store one batch of parsed messages: dedupe, bind, ticket actions, bulk inserts.

The cost of a batch does not depend on its size or on how many records there
are: every lookup is one query for the whole batch (an ``IN (...)`` probe on an
indexed column), and every write is one executemany. Per batch:

1. existing message keys (dedupe);
2. every address in the chosen search fields (one ``UNION ALL`` over contacts,
   organizations, leads and users);
3. the records the parents of replies (In-Reply-To / References) are bound to;
4. the tickets named by number in subjects or reached through a parent;
5. the sender activity in the loop window (for the throttle);
then inserts of new tickets (+ one update for their numbers), ticket status
updates, e-mails (RETURNING ids), attachments and links. Nothing here commits:
the scan service advances the folder and the run counters in the same
transaction and commits once, so a batch is stored entirely or not at all.

Actions: without *Create email* nothing is stored (messages are only counted);
without *Bind email* no record links are written, except the link of an
e-mail to its ticket (found by number or reply, or created for it).
"""

from __future__ import annotations

import bisect
import hashlib
import json
import operator
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    String,
    any_,
    bindparam,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.dialects.postgresql import ARRAY

from app.extensions import db
from app.models import (
    Contact,
    Email,
    EmailAttachment,
    EmailLink,
    Lead,
    MailAccount,
    MailSettings,
    Organization,
    Ticket,
    User,
    ticket_number,
)
from app.models.base import utcnow
from app.scanner import bind, direction, tickets
from app.scanner.throttle import SenderThrottle
from app.scanner.types import (
    BindResult,
    FilterVerdict,
    ParsedMessage,
    RecordRef,
    RunCounters,
    TicketAction,
    TicketInfo,
    TicketPolicy,
)

# Record type as stored on links → the search field that enables it.
_FIELD_OF = {"contact": "contacts", "organization": "organizations", "lead": "leads", "user": "users"}


@dataclass(frozen=True)
class StoreContext:
    """What a scan needs to know to store a mailbox's messages; loaded once per run."""

    account_id: int
    assignee_id: int | None
    actions: frozenset[str]
    search_fields: frozenset[str]
    policy: TicketPolicy
    loop_limit: int
    loop_window: timedelta
    our_addresses: frozenset[str]
    our_domains: frozenset[str]

    @property
    def stores(self) -> bool:
        return "create_email" in self.actions

    @property
    def binds(self) -> bool:
        return "bind_email" in self.actions


@dataclass
class BatchItem:
    """A parsed message on its way to the database, with its folder direction and filter verdict."""

    parsed: ParsedMessage
    folder_direction: str
    verdict: FilterVerdict = field(default_factory=FilterVerdict)


def load_context(account: MailAccount, settings: MailSettings) -> StoreContext:
    """Read the account's actions and the mail configuration once for a run."""
    actions = frozenset(account.action_list)
    logins = db.session.scalars(select(MailAccount.login)).all()
    users = db.session.scalars(select(User.email).where(User.email.is_not(None))).all()
    ours = frozenset(a.strip().lower() for a in [*logins, *users] if a and a.strip())
    domains = frozenset(d.strip().lower().lstrip("@") for d in (settings.internal_domains or "").split(",")
                        if d.strip())
    return StoreContext(
        account_id=account.id,
        assignee_id=account.assignee_id,
        actions=actions,
        search_fields=frozenset(account.search_field_list),
        policy=TicketPolicy(create="create_ticket" in actions, reopen="open_ticket" in actions,
                            closed_policy=settings.closed_ticket_policy or "reopen"),
        loop_limit=settings.loop_max_messages or 0,
        loop_window=timedelta(minutes=settings.loop_window_minutes or 0),
        our_addresses=ours,
        our_domains=domains,
    )


# ----------------------------------------------------------------- text hygiene


def clean_text(value: str | None, limit: int | None = None) -> str | None:
    """Text every database accepts: no NUL (PostgreSQL refuses it), no lone surrogates, within ``limit``."""
    if value is None:
        return None
    if "\x00" in value:
        value = value.replace("\x00", "")
    # isascii() is a flag check: most values skip the encode that looks for lone surrogates.
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
    if limit is not None and len(value) > limit:
        value = value[:limit]
    return value


def storage_key(key: str) -> str:
    """A message key that fits its column: long Message-IDs are replaced by their hash."""
    key = clean_text(key) or ""
    if len(key) <= 300:
        return key
    return "mid-sha256:" + hashlib.sha256(key.encode("utf-8")).hexdigest()


def _alt_key(key: str, raw: bytes) -> str:
    """The key of a message that reuses a Message-ID another, different message already has."""
    return f"{key[:200]}#sha256:{hashlib.sha256(raw).hexdigest()[:40]}"


def _in(column, values):
    """``column IN (values)`` with the values as one parameter: ``= ANY(array)`` on PostgreSQL,
    ``IN (SELECT value FROM json_each(?))`` on SQLite (both still probe the column's index).

    A plain ``IN (?, ?, …)`` with a batch's worth of values made SQLAlchemy render and bind
    hundreds of parameters on every execution: a few percent of a scan's CPU (issue 7 profile).
    """
    values = sorted(values)
    if db.session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=ARRAY(String)))
    listed = select(literal_column("value")).select_from(func.json_each(bindparam(None, json.dumps(values))))
    return column.in_(listed)


# ----------------------------------------------------------------- the five batch queries


def existing_keys(account_id: int, keys: set[str]) -> dict[str, int]:
    """message_key → stored size, for the keys of this batch that this mailbox already holds."""
    if not keys:
        return {}
    rows = db.session.execute(select(Email.message_key, Email.size)
                              .where(Email.account_id == account_id, _in(Email.message_key, keys)))
    return {k: s for k, s in rows}


def lookup_addresses(addresses: set[str]) -> dict[str, list[RecordRef]]:
    """Every record whose (normalized, indexed) address is one of ``addresses``: one query."""
    if not addresses:
        return {}
    addrs = sorted(addresses)
    parts = [
        select(literal("contact").label("t"), Contact.id, Contact.organization_id.label("org"), Contact.email)
        .where(_in(Contact.email, addrs)),
        select(literal("organization").label("t"), Organization.id, null().label("org"), Organization.email)
        .where(_in(Organization.email, addrs)),
        select(literal("lead").label("t"), Lead.id, null().label("org"), Lead.email).where(_in(Lead.email, addrs)),
        select(literal("user").label("t"), User.id, null().label("org"), User.email).where(_in(User.email, addrs)),
    ]
    index: dict[str, list[RecordRef]] = {}
    for rtype, rid, org, email in db.session.execute(union_all(*parts)):
        index.setdefault(email, []).append(RecordRef(rtype, rid, org))
    for refs in index.values():
        refs.sort(key=lambda r: (r.type, r.id))
    return index


def parent_links(message_ids: set[str]) -> dict[str, list[RecordRef]]:
    """Message-ID → the records the stored message with that id is related to (any mailbox)."""
    if not message_ids:
        return {}
    rows = db.session.execute(
        select(Email.message_id, EmailLink.record_type, EmailLink.record_id)
        .join(EmailLink, EmailLink.email_id == Email.id)
        .where(_in(Email.message_id, message_ids)))
    out: dict[str, list[RecordRef]] = {}
    for mid, rtype, rid in rows:
        refs = out.setdefault(mid, [])
        ref = RecordRef(rtype, rid)
        if ref not in refs:
            refs.append(ref)
    return out


def _ticket_info(t) -> TicketInfo:
    return TicketInfo(id=t.id, number=t.number or "", status=t.status, contact_id=t.contact_id,
                      organization_id=t.organization_id, requester_email=t.requester_email)


def load_tickets(numbers: set[str], ids: set[int]) -> tuple[dict[str, TicketInfo], dict[int, TicketInfo]]:
    """The tickets named by number or reached by id: one query."""
    if not numbers and not ids:
        return {}, {}
    cond = []
    if numbers:
        cond.append(_in(Ticket.number, numbers))
    if ids:
        cond.append(Ticket.id.in_(sorted(ids)))
    rows = db.session.execute(select(Ticket.id, Ticket.number, Ticket.status, Ticket.contact_id,
                                     Ticket.organization_id, Ticket.requester_email).where(or_(*cond)))
    by_id = {r.id: _ticket_info(r) for r in rows}
    by_number = {t.number: t for t in by_id.values() if t.number}
    return by_number, by_id


def sender_activity(account_id: int, senders: set[str], start: datetime, end: datetime) -> dict[str, list[datetime]]:
    """Dates of this mailbox's stored mail from each sender between ``start`` and ``end``, sorted.

    The loop window is measured on the messages' own dates, not on when we
    stored them, so a first scan of years of mail does not look like a loop.
    """
    if not senders:
        return {}
    rows = db.session.execute(
        select(Email.from_addr, Email.date)
        .where(Email.account_id == account_id, _in(Email.from_addr, senders),
               Email.date >= start, Email.date <= end))
    out: dict[str, list[datetime]] = {}
    for sender, when in rows:
        out.setdefault(sender, []).append(when)
    for dates in out.values():
        dates.sort()
    return out


# ----------------------------------------------------------------- the batch


@dataclass
class _Pending:
    item: BatchItem
    key: str
    direction: str
    links: set[tuple[str, int]]
    defects: list[str]


def store_batch(ctx: StoreContext, items: list[BatchItem], counters: RunCounters,
                before_writes: Callable[[], None] | None = None) -> None:
    """Store a batch (ignored and duplicate messages counted, not stored); does not commit.

    ``before_writes`` is called once, after the lookups and just before the first write, when
    the batch has something to write (the scan takes its turn as the database's writer there).

    Raises ``sqlalchemy.exc.IntegrityError`` when a uniqueness constraint
    catches a duplicate the key lookup missed (two workers racing): the caller
    rolls back and stores the batch again message by message.
    """
    keep: list[BatchItem] = []
    for it in items:
        if not it.verdict.store:
            counters.ignored += 1
        else:
            keep.append(it)
    if not keep or not ctx.stores:
        # Without "Create email" nothing is stored: the messages count as downloaded only.
        return

    # 1. dedupe: by key, and by key + content hash when another message reuses the Message-ID.
    keyed = [(it, storage_key(it.parsed.message_key)) for it in keep]
    known = existing_keys(ctx.account_id, {key for _, key in keyed})
    # Only a message whose key is taken (stored already, or earlier in this batch) can be another
    # message reusing a Message-ID, so only those need the content-hash key and its lookup.
    alt: dict[int, str] = {}
    seen: set[str] = set()
    for it, key in keyed:
        if (key in known or key in seen) and not it.parsed.message_key.startswith("sha256:"):
            alt[id(it)] = _alt_key(key, it.parsed.raw.data)
        seen.add(key)
    if alt:
        known.update(existing_keys(ctx.account_id, set(alt.values())))
    fresh: list[tuple[BatchItem, str, list[str]]] = []
    for it, key in keyed:
        defects: list[str] = []
        if key in known:
            other = alt.get(id(it))
            if known[key] == it.parsed.raw.size or other is None or other in known:
                counters.duplicates += 1
                continue
            key = other
            defects.append("Its Message-ID is also used by a different message.")
        known[key] = it.parsed.raw.size
        fresh.append((it, key, defects))
    if not fresh:
        return

    # 2-5. the lookups, each one query for the whole batch.
    addresses: set[str] = set()
    parents: set[str] = set()
    numbers: set[str] = set()
    senders: set[str] = set()
    dates: list[datetime] = []
    for it, _, _ in fresh:
        p = it.parsed
        addresses.update(a for a in bind.addresses_to_look_up(p, it.folder_direction) if a)
        if p.from_addr:
            addresses.add(p.from_addr)
            senders.add(p.from_addr)
        parents.update(m for m in [p.in_reply_to, *p.references] if m)
        numbers.update(bind.ticket_numbers_in(p.subject or ""))
        dates.append(p.date or utcnow())
    all_index = lookup_addresses(addresses)
    address_index = {a: [r for r in refs if _FIELD_OF.get(r.type) in ctx.search_fields]
                     for a, refs in all_index.items()}
    address_index = {a: refs for a, refs in address_index.items() if refs}
    parent_records = parent_links(parents)
    parent_ticket_ids = {r.id for refs in parent_records.values() for r in refs if r.type == "ticket"}
    by_number, by_id = load_tickets(numbers, parent_ticket_ids)
    window = ctx.loop_window
    activity = sender_activity(ctx.account_id, senders, min(dates) - window, max(dates)) \
        if ctx.loop_limit > 0 and window.total_seconds() > 0 else {}

    # The records, then the ticket decisions, message by message in UID order.
    # Tickets created in this batch get negative placeholder ids until they are inserted,
    # so a reply later in the same batch can already find them.
    new_tickets: dict[int, dict] = {}
    status_changes: dict[int, str] = {}
    pending: list[_Pending] = []
    for it, key, defects in fresh:
        p = it.parsed
        mail_direction = direction.direction_of(p, it.folder_direction, ctx.our_addresses, ctx.our_domains)
        bound: BindResult = bind.bind_message(
            p, folder_direction=it.folder_direction, address_index=address_index,
            parent_records=parent_records, tickets_by_number=by_number, tickets_by_id=by_id)
        when = p.date or utcnow()
        throttled = False
        if p.from_addr and activity is not None and ctx.loop_limit > 0:
            history = activity.setdefault(p.from_addr, [])
            recent = len(history) - bisect.bisect_left(history, when - window)
            throttled = not SenderThrottle({p.from_addr: recent}, ctx.loop_limit).allow(p.from_addr)
            bisect.insort(history, when)
        action: TicketAction = tickets.decide(p, direction=mail_direction, bound=bound, policy=ctx.policy,
                                              filter_allows=it.verdict.tickets, throttled=throttled)
        links: set[tuple[str, int]] = set()
        if ctx.binds:
            links.update((r.type, r.id) for r in bound.records)
        ticket = bound.ticket
        if action.kind in ("create", "new_referring"):
            temp = -(len(new_tickets) + 1)
            contact_id, org_id = _sender_records(all_index.get(p.from_addr or "", []))
            new_tickets[temp] = {
                "subject": clean_text(p.subject or "(no subject)", 500), "status": "open",
                "contact_id": contact_id, "organization_id": org_id, "assignee_id": ctx.assignee_id,
                "parent_id": action.ticket_id if action.kind == "new_referring" else None,
                "requester_email": clean_text(p.from_addr, 254),
            }
            ticket = TicketInfo(id=temp, number="", status="open", contact_id=contact_id,
                                organization_id=org_id, requester_email=p.from_addr)
            by_id[temp] = ticket
            counters.tickets_created += 1
        elif action.kind in ("reopen", "answered") and action.ticket_id is not None:
            new_status = "open" if action.kind == "reopen" else "answered"
            status_changes[action.ticket_id] = new_status
            if action.ticket_id in by_id:
                ticket = replace(by_id[action.ticket_id], status=new_status)
                by_id[action.ticket_id] = ticket
                if ticket.number:
                    by_number[ticket.number] = ticket
            if action.kind == "reopen":
                counters.tickets_reopened += 1
        if ticket is not None:
            links.add(("ticket", ticket.id))
        if p.message_id:
            # Replies later in this batch bind to what this message is bound to.
            refs = parent_records.setdefault(p.message_id, [])
            have = {(r.type, r.id) for r in refs}
            refs.extend(RecordRef(t, i) for t, i in sorted(links) if (t, i) not in have)
        pending.append(_Pending(it, key, mail_direction, links, defects))

    # The rows are built before the first write: SQLite lets one writer in at a time, from its
    # first write to its commit, so that stretch holds as little Python work as possible.
    now = utcnow()
    email_rows = [_email_row(ctx.account_id, pe, now) for pe in pending]
    if before_writes is not None:
        before_writes()

    # Writes: tickets first (their ids go into links), then e-mails, attachments, links.
    real_ids: dict[int, int] = {}
    if new_tickets:
        temps = list(new_tickets)
        now = utcnow()
        tt = Ticket.__table__
        if _postgres():
            # The ids come from the sequence first, so each row is written once with its number.
            ids = _next_ids(tt, len(temps))
            bulk_insert(tt, [{**new_tickets[t], "id": i, "number": ticket_number(i), "created_at": now,
                              "updated_at": now} for t, i in zip(temps, ids, strict=True)])
        else:
            # A unique placeholder number (the real one needs the id) identifies each new row.
            marker = uuid.uuid4().hex[:10]
            rows = [{**new_tickets[t], "number": f"~{marker}:{-t}", "created_at": now, "updated_at": now}
                    for t in temps]
            ids_by_marker = _insert_with_ids(tt, rows, tt.c.number, None)
            ids = [ids_by_marker[r["number"]] for r in rows]
            _update_many(tt, "number", {i: ticket_number(i) for i in ids})
        real_ids = dict(zip(temps, ids, strict=True))
    if status_changes:
        tt = Ticket.__table__
        _update_many(tt, "status", status_changes)

    et = Email.__table__
    ids_by_key = _insert_with_ids(et, email_rows, et.c.message_key, et.c.account_id == ctx.account_id)
    email_ids = [ids_by_key[r["message_key"]] for r in email_rows]
    counters.created += len(email_ids)

    attachment_rows = []
    link_rows = []
    for pe, email_id in zip(pending, email_ids, strict=True):
        for a in pe.item.parsed.attachments:
            attachment_rows.append({
                "email_id": email_id, "filename": clean_text(a.filename or "attachment", 255),
                "content_type": clean_text(a.content_type or "application/octet-stream", 255),
                "size": len(a.data or b""), "content_id": clean_text(a.content_id, 300),
                "is_inline": bool(a.is_inline), "data": a.data or b""})
        for rtype, rid in sorted(pe.links):
            link_rows.append({"email_id": email_id, "record_type": rtype, "record_id": real_ids.get(rid, rid)})
        if pe.links:
            counters.bound += 1
    if attachment_rows:
        bulk_insert(EmailAttachment.__table__, attachment_rows)
    if link_rows:
        bulk_insert(EmailLink.__table__, link_rows)


def _postgres() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def bulk_insert(table, rows: list[dict]) -> None:
    """Insert rows in one go: COPY on PostgreSQL (in the session's transaction), executemany elsewhere.

    Every row must carry every column it needs: COPY applies no Python-side defaults.
    """
    if not rows:
        return
    if not _postgres():
        _sqlite_executemany(table, rows)
        return
    columns = list(rows[0])
    raw = db.session.connection().connection.driver_connection
    names = ", ".join(f'"{c}"' for c in columns)
    values = operator.itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    types = _copy_types(table, columns)
    # The binary format sends bytes and text as they are; the text format spent most of a batch's
    # COPY time escaping them (raw messages as hex, bodies with backslashes), in Python's thread.
    fmt = " (FORMAT BINARY)" if types else ""
    with raw.cursor() as cur, cur.copy(f'COPY "{table.name}" ({names}) FROM STDIN{fmt}') as copy:
        if types:
            copy.set_types(types)
        for row in rows:
            copy.write_row(values(row))


# PostgreSQL type names for binary COPY, by SQLAlchemy type (most specific first).
_COPY_TYPES = ((Boolean, "bool"), (BigInteger, "int8"), (Integer, "int4"), (DateTime, "timestamp"),
               (LargeBinary, "bytea"), (String, "text"))


def _copy_types(table, columns: list[str]) -> list[str] | None:
    """The binary COPY types of ``columns``, or None when one has a type not in ``_COPY_TYPES``."""
    out = []
    for c in columns:
        col_type = table.c[c].type
        if isinstance(col_type, DateTime) and col_type.timezone:
            return None
        name = next((n for t, n in _COPY_TYPES if isinstance(col_type, t)), None)
        if name is None:
            return None
        out.append(name)
    return out


def _sqlite_executemany(table, rows: list[dict]) -> None:
    """One driver-level executemany with the columns' own bind processors.

    Same values SQLAlchemy would write (dates in its SQLite text format, booleans
    as 0/1), without its per-row parameter bookkeeping, which cost more than
    SQLite's own work for a batch.
    """
    columns = list(rows[0])
    procs = [(i, p) for i, p in enumerate(_sqlite_processors(table, tuple(columns))) if p is not None]
    names = ", ".join(f'"{c}"' for c in columns)
    sql = f'INSERT INTO "{table.name}" ({names}) VALUES ({", ".join("?" for _ in columns)})'
    values = operator.itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    params = [values(r) for r in rows]
    if procs:
        # Only the few columns that need converting (dates, booleans, blobs) are touched.
        converted = []
        for row in params:
            row = list(row)
            for i, proc in procs:
                if row[i] is not None:
                    row[i] = proc(row[i])
            converted.append(tuple(row))
        params = converted
    db.session.connection().exec_driver_sql(sql, params)


def _sqlite_datetime(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME text (``YYYY-MM-DD HH:MM:SS.ffffff``) for a naive datetime,
    by the C ``isoformat`` instead of the dialect's Python formatting (one call per date per row)."""
    if value.tzinfo is not None:
        return _SQLITE_DATETIME_PROCESSOR(value)
    return value.isoformat(" ", "microseconds")


_SQLITE_DATETIME_PROCESSOR = None
_PROCESSORS: dict[tuple, list] = {}


def _sqlite_processors(table, columns: tuple[str, ...]) -> list:
    """The bind processors of ``columns`` on SQLite, built once per table and column list."""
    global _SQLITE_DATETIME_PROCESSOR
    key = (table.name, columns)
    procs = _PROCESSORS.get(key)
    if procs is None:
        dialect = db.session.get_bind().dialect
        procs = []
        for c in columns:
            impl = table.c[c].type.dialect_impl(dialect)
            proc = impl.bind_processor(dialect)
            if isinstance(impl, DateTime) and proc is not None:
                _SQLITE_DATETIME_PROCESSOR = proc
                proc = _sqlite_datetime
            procs.append(proc)
        _PROCESSORS[key] = procs
    return procs


def _update_many(table, column: str, values: dict[int, object]) -> None:
    """``UPDATE table SET column = v WHERE id = k`` for many rows: one statement on PostgreSQL,
    one driver-level executemany on SQLite."""
    if not values:
        return
    if _postgres():
        col = table.c[column]
        db.session.execute(
            text(f'UPDATE "{table.name}" SET "{column}" = d.v, updated_at = :now FROM unnest(:ids, :vals) '
                 f'AS d(k, v) WHERE "{table.name}".id = d.k')
            .bindparams(bindparam("ids", type_=ARRAY(Integer)), bindparam("vals", type_=ARRAY(col.type))),
            {"ids": list(values), "vals": list(values.values()), "now": utcnow()})
        return
    now = _sqlite_datetime(utcnow())
    db.session.connection().exec_driver_sql(
        f'UPDATE "{table.name}" SET "{column}" = ?, updated_at = ? WHERE id = ?',
        [(v, now, k) for k, v in values.items()])


def _insert_with_ids(table, rows: list[dict], key_col, scope) -> dict[str, int]:
    """Insert ``rows`` and return their ids by their unique key: on PostgreSQL the ids are taken
    from the sequence first and written with the rows; elsewhere one executemany, then one SELECT.

    Measured: SQLite runs an INSERT … RETURNING executemany one row at a time, and
    on PostgreSQL the driver spends longer splitting the one huge multi-VALUES
    statement of a RETURNING insert than psycopg's pipelined executemany takes.
    """
    if _postgres():
        # Ids taken from the table's sequence up front: no SELECT after the COPY.
        for row, new_id in zip(rows, _next_ids(table, len(rows)), strict=True):
            row["id"] = new_id
        bulk_insert(table, rows)
        return {row[key_col.name]: row["id"] for row in rows}
    bulk_insert(table, rows)
    keys = [r[key_col.name] for r in rows]
    query = select(key_col, table.c.id).where(_in(key_col, keys))
    if scope is not None:
        query = query.where(scope)
    return {key: rid for key, rid in db.session.execute(query)}


def _next_ids(table, count: int) -> list[int]:
    """``count`` new ids from the PostgreSQL sequence behind ``table.id`` (one round trip)."""
    return list(db.session.scalars(
        text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n) ORDER BY 1"),
        {"table": table.name, "n": count}))


def _sender_records(refs: list[RecordRef]) -> tuple[int | None, int | None]:
    """The contact and organization a new ticket gets from its sender's address."""
    contact = next((r for r in refs if r.type == "contact"), None)
    if contact is not None:
        return contact.id, contact.organization_id
    org = next((r for r in refs if r.type == "organization"), None)
    return None, org.id if org else None


def _email_row(account_id: int, pe: _Pending, now: datetime) -> dict:
    p = pe.item.parsed
    raw = p.raw
    defects = [*p.defects, *pe.defects]
    if raw.truncated and not any("limit" in d for d in defects):
        defects.append(f"The message is {raw.size} bytes, over the size limit: only its header was stored.")
    return {
        "account_id": account_id,
        "folder": clean_text(raw.folder, 255),
        "uidvalidity": raw.uidvalidity,
        "uid": raw.uid,
        "message_key": pe.key,
        "message_id": clean_text(p.message_id, 300),
        "in_reply_to": clean_text(p.in_reply_to, 300),
        "references": clean_text(" ".join(p.references)) if p.references else None,
        "subject": clean_text(p.subject or ""),
        "from_addr": clean_text(p.from_addr, 254),
        "from_name": clean_text(p.from_name, 300),
        "to_addrs": clean_text(", ".join(p.to)),
        "cc_addrs": clean_text(", ".join(p.cc)),
        "reply_to": clean_text(", ".join(p.reply_to)),
        "date": p.date,
        "direction": pe.direction,
        "body_text": clean_text(p.body_text or ""),
        "body_html": clean_text(p.body_html or ""),
        "has_remote_content": bool(p.has_remote_content),
        "headers": clean_text(p.headers_text or ""),
        "raw": raw.data,
        "size": raw.size,
        "defects": clean_text("\n".join(defects)) if defects else None,
        "is_automatic": p.automatic_reason is not None,
        "created_at": now,
    }


def error_details_json(details: list[dict]) -> str:
    """The run's error list as stored on ScanRun.error_details."""
    return json.dumps(details, ensure_ascii=False)
