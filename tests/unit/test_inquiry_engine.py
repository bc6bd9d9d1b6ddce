"""The inquiry engine with fake links, an in-memory audit and mailbox, and task.Clock."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from switch.audit.interface import AuditUnavailable, CompanionWrite, MemoryAudit
from switch.inquiry import InquiryEngine, MemoryResults
from switch.model import Inquiry, Notice, Origin, Record, Reply, Warrant


class LinkDown(Exception):
    pass


class FakeLinks:
    def __init__(self, up: set[str]) -> None:
        self.up = up
        self.sent: list[tuple[str, Inquiry]] = []
        self.fail_with: dict[str, Exception] = {}

    def is_up(self, name: str) -> bool:
        return name in self.up

    def send(self, name: str, message: Inquiry) -> Deferred[None]:
        self.sent.append((name, message))
        if name in self.fail_with:
            return fail(self.fail_with[name])
        return succeed(None)


class FakeMailbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict[str, Any]]] = []

    def put(self, terminal: str, kind: str, item: Mapping[str, Any]) -> Deferred[int]:
        self.items.append((terminal, kind, dict(item)))
        return succeed(len(self.items))

    def prepare(self, terminal: str, kind: str, item: Mapping[str, Any]) -> CompanionWrite:
        """Like put, the item is listed when submitted (the audit decides when it is
        committed)."""
        self.items.append((terminal, kind, dict(item)))
        seq = len(self.items)
        return CompanionWrite(lambda _conn: seq, lambda _seq: None)


def _inquiry(networks: tuple[str, ...]) -> Inquiry:
    return Inquiry(
        id="Q1",
        subject="person",
        fields={"name": "DOE, JOHN A", "dob": "1980-01-01"},
        origin=Origin("MO0380100", "DISPATCH1", "demo"),
        networks=networks,
    )


def _engine(up: set[str]) -> tuple[InquiryEngine, FakeLinks, MemoryAudit, FakeMailbox, Clock]:
    clock, links, audit, box = Clock(), FakeLinks(up), MemoryAudit(), FakeMailbox()
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0)
    return engine, links, audit, box, clock


def _hit(network: str, **kw: Any) -> Reply:
    rec = Record("wanted_person", {"name": "DOE, JOHN A"}, ("armed_and_dangerous",), Warrant("W1"))
    return Reply(id=f"R{network}", network=network, status="hit", text="HIT", records=(rec,), **kw)


@pytest.mark.usefixtures("reactor")
def test_fan_out_correlate_and_complete() -> None:
    """Each up link gets the inquiry with a control number; replies by id or control
    complete it; the mailbox gets a reply event each and one inquiry_complete."""
    engine, links, audit, box, _clock = _engine({"local", "state"})
    d = Deferred.fromCoroutine(engine.submit(_inquiry(("local", "state")), "DISPATCH1"))
    progress = d.result
    assert [n for n, _ in links.sent] == ["local", "state"]
    controls = {n: m.control for n, m in links.sent}
    assert all(c and c.startswith("S") and len(c) == 10 for c in controls.values())
    waiter = engine.wait(progress, 10)
    engine.on_reply("local", _hit("local", in_reply_to="Q1"))
    assert not progress.complete and not waiter.called
    state_reply = Reply(
        id="T1", network="state", status="no_record", text="NO", control=controls["state"]
    )
    engine.on_reply("state", state_reply)
    assert progress.complete and waiter.called
    kinds = [k for _, k, _ in box.items]
    assert kinds == ["reply", "reply", "inquiry_complete"]
    complete = box.items[-1][2]
    assert complete["summary"]["urgent"] is True
    assert complete["replies"][0]["network"] == "local"  # urgent hit first
    assert [e for e, _ in audit.events] == ["inquiry", "reply", "reply"]


@pytest.mark.usefixtures("reactor")
def test_down_link_answers_unavailable_at_once() -> None:
    """A network whose link is not up answers 'unavailable' without sending anything."""
    engine, links, _audit, _box, _clock = _engine({"local"})
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(("local", "national")), "T")).result
    assert [n for n, _ in links.sent] == ["local"]
    assert progress.replies["national"].status == "unavailable"
    assert progress.replies["national"].text


@pytest.mark.usefixtures("reactor")
def test_timeout_then_late_reply_is_still_delivered() -> None:
    """No answer in 30 s -> 'timeout'; a later answer is audited and delivered as late."""
    engine, _links, audit, box, clock = _engine({"national"})
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(("national",)), "T")).result
    clock.advance(29.9)
    assert not progress.complete
    clock.advance(0.2)
    assert progress.complete and progress.replies["national"].status == "timeout"
    engine.on_reply("national", _hit("national", in_reply_to="Q1"))
    assert progress.replies["national"].status == "timeout"
    late = [i for _, k, i in box.items if k == "reply" and i["late"]]
    assert len(late) == 1 and late[0]["status"] == "hit"
    assert audit.of("reply")[-1]["late"] is True


@pytest.mark.usefixtures("reactor")
def test_one_timer_per_inquiry_times_out_only_the_silent_networks() -> None:
    """The networks still silent at the timeout answer 'timeout', in the order asked;
    those that answered keep their answer; one timer serves the whole inquiry and is
    gone once every network has answered."""
    nets = ("local", "regional", "state", "national")
    engine, _links, _audit, _box, clock = _engine(set(nets))
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(nets), "T")).result
    assert len(clock.getDelayedCalls()) == 1
    engine.on_reply("regional", _hit("regional", in_reply_to="Q1"))
    clock.advance(30.0)
    assert progress.complete
    assert {n: r.status for n, r in progress.replies.items()} == {
        "regional": "hit",
        "local": "timeout",
        "state": "timeout",
        "national": "timeout",
    }
    assert engine.outstanding() == 0
    second = dataclasses.replace(_inquiry(nets), id="Q2")
    progress = Deferred.fromCoroutine(engine.submit(second, "T")).result
    before = len(clock.getDelayedCalls())
    for n in nets:
        assert engine.outstanding(n) == 1
        engine.on_reply(n, dataclasses.replace(_hit(n, in_reply_to="Q2"), id=f"S{n}"))
        assert engine.outstanding(n) == 0
    assert progress.complete
    assert len(clock.getDelayedCalls()) == before - 1  # the inquiry's timer was cancelled


@pytest.mark.usefixtures("reactor")
def test_send_failures_become_answers() -> None:
    """A refused send answers 'unavailable'; an ER notice answers 'error'."""
    engine, links, _audit, _box, _clock = _engine({"local", "regional"})
    links.fail_with["local"] = LinkDown()
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(("local", "regional")), "T")).result
    assert progress.replies["local"].status == "unavailable"
    engine.on_reply(
        "regional",
        Notice(id="E1", key="ER", from_ori="MO0480000", code=22, text="INVALID", in_reply_to="Q1"),
    )
    assert progress.replies["regional"].status == "error"


@pytest.mark.usefixtures("reactor")
def test_audit_failure_sends_nothing() -> None:
    """If the inquiry cannot be audited it is refused and no network is asked."""
    engine, links, audit, _box, _clock = _engine({"local"})
    audit.fail = True
    d = Deferred.fromCoroutine(engine.submit(_inquiry(("local",)), "T"))
    assert isinstance(d.result.value, AuditUnavailable)
    d.addErrback(lambda _: None)
    assert links.sent == []


@pytest.mark.usefixtures("reactor")
def test_other_terminal_cannot_see_inquiry_and_unmatched_reply_is_audited() -> None:
    """get() hides another terminal's inquiry; an unknown reply is audited, not delivered."""
    engine, _links, audit, box, _clock = _engine({"local"})
    Deferred.fromCoroutine(engine.submit(_inquiry(("local",)), "DISPATCH1"))
    assert engine.get("Q1", "RECORDS1") is None
    assert engine.get("Q1", "DISPATCH1") is not None
    engine.on_reply("local", _hit("local", in_reply_to="NOPE"))
    assert audit.of("reply.unmatched")
    assert box.items == []


