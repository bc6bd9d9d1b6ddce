"""The link state machine (DESIGN §4) with task.Clock and in-memory transports."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.python.failure import Failure

from switch.protocols.dedup import MemoryDuplicates
from switch.protocols.link import (
    AUTH_FAILED,
    CONNECTING,
    DOWN,
    LOGGING_ON,
    MAX_FRAMES_WHILE_BLOCKED,
    MAX_REJECTS_IN_A_ROW,
    UP,
    AckTimeout,
    Link,
    LinkDown,
    LinkNak,
    WindowFull,
)
from tests.unit.test_link_fakes import Net, inquiry, make_link, teletype


def up_link(**kwargs: Any) -> tuple[Net, Link, list[Any], Any]:
    net = Net()
    link, received, metrics = make_link(net, **kwargs)
    link.start()
    net.logon()
    assert link.state == UP
    return net, link, received, metrics


def result_of(d: Deferred[Any]) -> list[Any]:
    """Collect a Deferred's outcome (value or Failure) without losing an error."""
    out: list[Any] = []
    d.addBoth(out.append)
    return out


def next_dial_delay(net: Net) -> float:
    """Advance the clock to the next dial and return how long that took."""
    start = net.clock.seconds()
    while not net.dials:
        calls = net.clock.getDelayedCalls()
        assert calls, "nothing scheduled: the link would never redial"
        net.clock.advance(min(c.getTime() for c in calls) - net.clock.seconds())
    return net.clock.seconds() - start


# --------------------------------------------------------------------------- states


def test_states_on_a_good_logon() -> None:
    """A link goes down -> connecting -> logging_on -> up, and tells its listeners."""
    net = Net()
    link, _, metrics = make_link(net)
    seen: list[tuple[str, str]] = []
    link.add_listener(lambda _link, old, new: seen.append((old, new)))
    link.start()
    assert link.state == CONNECTING
    net.accept()
    assert link.state == LOGGING_ON
    assert net.sent() == [{"t": "logon", "station": "MO0380100", "secret": "s3cret"}]
    net.feed({"t": "logon_ok"})
    assert seen == [(DOWN, CONNECTING), (CONNECTING, LOGGING_ON), (LOGGING_ON, UP)]
    assert metrics.states[-1] == ("local", UP)
    assert link.status()["state"] == UP
    assert link.status()["last_error"] is None


def test_backoff_doubles_from_one_second_to_sixty() -> None:
    """Refused dials are retried after 1, 2, 4, ..., 32, 60, 60 s; each redial is counted."""
    net = Net()
    link, _, metrics = make_link(net)
    link.start()
    delays = []
    for _ in range(8):
        net.refuse()
        assert link.state == DOWN
        delays.append(next_dial_delay(net))
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]
    assert metrics.reconnects == 8
    assert "connect failed" in (link.last_error or "")


def test_backoff_jitter_only_shortens() -> None:
    """Jitter spreads redials below the nominal delay, never above the 60 s cap."""
    net = Net()
    link, _, _ = make_link(net, jitter=lambda: 0.5)
    link.start()
    net.refuse()
    assert next_dial_delay(net) == pytest.approx(0.9)


def test_backoff_resets_after_a_stable_minute() -> None:
    """A session that stayed up 60 s resets the backoff; a shorter one does not."""
    net = Net()
    link, _, _ = make_link(net)
    link.start()
    for _ in range(4):  # 1, 2, 4, 8
        net.refuse()
        next_dial_delay(net)
    net.logon()
    net.clock.advance(30)
    net.feed({"t": "hb"})
    net.close()  # flapping: up for only 30 s
    assert link.state == DOWN
    assert next_dial_delay(net) == 16
    net.logon()
    for _ in range(4):  # keep it alive past the stable minute
        net.clock.advance(15)
        net.feed({"t": "hb"})
    net.close()
    assert next_dial_delay(net) == 1


def test_logon_refused_waits_five_minutes() -> None:
    """A refused logon means auth_failed, the connection closed, a new logon after 300 s."""
    net = Net()
    link, _, _ = make_link(net)
    link.start()
    net.logon(ok=False)
    assert link.state == AUTH_FAILED
    assert link.last_error == "logon refused: bad secret"
    assert net.transport is not None and net.transport.disconnecting
    net.clock.advance(0)  # the close reaches the protocol: still auth_failed
    assert link.state == AUTH_FAILED
    net.clock.advance(299.9)
    assert not net.dials
    net.clock.advance(0.1)
    assert link.state == CONNECTING
    net.logon()
    assert link.state == UP


