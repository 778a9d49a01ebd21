"""Housekeeping after storing: mark a stored message read, move it to a folder, or delete it.

The scan itself never changes the server (EXAMINE, ``BODY.PEEK``). A scanner may ask for one
action on each message once it is stored (``MailAccount.after_store``). The action is crash-safe:

1. ``record`` writes one ``pending_mail_actions`` row per message in the transaction that stores
   the chunk (``chunks._commit_chunk``), so the row exists exactly when the message is committed.
2. ``perform`` runs after the folder loop: it opens each folder read-write, does the actions by
   UID and deletes the rows once the server confirmed them. A run first performs the rows a
   killed run left behind. Actions by UID are idempotent (a UID that is gone matches nothing),
   so a kill after the server acted but before the rows were deleted repeats nothing.
3. The folder's last UID advances with the stored messages only, never with the actions, so
   moving or deleting never makes the scan read a message again or skip one.

Which messages: those stored by the run and those already stored before (duplicates). Never
messages ignored by a filter, messages that could not be read or stored, messages read from the
move's own target folder, or, for *delete*, messages over the size limit (only their header is
stored). A scanner without *Create email* stores nothing and so acts on nothing.

IMAP: ``UID MOVE`` (RFC 6851) when the server offers MOVE, else ``UID COPY`` + ``UID STORE
+FLAGS (\\Deleted)`` + expunge. The expunge is ``UID EXPUNGE`` (UIDPLUS, RFC 4315), which removes
only our messages. Without UIDPLUS a plain ``EXPUNGE`` would also remove messages another client
marked deleted, so it is sent only when ``SEARCH DELETED`` finds no message but ours; otherwise
ours stay marked deleted (step "flagged") and the expunge is tried again on the next run. The
fallback's copy is recorded (step "copied") before the original is flagged, so a retry does not
copy it again; only a kill between the server's answer to COPY and that commit can leave a
second copy in the target (never a lost message).

After a MOVE the stored e-mails take the new folder and UID the server reports (COPYUID), so
*Open in webmail* opens the message where it now is. A fallback move (no MOVE), or a kill
between the MOVE and the commit of the new places, leaves the e-mails at their old place, and
the e-mail page then says the message is no longer there (the stored copy stays readable).

Rows whose action no longer matches the scanner's setting (changed since) are dropped: the
message stays as it is, which never loses mail. Rows of a folder whose UIDVALIDITY changed are
dropped too (their UIDs now name other messages).
"""

from __future__ import annotations

import imaplib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from imap_tools.utils import encode_folder
from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from app.extensions import db
from app.models import Email, EmailMailbox, PendingMailAction
from app.scanner.types import BatchItem, RunCounters
from app.scanning.setup import AfterStore, FolderScan, RunSetup

logger = logging.getLogger(__name__)

_pending = PendingMailAction.__table__
_emails = Email.__table__
_links = EmailMailbox.__table__

# UIDs per IMAP command and per group of rows: keeps each command line and each delete short.
UIDS_PER_COMMAND = 500

# A test sets this to a file name: the run writes its pid there and waits, right after the
# messages were committed and before any action is done, so a test can kill it at that point.
PAUSE_ENV = "CM_TEST_PAUSE_BEFORE_HOUSEKEEPING"


def owed_uids(after: AfterStore, stores: bool, folder: str, items: list[BatchItem],
              counters: RunCounters) -> list[int]:
    """The UIDs of a read chunk the after-store action applies to, once the chunk is committed."""
    if not after.acts or not stores or (after.action == "move" and folder == after.folder):
        return []
    failed = {d.get("uid") for d in counters.error_details if d.get("folder") == folder}
    return [it.parsed.raw.uid for it in items
            if it.verdict.store and it.parsed.raw.uid not in failed
            and not (after.action == "delete" and it.parsed.raw.truncated)]


def record(setup: RunSetup, folder: FolderScan, items: list[BatchItem], counters: RunCounters) -> int:
    """Add the chunk's owed actions to the transaction that stores it (no commit); returns how many."""
    after = setup.after_store
    uids = owed_uids(after, setup.store.stores, folder.plan.name, items, counters)
    if uids:
        db.session.execute(insert(_pending), [
            {"account_id": setup.account_id, "folder": folder.plan.name, "uidvalidity": folder.plan.uidvalidity,
             "uid": uid, "action": after.action, "target": after.folder, "step": "pending"} for uid in uids])
    return len(uids)


