"""The audit seam: every layer records events through this, whatever stores them.

Events are flat JSON-able mappings (str, int, bool, None, lists and dicts of those; no
floats: the chain hashes canonical JSON). ``record`` fires once the event is durably
committed, so callers answer "accepted" only after their audit record exists (DESIGN §7).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from twisted.internet.defer import Deferred, fail, succeed


class AuditUnavailable(Exception):
    """The audit trail cannot be written: callers refuse new work (HTTP 503)."""


class AuditSink(Protocol):
    def record(self, event: str, fields: Mapping[str, object]) -> Deferred[int]:
        """Append one event (``event`` is its type, e.g. ``session.logon``); fires with its
        sequence number once committed, or fails with AuditUnavailable."""
        ...

    @property
    def healthy(self) -> bool:
        """False while writes are failing."""
        ...


class MemoryAudit:
    """An in-memory sink for tests and for the daemon before the durable audit exists."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, object]]] = []
        self.fail = False

    @property
    def healthy(self) -> bool:
        return not self.fail

    def record(self, event: str, fields: Mapping[str, object]) -> Deferred[int]:
        if self.fail:
            return fail(AuditUnavailable("audit write failed"))
        self.events.append((event, dict(fields)))
        return succeed(len(self.events))

    def of(self, event: str) -> list[dict[str, object]]:
        return [f for e, f in self.events if e == event]
