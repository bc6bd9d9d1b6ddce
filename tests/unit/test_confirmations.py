"""Hit confirmations: YQ built from a hit, deadlines on the clock, next requests, replies,
the overdue count, and restart safety."""

from __future__ import annotations

import pytest

from switch.confirmations import ConfirmationNotFound
from switch.model import AdminMessage, ValidationError
from tests.unit.test_teletype_fakes import ORI, TERMINALS, World, build, done

DISPATCH = TERMINALS["DISPATCH1"]
RECORDS = TERMINALS["RECORDS1"]

HIT = {
    "record": {
        "file": "wanted_person",
        "fields": {"name": "DOE, JOHN", "dob": "1980-01-02", "sex": "M"},
        "warrant": {"nic": "W123456789", "oca": "CASE-1", "entering_ori": "TX1234567"},
    },
    "urgency": "U",
    "requester_name": "SGT SMITH",
    "requester_agency": "CITY PD",
    "phone": "5555550100",
}


def _deadlines(w: World, terminal: str) -> list[str]:
    return [i["stage"] for i in w.mailbox.of("deadline", terminal)]


def test_request_builds_the_yq_for_the_entering_ori() -> None:
    """The YQ goes to the record's entering ORI with the §3 fields, urgent for ``U``."""
    w = build()
    view = done(w.confirmations.request(HIT, DISPATCH, "demo"))
    link, yq = w.links.sent[0]
    assert link == "national" and yq.key == "YQ" and yq.to == ("TX1234567",)
    assert yq.priority == "urgent"
    assert dict(yq.fields) == {
        "name": "DOE, JOHN",
        "dob": "1980-01-02",
        "sex": "M",
        "nic": "W123456789",
        "oca": "CASE-1",
        "urgency": "U",
        "requester_name": "SGT SMITH",
        "requester_agency": "CITY PD",
        "phone": "5555550100",
        "request_type": "WANTED PERSON",
        "request_number": "1",
    }
    assert view["outcome"] == "pending" and view["request_number"] == 1
    assert w.audit.of("hitconfirm.request")[0]["nic"] == "W123456789"


def test_request_needs_an_ori_and_urgency() -> None:
    """Without the entering ORI or a valid urgency nothing is sent."""
    w = build()
    with pytest.raises(ValidationError) as err:
        done(w.confirmations.request({"nic": "W1", "urgency": "U"}, DISPATCH, None))
    assert err.value.field == "ori"
    with pytest.raises(ValidationError) as err:
        done(
            w.confirmations.request(
                {"ori": "TX1234567", "nic": "W1", "urgency": "X"}, DISPATCH, None
            )
        )
    assert err.value.field == "urgency"
    assert w.links.sent == []


def test_deadline_warning_overdue_and_next_requests() -> None:
    """Urgent: a warning at 8 minutes, overdue at 10 offering the next request; the 2nd
    and 3rd requests restart the clock; after the 3rd deadline the request expires."""
    w = build()
    view = done(w.confirmations.request(HIT, DISPATCH, "demo"))
    cid = view["id"]
    with pytest.raises(ValidationError):
        done(w.confirmations.request_next(cid, DISPATCH, "demo"))
    w.clock.advance(479)
    assert _deadlines(w, "DISPATCH1") == []
    w.clock.advance(1)
    assert _deadlines(w, "DISPATCH1") == ["warning"]
    w.clock.advance(120)
    assert _deadlines(w, "DISPATCH1") == ["warning", "overdue"]
    assert w.mailbox.of("deadline")[-1]["can_request_next"] is True
    second = done(w.confirmations.request_next(cid, DISPATCH, "demo"))
    assert second["request_number"] == 2 and w.links.sent[-1][1].fields["request_number"] == "2"
    w.clock.advance(480)
    w.clock.advance(120)
    assert _deadlines(w, "DISPATCH1") == ["warning", "overdue"] * 2
    done(w.confirmations.request_next(cid, DISPATCH, "demo"))
    w.clock.advance(600)
    assert _deadlines(w, "DISPATCH1")[-1] == "expired"
    assert w.store.confirmations[cid].outcome == "expired"
    with pytest.raises(ValidationError):
        done(w.confirmations.request_next(cid, DISPATCH, "demo"))
    assert w.confirmations.overdue_count("outgoing") == 0


