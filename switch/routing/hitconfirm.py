"""Hit-confirmation deadlines (DESIGN §3, §6): pure arithmetic, the clock is the caller's.

An agency that gets a hit on another agency's record asks the entering ORI to confirm it
(YQ); the entering agency must answer (YR) within 10 minutes when urgent (``PRI/U``) or
1 hour when routine (``PRI/R``). Unanswered, the requester may send a 2nd and then a 3rd
request, each with a fresh deadline. The switch warns before a deadline passes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from switch.model import ValidationError

URGENCY_SECONDS = {"U": 600.0, "R": 3600.0}
MAX_REQUESTS = 3
#: Warn this long before a deadline (a fifth of the window: 2 min urgent, 12 min routine).
WARN_FRACTION = 0.2

Direction = Literal["outgoing", "incoming"]
Outcome = Literal["pending", "confirmed", "not_confirmed", "in_progress", "expired"]
_CON_OUTCOMES: dict[str, Outcome] = {"Y": "confirmed", "N": "not_confirmed", "P": "in_progress"}


def deadline_seconds(urgency: str) -> float:
    try:
        return URGENCY_SECONDS[urgency]
    except KeyError:
        raise ValidationError("urgency", "urgency: 'U' (10 minutes) or 'R' (1 hour)") from None


@dataclass(frozen=True)
class Confirmation:
    """One hit confirmation we asked for (``outgoing``) or were asked (``incoming``)."""

    id: str
    direction: Direction
    urgency: str
    request_number: int
    sent_at: float
    outcome: Outcome = "pending"

    @property
    def deadline(self) -> float:
        return self.sent_at + deadline_seconds(self.urgency)

    @property
    def warn_at(self) -> float:
        return self.deadline - deadline_seconds(self.urgency) * WARN_FRACTION

    def overdue(self, now: float) -> bool:
        return self.outcome in ("pending", "in_progress") and now >= self.deadline

    def can_resend(self, now: float) -> bool:
        """A 2nd or 3rd request is offered once the current one went unanswered."""
        return (
            self.direction == "outgoing"
            and self.request_number < MAX_REQUESTS
            and self.overdue(now)
        )

    def next_request(self, now: float) -> Confirmation:
        if not self.can_resend(now):
            raise ValidationError("request_number", "no further request is due")
        return replace(self, request_number=self.request_number + 1, sent_at=now)

    def answered(self, confirmed: str) -> Confirmation:
        """Record a YR's CON: Y confirmed, N not confirmed, P in progress (keeps the clock)."""
        return replace(self, outcome=_CON_OUTCOMES.get(confirmed[:1], "pending"))
