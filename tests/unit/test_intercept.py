"""The intercept queue: locks, edit, reroute, resend, delete, all audited."""

from __future__ import annotations

import pytest

from switch.intercept import InterceptLocked, InterceptNotFound
from switch.model import ValidationError
from tests.unit.test_teletype_fakes import TERMINALS, FakeLinks, World, am, build, done

DISPATCH = TERMINALS["DISPATCH1"]


def _unroutable(w: World) -> tuple[str, str]:
    message, _ = done(w.engine.submit(am(["IL0000001"], text="FIRST TEXT"), DISPATCH, "demo"))
    return message.id, message.id + "-1"


def test_actions_need_the_callers_lock() -> None:
    """Without a lock, or with another session's, every action fails with 409."""
    w = build()
    _, item = _unroutable(w)
    with pytest.raises(InterceptLocked) as err:
        done(w.intercept.edit(item, "alice", "S-A", text="NEW"))
    assert err.value.status == 409
    done(w.intercept.lock(item, "alice", "S-A"))
    for action in (
        lambda: w.intercept.lock(item, "bob", "S-B"),
        lambda: w.intercept.edit(item, "bob", "S-B", text="NEW"),
        lambda: w.intercept.reroute(item, "bob", "S-B", "national"),
        lambda: w.intercept.resend(item, "bob", "S-B"),
        lambda: w.intercept.delete(item, "bob", "S-B"),
    ):
        with pytest.raises(InterceptLocked) as err:
            done(action())
        assert err.value.locked_by == "alice"
    assert done(w.intercept.get(item))["locked_by"] == "alice"


def test_lock_expires_after_15_minutes() -> None:
    """A lock lapses after 15 minutes: another admin may take it, the first loses it."""
    w = build()
    _, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    w.clock.advance(899)
    with pytest.raises(InterceptLocked):
        done(w.intercept.lock(item, "bob", "S-B"))
    w.clock.advance(1)
    assert done(w.intercept.get(item))["locked_by"] is None
    done(w.intercept.lock(item, "bob", "S-B"))
    with pytest.raises(InterceptLocked):
        done(w.intercept.edit(item, "alice", "S-A", text="NEW"))


def test_lock_ends_with_the_session() -> None:
    """Logging off releases the session's locks (audited)."""
    w = build()
    _, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    assert done(w.intercept.session_ended("S-A")) == 1
    done(w.intercept.lock(item, "bob", "S-B"))
    assert w.audit.of("intercept.unlock")[0]["cause"] == "session_end"


def test_edit_destination_then_resend_is_delivered_and_audited() -> None:
    """An unroutable item edited to a routable destination and resent is delivered
    under the message's next wire id; lock, edit and resend are audited."""
    w = build()
    message_id, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    view = done(w.intercept.edit(item, "alice", "S-A", to=["TX1234567"], text="NEW  TEXT"))
    assert view["route"]["network"] == "national"
    assert view["message"]["text"] == "NEW TEXT"
    result = done(w.intercept.resend(item, "alice", "S-A"))
    assert result == {
        "dest": "TX1234567",
        "network": "national",
        "state": "queued",
        "wire_id": f"{message_id}-2",
    }
    assert [(n, m.id, m.to, m.text) for n, m in w.links.sent] == [
        ("national", f"{message_id}-2", ("TX1234567",), "NEW TEXT")
    ]
    route = done(w.engine.get_message(message_id))["routes"][0]
    assert (route["dest"], route["network"], route["state"]) == (
        "TX1234567",
        "national",
        "accepted",
    )
    assert done(w.intercept.list_items()) == []
    events = [e for e, _ in w.audit.events if e.startswith("intercept.")]
    assert events == ["intercept.add", "intercept.lock", "intercept.edit", "intercept.resend"]
    assert w.audit.of("intercept.edit")[0]["operator"] == "alice"


def test_reroute_a_rejected_item_to_another_link_and_resend() -> None:
    """A NAK 19 item rerouted to another link and resent is delivered there."""
    links = FakeLinks(auto=None)
    w = build(links)
    message, _ = done(w.engine.submit(am(["TX"]), DISPATCH, None))
    item = message.id + "-1"
    links.nak(item, 19)
    links.auto = "ack"
    done(w.intercept.lock(item, "alice", "S-A"))
    with pytest.raises(ValidationError):
        done(w.intercept.reroute(item, "alice", "S-A", "nowhere"))
    done(w.intercept.reroute(item, "alice", "S-A", "state"))
    done(w.intercept.resend(item, "alice", "S-A"))
    assert links.sent[-1][0] == "state" and links.sent[-1][1].id == message.id + "-2"
    assert done(w.engine.get_message(message.id))["routes"][0]["state"] == "accepted"
    assert w.audit.of("intercept.reroute")[0]["network"] == "state"


def test_unroutable_cannot_be_resent_until_routed() -> None:
    """Resending an item with no link is refused (400); it stays in the queue."""
    w = build()
    _, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    with pytest.raises(ValidationError) as err:
        done(w.intercept.resend(item, "alice", "S-A"))
    assert err.value.field == "network"
    assert [i["id"] for i in done(w.intercept.list_items())] == [item]


def test_delete_removes_the_item_and_is_audited() -> None:
    """Delete drops the item for good (audited); the route keeps its last state."""
    w = build()
    message_id, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    done(w.intercept.delete(item, "alice", "S-A"))
    assert done(w.intercept.list_items()) == []
    assert w.audit.of("intercept.delete")[0] == {
        "id": item,
        "msg_id": message_id,
        "operator": "alice",
    }
    assert done(w.engine.get_message(message_id))["routes"][0]["state"] == "intercepted"
    with pytest.raises(InterceptNotFound):
        done(w.intercept.get(item))


def test_item_shape() -> None:
    """Items show ``{id, reason, message, locked_by}`` plus the route (DESIGN §9)."""
    w = build()
    message_id, item = _unroutable(w)
    view = done(w.intercept.get(item))
    assert view["id"] == item and view["reason"] == "unroutable" and view["locked_by"] is None
    assert view["message"]["id"] == message_id and view["message"]["to"] == ["IL0000001"]
    assert view["route"] == {
        "number": 1,
        "dest": "IL0000001",
        "network": None,
        "state": "intercepted",
    }


def test_edit_checks_its_input() -> None:
    """Edits are validated like a new message: one destination, printable text."""
    w = build()
    _, item = _unroutable(w)
    done(w.intercept.lock(item, "alice", "S-A"))
    with pytest.raises(ValidationError):
        done(w.intercept.edit(item, "alice", "S-A", to=["TX", "OK"]))
    with pytest.raises(ValidationError):
        done(w.intercept.edit(item, "alice", "S-A", text="\x00"))
    with pytest.raises(ValidationError):
        done(w.intercept.edit(item, "alice", "S-A"))
