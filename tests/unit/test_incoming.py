"""Incoming teletype and notices reach the terminals DESIGN §6 names, committed first."""

from __future__ import annotations

import pytest

from switch.model import AdminMessage, Notice
from tests.unit.test_teletype_fakes import (
    ORI,
    TERMINALS,
    World,
    am,
    build,
    done,
    terminal,
)

YQ_FIELDS = {
    "request_type": "WANTED PERSON",
    "request_number": "1",
    "urgency": "U",
    "nic": "W123456789",
    "name": "DOE, JOHN",
}


def _am(to: tuple[str, ...], id: str = "IN-1") -> AdminMessage:
    return AdminMessage(id=id, key="AM", from_ori="MO0480100", to=to, text="HELLO")


def test_am_to_our_ori_reaches_every_terminal_with_it() -> None:
    """An AM to MO0380100 goes to each terminal with that ORI (not to another ORI's),
    audited as ``teletype.in``, with the mailbox item shape of DESIGN §9."""
    w = build()
    done(w.incoming.on_message("regional", _am((ORI,))))
    assert sorted(w.mailbox.terminals("teletype")) == ["ADMIN1", "DISPATCH1", "RECORDS1"]
    item = w.mailbox.of("teletype", "DISPATCH1")[0]
    assert {k: item[k] for k in ("id", "kind", "key", "from", "to", "text")} == {
        "id": "IN-1",
        "kind": "teletype",
        "key": "AM",
        "from": "MO0480100",
        "to": [ORI],
        "text": "HELLO",
    }
    assert item["received"].endswith("Z") and item["fallback"] is False
    audit = w.audit.of("teletype.in")[0]
    assert (
        audit["terminals"] == ["ADMIN1", "DISPATCH1", "RECORDS1"] and audit["network"] == "regional"
    )


def test_broadcast_we_receive_reaches_every_terminal() -> None:
    """An AM to ``REG`` (a broadcast we receive) goes to every terminal."""
    w = build()
    done(w.incoming.on_message("regional", _am(("REG",))))
    assert sorted(w.mailbox.terminals("teletype")) == sorted(TERMINALS)


def test_am_nobody_has_goes_to_the_fallback_and_is_flagged() -> None:
    """No terminal has the ORI: supervisors/admins get it, flagged, never dropped."""
    w = build()
    done(w.incoming.on_message("regional", _am(("MO0389999",))))
    assert w.mailbox.terminals("teletype") == ["ADMIN1"]
    assert w.mailbox.of("teletype")[0]["fallback"] is True
    assert w.audit.of("teletype.in")[0]["fallback"] is True


def test_yq_for_our_records_goes_to_records_terminals_and_is_tracked() -> None:
    """A YQ to our ORI goes only to terminals with the ``records`` role of that ORI, and
    its deadline is tracked (the item names the confirmation)."""
    w = build()
    yq = AdminMessage(
        id="YQ-1", key="YQ", from_ori="TX1234567", to=(ORI,), text="CONFIRM", fields=YQ_FIELDS
    )
    done(w.incoming.on_message("national", yq))
    assert w.mailbox.terminals("teletype") == ["RECORDS1"]
    confirmation = w.mailbox.of("teletype")[0]["confirmation"]
    assert w.store.confirmations[confirmation].direction == "incoming"
    assert w.store.confirmations[confirmation].terminals == ("RECORDS1",)


def test_yr_goes_to_the_terminal_that_sent_the_yq() -> None:
    """A YR naming our YQ's wire id reaches only the terminal that asked, and records
    the outcome."""
    w = build()
    request = done(
        w.confirmations.request(
            {"ori": "TX1234567", "nic": "W123456789", "urgency": "U"},
            TERMINALS["DISPATCH1"],
            "demo",
        )
    )
    wire = w.links.sent[0][1].id
    yr = AdminMessage(
        id="YR-1",
        key="YR",
        from_ori="TX1234567",
        to=(ORI,),
        text="CONFIRMED",
        fields={"nic": "W123456789", "confirmed": "Y"},
        in_reply_to=wire,
    )
    done(w.incoming.on_message("national", yr))
    assert w.mailbox.terminals("teletype") == ["DISPATCH1"]
    assert w.mailbox.of("teletype")[0]["confirmation"] == request["id"]
    assert w.store.confirmations[request["id"]].outcome == "confirmed"


