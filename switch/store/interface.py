"""The store seam: what the daemon asks of durable storage, whatever engine provides it.

Every method returns a Deferred and never blocks the reactor. Writes fire only after
their transaction is committed (accepted = committed, DESIGN §7); a failed write fails
only its own Deferred with :class:`StoreError`. Times are POSIX seconds (float) from the
caller's injected clock, so tests drive expiry and purges with ``task.Clock``.

SQLite is the default engine (:mod:`switch.store.sqlite`); a PostgreSQL backend
implements this same Protocol and no caller changes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Literal, Protocol

from twisted.internet.defer import Deferred

if TYPE_CHECKING:  # the records import this module: annotations only
    from .teletype import ConfirmationRecord, InterceptRecord, MessageRecord, RouteRecord

TeletypeState = Literal["queued", "sent", "accepted", "rejected", "expired", "intercepted"]
TELETYPE_STATES: Final = ("queued", "sent", "accepted", "rejected", "expired", "intercepted")

#: Columns of ``audit_log`` that copy a record field so that search is indexed.
AUDIT_INDEX_COLUMNS: Final = (
    "terminal",
    "operator",
    "ori",
    "name",
    "plate",
    "vin",
    "msg_id",
    "ref_id",
)

#: ``(prev_hash, seq, canonical_json) -> hash``: the audit chain step, supplied by
#: :mod:`switch.audit` so that the store need not know the formula.
ChainStep = Callable[[bytes, int, str], bytes]


#: A write as the store runs it inside one of its transactions (on its own thread, with
#: its own connection): what :meth:`Store.mailbox_job` returns, so that a caller can
#: have it committed together with an audit record (:meth:`Store.append_audit`).
StoreJob = Callable[[Any], Any]


class StoreError(Exception):
    """A storage operation failed (disk full, permission, I/O error, closed store)."""


@dataclass(frozen=True)
class TeletypeItem:
    """One outbound route of a teletype message, queued for one link (DESIGN §6)."""

    id: str  # the route's wire id, ``<message id>-<route number>``
    link: str
    priority: Literal["urgent", "routine"]
    message: Mapping[str, object]  # the JSON-able message for the link's codec
    expires: float
    state: TeletypeState = "queued"
    attempts: int = 0
    next_attempt: float = 0.0
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True)
class MailboxItem:
    """One item in a terminal's mailbox; ``seq`` is the SSE event id."""

    seq: int
    terminal: str
    kind: str
    item: Mapping[str, object]
    created: float
    acked: float | None = None


@dataclass(frozen=True)
class InquiryRecord:
    """The persisted state of one inquiry (its replies so far), purged after 24 h."""

    id: str
    terminal: str
    created: float
    state: Mapping[str, object]


@dataclass(frozen=True)
class OperatorLock:
    """AC-7 lockout state of one operator; persists across restarts."""

    operator: str
    failures: int
    first_failure: float | None
    locked_until: float | None


@dataclass(frozen=True)
class AuditAppend:
    """One audit record to append: the store assigns ``seq`` and links the chain."""

    ts: str
    record: str  # canonical JSON, exactly the bytes hashed
    index: Mapping[str, str | None]  # AUDIT_INDEX_COLUMNS -> copied value
    chain: ChainStep


@dataclass(frozen=True)
class AuditHead:
    """The newest link of the chain (or the anchor left by retention)."""

    seq: int
    hash: bytes
    ts: str


@dataclass(frozen=True)
class AuditRow:
    seq: int
    ts: str
    record: str
    hash: bytes


@dataclass(frozen=True)
class AuditQuery:
    """Search filters, ANDed; ``name`` is a prefix match, the others exact."""

    since: str | None = None  # ts >= since (ISO UTC, same format as the column)
    until: str | None = None  # ts < until
    terminal: str | None = None
    operator: str | None = None
    ori: str | None = None
    name: str | None = None
    plate: str | None = None
    vin: str | None = None
    id: str | None = None  # msg_id or ref_id


@dataclass(frozen=True)
class PurgeCounts:
    inquiries: int = 0
    mailbox: int = 0
    duplicates: int = 0
    teletype: int = 0
    extra: Mapping[str, int] = field(default_factory=dict)