def test_retry_after_refused_logon_dials_at_once() -> None:
    """``switchctl link retry`` does not wait out the 5 minutes."""
    net = Net()
    link, _, _ = make_link(net)
    link.start()
    net.logon(ok=False)
    assert link.retry() is True
    assert link.state == CONNECTING and len(net.dials) == 1
    net.logon()
    assert link.state == UP
    for _ in range(20):  # the old 5-minute timer was cancelled
        net.clock.advance(15)
        net.feed({"t": "hb"})
    assert not net.dials and link.state == UP
    assert link.retry() is False  # nothing to retry while up


def test_logon_timeout_redials() -> None:
    """No logon result within the logon timeout: the connection is dropped, then redialled."""
    net = Net()
    link, _, _ = make_link(net, logon_timeout=5.0)
    link.start()
    net.accept()
    net.clock.advance(5)
    assert link.state == DOWN
    assert net.transport is not None and net.transport.disconnected
    assert next_dial_delay(net) == 1


def test_secret_read_failure_is_a_failed_dial() -> None:
    """A missing or unsafe secret file leaves the link down with the reason, and retried."""
    net = Net()

    def secret() -> str:
        raise OSError("var/secrets/local.secret: mode 0644 lets group or others read it")

    link, _, _ = make_link(net, secret=secret)
    link.start()
    assert link.state == DOWN
    assert "mode 0644" in (link.last_error or "")
    assert not net.dials
    net.clock.advance(1)
    assert link.state == DOWN  # tried again, failed again
    assert link.status()["last_error"] is not None


def test_missing_codec_leaves_the_link_down_without_dialling() -> None:
    """A network whose codec cannot be built stays down, says why, and retries later."""
    net = Net()
    tries: list[int] = []

    def codec() -> Any:
        tries.append(1)
        raise ModuleNotFoundError("No module named 'switch.formats.state'")

    link, _, _ = make_link(net, codec_factory=codec)
    link.start()
    assert link.state == DOWN and not net.dials
    assert "codec unavailable" in (link.last_error or "")
    assert next_dial_delay_or_none(net) is None
    assert len(tries) > 1


def next_dial_delay_or_none(net: Net) -> float | None:
    """Like next_dial_delay for a link that never dials: None after a few retries."""
    for _ in range(5):
        net.clock.advance(60)
        if net.dials:
            return net.clock.seconds()
    return None


# --------------------------------------------------------------------------- timers


def test_heartbeat_after_idle_send() -> None:
    """A heartbeat goes out after ``heartbeat`` seconds without sending, and not before."""
    net, link, _, _ = up_link()
    net.sent()
    net.clock.advance(14.9)
    assert net.sent() == []
    net.clock.advance(0.1)
    assert net.sent() == [{"t": "hb"}]
    net.feed({"t": "hb"})
    net.clock.advance(10)
    result_of(link.send(teletype("T1")))  # sending resets the idle timer
    net.sent()
    net.clock.advance(14)
    assert net.sent() == []
    net.clock.advance(1)
    assert net.sent() == [{"t": "hb"}]


def test_dead_link_after_three_heartbeats_of_silence() -> None:
    """Traffic keeps a link alive; 45 s of silence closes it, and it is redialled."""
    net, link, _, _ = up_link()
    for _ in range(5):
        net.clock.advance(40)
        net.feed({"t": "hb"})
    assert link.state == UP
    net.clock.advance(44.9)
    assert link.state == UP
    net.clock.advance(0.1)
    assert link.state == DOWN
    assert "nothing received for 45 s" in (link.last_error or "")
    assert net.transport is not None and net.transport.disconnected
    assert next_dial_delay(net) == 1


# --------------------------------------------------------------------------- send


def test_send_fires_on_ack() -> None:
    """send() fires with the network's ACK; the frame carries the message id."""
    net, link, _, metrics = up_link()
    net.sent()
    result = result_of(link.send(inquiry("Q1")))
    assert net.sent() == [{"t": "query", "id": "Q1", "subject": "person"}]
    assert result == []
    assert link.queue_depth == 1
    net.feed({"t": "ack", "id": "Q1"})
    assert result[0].id == "Q1"
    assert link.queue_depth == 0
    assert ("out", "inquiry") in metrics.messages and ("in", "ack") in metrics.messages