# ---------------------------------------------------------------- performing


@dataclass
class _Owed:
    """The rows of one folder and one step, as the server will be asked."""

    account_id: int
    folder: str
    uidvalidity: int
    step: str
    ids: list[int]
    uids: list[int]


def perform(client: imaplib.IMAP4, setup: RunSetup, totals: RunCounters) -> int:
    """Do every action owed for this mailbox; returns how many messages were acted on.

    A folder the server refuses to open, or an action it refuses, is an error of the run
    (counted in ``totals``); its rows stay for the next run. IMAP connection errors propagate.
    Nothing owed costs one read query.
    """
    owed = _load(setup)
    if not owed:
        return 0
    _pause_for_tests()
    caps = _capabilities(client)
    done = 0
    for folder, groups in owed.items():
        done += _perform_folder(client, setup, caps, folder, groups, totals)
    logger.info("account %s: %s stored message(s) acted on (%s)", setup.account_id, done, _doing(setup.after_store))
    totals.after_store_done += done
    return done


def _load(setup: RunSetup) -> dict[tuple[str, int], list[_Owed]]:
    """The owed rows by (folder, UIDVALIDITY), each folder's rows grouped by step.

    Rows the scanner's current setting no longer asks for are deleted instead (the messages stay
    as they are).
    """
    after = setup.after_store
    rows = db.session.execute(select(_pending.c.id, _pending.c.folder, _pending.c.uidvalidity, _pending.c.uid,
                                     _pending.c.step, _pending.c.action, _pending.c.target)
                              .where(_pending.c.account_id == setup.account_id)
                              .order_by(_pending.c.folder, _pending.c.uid)).all()
    stale = sum(1 for row in rows if (row.action, row.target) != (after.action, after.folder))
    if stale:
        db.session.execute(delete(_pending).where(
            _pending.c.account_id == setup.account_id,
            (_pending.c.action != after.action) | _pending.c.target.is_distinct_from(after.folder)))
        logger.info("account %s: %s owed action(s) dropped: the after-store setting changed", setup.account_id,
                    stale)
    db.session.commit()
    grouped: dict[tuple[str, int, str], _Owed] = {}
    by_folder: dict[tuple[str, int], list[_Owed]] = defaultdict(list)
    for row in rows:
        if (row.action, row.target) != (after.action, after.folder):
            continue
        key = (row.folder, row.uidvalidity, row.step)
        group = grouped.get(key)
        if group is None or len(group.uids) >= UIDS_PER_COMMAND:
            # Bounded groups: each is one command (or three) and one bounded delete of its rows.
            group = grouped[key] = _Owed(setup.account_id, row.folder, row.uidvalidity, row.step, [], [])
            by_folder[(row.folder, row.uidvalidity)].append(group)
        group.ids.append(row.id)
        group.uids.append(row.uid)
    return by_folder


def _pause_for_tests() -> None:
    """Wait here for ever when a test asked to (``PAUSE_ENV``): it kills the process at this point."""
    path = os.environ.get(PAUSE_ENV)
    if not path:
        return
    with open(path, "w") as marker:
        marker.write(str(os.getpid()))
    while True:
        time.sleep(1)


def _capabilities(client: imaplib.IMAP4) -> frozenset[str]:
    """The server's capabilities after login (asked again: some servers announce more once logged in)."""
    typ, data = client.capability()
    words = b" ".join(d for d in data or [] if isinstance(d, bytes)).decode("ascii", "replace")
    return frozenset(w.upper() for w in words.split()) if typ == "OK" else frozenset(client.capabilities)


