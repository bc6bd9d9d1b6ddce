"""Duplicate memory for what the networks send us (DESIGN §4).

A repeated id on a link is a duplicate: the link ACKs it again and does not hand it up a
second time. Keys are ``(link, id)``; entries live for the teletype TTL + 1 h (25 h by
default). The link only sees the :class:`DuplicateMemory` seam: this module's in-memory
implementation serves until the store makes the memory durable (same interface, so the
link does not change). :meth:`~DuplicateMemory.known` answers from memory when it can;
only a miss the memory cannot vouch for takes :meth:`~DuplicateMemory.seen`, whose
Deferred fires once SQLite has been read off the reactor thread.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Final, Protocol

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure

from switch.deferreds import all_of, nothing

log = structlog.get_logger("switch.dedup")

DEFAULT_TTL: Final = 25 * 3600.0
#: Bound on the in-memory table so that a hostile network sending fresh ids as fast as it
#: can still cannot grow it without limit (oldest entries go first).
DEFAULT_MAX_ENTRIES: Final = 1_000_000
#: How long :class:`StoreDuplicates` gathers remembered ids before writing them in one
#: commit. Each commit costs an fsync and a wake-up of the reactor; an inquiry's four
#: answers would otherwise cost four. The memory knows an id at once, so this only
#: widens the window in which a *crash* forgets an id already ACKed (see remember).
DEFAULT_FLUSH_DELAY: Final = 0.1


class DuplicateMemory(Protocol):
    """Remembers which ids each link has already accepted."""

    def known(self, link: str, msg_id: str) -> bool | None:
        """Whether ``(link, msg_id)`` was remembered and has not expired, when that is
        known without I/O (every message asks, so no Deferred); None: ask :meth:`seen`."""
        ...

    def seen(self, link: str, msg_id: str) -> Deferred[bool]:
        """Fires True when ``(link, msg_id)`` was remembered and has not expired."""
        ...

    def remember(self, link: str, msg_id: str) -> None:
        """Record ``(link, msg_id)`` as accepted: known at once, durable soon after
        (a failure to make it durable is logged here; nobody waits for it)."""
        ...


class MemoryDuplicates:
    """In-memory :class:`DuplicateMemory` with expiry by an injected clock.

    Entries expire ``ttl`` seconds after they were remembered. Because the TTL is the same
    for every entry, insertion order is expiry order: an ``OrderedDict`` purges from its
    head in O(expired) on every call, so there is no periodic sweep to schedule.
    """

    def __init__(
        self,
        clock: Callable[[], float],
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._now = clock
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now: float) -> None:
        entries = self._entries
        while entries:
            key, expires = next(iter(entries.items()))
            if expires > now:
                break
            del entries[key]

    def known(self, link: str, msg_id: str) -> bool:
        return self.contains(link, msg_id)

    def seen(self, link: str, msg_id: str) -> Deferred[bool]:
        return succeed(self.contains(link, msg_id))

    def contains(self, link: str, msg_id: str) -> bool:
        now = self._now()
        self._purge(now)
        expires = self._entries.get((link, msg_id))
        return expires is not None and expires > now

    def restore(self, link: str, msg_id: str, remembered_at: float) -> None:
        """Re-add an entry remembered earlier (at start, oldest first, so that insertion
        order stays expiry order)."""
        self._entries[(link, msg_id)] = remembered_at + self._ttl

    def remember(self, link: str, msg_id: str) -> None:
        now = self._now()
        self._purge(now)
        key = (link, msg_id)
        # Re-remembering moves the entry to the tail, keeping insertion == expiry order.
        self._entries.pop(key, None)
        self._entries[key] = now + self._ttl
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class StoreDuplicates:
    """The durable :class:`DuplicateMemory`: the store's table, kept 25 h (DESIGN §4),
    with an in-memory copy in front of it.

    :meth:`load` reads every entry younger than the TTL at start; from then on the
    memory holds everything the store does, so a check is a dict lookup instead of a
    trip to a reader thread. Only if the table held more than ``max_entries`` (or the
    memory later overflows) do misses fall back to reading the store.
    """

    def __init__(
        self,
        store: DuplicateStore,
        clock: Callable[[], float],
        *,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        call_later: Callable[..., IDelayedCall] | None = None,
        flush_delay: float = DEFAULT_FLUSH_DELAY,
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl
        self._max = max_entries
        self._memory = MemoryDuplicates(clock, ttl=ttl, max_entries=max_entries)
        self._complete = False  # the memory holds every live entry of the store
        #: With a ``call_later`` (the reactor's), writes are gathered for ``flush_delay``
        #: seconds and go to the store together; without, each goes at once.
        self._call_later = call_later
        self._flush_delay = flush_delay
        self._pending: list[tuple[str, str]] = []
        self._writing: set[Deferred[None]] = set()  # writes not yet committed
        self._timer: IDelayedCall | None = None

    async def load(self) -> int:
        """Copy the store's live entries into memory; returns how many."""
        rows = await self._store.recent_duplicates(self._clock() - self._ttl, self._max + 1)
        if len(rows) > self._max:
            return 0  # too many to hold: keep asking the store on a miss
        for link, msg_id, first_seen in rows:
            self._memory.restore(link, msg_id, first_seen)
        self._complete = True
        return len(rows)

    def known(self, link: str, msg_id: str) -> bool | None:
        if self._memory.contains(link, msg_id):
            return True
        return False if self._complete else None

    def seen(self, link: str, msg_id: str) -> Deferred[bool]:
        known = self.known(link, msg_id)
        if known is not None:
            return succeed(known)
        return self._store.duplicate_known(link, msg_id, self._clock())

    def remember(self, link: str, msg_id: str) -> None:
        """Known to :meth:`known` at once; durable after the flush delay.

        The link ACKs without waiting for the write, so a crash within the delay can
        forget an id the network already has our ACK for; the network only resends what
        it has no ACK for, so that costs nothing unless the ACK was lost at the same
        moment. Nobody waits for the write (a Deferred per message would cost the
        reactor more than the lookup): a failed one is logged here.
        """
        self._memory.remember(link, msg_id)
        if len(self._memory) >= self._max:
            self._complete = False  # the oldest entries may have been evicted
        self._pending.append((link, msg_id))
        if self._call_later is None:
            self._write_pending()
        elif self._timer is None:
            self._timer = self._call_later(self._flush_delay, self._flush_now)

    def flush(self) -> Deferred[None]:
        """Write what is gathered now; fires once every id remembered so far is durable
        or its write has failed (and been logged). Never fails. Shutdown calls it before
        the store stops."""
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._flush_now()
        return all_of(list(self._writing))

    def _flush_now(self) -> None:
        self._timer = None
        self._write_pending()

    def _write_pending(self) -> None:
        entries, self._pending = self._pending, []
        if not entries:
            return
        d = self._store.remember_duplicates(entries, self._clock())
        done: Deferred[None] = d.addCallbacks(nothing, self._write_failed, errbackArgs=(entries,))
        if not done.called:
            self._writing.add(done)
            done.addBoth(self._written, done)

    def _written(self, result: None, d: Deferred[None]) -> None:
        self._writing.discard(d)

    @staticmethod
    def _write_failed(failure: Failure, entries: list[tuple[str, str]]) -> None:
        # The ids stay in memory (duplicates are still caught until a restart).
        log.error(
            "duplicate memory write failed", count=len(entries), error=failure.getErrorMessage()
        )


class DuplicateStore(Protocol):
    """The part of :class:`switch.store.interface.Store` duplicate memory needs."""

    def duplicate_known(self, link: str, id: str, now: float) -> Deferred[bool]: ...

    def recent_duplicates(
        self, since: float, limit: int
    ) -> Deferred[list[tuple[str, str, float]]]: ...

    def remember_duplicates(
        self, entries: Sequence[tuple[str, str]], now: float
    ) -> Deferred[int]: ...
