"""The plain data that flows through the scanner pipeline.

Contract between the pipeline steps (``app/scanner/*``) and the scan that
drives them (``app/scanning``). Each step module documents its function; the
shapes live here so both sides agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

# --- fetch -----------------------------------------------------------------


@dataclass(frozen=True)
class FolderState:
    """What we remember of a folder between runs."""

    name: str
    direction: str  # "incoming" | "outgoing"
    uidvalidity: int | None
    last_uid: int
    # With the archive import: the UIDNEXT recorded when the import began (see ``FolderPlan``).
    archive_below: int | None = None


@dataclass(frozen=True)
class FolderStatus:
    """What the server says of a folder now (IMAP STATUS)."""

    uidvalidity: int
    uidnext: int
    messages: int


@dataclass(frozen=True)
class FolderPlan:
    """What to do with a folder in this run (``app.scanner.plan.plan_folder``)."""

    name: str
    direction: str
    uidvalidity: int
    # Fetch UIDs strictly greater than this one.
    after_uid: int
    # UIDVALIDITY changed: the server renumbered the folder; rescan from the start
    # (Message-ID dedupe keeps what is stored from being stored twice).
    reset: bool
    has_new: bool
    # Messages with a UID below this were in the folder when the archive import began: they are
    # stored as archive. None: no archive import.
    archive_below: int | None = None


@dataclass(frozen=True)
class RawMessage:
    """One message as fetched: the bytes exactly as the server sent them."""

    folder: str
    uidvalidity: int
    uid: int
    data: bytes
    size: int
    # True when the message was over the size limit: ``data`` holds only its header.
    truncated: bool = False
    # When the server received it (IMAP INTERNALDATE), naive UTC; the date of a message without a usable Date.
    internal_date: datetime | None = None


# The defect every message over the size limit carries (``RawMessage.truncated``).
TRUNCATED_DEFECT = "message over the size limit: only its header was stored"
# The note of a message dated by the server's receive time (``RawMessage.internal_date``).
RECEIVED_DATE_DEFECT = "no usable Date header: its date is when the mail server received it"


# --- parse -----------------------------------------------------------------


@dataclass
class AttachmentData:
    filename: str  # already made safe: no path, no control characters, never empty
    content_type: str
    data: bytes
    content_id: str | None = None  # without <>
    is_inline: bool = False


@dataclass
class ParsedMessage:
    """A message parsed for storing and binding (``app.scanner.parse.parse_message``)."""

    raw: RawMessage
    message_id: str | None  # without <>, whitespace stripped
    message_key: str  # message_id, or "sha256:<hex of raw bytes>" when it has none
    in_reply_to: str | None
    references: list[str]
    subject: str
    from_addr: str | None  # normalized (lower-case)
    from_name: str
    to: list[str]  # normalized addresses
    cc: list[str]
    reply_to: list[str]
    date: datetime | None  # naive UTC
    headers_text: str  # the header block decoded for display
    header_items: list[tuple[str, str]]  # (lower-case name, decoded value), for filters
    body_text: str
    body_html: str  # sanitized; cid: images kept as cid: (the e-mail view embeds them as data: URIs)
    has_remote_content: bool
    attachments: list[AttachmentData]
    defects: list[str] = field(default_factory=list)
    # Why this is an auto-reply / bounce / bulk message (never opens tickets), or None.
    automatic_reason: str | None = None

    @property
    def all_addresses(self) -> list[str]:
        seen: dict[str, None] = {}
        for a in [self.from_addr, *self.to, *self.cc, *self.reply_to]:
            if a:
                seen.setdefault(a, None)
        return list(seen)


# --- filter ----------------------------------------------------------------


@dataclass(frozen=True)
class FilterRule:
    """An ignore filter as configured (global when account_id is None)."""

    id: int | None
    field: str  # from / from_domain / to / subject / header
    match: str  # equals / contains / regex
    value: str
    stops: str  # "store" (not stored at all) / "tickets" (stored, never opens a ticket)
    header_name: str | None = None


@dataclass(frozen=True)
class FilterVerdict:
    store: bool = True
    tickets: bool = True
    rule_id: int | None = None


# --- bind ------------------------------------------------------------------


@dataclass(frozen=True)
class RecordRef:
    """A record an e-mail can be related to."""

    type: str  # contact / organization / lead / ticket / user
    id: int
    # For contacts: their organization, so that binding can relate it too
    # and tell whether a sender belongs to a ticket.
    organization_id: int | None = None


@dataclass(frozen=True)
class TicketInfo:
    id: int
    number: str
    status: str
    contact_id: int | None
    organization_id: int | None
    requester_email: str | None


@dataclass
class BindResult:
    records: list[RecordRef]
    # The ticket this message belongs to (by number with a sender who belongs, or by reply).
    ticket: TicketInfo | None
    # A ticket number was quoted by someone who does not belong to that ticket.
    foreign_ticket_number: str | None = None


# --- tickets ---------------------------------------------------------------


@dataclass(frozen=True)
class TicketPolicy:
    create: bool  # the scanner has the "Create a ticket" action
    reopen: bool  # the scanner has the "Open a ticket" action
    closed_policy: str  # reopen / new_ticket / ignore


@dataclass(frozen=True)
class TicketAction:
    kind: str  # none / create / reopen / answered / new_referring
    ticket_id: int | None = None  # the ticket acted on (or referred to, for new_referring)
    reason: str = ""
    # Set when the message is held from its usual actions: one of ``HELD_KINDS``.
    held: str | None = None


# Why a received message is stored without its usual actions (no ticket opened, answered or
# reopened). Each kind is a counter of the run (``RunCounters``) and a column of ``scan_runs``;
# the stored e-mail keeps its kind (``emails.no_action``) and says why in words.
HELD_KINDS = ("archived", "spam", "automatic", "filtered", "no_sender", "throttled")
# Each kind as the run log and the download history name it.
HELD_LABELS = {"archived": "archive import", "spam": "spam", "automatic": "automatic mail",
               "filtered": "ignore filter", "no_sender": "no sender", "throttled": "loop protection"}


def held_summary(counts: dict[str, int]) -> str:
    """"3 automatic mail, 2 loop protection": the non-zero kinds of ``counts``, in ``HELD_KINDS`` order."""
    return ", ".join(f"{counts[k]} {HELD_LABELS[k]}" for k in HELD_KINDS if counts.get(k))


# --- store: one batch ------------------------------------------------------


@dataclass(frozen=True)
class StoreContext:
    """What storing a mailbox's messages depends on: its scanner and the mail configuration,
    loaded once per run (``app.scanning.store.batch.load_context``)."""

    account_id: int
    assignee_id: int | None
    actions: frozenset[str]
    search_fields: frozenset[str]  # contacts / organizations / leads / users
    policy: TicketPolicy
    loop_limit: int  # messages a sender may write in ``loop_window`` and still act on tickets; 0: no limit
    loop_window: timedelta
    our_addresses: frozenset[str]
    our_domains: frozenset[str]
    # Public mail domains (gmail.com, …): addresses there never bind to an organization by domain.
    public_domains: frozenset[str] = frozenset()
    # What happens to spam: "store" (stored without actions) or "ignore" (not stored).
    spam_handling: str = "store"

    @property
    def stores(self) -> bool:
        """The scanner has the *Create email* action (without it nothing is stored)."""
        return "create_email" in self.actions

    @property
    def binds(self) -> bool:
        """The scanner has the *Bind email* action (without it only ticket links are written)."""
        return "bind_email" in self.actions


@dataclass
class BatchItem:
    """A parsed message on its way to the database, with its folder direction and filter verdict."""

    parsed: ParsedMessage
    folder_direction: str
    verdict: FilterVerdict = field(default_factory=FilterVerdict)
    # Why the server's spam filter flagged it (``app.scanner.spam.spam_reason``), or None.
    spam: str | None = None
    # Mail that was in the mailbox before the archive import began (``FolderPlan.archive_below``).
    archived: bool = False


@dataclass(slots=True)
class NewMessage:
    """A message of the batch that this mailbox does not hold yet, with the key it is stored under."""

    item: BatchItem
    key: str
    # Another, different message already has this message's Message-ID: ``key`` is then the
    # Message-ID plus a hash of the content, and the stored e-mail says so in its defects.
    reused_message_id: bool = False
    # ``app.scanner.identity.content_identity``: one stored e-mail per identity, whichever mailboxes.
    identity: str = ""


@dataclass(slots=True)
class LinkedMessage:
    """A message of the batch already stored from another mailbox: this mailbox is linked to it."""

    item: BatchItem
    key: str  # the key this mailbox holds it under
    email_id: int
    stored_from: int  # the mailbox it was first stored from (for the run log's "also in")


@dataclass
class BatchLookups:
    """What the batch's queries found, one query each, before any message is decided."""

    # Every record (of any type) whose address is one of the batch's addresses, sorted by (type, id).
    addresses: dict[str, list[RecordRef]]
    # Message-ID of a stored message → the records that message is linked to (any mailbox).
    parents: dict[str, list[RecordRef]]
    tickets_by_number: dict[str, TicketInfo]
    tickets_by_id: dict[int, TicketInfo]
    # Sender → dates of this mailbox's stored mail from it within the loop window, sorted.
    sender_dates: dict[str, list[datetime]]


