"""The records of teletype state (messages, routes, intercept items, hit confirmations).

They live in the store package so that every store engine (SQLite here, PostgreSQL one
day) builds them without importing the engine above it; :mod:`switch.teletype_store`
re-exports them with the :class:`~switch.teletype_store.TeletypeStore` seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from switch.routing.hitconfirm import Confirmation, Direction, Outcome

from .interface import TeletypeState

#: Route states in which the route still waits to be delivered.
OPEN_STATES: Final = frozenset({"queued", "sent"})
#: Confirmation outcomes that still have a deadline running.
OPEN_OUTCOMES: Final = frozenset({"pending", "in_progress"})


@dataclass(frozen=True)
class MessageRecord:
    """One teletype message as a terminal submitted it (after validation)."""

    id: str
    terminal: str
    operator: str | None
    key: str
    from_ori: str
    to: tuple[str, ...]
    text: str
    priority: str
    fields: Mapping[str, str]
    in_reply_to: str | None
    created: float


@dataclass(frozen=True)
class RouteRecord:
    """One destination of one message and where its delivery stands (DESIGN §6)."""

    message_id: str
    number: int
    dest: str
    link: str | None
    state: TeletypeState
    wire_id: str
    updated: float
    text: str | None = None  # an admin's edit of the text for this route
    attempts: int = 0

    @property
    def wire_number(self) -> int:
        return int(self.wire_id.rsplit("-", 1)[1])


@dataclass(frozen=True)
class InterceptRecord:
    """A route an admin must look at (DESIGN §6); ``id`` is its wire id at the time."""

    id: str
    message_id: str
    number: int
    reason: str
    detail: str
    created: float
    locked_by: str | None = None
    lock_session: str | None = None
    lock_expires: float | None = None

    def locked(self, now: float) -> bool:
        return self.lock_session is not None and (self.lock_expires or 0.0) > now


@dataclass(frozen=True)
class ConfirmationRecord:
    """A hit confirmation we asked for (outgoing) or were asked (incoming)."""

    id: str
    direction: Direction
    urgency: str
    request_number: int
    sent_at: float
    outcome: Outcome
    terminals: tuple[str, ...]
    counterpart: str
    message_ids: tuple[str, ...]
    fields: Mapping[str, str]
    created: float
    updated: float
    warned: int = 0
    overdue_noted: int = 0
    reply: Mapping[str, str] | None = None

    @property
    def confirmation(self) -> Confirmation:
        """The pure deadline arithmetic of :mod:`switch.routing.hitconfirm`."""
        return Confirmation(
            id=self.id,
            direction=self.direction,
            urgency=self.urgency,
            request_number=self.request_number,
            sent_at=self.sent_at,
            outcome=self.outcome,
        )

    @property
    def open(self) -> bool:
        return self.outcome in OPEN_OUTCOMES
