"""Outbound teletype: submit, routing, store-and-forward, retries, expiry, notices."""

from __future__ import annotations

import pytest

from switch.audit.interface import AuditUnavailable
from switch.model import Notice, ValidationError
from switch.protocols.link import AckTimeout, LinkNak
from tests.unit.test_teletype_fakes import TERMINALS, FakeLinks, am, build, done

DISPATCH = TERMINALS["DISPATCH1"]


def test_each_destination_kind_goes_to_its_link_exactly_once() -> None:
    """Exact/prefix ORIs, state codes and broadcast codes each reach the link of the
    first matching rule, once, under ``<id>-<n>``; every route ends ``accepted``."""
    w = build()
    dests = ["MO0380200", "MO0480100", "REG", "STATE", "MO0990000", "TX", "TX1234567"]
    message, routes = done(w.engine.submit(am(dests), DISPATCH, "demo"))
    expected = ["local", "regional", "regional", "state", "state", "national", "national"]
    assert [r.link for r in routes] == expected
    assert [r.wire_id for r in routes] == [f"{message.id}-{n}" for n in range(1, 8)]
    assert sorted((name, m.id, m.to) for name, m in w.links.sent) == sorted(
        (link, f"{message.id}-{n}", (dest,))
        for n, (link, dest) in enumerate(zip(expected, dests, strict=True), start=1)
    )
    view = done(w.engine.get_message(message.id))
    assert [r["state"] for r in view["routes"]] == ["accepted"] * 7
    assert view["to"] == dests and view["key"] == "AM"
    accepted = [i for i in w.mailbox.of("delivery", "DISPATCH1") if i["state"] == "accepted"]
    assert sorted(i["dest"] for i in accepted) == sorted(dests)


def test_submit_commits_and_audits_before_it_returns() -> None:
    """When submit fires, the message, its routes, its queue items and the
    ``teletype.out`` audit record all exist (the API answers 202 only then)."""
    links = FakeLinks(up=set())
    w = build(links)
    message, routes = done(w.engine.submit(am(["MO0380200", "TX"]), DISPATCH, "demo"))
    assert w.audit.of("teletype.out")[0]["id"] == message.id
    assert w.audit.of("teletype.out")[0]["routes"][1]["network"] == "national"
    assert message.id in w.store.messages
    assert {i.id for i in w.queue.items.values()} == {r.wire_id for r in routes}
    assert all(i.state == "queued" for i in w.queue.items.values())
    assert links.sent == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"key": "XX", "to": ["TX"], "text": "HI"}, "key"),
        ({"key": "AM", "to": [], "text": "HI"}, "to"),
        ({"key": "AM", "to": ["TX", "OK", "KS", "NE", "IA", "IL"], "text": "HI"}, "to"),
        ({"key": "AM", "to": ["TX"], "text": "caf\u00e9"}, "text"),
        ({"key": "AM", "to": ["TX"], "text": "X" * 2001}, "text"),
        ({"key": "AM", "to": ["TX"], "text": "   "}, "text"),
        ({"key": "AM", "to": ["TX"], "text": "HI", "priority": "high"}, "priority"),
        ({"key": "AM", "to": ["TX"], "text": "HI", "fields": {"nic": "W1"}}, "fields"),
        ({"key": "YQ", "to": ["TX"], "text": "HI", "fields": {"urgency": "U"}}, "to"),
        ({"key": "YQ", "to": ["TX1234567"], "text": "HI", "fields": {"nic": "W1"}}, "urgency"),
        ({"key": "YQ", "to": ["TX1234567"], "text": "NAM/X", "fields": {}}, "text"),
        ({"key": "YR", "to": ["TX1234567"], "text": "HI", "fields": {"nic": "W1"}}, "confirmed"),
        ({"key": "AM", "to": ["TX"], "text": "HI", "colour": "red"}, "colour"),
    ],
)
def test_invalid_messages_are_refused_with_the_field(body: dict[str, object], field: str) -> None:
    """A bad key, destination list, text, priority or YQ/YR field is refused with the
    field named, and nothing is audited, stored or sent."""
    w = build()
    with pytest.raises(ValidationError) as err:
        done(w.engine.submit(body, DISPATCH, "demo"))
    assert err.value.field == field
    assert w.audit.events == [] and w.store.messages == {} and w.links.sent == []


