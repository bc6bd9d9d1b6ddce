"""Hit-confirmation deadlines: 10 minutes urgent, 1 hour routine, up to three requests."""

from __future__ import annotations

import pytest

from switch.model import ValidationError
from switch.routing.hitconfirm import Confirmation


def test_deadlines_and_warning() -> None:
    """Urgent answers are due in 600 s, routine in 3600 s; warnings come before."""
    urgent = Confirmation("C1", "outgoing", "U", 1, sent_at=100.0)
    routine = Confirmation("C2", "incoming", "R", 1, sent_at=100.0)
    assert urgent.deadline == 700.0 and routine.deadline == 3700.0
    assert 100.0 < urgent.warn_at < urgent.deadline
    assert not urgent.overdue(699.9) and urgent.overdue(700.0)


def test_second_and_third_request_then_no_more() -> None:
    """An unanswered request may be repeated twice, each with a fresh deadline."""
    c = Confirmation("C1", "outgoing", "U", 1, sent_at=0.0)
    assert not c.can_resend(599.0)
    c2 = c.next_request(600.0)
    assert c2.request_number == 2 and c2.deadline == 1200.0
    c3 = c2.next_request(1200.0)
    assert c3.request_number == 3
    assert not c3.can_resend(10_000.0)
    with pytest.raises(ValidationError):
        c3.next_request(10_000.0)


def test_answer_stops_the_clock() -> None:
    """A YR with CON/Y closes it; CON/P keeps it open (and overdue-able)."""
    c = Confirmation("C1", "incoming", "U", 1, sent_at=0.0)
    assert not c.answered("Y").overdue(10_000.0)
    assert c.answered("P").overdue(10_000.0)
    assert c.answered("N").outcome == "not_confirmed"
    with pytest.raises(ValidationError):
        _ = Confirmation("C1", "incoming", "X", 1, sent_at=0.0).deadline