class SlowAudit(MemoryAudit):
    """Commits only when the test says so, like a group commit under load: firing a
    record's Deferred runs its companion writes first (the saved result), failing it
    runs none of them."""

    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Deferred[int]] = []
        self.gathers: list[bool] = []  # each record's gather flag

    def record(
        self,
        event: str,
        fields: Mapping[str, object],
        with_writes: Sequence[CompanionWrite] = (),
        *,
        gather: bool = True,
    ) -> Deferred[int]:
        self.events.append((event, dict(fields)))
        self.gathers.append(gather)
        if event == "inquiry":
            return succeed(len(self.events))
        d: Deferred[int] = Deferred()

        def commit(seq: int) -> int:
            for write in with_writes:
                write.committed(write.job(None))
            return seq

        d.addCallback(commit)
        self.pending.append(d)
        return d


@pytest.mark.usefixtures("reactor")
def test_concurrent_answers_complete_the_inquiry_once() -> None:
    """When several answers commit together, exactly one inquiry_complete is written,
    after every reply event."""
    clock, links, audit, box = Clock(), FakeLinks({"local", "state"}), SlowAudit(), FakeMailbox()
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0)
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(("local", "state")), "T")).result
    waiter = engine.wait(progress, 10)
    engine.on_reply("local", _hit("local", in_reply_to="Q1"))
    engine.on_reply("state", _hit("state", in_reply_to="Q1"))
    assert progress.complete and not waiter.called
    for d in audit.pending:
        d.callback(1)
    kinds = [k for _, k, _ in box.items]
    assert kinds == ["reply", "reply", "inquiry_complete"]
    assert waiter.called