def test_text_is_normalised_for_the_wire() -> None:
    """Line breaks and runs of spaces become single spaces (what every wire carries)."""
    w = build()
    message, _ = done(w.engine.submit(am(["TX"], text=" LINE ONE\r\nLINE  TWO "), DISPATCH, None))
    assert message.text == "LINE ONE LINE TWO"
    assert w.links.sent[0][1].text == "LINE ONE LINE TWO"


def test_audit_failure_stores_and_sends_nothing() -> None:
    """With the audit failing the submit fails (HTTP 503) before anything is committed."""
    w = build()
    w.audit.fail = True
    with pytest.raises(AuditUnavailable):
        done(w.engine.submit(am(["TX"]), DISPATCH, "demo"))
    assert w.store.messages == {} and w.queue.items == {} and w.links.sent == []


def test_held_while_down_then_urgent_first_then_fifo() -> None:
    """Nothing goes to a link that is down; when it comes up, urgent before routine,
    then submission order."""
    links = FakeLinks(up=set())
    w = build(links)
    ids = {}
    for name, priority in [("A", "routine"), ("B", "routine"), ("C", "urgent"), ("D", "routine")]:
        message, _ = done(w.engine.submit(am(["TX"], text=name, priority=priority), DISPATCH, None))
        ids[message.id + "-1"] = name
    w.clock.advance(120)
    assert links.sent == []
    links.up.add("national")
    w.engine.on_link_up("national")
    assert [ids[i] for i in links.ids()] == ["C", "A", "B", "D"]


def test_window_bounds_what_is_with_the_link() -> None:
    """At most ``window`` items are handed to a link before their ACKs; each ACK lets
    the next one go."""
    links = FakeLinks(auto=None)
    w = build(links, window=2)
    for n in range(4):
        done(w.engine.submit(am(["TX"], text=f"M{n}"), DISPATCH, None))
    assert len(links.sent) == 2
    links.ack(links.sent[0][1].id)
    assert len(links.sent) == 3
    assert w.engine.in_flight("national") == 2


def test_transient_failures_retry_with_backoff_then_intercept() -> None:
    """ACK timeouts are retried after 5 s, then 10 s; the 3rd failure (max_attempts 3)
    sends the route to the intercept queue, state ``intercepted``."""
    links = FakeLinks()
    links.fail_next = [AckTimeout("x", 10.0) for _ in range(3)]
    w = build(links, max_attempts=3, retry_initial=5.0)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    wire = message.id + "-1"
    assert links.ids() == [wire]
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "queued"
    w.clock.advance(4.9)
    assert len(links.sent) == 1
    w.clock.advance(0.1)
    assert len(links.sent) == 2
    w.clock.advance(9.9)
    assert len(links.sent) == 2
    w.clock.advance(0.1)
    assert links.ids() == [wire] * 3
    assert w.store.intercepts[wire].reason == "retries_exhausted"
    assert w.queue.items[wire].state == "intercepted"
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "intercepted"
    w.clock.advance(3600)
    assert len(links.sent) == 3
    states = [i["state"] for i in w.mailbox.of("delivery")]
    assert states == ["sent", "queued", "sent", "queued", "sent", "intercepted"]


def test_transient_nak_is_retried_and_then_delivered() -> None:
    """NAK 31 (window exceeded) is transient: the retry is delivered under the same id."""
    links = FakeLinks()
    links.fail_next = [LinkNak(31, "WINDOW EXCEEDED")]
    w = build(links)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    w.clock.advance(5)
    assert links.ids() == [message.id + "-1"] * 2
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "accepted"