def test_yr_without_reference_is_matched_by_nic_and_sender() -> None:
    """A YR without in_reply_to is matched by NIC and the sender being the YQ's ORI."""
    w = build()
    request = done(
        w.confirmations.request(
            {"ori": "TX1234567", "nic": "W999", "urgency": "R"}, TERMINALS["DISPATCH1"], None
        )
    )
    other = AdminMessage(
        id="YR-0",
        key="YR",
        from_ori="OK1234567",
        to=(ORI,),
        text="X",
        fields={"nic": "W999", "confirmed": "Y"},
    )
    done(w.incoming.on_message("national", other))
    assert w.store.confirmations[request["id"]].outcome == "pending"
    yr = AdminMessage(
        id="YR-2",
        key="YR",
        from_ori="TX1234567",
        to=(ORI,),
        text="NOT CONFIRMED",
        fields={"nic": "W999", "confirmed": "N"},
    )
    done(w.incoming.on_message("national", yr))
    assert w.store.confirmations[request["id"]].outcome == "not_confirmed"
    assert w.mailbox.of("teletype", "DISPATCH1")[-1]["id"] == "YR-2"


def test_unsolicited_notice_goes_to_notice_terminals_else_fallback() -> None:
    """An ER/SM tied to none of our messages goes to terminals configured for notices;
    with none configured, to the supervisors/admins, flagged."""
    w = build()
    notice = Notice(id="ER-1", key="ER", from_ori="MO0000000", code=22, text="BAD")
    done(w.incoming.on_message("state", notice))
    assert w.mailbox.terminals("teletype") == ["ADMIN1"]
    assert w.mailbox.of("teletype")[0]["fallback"] is True
    w2 = build()
    w2.incoming.set_terminals({**TERMINALS, "OPS1": terminal("OPS1", {"dispatch"}, notices=True)})
    done(w2.incoming.on_message("state", notice))
    assert w2.mailbox.terminals("teletype") == ["OPS1"]
    assert w2.mailbox.of("teletype")[0]["kind"] == "notice"


def test_notice_about_our_route_updates_it_instead() -> None:
    """An SM naming one of our wire ids is acted on by the engine (a ``delivery`` event
    to the sender) and not broadcast as a notice."""
    w = build()
    message, _ = done(w.engine.submit(am(["MO0990000"]), TERMINALS["DISPATCH1"], None))
    notice = Notice(
        id="SM-1",
        key="SM",
        from_ori="MO0000000",
        code=2,
        text="HELD",
        in_reply_to=message.id + "-1",
    )
    done(w.incoming.on_message("state", notice))
    assert w.mailbox.of("teletype") == []
    assert w.audit.of("teletype.in")[0]["route_notice"] is True


def test_mailbox_failure_fails_the_delivery_so_the_link_naks() -> None:
    """If the mailbox cannot commit, the Deferred fails (the link answers NAK 50 and the
    network sends it again): nothing is ACKed that is not stored."""
    w: World = build()
    w.mailbox.fail = True
    with pytest.raises(OSError):
        done(w.incoming.on_message("regional", _am((ORI,))))


def test_yq_redelivered_after_a_failed_commit_is_tracked_once() -> None:
    """A YQ whose first delivery failed (NAKed, sent again by the network) does not
    count as a 2nd request."""
    w = build()
    yq = AdminMessage(
        id="YQ-9", key="YQ", from_ori="TX1234567", to=(ORI,), text="CONFIRM", fields=YQ_FIELDS
    )
    w.mailbox.fail = True
    with pytest.raises(OSError):
        done(w.incoming.on_message("national", yq))
    w.mailbox.fail = False
    done(w.incoming.on_message("national", yq))
    (record,) = w.store.confirmations.values()
    assert record.request_number == 1 and record.message_ids == ("YQ-9",)
