"""The audit seam: every layer records events through this, whatever stores them.

Events are flat JSON-able mappings (str, int, bool, None, lists and dicts of those; no
floats: the chain hashes canonical JSON). ``record`` fires once the event is durably
committed, so callers answer "accepted" only after their audit record exists (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed


class AuditUnavailable(Exception):
    """The audit trail cannot be written: callers refuse new work (HTTP 503)."""


@dataclass(frozen=True, slots=True)
class CompanionWrite:
    """A write committed together with an audit record (``AuditSink.record``'s
    ``with_writes``), such as the mailbox item of a reply: one transaction, so neither
    exists without the other, and one Deferred for the caller instead of two and a join.
    ``job`` is a store job (:data:`switch.store.interface.StoreJob`); ``committed`` gets
    its result once the record is committed (on the reactor)."""

    job: Callable[[Any], Any]
    committed: Callable[[Any], object]


class AuditSink(Protocol):
    def record(
        self,
        event: str,
        fields: Mapping[str, object],
        with_writes: Sequence[CompanionWrite] = (),
        *,
        gather: bool = True,
    ) -> Deferred[int]:
        """Append one event (``event`` is its type, e.g. ``session.logon``), and commit
        ``with_writes`` in the same transaction; fires with its sequence number once
        committed, or fails with AuditUnavailable (and then none of them exists).
        ``gather=False``: no other write is expected with it, so its commit need not
        wait the store's commit interval for company (the inquiry record, which holds
        back the fan-out)."""
        ...

    @property
    def healthy(self) -> bool:
        """False while writes are failing."""
        ...


class MemoryAudit:
    """An in-memory sink for tests and for the daemon before the durable audit exists.
    It runs a companion write's job with no connection: it pairs only with in-memory
    companions (test fakes), never with a store's jobs."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.fail = False

    @property
    def healthy(self) -> bool:
        return not self.fail

    def record(
        self,
        event: str,
        fields: Mapping[str, object],
        with_writes: Sequence[CompanionWrite] = (),
        *,
        gather: bool = True,
    ) -> Deferred[int]:
        if self.fail:
            return fail(AuditUnavailable("audit write failed"))
        self.events.append((event, dict(fields)))
        for write in with_writes:
            write.committed(write.job(None))
        return succeed(len(self.events))

    def of(self, event: str) -> list[dict[str, object]]:
        return [f for e, f in self.events if e == event]
