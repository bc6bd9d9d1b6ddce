"""The inquiry engine: fan an inquiry out to its networks, correlate, time out, deliver.

It decides nothing itself (that is :mod:`switch.routing.inquiries`) and owns no socket
(that is the link layer): it ties the links, the audit and the terminals' mailboxes
together with the timers of DESIGN §6. Inquiries are never queued: a network whose link
is not up answers ``unavailable`` at once, because a stale check is worse than none.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from switch.audit.interface import AuditSink, CompanionWrite
from switch.deferreds import all_of, nothing
from switch.model import Inquiry, Notice, Reply, new_id
from switch.routing.inquiries import InquiryProgress
from switch.store.interface import InquiryRecord
from switch.views import inquiry_json, record_ids, reply_json

log = structlog.get_logger("switch.inquiry")

_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"

#: The verbatim text of answers the gateway makes up itself (never empty, DESIGN §3).
UNAVAILABLE_TEXT = "NETWORK UNAVAILABLE - NO INQUIRY SENT"
TIMEOUT_TEXT = "NO RESPONSE FROM NETWORK WITHIN TIME LIMIT"


class LinkPort(Protocol):
    """What the engine needs of the link layer."""

    def is_up(self, name: str) -> bool: ...

    def send(self, name: str, message: Inquiry) -> Deferred[None]:
        """Fires on ACK; fails on NAK, ACK timeout, link down or a full window."""
        ...


class MailboxPort(Protocol):
    """A terminal's durable mailbox; ``put`` fires with the item's sequence number once
    committed (the SSE ``id:``), and pushes it to the terminal's live streams."""

    def put(self, terminal: str, kind: str, item: Mapping[str, Any]) -> Deferred[int]: ...

    def prepare(self, terminal: str, kind: str, item: Mapping[str, Any]) -> CompanionWrite:
        """``put`` as a write committed with an audit record (``AuditSink.record``)."""
        ...


class InquiryResults(Protocol):
    """Where a finished inquiry's result lives (the store's ``inquiries`` table, kept
    24 h): ``GET /v1/inquiries/{id}`` reads it from there once the engine has let go."""

    def save_inquiry(self, inquiry: InquiryRecord, now: float) -> Deferred[None]: ...

    def save_inquiry_job(self, inquiry: InquiryRecord, now: float) -> Callable[[Any], None]:
        """:meth:`save_inquiry` as a write committed with an audit record (the answer
        that completes the inquiry): the result exists if and only if that record does."""
        ...

    def load_inquiry(self, id: str) -> Deferred[InquiryRecord | None]: ...


class MemoryResults:
    """:class:`InquiryResults` in a dict, for tests and a store-less engine."""

    def __init__(self) -> None:
        self.saved: dict[str, InquiryRecord] = {}

    def save_inquiry(self, inquiry: InquiryRecord, now: float) -> Deferred[None]:
        self.save_inquiry_job(inquiry, now)(None)
        return succeed(None)

    def save_inquiry_job(self, inquiry: InquiryRecord, now: float) -> Callable[[Any], None]:
        def job(_: object) -> None:
            self.saved[inquiry.id] = inquiry

        return job

    def load_inquiry(self, id: str) -> Deferred[InquiryRecord | None]:
        return succeed(self.saved.get(id))


class InquiryMetrics(Protocol):
    def reply(self, network: str, status: str, seconds: float | None, files: list[str]) -> None:
        """One network answered (``seconds`` since sent, None if never sent)."""
        ...

    def inquiry_done(self, subject: str, outcome: str) -> None: ...


def inquiry_outcome(progress: InquiryProgress) -> str:
    """hit somewhere; no record anywhere; or incomplete (someone did not answer)."""
    statuses = [r.status for r in progress.replies.values()]
    if "hit" in statuses:
        return "hit"
    if all(s == "no_record" for s in statuses):
        return "no_record"
    return "incomplete"


#: Every 3-digit base-36 string, so that a control number is three lookups.
_BASE36_3: Final = [a + b + c for a in _BASE36 for b in _BASE36 for c in _BASE36]