def test_nak_fails_with_its_code() -> None:
    """A NAK fails the send with LinkNak carrying the network's code and text."""
    net, link, _, _ = up_link()
    result = result_of(link.send(teletype("T1")))
    net.feed({"t": "nak", "id": "T1", "code": 19, "text": "INVALID DESTINATION"})
    error = result[0].value
    assert isinstance(error, LinkNak)
    assert (error.code, error.text, error.local) == (19, "INVALID DESTINATION", False)


def test_unencodable_message_fails_locally() -> None:
    """A message the codec cannot express fails with a local LinkNak and frees its slot."""
    net, link, _, _ = up_link()
    net.sent()
    result = result_of(link.send(teletype("T1", text="UNENCODABLE")))
    assert isinstance(result[0].value, LinkNak) and result[0].value.local
    assert result[0].value.code == 22
    assert net.sent() == []
    assert link.queue_depth == 0


def test_ack_timeout() -> None:
    """No ACK within ack_timeout: AckTimeout; a late ACK is ignored."""
    net, link, _, _ = up_link(ack_timeout=10.0)
    result = result_of(link.send(inquiry("Q1")))
    net.clock.advance(9.9)
    assert result == []
    net.clock.advance(0.1)
    assert isinstance(result[0].value, AckTimeout)
    assert result[0].value.msg_id == "Q1"
    net.feed({"t": "ack", "id": "Q1"})  # late: nothing to fire, nothing raised
    assert link.queue_depth == 0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(min_value=0.0, max_value=1.0), st.booleans()), max_size=12))
def test_each_ack_times_out_exactly_at_its_own_deadline(plan: list[tuple[float, bool]]) -> None:
    """Messages sent at staggered times: the ACKed ones never time out; every other one
    times out exactly ack_timeout after it was sent, one timer serving them all."""
    net, link, _, _ = up_link(ack_timeout=10.0)
    sent_at: dict[str, float] = {}
    settled: dict[str, tuple[float, Any]] = {}

    def settle(result: Any, msg_id: str) -> None:
        settled[msg_id] = (net.clock.seconds(), result)

    for n, (gap, acked) in enumerate(plan):
        net.clock.advance(gap)
        msg_id = f"Q{n}"
        sent_at[msg_id] = net.clock.seconds()
        link.send(inquiry(msg_id)).addBoth(settle, msg_id)
        if acked:
            net.feed({"t": "ack", "id": msg_id})
    end = net.clock.seconds() + 10.0
    while net.clock.seconds() < end:  # from one scheduled call to the next, exactly
        due = min(c.getTime() for c in net.clock.getDelayedCalls())
        net.clock.advance(max(0.0, min(due, end) - net.clock.seconds()))
    for n, (_, acked) in enumerate(plan):
        at, result = settled[f"Q{n}"]
        if acked:
            assert not isinstance(result, Failure) and at == sent_at[f"Q{n}"]
        else:
            assert isinstance(result.value, AckTimeout)
            assert at == pytest.approx(sent_at[f"Q{n}"] + 10.0)
    assert link.queue_depth == 0
    assert link.state == UP


def test_inquiry_refused_at_once_while_down() -> None:
    """Inquiries are never queued: a link that is not up fails them with LinkDown at once."""
    net = Net()
    link, _, _ = make_link(net)
    link.start()
    result = result_of(link.send(inquiry("Q1")))
    assert isinstance(result[0].value, LinkDown)
    assert result[0].value.state == CONNECTING


def test_window_full_inquiry_fails_teletype_waits() -> None:
    """With 64 un-ACKed, another inquiry gets WindowFull; teletype waits for a free slot."""
    net, link, _, _ = up_link()
    net.sent()
    results = [result_of(link.send(inquiry(f"Q{i}"))) for i in range(64)]
    assert len(net.sent()) == 64
    late = result_of(link.send(inquiry("Q64")))
    assert isinstance(late[0].value, WindowFull)
    waiting = result_of(link.send(teletype("T1")))
    assert net.sent() == []
    assert link.queue_depth == 65
    net.feed({"t": "ack", "id": "Q7"})
    assert results[7][0].id == "Q7"
    assert [f["id"] for f in net.sent()] == ["T1"]
    net.feed({"t": "ack", "id": "T1"})
    assert waiting[0].id == "T1"
    for i in range(64):
        if i != 7:
            net.feed({"t": "ack", "id": f"Q{i}"})
    assert link.queue_depth == 0


