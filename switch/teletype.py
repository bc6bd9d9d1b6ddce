"""Outbound teletype: accept a message from a terminal, route it, store it, forward it.

``submit`` validates an AM/YQ/YR (DESIGN §3), plans one route per destination with the
ordered destination rules (:mod:`switch.routing.destinations`), audits ``teletype.out``
and commits the message, its routes and one queue item per routable route *before* it
returns: the API answers 202 only after that. Unroutable destinations go straight to the
intercept queue with ``network: null``.

A per-link sender then drains the durable queue (the store's ``teletype_queue``): urgent
before routine, then FIFO; nothing is handed to a link that is not up, so messages are
held while it is down and released by :meth:`TeletypeEngine.on_link_up`. At most
``window`` items per link are with the link layer at once; the link keeps un-ACKed
teletype across a reconnect and resends it with the same wire id, so the sender never
hands the same wire id over twice while it is in flight, and after a restart ``sent``
items are queued again with the same id (the network's duplicate memory makes that safe).

Outcomes: ACK -> ``accepted``; a permanent NAK (10, 11, 12, 19, 22, or one our own codec
raised) -> ``rejected`` -> intercept queue; anything else (NAK 30/31/50, ACK timeout, link
down) -> retried with exponential backoff up to ``max_attempts``, then the intercept
queue; older than the TTL -> ``expired`` -> intercept queue. Every route state change
updates the route's ``updated`` time and puts a ``delivery`` event in the sending
terminal's mailbox. Decisions are written down in ``docs/teletype.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from switch.audit.interface import AuditSink, CompanionWrite
from switch.config import DestinationRule, Terminal
from switch.deferreds import all_of, nothing
from switch.inquiry import MailboxPort
from switch.model import (
    ADMIN_KEYS,
    NAK_INVALID_DESTINATION,
    NAK_INVALID_FORMAT,
    NAK_MALFORMED,
    NAK_TOO_LARGE,
    NAK_UNKNOWN_TYPE,
    SEXES,
    AdminMessage,
    Notice,
    Origin,
    ValidationError,
    new_id,
    normalize_name,
    validate_date,
    validate_id,
    validate_priority,
)
from switch.routing.destinations import plan_routes, validate_destinations
from switch.store.interface import TeletypeItem, TeletypeState
from switch.teletype_store import (
    InterceptRecord,
    MessageRecord,
    RouteRecord,
    TeletypeQueue,
    TeletypeStore,
)

log = structlog.get_logger("switch.teletype")

#: NAK codes after which sending the same message again cannot succeed.
PERMANENT_NAK_CODES: Final = frozenset(
    {NAK_MALFORMED, NAK_TOO_LARGE, NAK_UNKNOWN_TYPE, NAK_INVALID_DESTINATION, NAK_INVALID_FORMAT}
)
#: Free text after whitespace normalisation (the state wire wraps it at 80 columns).
MAX_TEXT: Final = 2000
#: A YQ/YR item is one ``XXX/value`` line of at most 80 columns on the state wire.
MAX_FIELD: Final = 76
#: SM status codes (DESIGN §4.3): held by the network / destination down, resend.
SM_HELD: Final = 2
SM_RESEND: Final = 4

_ITEM_START: Final = re.compile(r"[A-Z]{3}/")
_REF_RE: Final = re.compile(r"[A-Z0-9-]{1,20}")


class LinkPort(Protocol):
    """What the sender needs of the link layer (``LinkManager`` fits)."""

    def is_up(self, name: str) -> bool: ...

    def send(self, name: str, message: AdminMessage) -> Deferred[Any]:
        """Fires on ACK; fails with LinkNak(code, text), AckTimeout, LinkDown, WindowFull."""
        ...


# --------------------------------------------------------------------------- validation


def iso(ts: float) -> str:
    """UTC with hundredths of a second, as the rest of the project writes times."""
    t = _dt.datetime.fromtimestamp(ts, _dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 10000:02d}Z"


def normalise_text(key: str, value: object, field: str = "text") -> str:
    """Single spaces, no line breaks (what every wire carries), printable ASCII only."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field}: expected text")
    text = " ".join(value.split())
    if not text:
        raise ValidationError(field, f"{field}: expected non-empty text")
    if len(text) > MAX_TEXT or not text.isascii() or not text.isprintable():
        raise ValidationError(field, f"{field}: at most {MAX_TEXT} printable ASCII characters")
    if key != "AM" and _ITEM_START.match(text):
        raise ValidationError(field, f"{field}: a {key} text may not start like a field (XXX/)")
    return text