@pytest.mark.usefixtures("reactor")
def test_last_answer_completes_while_others_are_being_committed() -> None:
    """The last answer brings inquiry_complete into its own commit even while earlier
    answers are still being committed (they are, at any rate: the commit interval
    gathers an inquiry's answers), instead of a third commit after them. The store
    commits in submission order, so the earlier answers' callbacks run first; the
    waiter fires only once every answer is committed."""
    clock, links, audit, box = (
        Clock(),
        FakeLinks({"local", "state", "national"}),
        SlowAudit(),
        FakeMailbox(),
    )
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0)
    progress = Deferred.fromCoroutine(
        engine.submit(_inquiry(("local", "state", "national")), "T")
    ).result
    waiter = engine.wait(progress, 10)
    answers = [
        engine.on_reply(n, _hit(n, in_reply_to="Q1")) for n in ("local", "state", "national")
    ]
    # submitted with the last answer, before anything is committed
    assert [k for _, k, _ in box.items] == ["reply", "reply", "reply", "inquiry_complete"]
    for n, d in enumerate(audit.pending):
        assert not waiter.called
        d.callback(n + 1)
    assert waiter.called and all(a.called for a in answers)
    # the inquiry record and the last answer commit without waiting for company
    assert audit.gathers == [False, True, True, False]
    assert [e for e, _ in audit.events].count("reply") == 3
    assert [k for _, k, _ in box.items].count("inquiry_complete") == 1