class Store(Protocol):
    """Durable storage for the switch. Start before use, stop after the last write."""

    def start(self) -> Deferred[None]:
        """Open, migrate the schema forward, start the writer and readers."""
        ...

    def stop(self) -> Deferred[None]:
        """Commit every pending write, then close. Later calls fail with StoreError."""
        ...

    def flush(self) -> Deferred[None]:
        """Fires once every write submitted before it is committed (or has failed)."""
        ...

    # -- outbound teletype queue (per link, urgent before routine, then FIFO)
    def enqueue_teletype(self, item: TeletypeItem, now: float) -> Deferred[None]: ...

    def enqueue_teletype_job(self, item: TeletypeItem, now: float) -> StoreJob:
        """:meth:`enqueue_teletype` as a job for :meth:`append_audit`'s ``with_jobs``."""
        ...

    def next_teletype(self, link: str, limit: int, now: float) -> Deferred[list[TeletypeItem]]:
        """Queued, due (``next_attempt <= now``) and unexpired items, in send order."""
        ...

    def mark_teletype(
        self,
        id: str,
        state: TeletypeState,
        now: float,
        *,
        attempts: int | None = None,
        next_attempt: float | None = None,
    ) -> Deferred[bool]:
        """Set one item's state; False if the id is unknown."""
        ...

    def get_teletype(self, id: str) -> Deferred[TeletypeItem | None]: ...

    def requeue_sent(self, link: str, now: float) -> Deferred[int]:
        """After a reconnect: un-ACKed (``sent``) items go back to ``queued``, same ids."""
        ...

    def expire_teletype(self, now: float) -> Deferred[list[TeletypeItem]]:
        """Mark every queued/sent item past ``expires`` as ``expired`` and return them."""
        ...

    def queue_stats(self) -> Deferred[dict[str, tuple[int, float | None]]]:
        """link -> (queued + sent count, created time of the oldest of them)."""
        ...

    # -- teletype messages, routes, intercept queue, hit confirmations
    #    (the TeletypeStore seam of switch.teletype_store; documented there)
    def save_message(self, message: MessageRecord, routes: list[RouteRecord]) -> Deferred[None]:
        """Insert a message and all its routes in one transaction."""
        ...

    def save_message_job(self, message: MessageRecord, routes: list[RouteRecord]) -> StoreJob:
        """:meth:`save_message` as a job for :meth:`append_audit`'s ``with_jobs``."""
        ...

    def get_message(self, id: str) -> Deferred[tuple[MessageRecord, list[RouteRecord]] | None]: ...

    def update_route(self, route: RouteRecord) -> Deferred[None]: ...

    def route_by_wire(self, wire_id: str) -> Deferred[RouteRecord | None]: ...

    def open_routes(self) -> Deferred[list[RouteRecord]]: ...

    def put_intercept(self, item: InterceptRecord) -> Deferred[None]: ...

    def get_intercept(self, id: str) -> Deferred[InterceptRecord | None]: ...

    def list_intercepts(self) -> Deferred[list[InterceptRecord]]: ...

    def delete_intercept(self, id: str) -> Deferred[bool]: ...

    def save_confirmation(self, record: ConfirmationRecord) -> Deferred[None]: ...

    def get_confirmation(self, id: str) -> Deferred[ConfirmationRecord | None]: ...

    def list_confirmations(
        self, *, open_only: bool = False
    ) -> Deferred[list[ConfirmationRecord]]: ...

    # -- terminal mailboxes
    def mailbox_put(
        self, terminal: str, kind: str, item: Mapping[str, object], now: float
    ) -> Deferred[int]:
        """Append one item; fires with its sequence number (the SSE id)."""
        ...

    def mailbox_job(
        self, terminal: str, kind: str, item: Mapping[str, object], now: float
    ) -> StoreJob:
        """:meth:`mailbox_put` as a job for :meth:`append_audit`'s ``with_jobs`` (its
        result is the sequence number)."""
        ...

    def mailbox_since(
        self, terminal: str, after_seq: int, limit: int, *, unacked_only: bool = False
    ) -> Deferred[list[MailboxItem]]: ...

    def mailbox_ack(self, terminal: str, seq: int, now: float) -> Deferred[bool]:
        """Acknowledge one item of this terminal; False if unknown or another's."""
        ...

    # -- inquiry state
    def save_inquiry(self, inquiry: InquiryRecord, now: float) -> Deferred[None]: ...

    def save_inquiry_job(self, inquiry: InquiryRecord, now: float) -> StoreJob:
        """:meth:`save_inquiry` as a job for :meth:`append_audit`'s ``with_jobs``."""
        ...

    def load_inquiry(self, id: str) -> Deferred[InquiryRecord | None]: ...

    # -- duplicate memory (DESIGN §4)
    def remember_duplicates(self, entries: Sequence[tuple[str, str]], now: float) -> Deferred[int]:
        """Remember each (link, id) in one write; fires with how many were new."""
        ...

    def duplicate_known(self, link: str, id: str, now: float) -> Deferred[bool]:
        """Read only: is (link, id) remembered and younger than the duplicate TTL?"""
        ...

    def recent_duplicates(self, since: float, limit: int) -> Deferred[list[tuple[str, str, float]]]:
        """``(link, id, first_seen)`` remembered at or after ``since``, oldest first, at most
        ``limit`` (the daemon loads them at start to answer duplicate checks in memory)."""
        ...

    # -- operator locks
    def save_lock(self, lock: OperatorLock) -> Deferred[None]: ...

    def delete_lock(self, operator: str) -> Deferred[None]: ...

    def load_locks(self) -> Deferred[list[OperatorLock]]: ...

    # -- retention of the operational tables
    def purge(self, now: float) -> Deferred[PurgeCounts]:
        """Drop inquiry results, acked mailbox items, old duplicates and finished
        teletype past their retention."""
        ...

    # -- audit log (used only by switch.audit)
    def append_audit(
        self, entry: AuditAppend, with_jobs: Sequence[StoreJob] = (), *, gather: bool = True
    ) -> Deferred[tuple[AuditHead, list[Any]]]:
        """Append one record in commit order, and run ``with_jobs`` in the same
        transaction (the writes the record vouches for: one commit, all or nothing);
        fires with the record's seq and hash and the jobs' results once committed.
        ``gather=False``: the commit need not wait for more writes (group commit may
        hold a commit briefly so that writes arriving together share it)."""
        ...

    def audit_head(self) -> Deferred[AuditHead | None]: ...

    def audit_row(self, seq: int) -> Deferred[AuditRow | None]: ...

    def audit_last_before(self, ts: str) -> Deferred[AuditHead | None]:
        """The newest record with ``ts < ts`` (the end of a range retention may purge)."""
        ...

    def purge_audit(self, through_seq: int, anchor: str) -> Deferred[int]:
        """Delete records ``seq <= through_seq`` and keep ``anchor`` (a signed line
        naming ``through_seq`` and its hash) in the same transaction."""
        ...

    def search_audit(self, query: AuditQuery, limit: int | None) -> Deferred[list[AuditRow]]: ...