def test_urgent_teletype_goes_before_routine() -> None:
    """Teletype waiting for the window leaves urgent first, then in arrival order."""
    net, link, _, _ = up_link(window=1)
    net.sent()
    for msg in (teletype("T1"), teletype("T2"), teletype("T3", priority="urgent")):
        result_of(link.send(msg))
    for expected in ("T1", "T3", "T2"):
        (frame,) = net.sent()
        assert frame["id"] == expected
        net.feed({"t": "ack", "id": expected})


def test_cancelled_teletype_is_withdrawn() -> None:
    """Cancelling a send's Deferred removes the teletype from the queue (TTL expiry above)."""
    net, link, _, _ = up_link(window=1)
    net.sent()
    result_of(link.send(teletype("T1")))
    waiting = link.send(teletype("T2"))
    outcome = result_of(waiting)
    waiting.cancel()
    assert isinstance(outcome[0].value, CancelledError)
    net.feed({"t": "ack", "id": "T1"})
    assert [f["id"] for f in net.sent()] == ["T1"]


def test_teletype_resent_after_reconnect_with_same_id() -> None:
    """On a lost connection in-flight inquiries fail with LinkDown; teletype is resent."""
    net, link, _, _ = up_link()
    net.sent()
    q = result_of(link.send(inquiry("Q1")))
    t = result_of(link.send(teletype("T1")))
    queued_while_down: list[Any] = []
    assert [f["id"] for f in net.sent()] == ["Q1", "T1"]
    net.close()
    assert link.state == DOWN
    assert isinstance(q[0].value, LinkDown)
    assert t == []
    queued_while_down = result_of(link.send(teletype("T2")))
    net.clock.advance(10)  # the ACK timer of T1 died with the connection
    assert t == []
    next_dial_delay(net)
    net.logon()
    assert [(f["t"], f["id"]) for f in net.sent()] == [("msg", "T1"), ("msg", "T2")]
    net.feed({"t": "ack", "id": "T1"})
    net.feed({"t": "ack", "id": "T2"})
    assert t[0].id == "T1" and queued_while_down[0].id == "T2"


def test_stop_logs_off() -> None:
    """stop() sends a logoff, closes, stays down and fails what still waits with LinkDown."""
    net, link, _, _ = up_link()
    net.sent()
    waiting = result_of(link.send(teletype("T1")))
    done = result_of(link.stop())
    assert net.sent()[-1] == {"t": "logoff"}
    assert net.transport is not None and net.transport.disconnecting
    net.clock.advance(0)
    assert done == [None]
    assert link.state == DOWN
    assert isinstance(waiting[0].value, LinkDown)
    net.clock.advance(3600)
    assert not net.dials
    assert isinstance(result_of(link.send(teletype("T2")))[0].value, LinkDown)


def test_stop_flushes_pending_acks_first() -> None:
    """A logoff waits for deliveries still committing so their ACKs go out before it."""
    commit: Deferred[None] = Deferred()
    net, link, _, _ = up_link(on_message=lambda _n, _m: commit)
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    done = result_of(link.stop())
    assert {"t": "logoff"} not in net.sent()
    commit.callback(None)
    assert net.sent()[-2:] == [{"t": "ack", "id": "M1"}, {"t": "logoff"}]
    net.clock.advance(0)
    assert done == [None]


def test_stop_while_connecting_cancels_the_dial() -> None:
    """Shutting down a link that is still dialling cancels the dial and ends down."""
    net = Net()
    link, _, _ = make_link(net)
    link.start()
    done = result_of(link.stop())
    assert done == [None]
    assert link.state == DOWN
    net.clock.advance(120)
    assert len(net.dials) == 1  # the cancelled one, never completed


# --------------------------------------------------------------------------- incoming


def test_ack_written_only_after_commit() -> None:
    """An incoming message is ACKed only when the layer above's Deferred fires."""
    commits: list[Deferred[None]] = []

    def on_message(_link: str, _msg: Any) -> Deferred[None]:
        commits.append(Deferred())
        return commits[-1]

    net, _link, _, _ = up_link(on_message=on_message)
    net.sent()
    net.feed({"t": "reply", "id": "R1", "re": "Q1", "text": "NO RECORD"})
    assert len(commits) == 1
    assert net.sent() == []
    commits[0].callback(None)
    assert net.sent() == [{"t": "ack", "id": "R1"}]