@pytest.mark.usefixtures("reactor")
def test_last_answer_brings_inquiry_complete_into_its_commit() -> None:
    """The answer that completes the inquiry submits inquiry_complete with its own
    writes (one group commit, not two); its ACK waits for all three. If that commit
    fails, the network's resend of the answer completes the inquiry, once."""
    clock, links, audit, box = Clock(), FakeLinks({"local", "state"}), SlowAudit(), FakeMailbox()
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0)
    Deferred.fromCoroutine(engine.submit(_inquiry(("local", "state")), "T"))
    first = engine.on_reply("local", _hit("local", in_reply_to="Q1"))
    audit.pending.pop().callback(1)
    assert first.called and [k for _, k, _ in box.items] == ["reply"]
    last = engine.on_reply("state", _hit("state", in_reply_to="Q1"))
    # submitted together, before anything is committed
    assert [k for _, k, _ in box.items] == ["reply", "reply", "inquiry_complete"]
    assert not last.called
    audit.pending.pop().errback(AuditUnavailable("disk full"))
    assert isinstance(last.result.value, AuditUnavailable)
    # the saved result is a companion write of that record: gone with it
    assert Deferred.fromCoroutine(engine.result("Q1", "T")).result is None
    last.addErrback(lambda _: None)
    again = engine.on_reply("state", _hit("state", in_reply_to="Q1"))
    audit.pending.pop().callback(2)
    assert again.called and again.result is None
    kinds = [k for _, k, _ in box.items]
    assert kinds == ["reply", "reply", "inquiry_complete", "reply", "inquiry_complete"]
    result = Deferred.fromCoroutine(engine.result("Q1", "T")).result
    assert result["status"] == "complete"


@pytest.mark.usefixtures("reactor")
def test_finished_inquiry_keeps_only_strings_and_its_result_is_saved() -> None:
    """Once finished, the engine lets go of the inquiry's objects: its result is read
    back from the results store (the owning terminal only), and a late answer, matched
    by control number, is still audited and delivered as late."""
    clock, links, audit, box = Clock(), FakeLinks({"local", "state"}), MemoryAudit(), FakeMailbox()
    results = MemoryResults()
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0, results=results)
    progress = Deferred.fromCoroutine(engine.submit(_inquiry(("local", "state")), "DISPATCH1"))
    controls = {n: m.control for n, m in links.sent}
    engine.on_reply("local", _hit("local", in_reply_to="Q1"))
    clock.advance(30)  # state times out: the inquiry is complete
    assert progress.result.complete
    assert engine.get("Q1", "DISPATCH1") is None  # no longer held as objects
    assert engine.outstanding() == 0
    saved = results.saved["Q1"]
    assert saved.terminal == "DISPATCH1" and saved.state["status"] == "complete"
    view = Deferred.fromCoroutine(engine.result("Q1", "DISPATCH1")).result
    assert view == box.items[-1][2]  # the same view as the inquiry_complete event
    assert Deferred.fromCoroutine(engine.result("Q1", "RECORDS1")).result is None
    late = Reply(id="T9", network="state", status="hit", text="LATE", control=controls["state"])
    done = engine.on_reply("state", late)
    assert done.called and done.result is None
    assert box.items[-1][1] == "reply" and box.items[-1][2]["late"] is True
    assert box.items[-1][2]["inquiry"] == "Q1"
    assert audit.of("reply")[-1] == {**audit.of("reply")[-1], "late": True, "in_reply_to": "Q1"}


@pytest.mark.usefixtures("reactor")
def test_finished_inquiries_are_forgotten_by_one_timer() -> None:
    """A finished inquiry stays correlatable for the retention time, then is forgotten;
    one sweeping timer serves every finished inquiry."""
    clock, links, audit, box = Clock(), FakeLinks({"local"}), MemoryAudit(), FakeMailbox()
    engine = InquiryEngine(clock, links, audit, box, timeout=30.0, retain=100.0)
    for n in range(3):
        inquiry = dataclasses.replace(_inquiry(("local",)), id=f"Q{n}")
        Deferred.fromCoroutine(engine.submit(inquiry, "T"))
        engine.on_reply("local", _hit("local", in_reply_to=f"Q{n}"))
        clock.advance(10)
    assert len(clock.getDelayedCalls()) == 1
    assert engine.knows("Q0") and engine.knows("Q2")
    clock.advance(75)  # Q0 finished at t=0: gone at 100; Q2 (t=20) stays until 120
    assert not engine.knows("Q0") and engine.knows("Q2")
    clock.advance(30)
    assert not engine.knows("Q2") and clock.getDelayedCalls() == []
