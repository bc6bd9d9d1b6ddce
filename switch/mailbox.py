"""Terminal mailboxes: every event for a terminal is committed first, then pushed live.

The store holds the items (the SSE ``id:`` is the mailbox sequence number), so a
terminal that was offline, or whose stream fell behind, catches up from the store;
the live push is only a shortcut and never the only copy. Subscribers therefore never
need to buffer: a slow stream drops live items and re-reads them from the store.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog
from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import IReactorTime

from switch.audit.interface import CompanionWrite
from switch.jsontext import compact
from switch.store.interface import MailboxItem, Store

log = structlog.get_logger("switch.mailbox")

Subscriber = Callable[[MailboxItem], None]


class Mailbox:
    """``put`` fires with the item's sequence number once committed (the link or the API
    answers only then); subscribers of that terminal see it right after."""

    def __init__(self, store: Store, clock: IReactorTime) -> None:
        self._store = store
        self._clock = clock
        self._subscribers: dict[str, list[Subscriber]] = {}

    def put(self, terminal: str, kind: str, item: Mapping[str, Any]) -> Deferred[int]:
        # A plain callback, not a coroutine: this runs for every reply, and a coroutine
        # wrapped in a Deferred costs several times more reactor-thread time.
        item = dict(item)
        now = self._clock.seconds()
        try:
            d = self._store.mailbox_put(terminal, kind, item, now)
        except Exception:
            return fail()
        return d.addCallback(self._committed, terminal, kind, item, now)

    def prepare(self, terminal: str, kind: str, item: Mapping[str, Any]) -> CompanionWrite:
        """:meth:`put` as a write to commit with an audit record (``AuditSink.record``'s
        ``with_writes``): the item is pushed once that record is committed."""
        item = dict(item)
        now = self._clock.seconds()
        job = self._store.mailbox_job(terminal, kind, item, now)
        return CompanionWrite(job, lambda seq: self._committed(seq, terminal, kind, item, now))

    def _committed(
        self, seq: int, terminal: str, kind: str, item: dict[str, Any], now: float
    ) -> int:
        subscribers = self._subscribers.get(terminal)
        if not subscribers:
            return seq  # nobody is streaming: the store has it for the next reader
        stored = MailboxItem(seq=seq, terminal=terminal, kind=kind, item=item, created=now)
        for subscriber in list(subscribers):
            # The item is committed: a failing subscriber (a stream whose connection
            # broke mid-write) must neither fail this put, whose caller would think the
            # item lost, nor keep the other subscribers from seeing it.
            try:
                subscriber(stored)
            except Exception as exc:
                log.error("mailbox subscriber failed", error=type(exc).__name__)
        return seq

    def subscribers(self, terminal: str) -> int:
        """How many live subscribers ``terminal`` has (tests, leak checks, status)."""
        return len(self._subscribers.get(terminal, ()))

    def subscribe(self, terminal: str, subscriber: Subscriber) -> Callable[[], None]:
        """Live items for ``terminal``; returns the function that unsubscribes."""
        self._subscribers.setdefault(terminal, []).append(subscriber)

        def unsubscribe() -> None:
            subs = self._subscribers.get(terminal, [])
            if subscriber in subs:
                subs.remove(subscriber)
            if not subs:
                self._subscribers.pop(terminal, None)

        return unsubscribe

    def since(
        self, terminal: str, after_seq: int, limit: int, *, unacked_only: bool = False
    ) -> Deferred[list[MailboxItem]]:
        return self._store.mailbox_since(terminal, after_seq, limit, unacked_only=unacked_only)

    def ack(self, terminal: str, seq: int) -> Deferred[bool]:
        return self._store.mailbox_ack(terminal, seq, self._clock.seconds())


def item_json(item: MailboxItem) -> dict[str, Any]:
    """A mailbox item as the API shows it (``GET /v1/mailbox``, SSE ``data:``)."""
    return {
        "seq": item.seq,
        "kind": item.kind,
        "created": item.created,
        "acked": item.acked is not None,
        **dict(item.item),
    }


def sse_frame(item: MailboxItem) -> bytes:
    """One Server-Sent Event: ``id`` the sequence, ``event`` the kind, ``data`` JSON."""
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (
        item.seq,
        item.kind.encode("utf-8"),
        compact(item_json(item)),
    )