def test_failed_commit_is_naked_50() -> None:
    """If the layer above cannot commit: NAK 50, not remembered, so a resend is delivered."""
    calls: list[str] = []

    def on_message(_link: str, message: Any) -> Deferred[None]:
        calls.append(message.id)
        return fail(RuntimeError("disk")) if len(calls) == 1 else succeed(None)

    net, _link, _, _ = up_link(on_message=on_message)
    net.sent()
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "nak", "id": "M1", "code": 50, "text": "INTERNAL ERROR"}]
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "ack", "id": "M1"}]
    assert calls == ["M1", "M1"]


def test_handler_raising_is_naked_50_and_the_link_stays_up() -> None:
    """A bug above that raises instead of failing its Deferred is a NAK 50 too."""
    calls: list[str] = []

    def on_message(_link: str, message: Any) -> Deferred[None]:
        calls.append(message.id)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return succeed(None)

    net, link, _, _ = up_link(on_message=on_message)
    net.sent()
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "nak", "id": "M1", "code": 50, "text": "INTERNAL ERROR"}]
    assert link.state == "up"
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "ack", "id": "M1"}]


def test_duplicates_are_acked_not_redelivered() -> None:
    """A repeated id is ACKed again and not handed up again, also on a later session."""
    net, _link, received, _ = up_link()
    net.sent()
    msg = {"t": "msg", "id": "M1", "key": "AM", "text": "X"}
    net.feed(msg)
    net.feed(msg)
    assert [m.id for m in received] == ["M1"]
    assert net.sent() == [{"t": "ack", "id": "M1"}, {"t": "ack", "id": "M1"}]
    net.close()
    next_dial_delay(net)
    net.logon()
    net.feed(msg)
    assert len(received) == 1
    assert net.sent() == [{"t": "ack", "id": "M1"}]


def test_duplicate_while_committing_is_acked_once_committed() -> None:
    """A copy arriving while the first is still committing is not delivered twice."""
    commits: list[Deferred[None]] = []

    def on_message(_link: str, _msg: Any) -> Deferred[None]:
        commits.append(Deferred())
        return commits[-1]

    net, _link, _, _ = up_link(on_message=on_message)
    net.sent()
    msg = {"t": "msg", "id": "M1", "key": "AM", "text": "X"}
    net.feed(msg)
    net.feed(msg)
    assert len(commits) == 1
    commits[0].callback(None)
    assert net.sent() == [{"t": "ack", "id": "M1"}, {"t": "ack", "id": "M1"}]


def test_duplicate_memory_expires_after_25_hours() -> None:
    """After 25 h the same id is new again (the TTL + 1 h of DESIGN §4)."""
    net = Net()
    memory = MemoryDuplicates(net.clock.seconds)
    link, received, _ = make_link(net, dedup=memory, heartbeat=86400.0)
    link.start()
    net.logon()
    msg = {"t": "msg", "id": "M1", "key": "AM", "text": "X"}
    net.feed(msg)
    net.clock.advance(25 * 3600 - 1)
    net.feed(msg)
    assert len(received) == 1
    net.clock.advance(1)
    net.feed(msg)
    assert len(received) == 2


def test_memory_duplicates_keys_by_link_and_is_bounded() -> None:
    """Keys are (link, id); the oldest entries go when the table is full."""
    clock_now = [0.0]
    memory = MemoryDuplicates(lambda: clock_now[0], max_entries=2)
    memory.remember("local", "A")
    assert result_of(memory.seen("local", "A")) == [True]
    assert result_of(memory.seen("state", "A")) == [False]
    memory.remember("local", "B")
    memory.remember("local", "C")
    assert len(memory) == 2
    assert result_of(memory.seen("local", "A")) == [False]


def test_network_logoff_flushes_acks_then_closes() -> None:
    """On the network's logoff the link ACKs what it holds, closes, and redials."""
    commit: Deferred[None] = Deferred()
    net, link, _, _ = up_link(on_message=lambda _n, _m: commit)
    net.sent()
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    net.feed({"t": "logoff"})
    assert net.transport is not None and not net.transport.disconnecting
    commit.callback(None)
    assert net.sent() == [{"t": "ack", "id": "M1"}]
    assert net.transport.disconnecting
    net.clock.advance(0)
    assert link.state == DOWN
    assert next_dial_delay(net) == 1


# --------------------------------------------------------------------------- hostile input


def test_oversized_frame_is_counted_and_naked() -> None:
    """A frame over the limit is NAKed 11 and counted; the link stays up."""
    net, link, received, metrics = up_link()
    net.sent()
    net.feed(b"x" * 1000)
    net.feed(b"yyy\n")  # the rest of the oversized line is skipped
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert metrics.rejected == ["too_large"]
    assert net.sent() == [
        {"t": "nak", "id": "", "code": 11, "text": "FRAME TOO LARGE"},
        {"t": "ack", "id": "M1"},
    ]
    assert link.state == UP and len(received) == 1


