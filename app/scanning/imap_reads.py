"""The scan's IMAP reads, on the imaplib client under imap-tools.

Everything here is read-only: folders are opened with EXAMINE and bodies are
fetched with ``BODY.PEEK``, so the scanner never sets ``\\Seen`` or any other
flag. Each function is one IMAP round trip:

- ``folder_status``: ``STATUS (UIDVALIDITY UIDNEXT MESSAGES)``;
- ``folder_attributes``: ``LIST "" folder`` (its special use, such as ``\\Junk``);
- ``examine``: ``EXAMINE``;
- ``search_since``: ``UID SEARCH UID n:* SINCE d-Mon-yyyy`` (a scanner that reads only recent mail);
- ``list_sizes``: ``UID FETCH n:* (UID RFC822.SIZE)`` or ``n:m`` (the UIDs after the
  last one done, with their sizes, so chunks can be bounded in bytes too);
- ``fetch_chunk``: one ``UID FETCH a,b,c (UID RFC822.SIZE INTERNALDATE BODY.PEEK[])`` for
  the messages under the size limit, and one ``BODY.PEEK[HEADER]`` for those
  over it (only when there are any).
"""

from __future__ import annotations

import imaplib
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from imap_tools.utils import encode_folder

from app.scanner.types import FolderStatus, RawMessage

_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_INTERNALDATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
_LIST_ATTRIBUTES = re.compile(rb"\(([^)]*)\)")
_STATUS_ITEM = re.compile(rb"(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)")


class ImapReadError(Exception):
    """The server refused a read command; ``str()`` says what, in plain words."""


class FolderMissing(ImapReadError):
    """The folder does not exist (any more) on the server."""


def _said(typ: str, data: list[Any]) -> str:
    """What the server said with a refusal (its text, else the status word)."""
    detail = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
    return detail or typ


def _check(typ: str, data: list[Any], what: str) -> None:
    if typ != "OK":
        raise ImapReadError(f"The mail server refused to {what}: {_said(typ, data)}")


def _mailbox(name: str) -> str:
    """The folder name as IMAP sends it: modified UTF-7, quoted (always ASCII)."""
    return encode_folder(name).decode("ascii")


def folder_status(client: imaplib.IMAP4, name: str) -> FolderStatus:
    """UIDVALIDITY, UIDNEXT and message count of a folder, in one round trip."""
    typ, data = client.status(_mailbox(name), "(UIDVALIDITY UIDNEXT MESSAGES)")
    if typ != "OK":
        raise FolderMissing(f"The folder {name!r} cannot be read on the server ({_said(typ, data)}). "
                            "Check the scanner's folders on its page.")
    values: dict[bytes, int] = {}
    for item in data or []:
        line = item[0] if isinstance(item, tuple) else item
        if isinstance(line, bytes):
            values.update({k: int(v) for k, v in _STATUS_ITEM.findall(line)})
    try:
        return FolderStatus(uidvalidity=values[b"UIDVALIDITY"], uidnext=values[b"UIDNEXT"],
                            messages=values[b"MESSAGES"])
    except KeyError as exc:
        raise ImapReadError(f"The mail server did not report {exc.args[0].decode()} "
                            f"for the folder {name!r}.") from exc


def folder_attributes(client: imaplib.IMAP4, name: str) -> frozenset[str]:
    """The folder's LIST attributes (``\\Junk``, ``\\HasNoChildren`` …); none when the server lists none."""
    typ, data = client.list('""', _mailbox(name))
    if typ != "OK":
        return frozenset()
    found: set[str] = set()
    for item in data or []:
        line = item[0] if isinstance(item, tuple) else item
        if isinstance(line, bytes):
            match = _LIST_ATTRIBUTES.match(line)
            if match:
                found.update(a.decode("ascii", "replace") for a in match.group(1).split())
    return frozenset(found)


def examine(client: imaplib.IMAP4, name: str) -> None:
    """Open a folder read-only (EXAMINE), so nothing we do can change its flags."""
    typ, data = client.select(_mailbox(name), readonly=True)
    if typ != "OK":
        raise FolderMissing(f"The folder {name!r} cannot be opened on the server ({_said(typ, data)}).")


def list_sizes(client: imaplib.IMAP4, after_uid: int, upto: int | None = None) -> dict[int, int]:
    """UID → size of every message with a UID greater than ``after_uid`` (and at most ``upto``), ascending.

    A run with a budget lists a window of UIDs rather than the whole rest of the folder: a backlog
    of 50,000 messages read 500 at a time would otherwise list all that is left on every run.
    """
    typ, data = client.uid("FETCH", f"{after_uid + 1}:{upto if upto is not None else '*'}", "(UID RFC822.SIZE)")
    _check(typ, data, "list the new messages")
    sizes: dict[int, int] = {}
    for item in data or []:
        line = item[0] if isinstance(item, tuple) else item
        if not isinstance(line, bytes):
            continue
        uid, size = _UID.search(line), _SIZE.search(line)
        # "n:*" always matches the last message even when its UID is below n.
        if uid and after_uid < int(uid.group(1)) <= (upto if upto is not None else int(uid.group(1))):
            sizes[int(uid.group(1))] = int(size.group(1)) if size else 0
    return dict(sorted(sizes.items()))