def test_outcome_is_recorded_when_the_yr_arrives() -> None:
    """The YR's CON sets the outcome, timers stop and the terminal gets a
    ``hit_confirmation`` event."""
    w = build()
    view = done(w.confirmations.request(HIT, DISPATCH, "demo"))
    yr = AdminMessage(
        id="YR-1",
        key="YR",
        from_ori="TX1234567",
        to=(ORI,),
        text="OK",
        fields={"nic": "W123456789", "confirmed": "Y"},
        in_reply_to=w.links.sent[0][1].id,
    )
    done(w.incoming.on_message("national", yr))
    assert w.mailbox.of("hit_confirmation", "DISPATCH1")[0]["outcome"] == "confirmed"
    w.clock.advance(3600)
    assert _deadlines(w, "DISPATCH1") == []
    assert done(w.confirmations.get(view["id"]))["reply"]["confirmed"] == "Y"


def _incoming_yq(w: World, urgency: str = "R", number: str = "1", id: str = "YQ-1") -> str:
    yq = AdminMessage(
        id=id,
        key="YQ",
        from_ori="TX1234567",
        to=(ORI,),
        text="PLEASE CONFIRM",
        fields={"urgency": urgency, "request_number": number, "nic": "W1", "name": "DOE, JOHN"},
    )
    done(w.incoming.on_message("national", yq))
    return str(w.mailbox.of("teletype")[-1]["confirmation"])


def test_unanswered_incoming_yq_is_overdue_at_its_deadline() -> None:
    """A routine YQ for our records counts as overdue exactly at 1 hour, the gauge
    callback sees it, and the records terminal was warned at 48 minutes."""
    seen: list[int] = []
    w = build()
    w.confirmations._on_overdue = seen.append
    cid = _incoming_yq(w)
    w.clock.advance(3599)
    assert w.confirmations.overdue_count() == 0
    assert _deadlines(w, "RECORDS1") == ["warning"]
    w.clock.advance(1)
    assert w.confirmations.overdue_count() == 1
    assert seen[-1] == 1
    assert _deadlines(w, "RECORDS1") == ["warning", "overdue"]
    assert w.audit.of("hitconfirm.overdue")[0]["id"] == cid


def test_reply_sends_the_yr_and_clears_the_overdue_count() -> None:
    """``reply`` sends a YR to the requester naming its YQ, echoing the record fields;
    the outcome is recorded and the overdue count drops."""
    w = build()
    cid = _incoming_yq(w, urgency="U")
    w.clock.advance(600)
    assert w.confirmations.overdue_count() == 1
    view = done(
        w.confirmations.reply(cid, {"confirmed": "Y", "remarks": "warrant active"}, RECORDS, "demo")
    )
    link, yr = w.links.sent[-1]
    assert link == "national" and yr.key == "YR" and yr.to == ("TX1234567",)
    assert yr.in_reply_to == "YQ-1" and yr.priority == "urgent"
    assert dict(yr.fields) == {
        "request_number": "1",
        "nic": "W1",
        "name": "DOE, JOHN",
        "confirmed": "Y",
        "remarks": "WARRANT ACTIVE",
    }
    assert view["outcome"] == "confirmed"
    assert w.confirmations.overdue_count() == 0


def test_reply_checks_its_input() -> None:
    """A bad CON, an unknown id or an outgoing confirmation cannot be replied to."""
    w = build()
    cid = _incoming_yq(w)
    with pytest.raises(ValidationError):
        done(w.confirmations.reply(cid, {"confirmed": "MAYBE"}, RECORDS, None))
    with pytest.raises(ConfirmationNotFound):
        done(w.confirmations.reply("NOPE", {"confirmed": "Y"}, RECORDS, None))
    out = done(w.confirmations.request(HIT, DISPATCH, None))
    with pytest.raises(ValidationError):
        done(w.confirmations.reply(out["id"], {"confirmed": "Y"}, RECORDS, None))


def test_second_incoming_request_restarts_the_clock() -> None:
    """A 2nd YQ for the same record from the same agency updates the tracked request."""
    w = build()
    cid = _incoming_yq(w, urgency="U")
    w.clock.advance(600)
    assert w.confirmations.overdue_count() == 1
    assert _incoming_yq(w, urgency="U", number="2", id="YQ-2") == cid
    assert w.confirmations.overdue_count() == 0
    assert w.store.confirmations[cid].request_number == 2
    w.clock.advance(600)
    assert w.confirmations.overdue_count() == 1


def test_restart_rearms_timers_and_fires_missed_events() -> None:
    """After a restart the open confirmations are reloaded: a deadline that passed while
    the switch was down is reported at once, and the count is right."""
    w = build()
    cid = _incoming_yq(w, urgency="U")
    w.confirmations.stop()
    w.engine.stop()
    w.clock.advance(700)
    assert _deadlines(w, "RECORDS1") == []
    w2 = w.restart()
    assert w2.confirmations.overdue_count() == 1
    assert _deadlines(w2, "RECORDS1") == []
    w2.clock.advance(0)
    assert _deadlines(w2, "RECORDS1") == ["overdue"]
    assert w2.store.confirmations[cid].overdue_noted == 1