def test_undecodable_frames_are_naked_with_their_codes() -> None:
    """Bad JSON -> NAK 10; unknown type -> NAK 12 naming the id; bad fields -> NAK 22."""
    net, link, received, metrics = up_link()
    net.sent()
    net.feed(b"{not json\n")
    net.feed({"t": "bogus", "id": "B1"})
    net.feed({"t": "msg", "id": "B2"})
    assert [(f["id"], f["code"]) for f in net.sent()] == [("", 10), ("B1", 12), ("B2", 22)]
    assert metrics.rejected == ["malformed", "unknown_type", "invalid_format"]
    assert link.state == UP and received == []


def test_lost_framing_drops_the_connection() -> None:
    """A fatal framing error drops the connection at once and the link redials."""
    net, link, _, metrics = up_link()
    net.feed(b"\x00garbage")
    assert metrics.rejected == ["malformed"]
    assert link.state == DOWN
    assert net.transport is not None and net.transport.disconnected
    net.clock.advance(0)
    assert next_dial_delay(net) == 1


def test_endless_garbage_is_dropped() -> None:
    """A network that sends only bad frames is dropped, not NAKed forever."""
    net, link, _, metrics = up_link()
    net.sent()
    net.feed(b"{\n" * (MAX_REJECTS_IN_A_ROW + 50))
    assert link.state == DOWN
    assert len(net.sent()) == MAX_REJECTS_IN_A_ROW
    assert len(metrics.rejected) == MAX_REJECTS_IN_A_ROW + 1


def test_application_message_before_logon_is_naked_30() -> None:
    """A message before our logon completed is refused with NAK 30, not delivered."""
    net = Net()
    link, received, metrics = make_link(net)
    link.start()
    net.accept()
    net.sent()
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "nak", "id": "M1", "code": 30, "text": "NOT LOGGED ON"}]
    assert received == [] and metrics.rejected == ["not_logged_on"]


def test_unexpected_control_frames_are_counted_and_ignored() -> None:
    """A logon result while up or a logon from the network is a counted protocol violation."""
    net, link, _, metrics = up_link()
    net.sent()
    net.feed({"t": "logon_fail", "reason": "x"})
    net.feed({"t": "logon", "station": "X", "secret": "Y"})
    net.feed({"t": "ack", "id": "NEVER-SENT"})
    assert link.state == UP
    assert metrics.rejected == ["unexpected", "unexpected"]
    assert net.sent() == []


def test_incoming_flood_beyond_the_window_is_naked_31() -> None:
    """More than ``window`` deliveries awaiting commit: the extra ones get NAK 31."""
    net, _link, _, metrics = up_link(window=2, on_message=lambda _n, _m: Deferred())
    net.sent()
    for i in range(3):
        net.feed({"t": "msg", "id": f"M{i}", "key": "AM", "text": "X"})
    assert net.sent() == [{"t": "nak", "id": "M2", "code": 31, "text": "WINDOW EXCEEDED"}]
    assert metrics.rejected == ["window_exceeded"]


def test_peer_that_does_not_read_is_dropped() -> None:
    """While our writes are backed up, a peer that keeps sending frames is dropped."""
    net, link, _, metrics = up_link()
    assert net.transport is not None and net.transport.producer is net.proto
    assert net.proto is not None
    net.proto.pauseProducing()  # the transport's buffer is full
    net.feed(b'{"t": "hb"}\n' * MAX_FRAMES_WHILE_BLOCKED)
    net.proto.resumeProducing()
    net.proto.pauseProducing()
    net.feed(b'{"t": "hb"}\n' * MAX_FRAMES_WHILE_BLOCKED)
    assert link.state == UP  # drained in between: fine
    net.feed(b'{"t": "hb"}\n')
    assert link.state == DOWN
    assert metrics.rejected == ["flood"]


@settings(max_examples=150, deadline=None)
@given(chunks=st.lists(st.binary(max_size=300), max_size=8))
def test_random_bytes_never_raise(chunks: list[bytes]) -> None:
    """Arbitrary bytes from the network never raise out of dataReceived."""
    net, link, _, _ = up_link()
    for chunk in chunks:
        if net.proto is not None and net.proto.open:
            net.proto.dataReceived(chunk)
    assert link.state in (UP, DOWN)
    net.clock.advance(0)
