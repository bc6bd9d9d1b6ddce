"""Durable state of the teletype engine that the :class:`~switch.store.interface.Store` lacks.

The store's ``teletype_queue`` holds one row per *wire transmission* (a route's wire id,
its link, attempts, next attempt, expiry). What the client API and the admins need on top
of it lives here, behind :class:`TeletypeStore`: the message as the terminal sent it, its
routes with their states and ``updated`` times (``GET /v1/messages/{id}``), the intercept
queue with its locks, and the hit confirmations with their deadlines. Every method
returns a Deferred that fires once the change is committed; times are POSIX seconds from
the caller's injected clock.

:class:`MemoryTeletypeStore` and :class:`MemoryQueue` (the teletype subset of the
``Store``) are in-memory implementations for tests and for running before the SQLite
tables exist.

The SQLite store implements :class:`TeletypeStore` with these tables (schema migration 2
in :mod:`switch.store.schema`; JSON columns are canonical JSON text; times REAL POSIX
seconds; the records themselves are in :mod:`switch.store.teletype`)::

    CREATE TABLE tt_message (
        id          TEXT PRIMARY KEY,        -- message id (1-40 of [A-Za-z0-9-])
        terminal    TEXT NOT NULL,           -- sending terminal (delivery events go there)
        operator    TEXT,
        key         TEXT NOT NULL,           -- AM | YQ | YR
        from_ori    TEXT NOT NULL,
        dests       TEXT NOT NULL,           -- JSON list, as submitted (normalised)
        text        TEXT NOT NULL,
        priority    TEXT NOT NULL,           -- urgent | routine
        fields      TEXT NOT NULL,           -- JSON object (YQ/YR), {} for AM
        in_reply_to TEXT,
        created     REAL NOT NULL
    );
    CREATE TABLE tt_route (
        message_id  TEXT NOT NULL REFERENCES tt_message(id),
        number      INTEGER NOT NULL,        -- 1..n, position in the message's ``to``
        dest        TEXT NOT NULL,
        link        TEXT,                    -- NULL: unroutable (intercept queue)
        state       TEXT NOT NULL,           -- queued|sent|accepted|rejected|expired|intercepted
        wire_id     TEXT NOT NULL UNIQUE,    -- <message id>-<k>, k >= number
        text        TEXT,                    -- edited text (intercept), NULL: the message's
        attempts    INTEGER NOT NULL DEFAULT 0,
        updated     REAL NOT NULL,
        PRIMARY KEY (message_id, number)
    );
    CREATE INDEX tt_route_open ON tt_route(state) WHERE state IN ('queued', 'sent');
    CREATE TABLE tt_intercept (
        id           TEXT PRIMARY KEY,       -- the route's wire id when it was intercepted
        message_id   TEXT NOT NULL,
        number       INTEGER NOT NULL,
        reason       TEXT NOT NULL,          -- unroutable|rejected|expired|retries_exhausted|...
        detail       TEXT NOT NULL,
        created      REAL NOT NULL,
        locked_by    TEXT,                   -- operator
        lock_session TEXT,                   -- session id that holds the lock
        lock_expires REAL
    );
    CREATE TABLE hit_confirmation (
        id             TEXT PRIMARY KEY,
        direction      TEXT NOT NULL,        -- outgoing | incoming
        urgency        TEXT NOT NULL,        -- U | R
        request_number INTEGER NOT NULL,     -- 1..3
        sent_at        REAL NOT NULL,        -- start of the current request's deadline
        outcome        TEXT NOT NULL,        -- pending|confirmed|not_confirmed|in_progress|expired
        terminals      TEXT NOT NULL,        -- JSON list of terminals told about it
        counterpart    TEXT NOT NULL,        -- the other agency's ORI
        message_ids    TEXT NOT NULL,        -- JSON list: the YQ message ids, oldest first
        fields         TEXT NOT NULL,        -- JSON object: the YQ fields (nic, oca, ...)
        warned         INTEGER NOT NULL,     -- request number whose warning was sent
        overdue_noted  INTEGER NOT NULL,     -- request number whose overdue event was sent
        reply          TEXT,                 -- JSON object: the YR fields, once answered
        created        REAL NOT NULL,
        updated        REAL NOT NULL
    );
    CREATE INDEX hit_confirmation_open ON hit_confirmation(outcome);
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed

from switch.store.interface import TeletypeItem, TeletypeState
from switch.store.teletype import (
    OPEN_OUTCOMES,
    OPEN_STATES,
    ConfirmationRecord,
    InterceptRecord,
    MessageRecord,
    RouteRecord,
)

__all__ = [
    "OPEN_OUTCOMES",
    "OPEN_STATES",
    "ConfirmationRecord",
    "InterceptRecord",
    "MemoryQueue",
    "MemoryTeletypeStore",
    "MessageRecord",
    "RouteRecord",
    "TeletypeQueue",
    "TeletypeStore",
]


class TeletypeStore(Protocol):
    """Messages, routes, intercept items and hit confirmations (see the module doc)."""

    def save_message(self, message: MessageRecord, routes: list[RouteRecord]) -> Deferred[None]:
        """Insert a message and all its routes in one transaction."""
        ...

    def save_message_job(
        self, message: MessageRecord, routes: list[RouteRecord]
    ) -> Callable[[Any], None]:
        """:meth:`save_message` as a write to commit with an audit record (a
        ``CompanionWrite``'s job): the message exists if and only if its record does."""
        ...

    def get_message(self, id: str) -> Deferred[tuple[MessageRecord, list[RouteRecord]] | None]:
        """The message and its routes ordered by number, or None."""
        ...

    def update_route(self, route: RouteRecord) -> Deferred[None]:
        """Replace the route ``(message_id, number)``; its wire id may change."""
        ...

    def route_by_wire(self, wire_id: str) -> Deferred[RouteRecord | None]:
        """The route whose *current* wire id this is (None for superseded ids)."""
        ...

    def open_routes(self) -> Deferred[list[RouteRecord]]:
        """Routes still ``queued`` or ``sent`` (recovery at start-up)."""
        ...

    def put_intercept(self, item: InterceptRecord) -> Deferred[None]: ...

    def get_intercept(self, id: str) -> Deferred[InterceptRecord | None]: ...

    def list_intercepts(self) -> Deferred[list[InterceptRecord]]:
        """Oldest first."""
        ...

    def delete_intercept(self, id: str) -> Deferred[bool]: ...

    def save_confirmation(self, record: ConfirmationRecord) -> Deferred[None]:
        """Insert or replace by id."""
        ...

    def get_confirmation(self, id: str) -> Deferred[ConfirmationRecord | None]: ...

    def list_confirmations(self, *, open_only: bool = False) -> Deferred[list[ConfirmationRecord]]:
        """Oldest first; ``open_only``: outcome pending or in_progress."""
        ...


class TeletypeQueue(Protocol):
    """The teletype subset of :class:`switch.store.interface.Store` the engine uses."""

    def enqueue_teletype(self, item: TeletypeItem, now: float) -> Deferred[None]: ...

    def enqueue_teletype_job(self, item: TeletypeItem, now: float) -> Callable[[Any], None]:
        """:meth:`enqueue_teletype` as a write to commit with an audit record."""
        ...

    def next_teletype(self, link: str, limit: int, now: float) -> Deferred[list[TeletypeItem]]: ...

    def mark_teletype(
        self,
        id: str,
        state: TeletypeState,
        now: float,
        *,
        attempts: int | None = None,
        next_attempt: float | None = None,
    ) -> Deferred[bool]: ...

    def get_teletype(self, id: str) -> Deferred[TeletypeItem | None]: ...

    def requeue_sent(self, link: str, now: float) -> Deferred[int]: ...

    def expire_teletype(self, now: float) -> Deferred[list[TeletypeItem]]: ...

    def queue_stats(self) -> Deferred[dict[str, tuple[int, float | None]]]: ...


# --------------------------------------------------------------------------- in memory


def _run(job: Callable[[Any], None]) -> Deferred[None]:
    """A memory job run at once: every call commits at once."""
    try:
        job(None)
    except Exception:
        return fail()
    return succeed(None)


class MemoryTeletypeStore:
    """:class:`TeletypeStore` in dictionaries: every call commits at once."""

    def __init__(self) -> None:
        self.messages: dict[str, MessageRecord] = {}
        self.routes: dict[tuple[str, int], RouteRecord] = {}
        self.by_wire: dict[str, tuple[str, int]] = {}
        self.intercepts: dict[str, InterceptRecord] = {}
        self.confirmations: dict[str, ConfirmationRecord] = {}

    def save_message(self, message: MessageRecord, routes: list[RouteRecord]) -> Deferred[None]:
        return _run(self.save_message_job(message, routes))

    def save_message_job(
        self, message: MessageRecord, routes: list[RouteRecord]
    ) -> Callable[[Any], None]:
        def job(_: object) -> None:
            if message.id in self.messages:
                raise ValueError(f"message {message.id} exists")
            self.messages[message.id] = message
            for route in routes:
                self._put_route(route)

        return job

    def _put_route(self, route: RouteRecord) -> None:
        key = (route.message_id, route.number)
        old = self.routes.get(key)
        if old is not None:
            self.by_wire.pop(old.wire_id, None)
        owner = self.by_wire.get(route.wire_id)
        if owner is not None and owner != key:
            raise ValueError(f"wire id {route.wire_id} is taken")
        self.routes[key] = route
        self.by_wire[route.wire_id] = key

    def get_message(self, id: str) -> Deferred[tuple[MessageRecord, list[RouteRecord]] | None]:
        message = self.messages.get(id)
        if message is None:
            return succeed(None)
        routes = sorted(
            (r for (mid, _), r in self.routes.items() if mid == id), key=lambda r: r.number
        )
        return succeed((message, routes))

    def update_route(self, route: RouteRecord) -> Deferred[None]:
        if (route.message_id, route.number) not in self.routes:
            return fail(KeyError(route.wire_id))
        self._put_route(route)
        return succeed(None)

    def route_by_wire(self, wire_id: str) -> Deferred[RouteRecord | None]:
        key = self.by_wire.get(wire_id)
        return succeed(None if key is None else self.routes[key])

    def open_routes(self) -> Deferred[list[RouteRecord]]:
        return succeed([r for r in self.routes.values() if r.state in OPEN_STATES])

    def put_intercept(self, item: InterceptRecord) -> Deferred[None]:
        self.intercepts[item.id] = item
        return succeed(None)

    def get_intercept(self, id: str) -> Deferred[InterceptRecord | None]:
        return succeed(self.intercepts.get(id))

    def list_intercepts(self) -> Deferred[list[InterceptRecord]]:
        return succeed(sorted(self.intercepts.values(), key=lambda i: (i.created, i.id)))

    def delete_intercept(self, id: str) -> Deferred[bool]:
        return succeed(self.intercepts.pop(id, None) is not None)

    def save_confirmation(self, record: ConfirmationRecord) -> Deferred[None]:
        self.confirmations[record.id] = record
        return succeed(None)

    def get_confirmation(self, id: str) -> Deferred[ConfirmationRecord | None]:
        return succeed(self.confirmations.get(id))

    def list_confirmations(self, *, open_only: bool = False) -> Deferred[list[ConfirmationRecord]]:
        items = sorted(self.confirmations.values(), key=lambda c: (c.created, c.id))
        return succeed([c for c in items if c.open or not open_only])


class MemoryQueue:
    """The teletype queue of the Store, in memory, with the SQLite store's semantics
    (urgent before routine, then FIFO by insertion; due and unexpired only)."""

    def __init__(self) -> None:
        self.items: dict[str, TeletypeItem] = {}
        self._order: dict[str, int] = {}
        self._seq = 0

    def enqueue_teletype(self, item: TeletypeItem, now: float) -> Deferred[None]:
        return _run(self.enqueue_teletype_job(item, now))

    def enqueue_teletype_job(self, item: TeletypeItem, now: float) -> Callable[[Any], None]:
        def job(_: object) -> None:
            if item.id in self.items:
                raise ValueError(f"teletype {item.id} exists")
            self._seq += 1
            self._order[item.id] = self._seq
            self.items[item.id] = dataclasses.replace(
                item, created=item.created or now, updated=now
            )

        return job

    def next_teletype(self, link: str, limit: int, now: float) -> Deferred[list[TeletypeItem]]:
        due = [
            i
            for i in self.items.values()
            if i.link == link and i.state == "queued" and i.next_attempt <= now and i.expires > now
        ]
        due.sort(key=lambda i: (i.priority != "urgent", self._order[i.id]))
        return succeed(due[:limit])

    def mark_teletype(
        self,
        id: str,
        state: TeletypeState,
        now: float,
        *,
        attempts: int | None = None,
        next_attempt: float | None = None,
    ) -> Deferred[bool]:
        item = self.items.get(id)
        if item is None:
            return succeed(False)
        self.items[id] = dataclasses.replace(
            item,
            state=state,
            updated=now,
            attempts=item.attempts if attempts is None else attempts,
            next_attempt=item.next_attempt if next_attempt is None else next_attempt,
        )
        return succeed(True)

    def get_teletype(self, id: str) -> Deferred[TeletypeItem | None]:
        return succeed(self.items.get(id))

    def requeue_sent(self, link: str, now: float) -> Deferred[int]:
        n = 0
        for id, item in list(self.items.items()):
            if item.link == link and item.state == "sent":
                self.items[id] = dataclasses.replace(
                    item, state="queued", updated=now, next_attempt=now
                )
                n += 1
        return succeed(n)

    def expire_teletype(self, now: float) -> Deferred[list[TeletypeItem]]:
        out = []
        for id, item in list(self.items.items()):
            if item.state in ("queued", "sent") and item.expires <= now:
                self.items[id] = dataclasses.replace(item, state="expired", updated=now)
                out.append(self.items[id])
        return succeed(sorted(out, key=lambda t: t.id))

    def queue_stats(self) -> Deferred[dict[str, tuple[int, float | None]]]:
        stats: dict[str, tuple[int, float | None]] = {}
        for item in self.items.values():
            if item.state in ("queued", "sent"):
                count, oldest = stats.get(item.link, (0, None))
                stats[item.link] = (
                    count + 1,
                    item.created if oldest is None else min(oldest, item.created),
                )
        return succeed(stats)
