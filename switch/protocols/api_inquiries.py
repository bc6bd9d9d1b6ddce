"""Inquiry, mailbox and event-stream routes of the client API (DESIGN §5, §9).

``POST /v1/inquiries`` answers 202 once the inquiry's audit record is committed, or
200 with the complete result when ``?wait=S`` lets it finish in time; ``GET /v1/events``
streams the terminal's mailbox as Server-Sent Events, resuming after ``Last-Event-ID``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime
from twisted.web.server import Request as WebRequest
from zope.interface import implementer

from switch.config import Config
from switch.inquiry import InquiryEngine
from switch.mailbox import Mailbox, item_json, sse_frame
from switch.model import (
    Inquiry,
    Origin,
    ValidationError,
    new_id,
    validate_fields,
    validate_purpose,
    validate_subject,
)
from switch.routing.inquiries import networks_for
from switch.sessions import RateLimiter, Session
from switch.store.interface import MailboxItem
from switch.views import inquiry_json

from .api import Api, ApiError, Call, Response, Route, bad_field, too_many

log = structlog.get_logger("switch.api")

MAX_WAIT = 60.0
PAGE = 100
KEEPALIVE = 15.0
#: A stream whose reader has stopped reading for this long is closed (its items stay
#: in the mailbox for the next connection).
STALL_LIMIT = 60.0
_OPTIONAL_TEXT = {"requester": 30, "recipient": 30}


def _wait_param(call: Call) -> float:
    raw = call.query.get("wait", ["0"])[-1]
    try:
        wait = float(raw)
    except ValueError:
        raise bad_field("wait", "wait: seconds, a number from 0 to 60") from None
    if not 0 <= wait <= MAX_WAIT or wait != wait:
        raise bad_field("wait", "wait: seconds, a number from 0 to 60")
    return wait


def _int_param(call: Call, name: str, default: int, low: int, high: int) -> int:
    raw = call.query.get(name, [str(default)])[-1]
    try:
        value = int(raw)
    except ValueError:
        raise bad_field(name, f"{name}: an integer") from None
    if not low <= value <= high:
        raise bad_field(name, f"{name}: from {low} to {high}")
    return value


class InquiryRoutes:
    """The handlers, with what they need; :meth:`install` adds them to the route table."""

    def __init__(
        self,
        api: Api,
        config: Callable[[], Config],
        engine: InquiryEngine,
        mailbox: Mailbox,
        clock: IReactorTime,
        *,
        on_rejected: Callable[[str], None] | None = None,
        keepalive: float = KEEPALIVE,
        stall_limit: float = STALL_LIMIT,
    ) -> None:
        self.api = api
        self.keepalive = keepalive
        self.stall_limit = stall_limit
        self.config = config
        self.engine = engine
        self.mailbox = mailbox
        self.clock = clock
        self.limiter = RateLimiter(clock)
        self.on_rejected = on_rejected

    def install(self) -> None:
        add = self.api.router.add
        add(
            Route(
                "POST",
                "/v1/inquiries",
                self.create,
                body=True,
                audited=True,
                summary="Run a wants/warrants inquiry",
            )
        )
        add(Route("GET", "/v1/inquiries/{id}", self.get, summary="An inquiry's replies so far"))
        add(Route("GET", "/v1/events", self.events, summary="This terminal's events (SSE)"))
        add(Route("GET", "/v1/mailbox", self.list_mailbox, summary="This terminal's mailbox"))
        add(
            Route(
                "POST",
                "/v1/mailbox/{seq}/ack",
                self.ack,
                summary="Acknowledge a mailbox item",
            )
        )

    # ---------------------------------------------------------------- inquiries

    def _build(self, body: dict[str, Any], session: Session) -> Inquiry:
        config = self.config()
        terminal = config.terminals.get(session.terminal)
        if terminal is None:
            raise ApiError(403, "forbidden", "terminal no longer configured")
        unknown = set(body) - {"subject", "fields", "networks", "purpose", "requester",
                               "recipient", "priority"}  # fmt: skip
        if unknown:
            name = sorted(unknown)[0]
            raise bad_field(name, f"{name}: not a field of an inquiry request")
        try:
            subject = validate_subject(body.get("subject"))
            fields = validate_fields(subject, body.get("fields"))
            purpose = validate_purpose(body["purpose"]) if body.get("purpose") else None
        except ValidationError as err:
            raise bad_field(err.field or "fields", err.message) from None
        extras: dict[str, str | None] = {}
        for name, limit in _OPTIONAL_TEXT.items():
            value = body.get(name)
            if value is None or value == "":
                extras[name] = None
                continue
            if not isinstance(value, str) or len(value) > limit or not value.isprintable():
                raise bad_field(name, f"{name}: at most {limit} printable characters")
            extras[name] = " ".join(value.upper().split())
        if subject not in terminal.subjects:
            raise ApiError(403, "forbidden", f"this terminal may not run {subject} inquiries")
        requested = body.get("networks")
        if requested is not None and (
            not isinstance(requested, list) or not all(isinstance(n, str) for n in requested)
        ):
            raise bad_field("networks", "networks: a list of network names")
        try:
            networks = networks_for(
                config.routes,
                subject,
                fields,
                home_state=config.ori[:2],
                allowed=terminal.networks,
                requested=requested or None,
            )
        except ValidationError as err:
            raise bad_field(err.field or "networks", err.message) from None
        except PermissionError as err:
            raise ApiError(403, "forbidden", str(err)) from None
        return Inquiry(
            id=new_id(),
            subject=subject,
            fields=fields,
            origin=Origin(terminal.ori, terminal.id, session.operator),
            priority="urgent" if body.get("priority") == "urgent" else "routine",
            networks=networks,
            purpose=purpose,
            requester=extras["requester"],
            recipient=extras["recipient"],
        )

    async def create(self, call: Call) -> Response:
        session = call.require_session()
        wait = _wait_param(call)
        try:
            inquiry = self._build(call.body or {}, session)
        except ApiError as err:
            if self.on_rejected is not None:
                self.on_rejected(str((call.body or {}).get("subject", "")))
            raise err from None
        terminal = self.config().terminals[session.terminal]
        retry = self.limiter.check(terminal.id, terminal.rate_limit)
        if retry > 0:
            raise too_many(retry)
        progress = await self.engine.submit(inquiry, session.terminal)
        if wait > 0:
            progress = await self.engine.wait(progress, wait)
            if progress.complete:
                return Response(200, inquiry_json(progress))
        return Response(
            202,
            {"id": inquiry.id, "status": "pending", "networks": list(inquiry.networks)},
            headers={"Location": f"/v1/inquiries/{inquiry.id}"},
        )

    async def get(self, call: Call) -> Response:
        session = call.require_session()
        wait = _wait_param(call)
        progress = self.engine.get(call.params["id"], session.terminal)
        if progress is None:
            result = await self.engine.result(call.params["id"], session.terminal)
            if result is None:
                raise ApiError(404, "not_found", "no such inquiry for this terminal", field="id")
            return Response(200, result)
        if wait > 0 and not progress.complete:
            progress = await self.engine.wait(progress, wait)
        return Response(200, inquiry_json(progress))

    # ---------------------------------------------------------------- mailbox

    async def list_mailbox(self, call: Call) -> Response:
        session = call.require_session()
        after = _int_param(call, "after", 0, 0, 2**62)
        limit = _int_param(call, "limit", PAGE, 1, 1000)
        unacked = call.query.get("unacked", ["0"])[-1] in ("1", "true", "yes")
        items = await self.mailbox.since(session.terminal, after, limit, unacked_only=unacked)
        return Response(200, {"items": [item_json(i) for i in items]})

    async def ack(self, call: Call) -> Response:
        session = call.require_session()
        try:
            seq = int(call.params["seq"])
        except ValueError:
            raise ApiError(404, "not_found", "no such mailbox item", field="seq") from None
        if not await self.mailbox.ack(session.terminal, seq):
            raise ApiError(404, "not_found", "no such mailbox item", field="seq")
        return Response(200, {"seq": seq, "acked": True})

    # ---------------------------------------------------------------- events

    async def events(self, call: Call) -> Response:
        session = call.require_session()
        raw = call.header("last-event-id") or call.query.get("last_event_id", ["0"])[-1]
        try:
            last = int(raw or 0)
        except ValueError:
            last = -1
        if not 0 <= last <= 2**62:
            raise bad_field("Last-Event-ID", "Last-Event-ID: a mailbox sequence number")
        sessions = self.api.sessions

        def alive() -> bool:
            # ended by logoff, idle expiry or a reload: the stream ends with it
            return any(s is session for s in sessions.sessions())

        stream = EventStream(
            self.mailbox,
            session.terminal,
            last,
            self.clock,
            keepalive=self.keepalive,
            stall_limit=self.stall_limit,
            alive=alive,
        )
        return Response(
            200,
            content_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            stream=stream.start,
        )


@implementer(IPushProducer)
class EventStream:
    """One SSE connection: replay after ``last`` from the store, then live items.

    Nothing is buffered here: while the reader is slow (the transport paused us) or a
    replay is running, live items are skipped and re-read from the store afterwards,
    so memory per stream is bounded by one page whatever the reader does.

    The session that opened it is checked at every keepalive: once it has ended
    (logoff, idle expiry, reload) the stream is closed within ``keepalive`` seconds.

    Invariant: an item is written directly from the live push only when the stream is
    caught up (``behind`` false, no replay running, not paused); every other path goes
    through the store in ``seq`` order, so the reader sees no gap and no duplicate.
    """

    def __init__(
        self,
        mailbox: Mailbox,
        terminal: str,
        last: int,
        clock: IReactorTime,
        *,
        keepalive: float = KEEPALIVE,
        stall_limit: float = STALL_LIMIT,
        alive: Callable[[], bool] | None = None,
    ) -> None:
        self.mailbox = mailbox
        self.alive = alive
        self.terminal = terminal
        self.last = last
        self.clock = clock
        self.keepalive = keepalive
        self.stall_limit = stall_limit
        self.request: WebRequest | None = None
        self.paused_at: float | None = None
        self.behind = True  # replay first
        self.replaying = False
        self.closed = False
        self._unsubscribe: Callable[[], None] | None = None
        self._timer: IDelayedCall | None = None
        self._stall: IDelayedCall | None = None

    def start(self, request: WebRequest) -> None:
        self.request = request
        channel = request.channel
        if channel is None or getattr(request, "_disconnected", False):
            # The client left before the answer began: nothing to subscribe for (a
            # subscription here would never be removed: notifyFinish would never fire).
            self.closed = True
            return
        channel.setTimeout(None)  # type: ignore[no-untyped-call]  # our keepalive rules
        request.registerProducer(self, True)  # type: ignore[no-untyped-call]
        request.notifyFinish().addBoth(self._finished)
        self._write(b": switch event stream\n\n")
        if getattr(channel, "_waitingForTransport", False):
            # HTTPChannel does not pause a producer registered while the transport is
            # already full; do it ourselves so the stall limit applies from now.
            self.pauseProducing()
        self._unsubscribe = self.mailbox.subscribe(self.terminal, self._live)
        self._timer = self.clock.callLater(self.keepalive, self._tick)
        self._replay()

    # ---------------------------------------------------------------- producer

    def pauseProducing(self) -> None:
        if self.paused_at is not None or self.closed:
            return
        self.paused_at = self.clock.seconds()
        self._stall = self.clock.callLater(self.stall_limit, self._stalled)

    def resumeProducing(self) -> None:
        if self.closed:
            return
        self.paused_at = None
        self._cancel_stall()
        if self.behind:
            self._replay()

    def stopProducing(self) -> None:
        self._close()

    # ---------------------------------------------------------------- flow

    def _live(self, item: MailboxItem) -> None:
        if self.closed:
            return
        if item.seq <= self.last:
            return
        if self.paused_at is not None or self.replaying or self.behind:
            # busy, blocked or not caught up: the store has it, read it later
            self.behind = True
            self._replay()  # no-op while paused or already replaying
            return
        self._send(item)

    def _send(self, item: MailboxItem) -> None:
        self._write(sse_frame(item))
        self.last = item.seq

    def _write(self, data: bytes) -> None:
        assert self.request is not None
        self.request.write(data)  # type: ignore[no-untyped-call]

    def _replay(self) -> None:
        if self.replaying or self.closed or self.paused_at is not None:
            return
        self.replaying = True
        d = Deferred.fromCoroutine(self._replay_pages())
        d.addErrback(self._replay_failed)

    async def _replay_pages(self) -> None:
        try:
            while self.behind and not self.closed and self.paused_at is None:
                self.behind = False
                items = await self.mailbox.since(self.terminal, self.last, PAGE)
                if self.closed:
                    return
                for item in items:
                    if item.seq > self.last:
                        self._send(item)
                if len(items) == PAGE:
                    self.behind = True
        finally:
            self.replaying = False

    def _replay_failed(self, failure: Any) -> None:
        log.error("event stream replay failed", terminal=self.terminal,
                  error=failure.getErrorMessage())  # fmt: skip
        self._close()

    def _tick(self) -> None:
        self._timer = None
        if self.closed or self.request is None:
            return
        if self.alive is not None and not self.alive():
            log.info("event stream closed: session ended", terminal=self.terminal)
            self._close()
            return
        if self.paused_at is None:
            self._write(b": keepalive\n\n")
        self._timer = self.clock.callLater(self.keepalive, self._tick)

    def _stalled(self) -> None:
        self._stall = None
        if self.closed or self.paused_at is None:
            return
        log.warning("event stream stalled, closing", terminal=self.terminal)
        self._close()

    def _cancel_stall(self) -> None:
        if self._stall is not None and self._stall.active():
            self._stall.cancel()
        self._stall = None

    def _close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._cleanup()
        request = self.request
        transport = request.channel.transport if request and request.channel else None
        if transport is not None:
            transport.abortConnection()  # type: ignore[attr-defined]

    def _finished(self, _: object) -> None:
        self.closed = True
        self._cleanup()

    def _cleanup(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        self._cancel_stall()