def search_since(client: imaplib.IMAP4, after_uid: int, since: date) -> set[int]:
    """The UIDs above ``after_uid`` of the messages the server received on or after ``since``
    (``UID SEARCH UID n:* SINCE d-Mon-yyyy``: SINCE compares the server's receive date)."""
    day = f"{since.day}-{_MONTHS[since.month - 1]}-{since.year}"
    typ, data = client.uid("SEARCH", f"UID {after_uid + 1}:*", f"SINCE {day}")
    _check(typ, data, "search the messages by date")
    found: set[int] = set()
    for line in data or []:
        if isinstance(line, bytes):
            found.update(int(n) for n in line.split() if n.isdigit() and int(n) > after_uid)
    return found


def byte_bounded_chunks(uids: list[int], sizes: dict[int, int], count: int, max_bytes: int,
                        max_message_bytes: int) -> Iterator[list[int]]:
    """Chunks of at most ``count`` UIDs and about ``max_bytes`` of message data.

    Messages over ``max_message_bytes`` count only a header's worth, because
    only their header is fetched.
    """
    chunk: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        cost = 64 * 1024 if size > max_message_bytes else size
        if chunk and (len(chunk) >= count or total + cost > max_bytes):
            yield chunk
            chunk, total = [], 0
        chunk.append(uid)
        total += cost
    if chunk:
        yield chunk


def chunk_bytes(uids: list[int], sizes: dict[int, int], max_message_bytes: int) -> int:
    """About how many bytes fetching ``uids`` brings (messages over the limit: their header only)."""
    return sum(64 * 1024 if sizes.get(u, 0) > max_message_bytes else sizes.get(u, 0) for u in uids)


def internal_date(meta: bytes) -> datetime | None:
    """The INTERNALDATE of a FETCH answer's line (``"17-Jul-1996 02:44:25 -0700"``) as naive UTC, or None."""
    match = _INTERNALDATE.search(meta)
    if match is None:
        return None
    try:
        when = datetime.strptime(match.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None
    return when.astimezone(UTC).replace(tzinfo=None)


def _parse_fetch(data: list[Any]) -> dict[int, tuple[int | None, bytes, datetime | None]]:
    """UID → (RFC822.SIZE, literal, INTERNALDATE) from an imaplib FETCH answer."""
    out: dict[int, tuple[int | None, bytes, datetime | None]] = {}
    meta = b""
    body: bytes | None = None

    def flush() -> None:
        if body is None:  # a line without a literal (e.g. an unsolicited FLAGS update)
            return
        uid, size = _UID.search(meta), _SIZE.search(meta)
        if uid:
            out[int(uid.group(1))] = (int(size.group(1)) if size else None, body or b"", internal_date(meta))

    for item in data or []:
        if isinstance(item, tuple):
            flush()
            meta, body = item[0], item[1]
        elif isinstance(item, bytes):
            if body is not None and not re.match(rb"^\d+ \(", item):
                # The text after a literal: may still hold "UID n" when the server orders items so.
                meta += b" " + item
            else:
                flush()
                meta, body = item, None
    flush()
    return out


def fetch_chunk(client: imaplib.IMAP4, folder: str, uidvalidity: int, uids: list[int], sizes: dict[int, int],
                max_message_bytes: int) -> tuple[list[RawMessage], list[int]]:
    """Fetch one chunk without marking anything seen.

    Returns the messages in UID order, and the UIDs the server no longer has
    (deleted between listing and fetching).
    """
    small = [u for u in uids if sizes.get(u, 0) <= max_message_bytes]
    large = [u for u in uids if sizes.get(u, 0) > max_message_bytes]
    got: dict[int, RawMessage] = {}
    if small:
        typ, data = client.uid("FETCH", ",".join(map(str, small)), "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[])")
        _check(typ, data, "send the messages")
        for uid, (size, body, received) in _parse_fetch(data).items():
            got[uid] = RawMessage(folder=folder, uidvalidity=uidvalidity, uid=uid, data=body,
                                  size=size if size is not None else len(body), internal_date=received)
    if large:
        typ, data = client.uid("FETCH", ",".join(map(str, large)),
                               "(UID RFC822.SIZE INTERNALDATE BODY.PEEK[HEADER])")
        _check(typ, data, "send the message headers")
        for uid, (size, body, received) in _parse_fetch(data).items():
            got[uid] = RawMessage(folder=folder, uidvalidity=uidvalidity, uid=uid, data=body,
                                  size=size if size is not None else sizes.get(uid, 0), truncated=True,
                                  internal_date=received)
    wanted = set(uids)
    messages = [got[u] for u in sorted(got) if u in wanted]
    missing = [u for u in uids if u not in got]
    return messages, missing