def test_nak_19_is_rejected_into_the_intercept_queue() -> None:
    """A permanent NAK (19 invalid destination) is not retried: ``rejected``, intercepted."""
    links = FakeLinks(auto=None)
    w = build(links)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    wire = message.id + "-1"
    links.nak(wire, 19, "INVALID DESTINATION")
    w.clock.advance(3600)
    assert links.ids() == [wire]
    assert w.store.intercepts[wire].reason == "rejected"
    assert "19" in w.store.intercepts[wire].detail
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "rejected"
    assert w.audit.of("intercept.add")[0]["id"] == wire


def test_ttl_expiry_goes_to_the_intercept_queue() -> None:
    """A route still undelivered after the TTL is ``expired``, intercepted, and never
    sent when its link returns."""
    links = FakeLinks(up=set())
    w = build(links, ttl=3600.0, tick=60.0)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    w.clock.advance(3600 + 60)
    wire = message.id + "-1"
    assert w.store.intercepts[wire].reason == "expired"
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "expired"
    links.up.add("national")
    w.engine.on_link_up("national")
    assert links.sent == []


def test_expiry_withdraws_an_item_still_with_the_link() -> None:
    """An item with the link (un-ACKed) past its TTL is withdrawn (its Deferred is
    cancelled) and a late ACK changes nothing."""
    links = FakeLinks(auto=None)
    w = build(links, ttl=600.0, tick=60.0)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    pending = links.pending[message.id + "-1"]
    w.clock.advance(660)
    assert pending.called  # cancelled
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "expired"


def test_unroutable_destination_is_intercepted_with_network_null() -> None:
    """A destination whose rule has no link is ``intercepted`` with ``network: null``;
    the other routes go on."""
    w = build()
    message, routes = done(w.engine.submit(am(["IL0000001", "TX"]), DISPATCH, None))
    assert [(r.link, r.state) for r in routes] == [(None, "intercepted"), ("national", "queued")]
    assert w.store.intercepts[message.id + "-1"].reason == "unroutable"
    assert w.links.ids() == [message.id + "-2"]


def test_no_second_copy_while_the_link_holds_it_across_a_reconnect() -> None:
    """While the link layer holds an un-ACKed item over a reconnect (it resends it
    itself), link-up does not hand the same wire id over again; one ACK, one delivery."""
    links = FakeLinks(auto=None)
    w = build(links)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    links.up.discard("national")
    w.clock.advance(30)
    links.up.add("national")
    w.engine.on_link_up("national")
    w.clock.advance(30)
    assert links.ids() == [message.id + "-1"]
    links.ack(message.id + "-1")
    accepted = [i for i in w.mailbox.of("delivery") if i["state"] == "accepted"]
    assert len(accepted) == 1


def test_restart_resends_unacked_with_the_same_id_and_the_network_keeps_one() -> None:
    """After a kill with an item sent but not ACKed, the restarted engine sends it again
    under the same wire id; the network's duplicate memory keeps one copy."""
    links = FakeLinks(auto=None)
    w = build(links)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    links.pending.clear()  # the process dies: its Deferreds are gone
    links.auto = "ack"
    w2 = w.restart()
    wire = message.id + "-1"
    assert links.ids() == [wire, wire]
    assert links.received["national"] == [wire]
    assert done(w2.engine.get_message(message.id))["routes"][0]["state"] == "accepted"


def test_restart_recovers_a_route_whose_queue_item_was_never_written() -> None:
    """A crash between committing the message and its queue item: start-up queues it."""
    w = build(FakeLinks(up=set()))
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    w.queue.items.clear()
    w.links.up.add("national")
    w.restart()
    assert w.links.ids() == [message.id + "-1"]


def test_sm_02_held_by_the_network_counts_as_accepted() -> None:
    """SM .02 (destination down, the network stores and forwards): the route stays
    ``accepted`` and the terminal is told why."""
    w = build()
    message, _ = done(w.engine.submit(am(["MO0990000"]), DISPATCH, None))
    notice = Notice(
        id="N1",
        key="SM",
        from_ori="MO0000000",
        code=2,
        text="HELD",
        in_reply_to=message.id + "-1",
    )
    assert done(w.engine.on_notice("state", notice)) is True
    last = w.mailbox.of("delivery")[-1]
    assert last["state"] == "accepted" and "SM .02" in last["reason"]