@dataclass(frozen=True)
class NewTicket:
    """A ticket a message of the batch opens; ``temp_id`` (negative) stands for its id until it is written."""

    temp_id: int
    subject: str
    contact_id: int | None
    organization_id: int | None
    parent_id: int | None  # the closed ticket a new_referring ticket refers to
    requester_email: str | None


@dataclass(slots=True)
class MessageDecision:
    """What storing one message writes besides the e-mail: its direction and its links."""

    message: NewMessage
    direction: str  # received / sent / internal
    # (record type, record id); the id of a ticket opened in this batch is its ``NewTicket.temp_id``.
    links: set[tuple[str, int]]
    # Held from its usual actions: the kind (one of ``HELD_KINDS``) and why, in words for its page.
    held: str | None = None
    held_reason: str = ""


@dataclass
class BatchDecisions:
    """The decisions of a whole batch, in UID order (``app.scanner.decide.decide_batch``)."""

    messages: list[MessageDecision]
    new_tickets: list[NewTicket]
    status_changes: dict[int, str]  # ticket id → its new status (open / answered)
    tickets_created: int = 0
    tickets_reopened: int = 0


# --- run log ---------------------------------------------------------------


@dataclass
class RunCounters:
    """What a run (or one of its batches) did, message by message."""

    downloaded: int = 0
    created: int = 0
    bound: int = 0
    tickets_created: int = 0
    tickets_reopened: int = 0
    ignored: int = 0
    duplicates: int = 0
    # Stored without their usual actions, by why (``HELD_KINDS``).
    archived: int = 0
    spam: int = 0
    automatic: int = 0
    filtered: int = 0
    no_sender: int = 0
    throttled: int = 0
    # Stored messages marked read, moved or deleted in the mailbox (the scanner's After storing);
    # said in the run's message, not a column.
    after_store_done: int = 0
    # Messages already stored from another mailbox and linked to this one, and by which mailbox.
    also_in: int = 0
    also_in_details: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    error_details: list[dict] = field(default_factory=list)

    def add_also_in(self, stored_from: int) -> None:
        """Count a message linked to this mailbox that mailbox ``stored_from`` stored first."""
        self.also_in += 1
        self.also_in_details[stored_from] = self.also_in_details.get(stored_from, 0) + 1

    def add_error(self, folder: str, uid: int | None, reason: str) -> None:
        """Count a message that could not be handled, keeping its UID and the reason."""
        self.errors += 1
        self.error_details.append({"folder": folder, "uid": uid, "reason": reason})