def _perform_folder(client: imaplib.IMAP4, setup: RunSetup, caps: frozenset[str], folder: tuple[str, int],
                    groups: list[_Owed], totals: RunCounters) -> int:
    """Open the folder read-write and do its owed actions; returns how many messages were acted on."""
    name, uidvalidity = folder
    typ, data = client.select(encode_folder(name).decode("ascii"))
    if typ != "OK":
        totals.add_error(name, None, f"The folder {name!r} could not be opened to {_doing(setup.after_store)} "
                                     f"({_said(data)}). The messages stay as they are; the next run tries again.")
        return 0
    if _uidvalidity(client) != uidvalidity:
        # The folder was renumbered: these UIDs now name other messages, which must not be touched.
        db.session.execute(delete(_pending).where(_pending.c.account_id == setup.account_id,
                                                  _pending.c.folder == name, _pending.c.uidvalidity == uidvalidity))
        db.session.commit()
        logger.warning("account %s folder %s was renumbered: %s owed action(s) dropped", setup.account_id, name,
                       sum(len(g.uids) for g in groups))
        return 0
    done = 0
    waiting: list[_Owed] = []  # marked deleted, for one plain EXPUNGE once it is safe (no UIDPLUS)
    for group in groups:
        try:
            if _act(client, setup.after_store, caps, group):
                done += len(group.uids)
            else:
                waiting.append(group)
        except _Refused as exc:
            totals.add_error(name, None, f"Could not {_doing(setup.after_store)} for {len(group.uids)} stored "
                                         f"message(s): {exc} They stay as they are; the next run tries again.")
    if waiting:
        try:
            done += _expunge_if_safe(client, name, waiting)
        except _Refused as exc:
            totals.add_error(name, None, f"Could not remove the stored messages marked deleted: {exc} The next run "
                                         "tries again.")
    return done


class _Refused(Exception):
    """The server refused an action; ``str()`` says what it said."""


def _act(client: imaplib.IMAP4, after: AfterStore, caps: frozenset[str], group: _Owed) -> bool:
    """Do one group's action; its rows are deleted (or moved on a step) as the server confirms.

    Returns False when the group's messages are marked deleted and wait for a plain EXPUNGE
    (a server without UIDPLUS).
    """
    if after.action == "mark_read":
        _uid_each(client, group.uids, "STORE", "+FLAGS.SILENT", r"(\Seen)")
        _forget(group.ids)
        return True
    if after.action == "move" and "MOVE" in caps:
        client.untagged_responses.pop("COPYUID", None)
        _uid_each(client, group.uids, "MOVE", _mailbox(after.folder))
        _follow(client, group, after.folder or "")
        _forget(group.ids)
        return True
    if after.action == "move" and group.step == "pending":
        _uid_each(client, group.uids, "COPY", _mailbox(after.folder))
        _set_step(group.ids, "copied")  # never copied twice by a retry
    if group.step != "flagged":
        _uid_each(client, group.uids, "STORE", "+FLAGS.SILENT", r"(\Deleted)")
    if "UIDPLUS" in caps:
        _uid_each(client, group.uids, "EXPUNGE")  # UID EXPUNGE: only these messages
        _forget(group.ids)
        return True
    _set_step(group.ids, "flagged")
    return False


def _follow(client: imaplib.IMAP4, group: _Owed, target: str) -> None:
    """The stored e-mails follow their moved messages (folder, UIDVALIDITY, UID in the target), so
    *Open in webmail* still finds them; from the COPYUID the server reports with MOVE (UIDPLUS).

    Written with the deletion of the group's rows (one commit). Without COPYUID, or when the
    target's UIDs are already taken by stored e-mails, the e-mails keep their old place.
    """
    moved: list[dict[str, Any]] = []
    for item in client.untagged_responses.pop("COPYUID", None) or []:
        parts = item.split() if isinstance(item, bytes) else []
        if len(parts) != 3 or not parts[0].isdigit():
            continue
        sources, targets = expand_uid_set(parts[1].decode()), expand_uid_set(parts[2].decode())
        if len(sources) == len(targets):
            moved += [{"src": a, "dst": b, "validity": int(parts[0])} for a, b in zip(sources, targets, strict=True)]
    if not moved:
        return
    # The mailbox's own link to each e-mail (where it lies in this mailbox) follows it too.
    db.session.execute(
        update(_links).where(_links.c.account_id == group.account_id, _links.c.folder == group.folder,
                             _links.c.uidvalidity == group.uidvalidity, _links.c.uid == bindparam("src"))
        .values(folder=target, uidvalidity=bindparam("validity"), uid=bindparam("dst")), moved)
    stmt = (update(_emails).where(_emails.c.account_id == group.account_id, _emails.c.folder == group.folder,
                                  _emails.c.uidvalidity == group.uidvalidity, _emails.c.uid == bindparam("src"))
            .values(folder=target, uidvalidity=bindparam("validity"), uid=bindparam("dst")))
    try:
        with db.session.begin_nested():
            db.session.execute(stmt, moved)
    except IntegrityError:
        logger.warning("account %s: moved messages of %s keep their old place in the stored e-mails: the UIDs "
                       "in %s are taken", group.account_id, group.folder, target)