def test_sm_04_resends_under_a_fresh_wire_id_after_backoff() -> None:
    """SM .04 (destination down, resend): queued again under ``<id>-2`` (the network
    remembers ``-1`` as done) after the backoff, and delivered."""
    w = build()
    message, _ = done(w.engine.submit(am(["MO0990000"]), DISPATCH, None))
    notice = Notice(
        id="N2",
        key="SM",
        from_ori="MO0000000",
        code=4,
        text="RESEND",
        in_reply_to=message.id + "-1",
    )
    assert done(w.engine.on_notice("state", notice)) is True
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "queued"
    w.clock.advance(w.engine.backoff(1))
    assert w.links.ids() == [message.id + "-1", message.id + "-2"]
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "accepted"


def test_er_19_after_the_ack_rejects_the_route() -> None:
    """An ER .19. naming a wire id (the state network ACKs, then errs) rejects the route."""
    w = build()
    message, _ = done(w.engine.submit(am(["MO0990000"]), DISPATCH, None))
    notice = Notice(
        id="N3",
        key="ER",
        from_ori="MO0000000",
        code=19,
        text="INVALID DESTINATION",
        in_reply_to=message.id + "-1",
    )
    assert done(w.engine.on_notice("state", notice)) is True
    assert w.store.intercepts[message.id + "-1"].reason == "rejected"


def test_notice_about_nothing_of_ours_is_not_handled() -> None:
    """A notice with no or an unknown reference is left to the incoming router."""
    w = build()
    notice = Notice(id="N4", key="SM", from_ori="MO0000000", code=2, text="X", in_reply_to="ZZ-1")
    assert done(w.engine.on_notice("state", notice)) is False


def test_another_terminals_message_is_not_found() -> None:
    """``GET /v1/messages/{id}`` for a message another terminal sent is None (404)."""
    w = build()
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    assert done(w.engine.get_message(message.id, "RECORDS1")) is None
    assert done(w.engine.get_message(message.id, "DISPATCH1"))["id"] == message.id
    assert done(w.engine.get_message("NOPE")) is None


def test_yq_fields_are_normalised() -> None:
    """YQ fields are checked and normalised (name, dob, upper case) and sent as given."""
    w = build()
    body = {
        "key": "YQ",
        "to": ["TX1234567"],
        "text": "PLEASE CONFIRM",
        "priority": "urgent",
        "fields": {"urgency": "u", "nic": "w123456789", "name": "doe,john", "dob": "1980-01-02"},
    }
    message, _ = done(w.engine.submit(body, DISPATCH, None))
    assert dict(message.fields) == {
        "urgency": "U",
        "nic": "W123456789",
        "name": "DOE, JOHN",
        "dob": "1980-01-02",
        "request_number": "1",
    }
    assert w.links.sent[0][1].fields["name"] == "DOE, JOHN"


def test_removed_link_moves_its_queue_to_the_intercept_queue() -> None:
    """A reload that removes a link moves every route still waiting for it (queued or
    with the link) to the intercept queue as ``link_removed``; other links keep theirs."""
    links = FakeLinks(up={"local"})
    w = build(links)
    _, waiting = done(w.engine.submit(am(["KS", "MO0380200"]), DISPATCH, "demo"))
    w.engine.set_rules(w.engine.rules, ["local", "regional", "state"])
    assert done(w.engine.on_link_removed("national")) == 1
    item = done(w.intercept.get(waiting[0].wire_id))
    assert item["reason"] == "link_removed" and item["route"]["state"] == "intercepted"
    assert w.queue.items[waiting[0].wire_id].state == "intercepted"
    view = done(w.engine.get_message(waiting[0].message_id))
    assert [r["state"] for r in view["routes"]] == ["intercepted", "accepted"]