def _short(value: object, field: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(field, f"{field}: expected non-empty text")
    text = " ".join(value.upper().split())
    if len(text) > MAX_FIELD or not text.isascii() or not text.isprintable():
        raise ValidationError(field, f"{field}: at most {MAX_FIELD} printable ASCII characters")
    return text


def _reference(value: object, field: str) -> str:
    text = _short(value, field).replace(" ", "")
    if not _REF_RE.fullmatch(text):
        raise ValidationError(field, f"{field}: 1-20 letters, digits or hyphens")
    return text


def _one_of(allowed: Iterable[str]) -> Any:
    options = tuple(allowed)

    def rule(value: object, field: str) -> str:
        text = str(value).strip().upper() if isinstance(value, str | int) else ""
        if text not in options:
            raise ValidationError(field, f"{field}: one of {', '.join(options)}")
        return text

    return rule


def _confirmed(value: object, field: str) -> str:
    """``Y``, ``N``, or ``P`` with an optional time (``P 30 MIN``)."""
    text = _short(value, field)
    if text in ("Y", "N") or text == "P" or text.startswith("P "):
        return text
    raise ValidationError(field, f"{field}: Y, N, or P followed by a time")


_FIELD_RULES: Final[Mapping[str, Any]] = {
    "request_type": _short,
    "request_number": _one_of(("1", "2", "3")),
    "urgency": _one_of(("U", "R")),
    "oca": _reference,
    "nic": _reference,
    "name": normalize_name,
    "dob": validate_date,
    "sex": _one_of(sorted(SEXES)),
    "requester_name": _short,
    "requester_agency": _short,
    "phone": _short,
    "remarks": _short,
    "confirmed": _confirmed,
}


def validate_admin_fields(key: str, fields: object) -> dict[str, str]:
    """YQ/YR fields of DESIGN §3, normalised; an AM carries none."""
    if fields is None:
        fields = {}
    if not isinstance(fields, Mapping):
        raise ValidationError("fields", "fields: expected an object")
    if key == "AM":
        if fields:
            raise ValidationError("fields", "fields: an AM carries no fields")
        return {}
    out: dict[str, str] = {}
    for name, value in fields.items():
        rule = _FIELD_RULES.get(str(name))
        if rule is None or (name == "confirmed" and key != "YR"):
            raise ValidationError(str(name), f"{name}: not a field of a {key}")
        if value is None or value == "":
            continue
        out[str(name)] = rule(value, name)
    if key == "YQ":
        out.setdefault("request_number", "1")
        if "urgency" not in out:
            raise ValidationError("urgency", "urgency: required for a YQ ('U' or 'R')")
    if key == "YR" and "confirmed" not in out:
        raise ValidationError("confirmed", "confirmed: required for a YR (Y, N or P)")
    if "nic" not in out and "oca" not in out:
        raise ValidationError("nic", f"nic: a {key} names the record by NIC or OCA")
    return out


@dataclass(frozen=True)
class Submission:
    """A validated ``POST /v1/messages`` body."""

    key: str
    to: tuple[str, ...]
    text: str
    priority: str
    fields: Mapping[str, str]
    in_reply_to: str | None = None


_BODY_KEYS: Final = frozenset({"key", "to", "text", "priority", "fields", "in_reply_to"})


def validate_submission(body: Mapping[str, object]) -> Submission:
    """Check a message body; ValidationError names the first bad field."""
    for name in body:
        if name not in _BODY_KEYS:
            raise ValidationError(str(name), f"{name}: unknown field")
    key = body.get("key")
    if not isinstance(key, str) or key.strip().upper() not in ADMIN_KEYS:
        raise ValidationError("key", f"key: one of {', '.join(ADMIN_KEYS)}")
    key = key.strip().upper()
    to = validate_destinations(key, body.get("to"))
    text = normalise_text(key, body.get("text"))
    priority = validate_priority(body.get("priority", "routine"))
    fields = validate_admin_fields(key, body.get("fields"))
    ref = body.get("in_reply_to")
    in_reply_to = None if ref is None else validate_id(ref, "in_reply_to")
    return Submission(key, to, text, priority, fields, in_reply_to)


# --------------------------------------------------------------------------- JSON shapes


def route_json(route: RouteRecord) -> dict[str, Any]:
    return {
        "dest": route.dest,
        "network": route.link,
        "state": route.state,
        "updated": iso(route.updated),
    }


def submitted_json(message: MessageRecord, routes: Sequence[RouteRecord]) -> dict[str, Any]:
    """``POST /v1/messages`` -> 202 ``{"id", "routes": [{"dest", "network", "state"}]}``."""
    return {
        "id": message.id,
        "routes": [{"dest": r.dest, "network": r.link, "state": r.state} for r in routes],
    }


def message_json(message: MessageRecord, routes: Sequence[RouteRecord]) -> dict[str, Any]:
    """``GET /v1/messages/{id}`` (DESIGN §9)."""
    return {
        "id": message.id,
        "key": message.key,
        "to": list(message.to),
        "text": message.text,
        "priority": message.priority,
        "fields": dict(message.fields),
        "in_reply_to": message.in_reply_to,
        "created": iso(message.created),
        "routes": [route_json(r) for r in routes],
    }


def wire_json(message: MessageRecord, route: RouteRecord) -> dict[str, Any]:
    """The queue item's message: one destination, the route's wire id."""
    return {
        "id": route.wire_id,
        "key": message.key,
        "from": message.from_ori,
        "to": [route.dest],
        "text": route.text or message.text,
        "priority": message.priority,
        "fields": dict(message.fields),
        "in_reply_to": message.in_reply_to,
        "created": message.created,
        "terminal": message.terminal,
        "operator": message.operator,
    }


def wire_message(data: Mapping[str, Any]) -> AdminMessage:
    """Rebuild the AdminMessage a queue item stands for."""
    created = _dt.datetime.fromtimestamp(float(data.get("created") or 0.0), _dt.UTC)
    fields = data.get("fields") or {}
    return AdminMessage(
        id=str(data["id"]),
        key=str(data["key"]),
        from_ori=str(data["from"]),
        to=tuple(str(d) for d in data["to"]),
        text=str(data["text"]),
        priority=validate_priority(data.get("priority", "routine")),
        fields={str(k): str(v) for k, v in dict(fields).items()},
        in_reply_to=data.get("in_reply_to"),
        origin=Origin(
            ori=str(data["from"]), terminal=data.get("terminal"), operator=data.get("operator")
        ),
        created=created,
    )


def classify(error: BaseException) -> tuple[bool, str]:
    """(permanent, detail) for a send failure; link errors are matched by class name so
    that this module does not import the Twisted link layer."""
    name = type(error).__name__
    if name == "LinkNak":
        code = getattr(error, "code", None)
        text = str(getattr(error, "text", ""))
        local = bool(getattr(error, "local", False))
        return (local or code in PERMANENT_NAK_CODES), f"NAK {code} {text}".strip()
    return False, name


# --------------------------------------------------------------------------- the engine


@dataclass
class _Flight:
    item: TeletypeItem
    deferred: Deferred[Any] | None = None


@dataclass
class _LinkQueue:
    inflight: dict[str, _Flight] = field(default_factory=dict)
    pumping: bool = False
    again: bool = False
    timers: list[IDelayedCall] = field(default_factory=list)


class TeletypeEngine:
    """Accepts teletype from terminals and forwards it, one store-and-forward queue per link.

    Args:
        clock: the reactor, or ``task.Clock`` in tests.
        links: the link layer (:class:`LinkPort`).
        queue: the store's teletype queue (:class:`~switch.teletype_store.TeletypeQueue`).
        store: messages, routes and the intercept queue.
        audit: every accepted message, final route state and interception is audited.
        mailbox: ``delivery`` events go to the sending terminal.
        rules: the ordered destination rules (``RoutesConfig.destinations``).
        link_names: the configured links; a rule naming another link is unroutable.
        ttl: seconds a route may wait before it expires (default 24 h).
        max_attempts: transmissions before a transiently failing route is intercepted.
        window: most items with the link layer at once, per link.
        retry_initial, retry_max: backoff after a transient failure, doubling.
        tick: how often expiry is checked and delayed retries are picked up.
        on_change: called with the link name whenever a route of that link changes
            state (the daemon refreshes its queue gauges; never called for ``None``).
    """

    def __init__(
        self,
        clock: IReactorTime,
        links: LinkPort,
        queue: TeletypeQueue,
        store: TeletypeStore,
        audit: AuditSink,
        mailbox: MailboxPort,
        *,
        rules: Sequence[DestinationRule],
        link_names: Iterable[str],
        ttl: float = 24 * 3600.0,
        max_attempts: int = 5,
        window: int = 64,
        retry_initial: float = 5.0,
        retry_max: float = 300.0,
        tick: float = 30.0,
        ids: Any = new_id,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self._clock = clock
        self._links = links
        self._queue = queue
        self.store = store
        self._audit = audit
        self._mailbox = mailbox
        self._rules = tuple(rules)
        self._link_names = tuple(link_names)
        self.ttl = ttl
        self.max_attempts = max_attempts
        self._window = window
        self._retry_initial = retry_initial
        self._retry_max = retry_max
        self._tick_seconds = tick
        self._ids = ids
        self._queues: dict[str, _LinkQueue] = {}
        self._tick_call: IDelayedCall | None = None
        self._stopped = False
        #: False until start() has recovered the queue: a link that comes up earlier
        #: must not send while "sent" items of the last run are being queued again.
        self._started = False
        self._on_change = on_change

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Deferred[None]:
        """Recover after a restart, arm the expiry tick and start sending."""
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._stopped = False
        now = self._now()
        for link in self._link_names:
            await self._queue.requeue_sent(link, now)
        for route in await self.store.open_routes():
            await self._recover(route, now)
        self._started = True
        self._schedule_tick()
        for link in self._link_names:
            self.kick(link)

    async def _recover(self, route: RouteRecord, now: float) -> None:
        """Make a route and its queue item agree after a crash between two commits."""
        if route.link is None:
            return
        item = await self._queue.get_teletype(route.wire_id)
        if item is None:
            found = await self.store.get_message(route.message_id)
            if found is None:
                return
            message, _ = found
            fresh = route.wire_number > route.number
            await self._queue.enqueue_teletype(
                self._item(message, route, now, fresh_ttl=fresh), now
            )
            if route.state != "queued":
                await self.store.update_route(dataclasses.replace(route, state="queued"))
        elif item.state == "accepted":
            await self._set_state(route.wire_id, "accepted", audit=True)
        elif item.state in ("rejected", "expired", "intercepted"):
            await self._intercept(route.wire_id, item.state, "recovered after restart", item.state)
        elif item.state != route.state:
            await self.store.update_route(dataclasses.replace(route, state=item.state))

    def stop(self) -> None:
        """Stop sending; in-flight items stay ``sent`` and are queued again at next start."""
        self._stopped = True
        if self._tick_call is not None and self._tick_call.active():
            self._tick_call.cancel()
        self._tick_call = None
        for lq in self._queues.values():
            for timer in lq.timers:
                if timer.active():
                    timer.cancel()
            lq.timers.clear()

    def set_rules(self, rules: Sequence[DestinationRule], link_names: Iterable[str]) -> None:
        """A reload: new destination rules apply to messages submitted from now on."""
        self._rules = tuple(rules)
        self._link_names = tuple(link_names)

    @property
    def rules(self) -> tuple[DestinationRule, ...]:
        return self._rules

    @property
    def link_names(self) -> tuple[str, ...]:
        return self._link_names

    def on_link_up(self, name: str) -> None:
        """The link ``name`` is up: release what was held for it."""
        self.kick(name)

    def link_state_changed(self, link: Any, old: str, new: str) -> None:
        """A ``Link`` state listener (``LinkManager.add_listener``)."""
        if new == "up":
            self.on_link_up(str(link.name))

    def on_link_removed(self, name: str) -> Deferred[int]:
        """A reload removed link ``name`` (DESIGN §8): every route still waiting for it
        goes to the intercept queue (reason ``link_removed``), where an admin reroutes
        it. Fires with how many were moved."""
        return Deferred.fromCoroutine(self._link_removed(name))

    async def _link_removed(self, name: str) -> int:
        moved = 0
        for route in await self.store.open_routes():
            if route.link != name:
                continue
            flight = self._lq(name).inflight.pop(route.wire_id, None)
            if flight is not None and flight.deferred is not None:
                flight.deferred.cancel()
            await self._queue.mark_teletype(route.wire_id, "intercepted", self._now())
            await self._intercept(
                route.wire_id, "link_removed", f"link {name} removed by a reload", "intercepted"
            )
            moved += 1
        self._queues.pop(name, None)
        return moved

    def in_flight(self, link: str) -> int:
        return len(self._lq(link).inflight)

    # ------------------------------------------------------------------ submit

    def submit(
        self, body: Mapping[str, object], terminal: Terminal, operator: str | None
    ) -> Deferred[tuple[MessageRecord, list[RouteRecord]]]:
        """Validate, audit, commit, then queue; fires once all of it is committed.

        Fails with ValidationError (nothing stored) or AuditUnavailable (nothing stored,
        nothing sent)."""
        return Deferred.fromCoroutine(self._submit(body, terminal, operator))

    async def _submit(
        self, body: Mapping[str, object], terminal: Terminal, operator: str | None
    ) -> tuple[MessageRecord, list[RouteRecord]]:
        sub = validate_submission(body)
        now = self._now()
        message = MessageRecord(
            id=self._ids(),
            terminal=terminal.id,
            operator=operator,
            key=sub.key,
            from_ori=terminal.ori,
            to=sub.to,
            text=sub.text,
            priority=sub.priority,
            fields=dict(sub.fields),
            in_reply_to=sub.in_reply_to,
            created=now,
        )
        routes = []
        for planned in plan_routes(self._rules, message.id, sub.to):
            link = planned.link if planned.link in self._link_names else None
            routes.append(
                RouteRecord(
                    message_id=message.id,
                    number=planned.number,
                    dest=planned.dest,
                    link=link,
                    state="queued" if link else "intercepted",
                    wire_id=planned.wire_id,
                    updated=now,
                )
            )
        # The message, its routes and its queue items are the record's companion
        # writes: one commit, and none of them exists without the record (with separate
        # commits, a failure between them would leave a record of a message the
        # terminal was told had failed). Nothing else comes with it: no gathering.
        queued = [r for r in routes if r.link is not None]
        writes = [CompanionWrite(self.store.save_message_job(message, routes), nothing)]
        writes += [
            CompanionWrite(
                self._queue.enqueue_teletype_job(self._item(message, r, now), now), nothing
            )
            for r in queued
        ]
        await self._audit.record(
            "teletype.out",
            {
                "id": message.id,
                "terminal": terminal.id,
                "operator": operator,
                "ori": terminal.ori,
                "key": message.key,
                "to": list(message.to),
                "priority": message.priority,
                "text": message.text,
                "fields": dict(message.fields),
                "in_reply_to": message.in_reply_to,
                "routes": [
                    {"dest": r.dest, "network": r.link, "state": r.state, "wire_id": r.wire_id}
                    for r in routes
                ],
            },
            writes,
            gather=False,
        )
        for route in routes:
            if route.link is None:
                await self._add_intercept(route, "unroutable", "no destination rule matches")
        log.info("teletype.accepted", message_id=message.id, key=message.key, routes=len(routes))
        for link in sorted({r.link for r in queued if r.link is not None}):
            self._changed(link)
            self.kick(link)
        return message, routes

    def _item(
        self, message: MessageRecord, route: RouteRecord, now: float, *, fresh_ttl: bool = False
    ) -> TeletypeItem:
        """The queue item of a route. The TTL runs from submission; an admin's resend
        from the intercept queue starts a fresh one (it was a deliberate decision)."""
        assert route.link is not None
        return TeletypeItem(
            id=route.wire_id,
            link=route.link,
            priority="urgent" if message.priority == "urgent" else "routine",
            message=wire_json(message, route),
            expires=(now if fresh_ttl else message.created) + self.ttl,
            attempts=route.attempts,
            created=now,
        )

    def get_message(
        self, message_id: str, terminal: str | None = None
    ) -> Deferred[dict[str, Any] | None]:
        """The ``GET /v1/messages/{id}`` shape, or None (also when ``terminal`` is given
        and did not send it: another terminal's message is "not found")."""

        async def get() -> dict[str, Any] | None:
            found = await self.store.get_message(message_id)
            if found is None or (terminal is not None and found[0].terminal != terminal):
                return None
            return message_json(*found)

        return Deferred.fromCoroutine(get())

    # ------------------------------------------------------------------ the sender

    def kick(self, link: str) -> None:
        """Send what is due on ``link`` (coalesced: one pump per link at a time)."""
        if self._stopped or not self._started:
            return
        lq = self._lq(link)
        if lq.pumping:
            lq.again = True
            return
        lq.pumping = True
        d = Deferred.fromCoroutine(self._pump(link, lq))
        d.addErrback(_log_failure, "teletype.pump_failed", link)

    async def _pump(self, link: str, lq: _LinkQueue) -> None:
        try:
            while True:
                lq.again = False
                await self._pump_once(link, lq)
                if not lq.again:
                    return
        finally:
            lq.pumping = False

    async def _pump_once(self, link: str, lq: _LinkQueue) -> None:
        while not self._stopped and self._links.is_up(link):
            room = self._window - len(lq.inflight)
            if room <= 0:
                return
            now = self._now()
            batch = await self._queue.next_teletype(link, room, now)
            batch = [i for i in batch if i.id not in lq.inflight]
            if not batch:
                return
            items = [dataclasses.replace(i, state="sent", attempts=i.attempts + 1) for i in batch]
            for item in items:
                lq.inflight[item.id] = _Flight(item)
            try:
                await all_of(
                    [
                        self._queue.mark_teletype(i.id, "sent", now, attempts=i.attempts)
                        for i in items
                    ]
                )
                await all_of([Deferred.fromCoroutine(self._set_state(i.id, "sent")) for i in items])
            except BaseException:
                for item in items:  # not with the link: the next pump may try again
                    lq.inflight.pop(item.id, None)
                raise
            for item in items:
                self._transmit(link, lq, item)

    def _transmit(self, link: str, lq: _LinkQueue, item: TeletypeItem) -> None:
        flight = lq.inflight.get(item.id)
        if flight is None:  # expired or withdrawn meanwhile
            return
        try:
            message = wire_message(item.message)
        except (KeyError, TypeError, ValueError):
            log.error("teletype.unreadable_item", wire_id=item.id, link=link)
            lq.inflight.pop(item.id, None)
            d0 = Deferred.fromCoroutine(
                self._intercept(item.id, "rejected", "queue item unreadable", "rejected")
            )
            d0.addErrback(_log_failure, "teletype.intercept_failed", link)
            return
        d = self._links.send(link, message)
        if item.id in lq.inflight and lq.inflight[item.id] is flight:
            flight.deferred = d
        d.addCallbacks(
            self._acked, self._failed, callbackArgs=(link, flight), errbackArgs=(link, flight)
        )
        d.addErrback(_log_failure, "teletype.result_failed", link)

    def _acked(self, _ack: object, link: str, flight: _Flight) -> Deferred[None] | None:
        lq = self._lq(link)
        if lq.inflight.get(flight.item.id) is not flight:
            return None  # expired and withdrawn: the ACK came too late to matter
        del lq.inflight[flight.item.id]
        self.kick(link)
        return Deferred.fromCoroutine(self._on_ack(flight.item))

    async def _on_ack(self, item: TeletypeItem) -> None:
        await self._queue.mark_teletype(item.id, "accepted", self._now())
        await self._set_state(item.id, "accepted", audit=True)

    def _failed(self, failure: Failure, link: str, flight: _Flight) -> Deferred[None] | None:
        lq = self._lq(link)
        if lq.inflight.get(flight.item.id) is not flight or isinstance(
            failure.value, CancelledError
        ):
            return None  # we withdrew it ourselves
        del lq.inflight[flight.item.id]
        if self._stopped:
            return None  # stays "sent": queued again with the same id at the next start
        self.kick(link)
        error = failure.value if failure.value is not None else Exception("unknown")
        return Deferred.fromCoroutine(self._on_failure(link, flight.item, error))

    async def _on_failure(self, link: str, item: TeletypeItem, error: BaseException) -> None:
        permanent, detail = classify(error)
        now = self._now()
        log.info("teletype.send_failed", wire_id=item.id, link=link, error=detail.split(" ", 2)[:2])
        if permanent:
            await self._queue.mark_teletype(item.id, "rejected", now)
            await self._intercept(item.id, "rejected", detail, "rejected")
        elif item.attempts >= self.max_attempts:
            await self._queue.mark_teletype(item.id, "intercepted", now)
            await self._intercept(
                item.id,
                "retries_exhausted",
                f"{detail} after {item.attempts} attempts",
                "intercepted",
            )
        else:
            delay = self.backoff(item.attempts)
            await self._queue.mark_teletype(item.id, "queued", now, next_attempt=now + delay)
            await self._set_state(item.id, "queued", reason=detail)
            self._retry_later(link, delay)

    def backoff(self, attempts: int) -> float:
        """Seconds before the next transmission after ``attempts`` failed ones."""
        return float(min(self._retry_initial * 2 ** max(attempts - 1, 0), self._retry_max))

    def _retry_later(self, link: str, delay: float) -> None:
        lq = self._lq(link)
        lq.timers = [t for t in lq.timers if t.active()]
        lq.timers.append(self._clock.callLater(delay, self.kick, link))

    # ------------------------------------------------------------------ expiry

    def _schedule_tick(self) -> None:
        if not self._stopped:
            self._tick_call = self._clock.callLater(self._tick_seconds, self._tick)

    def _tick(self) -> None:
        self._schedule_tick()
        d = self.expire_now()
        d.addErrback(_log_failure, "teletype.expiry_failed", "")

    def expire_now(self) -> Deferred[int]:
        """Expire what is past its TTL (intercept queue), then pick up due retries."""
        return Deferred.fromCoroutine(self._expire())

    async def _expire(self) -> int:
        expired = await self._queue.expire_teletype(self._now())
        for item in expired:
            flight = self._lq(item.link).inflight.pop(item.id, None)
            if flight is not None and flight.deferred is not None:
                flight.deferred.cancel()  # the link withdraws it
            hours = self.ttl / 3600.0
            await self._intercept(
                item.id, "expired", f"not delivered within {hours:g} h", "expired"
            )
        for link in self._link_names:
            self.kick(link)
        return len(expired)

    # ------------------------------------------------------------------ notices

    def on_notice(self, link: str, notice: Notice) -> Deferred[bool]:
        """An ER/SM naming one of our wire ids: act on it and fire True; False when it is
        tied to no route of ours (the caller delivers it as an unsolicited notice)."""
        return Deferred.fromCoroutine(self._on_notice(link, notice))

    async def _on_notice(self, link: str, notice: Notice) -> bool:
        ref = notice.in_reply_to
        route = await self.store.route_by_wire(ref) if ref else None
        if route is None or ref is None:
            return False
        await self._audit.record(
            "teletype.notice",
            {
                "id": route.message_id,
                "wire_id": ref,
                "network": link,
                "notice": notice.id,
                "key": notice.key,
                "code": notice.code,
            },
        )
        if notice.key == "SM" and notice.code == SM_HELD:
            # The network took the message and will store and forward it: for us the
            # route is delivered (accepted); the terminal is told it is held there.
            await self._set_state(ref, "accepted", reason="held by the network (SM .02)")
        elif notice.key == "ER" and notice.code in PERMANENT_NAK_CODES:
            await self._intercept(
                ref, "rejected", f"ER {notice.code} {notice.text}"[:200], "rejected"
            )
        else:
            # SM .04 (destination down, resend) or another error after the ACK. The
            # network remembers the wire id as done, so a resend needs a fresh one.
            item = await self._queue.get_teletype(ref)
            attempts = item.attempts if item is not None else route.attempts
            detail = f"{notice.key} {notice.code}"
            if attempts >= self.max_attempts:
                await self._intercept(ref, "retries_exhausted", detail, "intercepted")
            else:
                await self.requeue(
                    route, attempts=attempts, delay=self.backoff(attempts), reason=detail
                )
        return True

    # ------------------------------------------------------------------ requeue / intercept

    def resend(
        self, route: RouteRecord, *, dest: str, link: str, text: str | None
    ) -> Deferred[RouteRecord]:
        """An admin's resend from the intercept queue: a fresh wire id (see docs)."""
        return Deferred.fromCoroutine(
            self.requeue(
                dataclasses.replace(route, dest=dest, link=link, text=text),
                attempts=0,
                delay=0.0,
                reason="resent from the intercept queue",
                fresh_ttl=True,
            )
        )

    async def requeue(
        self,
        route: RouteRecord,
        *,
        attempts: int,
        delay: float,
        reason: str,
        fresh_ttl: bool = False,
    ) -> RouteRecord:
        """Queue ``route`` again under the message's next wire id."""
        found = await self.store.get_message(route.message_id)
        if found is None or route.link is None:
            raise ValidationError("id", "id: no such message route")
        message, routes = found
        now = self._now()
        number = max(r.wire_number for r in routes) + 1
        new = dataclasses.replace(
            route,
            state="queued",
            wire_id=f"{message.id}-{number}",
            updated=now,
            attempts=attempts,
        )
        await self.store.update_route(new)
        item = dataclasses.replace(
            self._item(message, new, now, fresh_ttl=fresh_ttl), next_attempt=now + delay
        )
        await self._queue.enqueue_teletype(item, now)
        await self._event(message, new, reason)
        if delay > 0:
            self._retry_later(new.link or "", delay)
        elif new.link is not None:
            self.kick(new.link)
        return new

    async def _intercept(
        self, wire_id: str, reason: str, detail: str, state: TeletypeState
    ) -> None:
        route = await self._set_state(wire_id, state, reason=reason, audit=True)
        if route is not None:
            await self._add_intercept(route, reason, detail)

    async def _add_intercept(self, route: RouteRecord, reason: str, detail: str) -> None:
        item = InterceptRecord(
            id=route.wire_id,
            message_id=route.message_id,
            number=route.number,
            reason=reason,
            detail=detail,
            created=self._now(),
        )
        await self.store.put_intercept(item)
        await self._audit.record(
            "intercept.add",
            {
                "id": item.id,
                "msg_id": route.message_id,
                "dest": route.dest,
                "network": route.link,
                "reason": reason,
                "detail": detail,
            },
        )
        log.warning("teletype.intercepted", wire_id=item.id, reason=reason)

    async def _set_state(
        self, wire_id: str, state: TeletypeState, *, reason: str | None = None, audit: bool = False
    ) -> RouteRecord | None:
        route = await self.store.route_by_wire(wire_id)
        if route is None:
            return None  # superseded by a resend under a newer wire id
        found = await self.store.get_message(route.message_id)
        if found is None:
            return None
        message, _ = found
        route = dataclasses.replace(route, state=state, updated=self._now())
        await self.store.update_route(route)
        self._changed(route.link)
        if audit:
            await self._audit.record(
                "teletype.route",
                {
                    "id": message.id,
                    "wire_id": wire_id,
                    "terminal": message.terminal,
                    "dest": route.dest,
                    "network": route.link,
                    "state": state,
                    "reason": reason,
                },
            )
        await self._event(message, route, reason)
        return route

    async def _event(self, message: MessageRecord, route: RouteRecord, reason: str | None) -> None:
        item: dict[str, Any] = {
            "id": message.id,
            "dest": route.dest,
            "network": route.link,
            "state": route.state,
            "updated": iso(route.updated),
        }
        if reason:
            item["reason"] = reason
        await self._mailbox.put(message.terminal, "delivery", item)

    # ------------------------------------------------------------------ helpers

    def _changed(self, link: str | None) -> None:
        if self._on_change is not None and link is not None:
            try:
                self._on_change(link)
            except Exception as exc:  # an observer's bug must not stop delivery
                log.error("teletype.on_change_failed", error=type(exc).__name__)

    def _lq(self, link: str) -> _LinkQueue:
        lq = self._queues.get(link)
        if lq is None:
            lq = self._queues[link] = _LinkQueue()
        return lq

    def _now(self) -> float:
        return self._clock.seconds()


def _log_failure(failure: Failure, event: str, link: str) -> None:
    log.error(event, link=link or None, error=type(failure.value).__name__)