def expand_uid_set(text: str) -> list[int]:
    """The UIDs of an IMAP sequence set without ``*`` (``1:3,7`` → 1, 2, 3, 7), in its order."""
    uids: list[int] = []
    for part in text.split(","):
        low, _, high = part.partition(":")
        if not low.isdigit() or (high and not high.isdigit()):
            return []
        a, b = int(low), int(high or low)
        uids.extend(range(a, b + 1) if a <= b else range(a, b - 1, -1))
    return uids


def _expunge_if_safe(client: imaplib.IMAP4, folder: str, waiting: list[_Owed]) -> int:
    """One plain EXPUNGE for our messages marked deleted, only when no other message is marked deleted.

    Returns how many of ours were removed (0 when it was not safe: they stay marked, for the next run).
    """
    ours = {uid for group in waiting for uid in group.uids}
    typ, data = client.uid("SEARCH", "DELETED")
    _check(typ, data)
    deleted = {int(u) for u in b" ".join(d for d in data if isinstance(d, bytes)).split()}
    if not deleted <= ours:
        # Another client marked messages deleted here: a plain EXPUNGE would remove them as well.
        logger.info("folder %s holds %s message(s) another client marked deleted: %s of ours stay marked deleted "
                    "until an expunge is safe", folder, len(deleted - ours), len(ours))
        return 0
    typ, data = client.expunge()
    _check(typ, data)
    for group in waiting:
        _forget(group.ids)
    return len(ours)


def _uid_each(client: imaplib.IMAP4, uids: list[int], command: str, *args: str) -> None:
    """``UID <command> <set> args`` (a group holds at most ``UIDS_PER_COMMAND`` UIDs)."""
    typ, data = client.uid(command, uid_set(uids), *args)
    _check(typ, data)


def uid_set(uids: Iterable[int]) -> str:
    """An IMAP sequence set with runs collapsed: ``1:3,7,9:10``."""
    runs: list[list[int]] = []
    for uid in sorted(set(uids)):
        if runs and uid == runs[-1][1] + 1:
            runs[-1][1] = uid
        else:
            runs.append([uid, uid])
    return ",".join(f"{a}:{b}" if a != b else str(a) for a, b in runs)


def _forget(ids: list[int]) -> None:
    db.session.execute(delete(_pending).where(_pending.c.id.in_(ids)))
    db.session.commit()


def _set_step(ids: list[int], step: str) -> None:
    db.session.execute(update(_pending).where(_pending.c.id.in_(ids)).values(step=step))
    db.session.commit()


def _check(typ: str, data: list[Any]) -> None:
    if typ != "OK":
        raise _Refused(f"the server said {_said(data)}.")


def _said(data: list[Any]) -> str:
    return b" ".join(d for d in data or [] if isinstance(d, bytes)).decode("utf-8", "replace") or "no reason"


def _mailbox(name: str | None) -> str:
    return encode_folder(name or "").decode("ascii")


def _uidvalidity(client: imaplib.IMAP4) -> int | None:
    """The UIDVALIDITY the last SELECT reported (imaplib keeps its response code by name)."""
    for item in client.untagged_responses.get("UIDVALIDITY", []) or []:
        if isinstance(item, bytes) and item.strip().isdigit():
            return int(item.strip())
    return None


def _doing(after: AfterStore) -> str:
    """What the action does, in words: "mark them read", "move them to 'Done'", "delete them"."""
    if after.action == "move":
        return f"move them to {after.folder!r}"
    return "mark them read" if after.action == "mark_read" else "delete them"