class ControlNumbers:
    """State control numbers: ``S`` + 9 of [A-Z0-9], unique among outstanding inquiries.

    A random start per process keeps a restarted gateway from reusing the numbers of
    answers still on their way from before the restart.
    """

    def __init__(self, start: int | None = None) -> None:
        first = int.from_bytes(os.urandom(5), "big") if start is None else start
        self._counter = itertools.count(first)

    def __call__(self) -> str:
        n = next(self._counter) % 36**9
        high, rest = divmod(n, 36**6)
        middle, low = divmod(rest, 36**3)
        return "S" + _BASE36_3[high] + _BASE36_3[middle] + _BASE36_3[low]


@dataclass
class _Pending:
    progress: InquiryProgress
    inquiry: Inquiry
    terminal: str
    awaited: set[str]  # links sent to whose answer is still due
    control: str  # the state control number, the same for every network asked
    message: Inquiry  # what every network is sent: the inquiry with that number
    sent_at: dict[str, float]
    waiters: list[Deferred[InquiryProgress]]
    # One timer per inquiry, not per network: every network is asked at the same moment
    # with the same timeout, and each timer costs the reactor a schedule and a cancel.
    timer: IDelayedCall | None = None
    completed: bool = False  # the inquiry_complete event was written


class InquiryEngine:
    """Runs inquiries; ``on_reply`` is the link layer's callback for answers."""

    def __init__(
        self,
        clock: IReactorTime,
        links: LinkPort,
        audit: AuditSink,
        mailbox: MailboxPort,
        *,
        timeout: float = 30.0,
        retain: float = 3600.0,
        ids: Callable[[], str] = new_id,
        controls: Callable[[], str] | None = None,
        metrics: InquiryMetrics | None = None,
        results: InquiryResults | None = None,
    ) -> None:
        self._clock = clock
        self._links = links
        self._audit = audit
        self._mailbox = mailbox
        self._timeout = timeout
        self._retain = retain  # keep a complete inquiry correlatable for late replies
        # Finished inquiries in finishing order, forgotten by one sweeping timer rather
        # than one delayed call each (300/s for an hour would be a million of them):
        # (expiry, id, its (link, control) keys).
        self._finished: deque[tuple[float, str, tuple[tuple[str, str], ...]]] = deque()
        self._sweep: IDelayedCall | None = None
        self._ids = ids
        self._controls = controls or ControlNumbers()
        self._metrics = metrics
        self._results: InquiryResults = results if results is not None else MemoryResults()
        self._inquiries: dict[str, _Pending] = {}
        # A finished inquiry keeps only strings in memory (id -> terminal, and its control
        # numbers): enough to deliver a late answer, and nothing the garbage collector
        # has to walk. Its result is in ``results``.
        self._done: dict[str, str] = {}
        self._by_control: dict[tuple[str, str], str] = {}

    @property
    def timeout(self) -> float:
        """Seconds a network has to answer (``[inquiry] timeout``)."""
        return self._timeout

    @timeout.setter
    def timeout(self, seconds: float) -> None:
        # A reload (switch.reload) sets it; it applies to inquiries sent from then on.
        self._timeout = seconds

    def outstanding(self, link: str | None = None) -> int:
        """Inquiries not yet complete (waiting for ``link``'s answer, if given).

        Shutdown drains until this is 0; a reload drains a changed link until it is 0
        for that link, so that no answer is cut off by its logoff.
        """
        return sum(
            1
            for p in self._inquiries.values()
            if not p.completed and (link is None or link in p.awaited)
        )

    # ------------------------------------------------------------------ submit / query

    async def submit(self, inquiry: Inquiry, terminal: str) -> InquiryProgress:
        """Audit the inquiry (fails with AuditUnavailable: nothing is sent), then fan out."""
        origin = inquiry.origin
        await self._audit.record(
            "inquiry",
            {
                "id": inquiry.id,
                "terminal": terminal,
                "operator": origin.operator,
                "ori": origin.ori,
                "purpose": inquiry.purpose,
                "requester": inquiry.requester,
                "recipient": inquiry.recipient,
                "subject": inquiry.subject,
                "fields": dict(inquiry.fields),
                "networks": list(inquiry.networks),
            },
            gather=False,  # nothing comes with it, and the fan-out waits for it
        )
        # One control number for every network of the inquiry: a copy of the inquiry
        # per network would cost more than the rest of its way to the link.
        control = self._controls()
        pending = _Pending(
            progress=InquiryProgress(inquiry.id, inquiry.networks),
            inquiry=inquiry,
            terminal=terminal,
            awaited=set(),
            control=control,
            message=dataclasses.replace(inquiry, control=control),
            sent_at={},
            waiters=[],
        )
        self._inquiries[inquiry.id] = pending
        # The API request line already logs the acceptance; the audit has the details.
        log.debug("inquiry.accepted", inquiry_id=inquiry.id, count=len(inquiry.networks))
        for link in inquiry.networks:
            self._dispatch(pending, link)
        if pending.awaited:
            pending.timer = self._clock.callLater(self._timeout, self._timed_out, pending)
        return pending.progress

    def knows(self, inquiry_id: str | None) -> bool:
        """Can an answer still be tied to this inquiry (for routing a network's ER)?"""
        return inquiry_id is not None and (
            inquiry_id in self._inquiries or inquiry_id in self._done
        )

    def get(self, inquiry_id: str, terminal: str) -> InquiryProgress | None:
        """The inquiry while it runs, if it belongs to ``terminal`` (another terminal's
        is "not found"); a finished one is :meth:`result`."""
        pending = self._inquiries.get(inquiry_id)
        if pending is None or pending.terminal != terminal:
            return None
        return pending.progress

    async def result(self, inquiry_id: str, terminal: str) -> dict[str, Any] | None:
        """A finished inquiry's result (the GET shape), if ``terminal``'s; kept 24 h by
        the store, across restarts."""
        record = await self._results.load_inquiry(inquiry_id)
        if record is None or record.terminal != terminal:
            return None
        return dict(record.state)

    def wait(self, progress: InquiryProgress, seconds: float) -> Deferred[InquiryProgress]:
        """Fires with the progress when complete or after ``seconds``, whichever is first."""
        pending = self._inquiries.get(progress.id)
        if pending is None or progress.complete or seconds <= 0:
            return succeed(progress)
        d: Deferred[InquiryProgress] = Deferred()
        pending.waiters.append(d)

        def expire() -> None:
            if d in pending.waiters:
                pending.waiters.remove(d)
                d.callback(pending.progress)

        call = self._clock.callLater(seconds, expire)
        d.addBoth(_cancel_then(call))
        return d

    # ------------------------------------------------------------------ fan-out

    def _dispatch(self, pending: _Pending, link: str) -> None:
        if not self._links.is_up(link):
            self._answer_locally(pending, link, "unavailable", UNAVAILABLE_TEXT)
            return
        self._by_control[(link, pending.control)] = pending.inquiry.id
        pending.awaited.add(link)
        pending.sent_at[link] = self._clock.seconds()
        d = self._links.send(link, pending.message)
        d.addErrback(self._send_failed, pending, link)

    def _timed_out(self, pending: _Pending) -> None:
        pending.timer = None
        for link in [n for n in pending.inquiry.networks if n in pending.awaited]:
            self._answer_locally(pending, link, "timeout", TIMEOUT_TEXT)

    def _send_failed(self, failure: Failure, pending: _Pending, link: str) -> None:
        name = type(failure.value).__name__
        if name == "AckTimeout":
            return  # the network may still answer; the reply timer decides
        log.warning("inquiry.send_failed", inquiry_id=pending.inquiry.id, link=link, error=name)
        if name == "LinkNak":
            text = f"REJECTED BY NETWORK: {getattr(failure.value, 'text', '')}".strip()
            self._answer_locally(pending, link, "error", text)
        else:
            self._answer_locally(pending, link, "unavailable", UNAVAILABLE_TEXT)

    def _answer_locally(self, pending: _Pending, link: str, status: str, text: str) -> None:
        if link in pending.progress.replies:
            return
        reply = Reply(
            id=self._ids(), network=link, status=status, text=text, in_reply_to=pending.inquiry.id
        )
        d = self._accept(pending, reply)
        d.addErrback(self._log_failure, pending.inquiry.id, link)

    @staticmethod
    def _log_failure(failure: Failure, inquiry_id: str, link: str) -> None:
        log.error(
            "inquiry.answer_failed", inquiry_id=inquiry_id, link=link, error=str(failure.value)
        )

    # ------------------------------------------------------------------ answers

    def on_reply(self, link: str, message: Reply | Notice) -> Deferred[None]:
        """Correlate one answer from ``link``; fires once it is audited and in the mailbox
        (the link ACKs only then). Unknown answers are audited and dropped, not retried."""
        inquiry_id = message.in_reply_to
        control = message.control if isinstance(message, Reply) else None
        if control is not None and not self.knows(inquiry_id):
            inquiry_id = self._by_control.get((link, control))
        pending = self._inquiries.get(inquiry_id) if inquiry_id else None
        terminal = pending.terminal if pending is not None else self._done.get(inquiry_id or "")
        if inquiry_id is None or terminal is None:
            log.warning("inquiry.unmatched_reply", link=link, message_id=message.id)
            return self._audit.record(
                "reply.unmatched", {"network": link, "id": message.id, "in_reply_to": inquiry_id}
            ).addCallback(lambda _: None)
        if isinstance(message, Notice):
            reply = Reply(
                id=message.id,
                network=link,
                status="error",
                text=message.text or f"NETWORK ERROR {message.code}",
                in_reply_to=inquiry_id,
            )
        elif message.network == link and message.in_reply_to == inquiry_id:
            reply = message  # the usual case: replace() costs more than the rest of this
        else:
            reply = dataclasses.replace(message, network=link, in_reply_to=inquiry_id)
        if pending is None:
            # The inquiry finished (its other networks answered or timed out): the
            # answer is still audited and delivered, marked late.
            d = self._reply_writes(inquiry_id, terminal, reply, late=True)
            return d.addCallback(nothing)
        return self._accept(pending, reply)

    def _reply_writes(
        self,
        inquiry_id: str,
        terminal: str,
        reply: Reply,
        *,
        late: bool,
        complete: dict[str, Any] | None = None,
        gather: bool = True,
    ) -> Deferred[int]:
        """The reply's audit record with its mailbox item (and, when this reply
        completes the inquiry, the inquiry_complete item and the saved result) in the
        same transaction: one job, one Deferred. ``gather=False`` when no other answer
        to the inquiry is due: its commit need not wait for more."""
        item = {"inquiry": inquiry_id, "late": late, **reply_json(reply)}
        writes = [self._mailbox.prepare(terminal, "reply", item)]
        if complete is not None:
            writes.append(self._mailbox.prepare(terminal, "inquiry_complete", complete))
            now = self._clock.seconds()
            result = InquiryRecord(inquiry_id, terminal, now, complete)
            writes.append(CompanionWrite(self._results.save_inquiry_job(result, now), nothing))
        return self._audit.record(
            "reply",
            {
                # id and in_reply_to: the indexed columns, so that a search by the
                # inquiry's id finds its replies
                "id": reply.id,
                "in_reply_to": inquiry_id,
                "terminal": terminal,
                "network": reply.network,
                "status": reply.status,
                "late": late,
                "records": record_ids(reply.records),
            },
            writes,
            gather=gather,
        )

    def _accept(self, pending: _Pending, reply: Reply) -> Deferred[None]:
        """Record one answer; fires once it is committed (the link ACKs only then).
        Never raises: a failure, even a bug, arrives as a failed Deferred."""
        try:
            return self._record(pending, reply)
        except Exception:
            return fail()

    def _record(self, pending: _Pending, reply: Reply) -> Deferred[None]:
        # Plain callbacks rather than a coroutine: this runs for every answer, and each
        # coroutine and gather costs the reactor several more Deferred hops.
        link = reply.network
        fresh = pending.progress.add(reply)
        pending.awaited.discard(link)
        if not pending.awaited and pending.timer is not None:
            if pending.timer.active():
                pending.timer.cancel()
            pending.timer = None
        if fresh and self._metrics is not None:
            sent = pending.sent_at.get(link)
            took = None if sent is None else self._clock.seconds() - sent
            self._metrics.reply(link, reply.status, took, [r.file for r in reply.records])
        # The link ACKs only when the writes are committed. The answer that completes
        # the inquiry brings the inquiry_complete item and the saved result along in
        # its own job, even while other answers are still being committed: the
        # writer commits in submission order, so their items still come first and
        # their callbacks run before this one's (waiting for them instead cost every
        # inquiry a third commit in series).
        completing = self._claim_completion(pending)
        view = inquiry_json(pending.progress) if completing else None
        d: Deferred[Any] = self._reply_writes(
            pending.inquiry.id,
            pending.terminal,
            reply,
            late=not fresh,
            complete=view,
            gather=bool(pending.awaited),
        )
        return d.addBoth(self._committed, pending, completing, link, reply.status)

    def _committed(
        self, result: object, pending: _Pending, completing: bool, link: str, status: str
    ) -> Deferred[None] | Failure | None:
        if isinstance(result, Failure):
            if completing:
                pending.completed = False  # the network's resend completes it
            return result
        log.debug("inquiry.reply", inquiry_id=pending.inquiry.id, link=link, status=status)
        if completing:
            self._finish(pending)
        elif self._claim_completion(pending):
            # The completing answer's writes failed before this earlier one's commit
            # was reported (only a synchronous refusal can overtake it): complete now.
            d = all_of(self._complete_writes(pending))
            d.addCallbacks(
                self._completed,
                self._completion_failed,
                callbackArgs=(pending,),
                errbackArgs=(pending,),
            )
            return d
        return None

    def _completed(self, _: object, pending: _Pending) -> None:
        self._finish(pending)

    @staticmethod
    def _completion_failed(failure: Failure, pending: _Pending) -> Failure:
        pending.completed = False
        return failure

    def _claim_completion(self, pending: _Pending) -> bool:
        """True, once, when every network has answered: the caller then writes the
        inquiry_complete item."""
        if pending.progress.complete and not pending.completed:
            pending.completed = True
            return True
        return False

    def _complete_writes(self, pending: _Pending) -> list[Deferred[Any]]:
        view = inquiry_json(pending.progress)
        return [
            self._mailbox.put(pending.terminal, "inquiry_complete", view),
            self._save(pending, view),
        ]

    def _save(self, pending: _Pending, view: dict[str, Any]) -> Deferred[None]:
        now = self._clock.seconds()
        record = InquiryRecord(pending.inquiry.id, pending.terminal, now, view)
        return self._results.save_inquiry(record, now)

    def _finish(self, pending: _Pending) -> None:
        if self._metrics is not None:
            self._metrics.inquiry_done(pending.inquiry.subject, inquiry_outcome(pending.progress))
        inquiry_id = pending.inquiry.id
        self._inquiries.pop(inquiry_id, None)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        self._done[inquiry_id] = pending.terminal
        keys = tuple((link, pending.control) for link in pending.sent_at)  # links asked
        self._finished.append((self._clock.seconds() + self._retain, inquiry_id, keys))
        if self._sweep is None:
            self._sweep = self._clock.callLater(self._sweep_after(), self._forget_expired)
        waiters, pending.waiters = pending.waiters, []
        for d in waiters:
            d.callback(pending.progress)
        log.info("inquiry.complete", inquiry_id=pending.inquiry.id)

    def _sweep_after(self) -> float:
        return max(0.0, min(60.0, self._finished[0][0] - self._clock.seconds()))

    def _forget_expired(self) -> None:
        self._sweep = None
        now = self._clock.seconds()
        while self._finished and self._finished[0][0] <= now:
            _, inquiry_id, keys = self._finished.popleft()
            self._done.pop(inquiry_id, None)
            for key in keys:
                if self._by_control.get(key) == inquiry_id:
                    del self._by_control[key]
        if self._finished:
            self._sweep = self._clock.callLater(self._sweep_after(), self._forget_expired)


def _cancel_then(call: IDelayedCall) -> Callable[[Any], Any]:
    def passthrough(result: Any) -> Any:
        if call.active():
            call.cancel()
        return result

    return passthrough
