"""Hit confirmations with deadlines (DESIGN §3, §6): the YQ/YR exchange, tracked.

Outgoing: a terminal got a hit on another agency's record and asks the entering ORI to
confirm it. :meth:`ConfirmationTracker.request` builds the YQ from the hit (NIC, OCA,
name, DOB, urgency, requester details) and sends it through the teletype engine; the
deadline (10 minutes ``U``, 1 hour ``R``) is tracked with the injected clock, a
``deadline`` event warns the terminal before it passes and another says when it has
passed, offering the 2nd and then the 3rd request (:meth:`request_next`). The YR that
answers it (matched by ``in_reply_to``, else by NIC/OCA and sender ORI) records the
outcome.

Incoming: a YQ for one of our records is tracked the same way for the ``records``
terminals; :meth:`reply` sends the YR. An unanswered incoming YQ past its deadline counts
in :meth:`overdue_count`, the value of ``switch_hit_confirmations_overdue``: it is our
agency's obligation that is late. (An outgoing one past its deadline is the other
agency's delay: it is offered a next request instead.)

State lives in the :class:`~switch.teletype_store.TeletypeStore`; :meth:`start` reloads it
and re-arms the timers, firing at once any warning or overdue event missed while down.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Final

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from switch.audit.interface import AuditSink
from switch.config import Terminal
from switch.inquiry import MailboxPort
from switch.model import AdminMessage, ValidationError, new_id, validate_ori
from switch.routing.hitconfirm import MAX_REQUESTS, deadline_seconds
from switch.teletype import TeletypeEngine, iso
from switch.teletype_store import ConfirmationRecord

log = structlog.get_logger("switch.confirmations")

DEFAULT_YQ_TEXT: Final = "PLEASE CONFIRM HIT AND ADVISE"
DEFAULT_YR_TEXT: Final = "HIT CONFIRMATION RESPONSE"
DEFAULT_REQUEST_TYPE: Final = "WANTED PERSON"
#: Fields of the request that a YR echoes back.
_ECHOED: Final = ("request_type", "request_number", "oca", "nic", "name", "dob", "sex")
_HIT_KEYS: Final = frozenset(
    {
        "ori",
        "entering_ori",
        "record",
        "nic",
        "oca",
        "name",
        "dob",
        "sex",
        "urgency",
        "request_type",
        "requester_name",
        "requester_agency",
        "phone",
        "remarks",
        "text",
    }
)


class ConfirmationNotFound(LookupError):
    status = 404

    def __init__(self, id: str) -> None:
        super().__init__(f"no hit confirmation {id!r}")
        self.id = id


def hit_fields(hit: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(entering ORI, YQ fields) from a ``POST /v1/hit-confirmations`` body.

    The body names the record either flat (``ori``, ``nic``, ``oca``, ``name``, ``dob``,
    ``sex``) or as the hit ``record`` of an inquiry reply (``fields`` and ``warrant``);
    flat keys win. ``urgency`` (U/R) is required; requester details are optional.
    """
    for key in hit:
        if key not in _HIT_KEYS:
            raise ValidationError(str(key), f"{key}: unknown field")
    merged: dict[str, Any] = {}
    record = hit.get("record")
    if record is not None:
        if not isinstance(record, Mapping):
            raise ValidationError("record", "record: expected an object")
        fields = record.get("fields") or {}
        warrant = record.get("warrant") or {}
        if not isinstance(fields, Mapping) or not isinstance(warrant, Mapping):
            raise ValidationError("record", "record: fields and warrant are objects")
        for name in ("name", "dob", "sex"):
            if fields.get(name):
                merged[name] = fields[name]
        for name in ("nic", "oca"):
            if warrant.get(name):
                merged[name] = warrant[name]
        ori = warrant.get("entering_ori") or fields.get("ori")
        if ori:
            merged["ori"] = ori
    merged.update({k: v for k, v in hit.items() if k != "record" and v not in (None, "")})
    ori = validate_ori(merged.pop("ori", None) or merged.pop("entering_ori", None), "ori")
    merged.pop("entering_ori", None)
    merged.pop("text", None)
    merged.setdefault("request_type", DEFAULT_REQUEST_TYPE)
    merged["request_number"] = "1"
    return ori, merged


def confirmation_json(record: ConfirmationRecord, now: float) -> dict[str, Any]:
    c = record.confirmation
    return {
        "id": record.id,
        "direction": record.direction,
        "urgency": record.urgency,
        "request_number": record.request_number,
        "outcome": record.outcome,
        "deadline": iso(c.deadline),
        "overdue": c.overdue(now),
        "can_request_next": c.can_resend(now),
        "counterpart": record.counterpart,
        "terminals": list(record.terminals),
        "messages": list(record.message_ids),
        "fields": dict(record.fields),
        "reply": dict(record.reply) if record.reply is not None else None,
        "created": iso(record.created),
        "updated": iso(record.updated),
    }


class ConfirmationTracker:
    """Tracks every hit confirmation's deadline; see the module doc.

    Args:
        on_overdue: called with :meth:`overdue_count` whenever it may have changed
            (sets the gauge); the gauge may instead read :meth:`overdue_count` itself.
    """

    def __init__(
        self,
        clock: IReactorTime,
        engine: TeletypeEngine,
        audit: AuditSink,
        mailbox: MailboxPort,
        *,
        on_overdue: Callable[[int], None] | None = None,
        ids: Callable[[], str] = new_id,
    ) -> None:
        self._clock = clock
        self._engine = engine
        self._store = engine.store
        self._audit = audit
        self._mailbox = mailbox
        self._on_overdue = on_overdue
        self._ids = ids
        self._open: dict[str, ConfirmationRecord] = {}
        self._timers: dict[str, list[IDelayedCall]] = {}

    # ------------------------------------------------------------------ life cycle

    def start(self) -> Deferred[None]:
        """Load the open confirmations and re-arm their timers."""

        async def run() -> None:
            for record in await self._store.list_confirmations(open_only=True):
                self._open[record.id] = record
                self._arm(record)
            self._changed()

        return Deferred.fromCoroutine(run())

    def stop(self) -> None:
        for timers in self._timers.values():
            for t in timers:
                if t.active():
                    t.cancel()
        self._timers.clear()

    def overdue_count(self, direction: str = "incoming") -> int:
        """Open confirmations past their deadline (``incoming``: ours to answer)."""
        now = self._clock.seconds()
        return sum(
            1
            for r in self._open.values()
            if r.direction == direction and r.confirmation.overdue(now)
        )

    # ------------------------------------------------------------------ reading

    def get(self, id: str) -> Deferred[dict[str, Any]]:
        async def run() -> dict[str, Any]:
            record = await self._store.get_confirmation(id)
            if record is None:
                raise ConfirmationNotFound(id)
            return confirmation_json(record, self._clock.seconds())

        return Deferred.fromCoroutine(run())

    def list_items(self, *, open_only: bool = True) -> Deferred[list[dict[str, Any]]]:
        async def run() -> list[dict[str, Any]]:
            now = self._clock.seconds()
            records = await self._store.list_confirmations(open_only=open_only)
            return [confirmation_json(r, now) for r in records]

        return Deferred.fromCoroutine(run())

    # ------------------------------------------------------------------ outgoing

    def request(
        self, hit: Mapping[str, Any], terminal: Terminal, operator: str | None
    ) -> Deferred[dict[str, Any]]:
        """Send the 1st YQ for a hit and start its deadline."""

        async def run() -> dict[str, Any]:
            ori, fields = hit_fields(hit)
            text = hit.get("text") or DEFAULT_YQ_TEXT
            urgency = str(fields.get("urgency", "")).strip().upper()
            deadline_seconds(urgency)  # ValidationError names ``urgency``
            message, _ = await self._engine.submit(
                {
                    "key": "YQ",
                    "to": [ori],
                    "text": text,
                    "priority": "urgent" if urgency == "U" else "routine",
                    "fields": fields,
                },
                terminal,
                operator,
            )
            now = self._clock.seconds()
            record = ConfirmationRecord(
                id=self._ids(),
                direction="outgoing",
                urgency=urgency,
                request_number=1,
                sent_at=now,
                outcome="pending",
                terminals=(terminal.id,),
                counterpart=ori,
                message_ids=(message.id,),
                fields=dict(message.fields),
                created=now,
                updated=now,
            )
            await self._save(record, "hitconfirm.request", operator=operator)
            return confirmation_json(record, now)

        return Deferred.fromCoroutine(run())

    def request_next(
        self, id: str, terminal: Terminal, operator: str | None
    ) -> Deferred[dict[str, Any]]:
        """The 2nd or 3rd request, offered once the current one is overdue."""

        async def run() -> dict[str, Any]:
            record = await self._load(id)
            now = self._clock.seconds()
            nxt = record.confirmation.next_request(now)  # ValidationError if not due
            fields = {**record.fields, "request_number": str(nxt.request_number)}
            message, _ = await self._engine.submit(
                {
                    "key": "YQ",
                    "to": [record.counterpart],
                    "text": DEFAULT_YQ_TEXT,
                    "priority": "urgent" if record.urgency == "U" else "routine",
                    "fields": fields,
                },
                terminal,
                operator,
            )
            now = self._clock.seconds()
            record = dataclasses.replace(
                record,
                request_number=nxt.request_number,
                sent_at=now,
                message_ids=(*record.message_ids, message.id),
                fields=dict(message.fields),
                updated=now,
            )
            await self._save(record, "hitconfirm.request", operator=operator)
            return confirmation_json(record, now)

        return Deferred.fromCoroutine(run())

    def match_reply(self, message: AdminMessage) -> Deferred[ConfirmationRecord | None]:
        """An incoming YR: find the outgoing confirmation it answers and record the
        outcome; None when it answers none of ours."""

        async def run() -> ConfirmationRecord | None:
            record = await self._find_outgoing(message)
            if record is None:
                return None
            confirmed = message.fields.get("confirmed", "")
            outcome = record.confirmation.answered(confirmed).outcome
            now = self._clock.seconds()
            record = dataclasses.replace(
                record, outcome=outcome, reply=dict(message.fields), updated=now
            )
            await self._save(record, "hitconfirm.outcome", reply=message.id)
            await self._notify(record, "hit_confirmation", {"stage": "answered"})
            return record

        return Deferred.fromCoroutine(run())

    async def _find_outgoing(self, message: AdminMessage) -> ConfirmationRecord | None:
        candidates = [
            r for r in reversed(await self._store.list_confirmations()) if r.direction == "outgoing"
        ]
        ref = message.in_reply_to
        if ref:
            for r in candidates:
                if any(ref == m or ref.startswith(m + "-") for m in r.message_ids):
                    return r
        nic, oca = message.fields.get("nic"), message.fields.get("oca")
        for r in candidates:
            if r.counterpart != message.from_ori or not r.open:
                continue
            if _same_record(r, nic, oca):
                return r
        return None

    # ------------------------------------------------------------------ incoming

    def track_incoming(
        self, message: AdminMessage, terminals: tuple[str, ...]
    ) -> Deferred[ConfirmationRecord]:
        """A YQ for our records: start (or, for a 2nd/3rd request, restart) its deadline."""

        async def run() -> ConfirmationRecord:
            now = self._clock.seconds()
            urgency = message.fields.get("urgency", "R")
            if urgency not in ("U", "R"):
                urgency = "R"
            try:
                number = min(max(int(message.fields.get("request_number", "1")), 1), 3)
            except ValueError:
                number = 1
            nic, oca = message.fields.get("nic"), message.fields.get("oca")
            existing = next(
                (
                    r
                    for r in self._open.values()
                    if r.direction == "incoming"
                    and r.counterpart == message.from_ori
                    and _same_record(r, nic, oca)
                ),
                None,
            )
            if existing is not None and message.id in existing.message_ids:
                return existing  # the same YQ again (its first delivery was not ACKed)
            if existing is not None:
                # a 2nd/3rd request for the same record restarts the clock
                record = dataclasses.replace(
                    existing,
                    request_number=min(max(number, existing.request_number + 1), MAX_REQUESTS),
                    sent_at=now,
                    message_ids=(*existing.message_ids, message.id),
                    fields=dict(message.fields),
                    terminals=terminals,
                    updated=now,
                )
            else:
                record = ConfirmationRecord(
                    id=self._ids(),
                    direction="incoming",
                    urgency=urgency,
                    request_number=number,
                    sent_at=now,
                    outcome="pending",
                    terminals=terminals,
                    counterpart=message.from_ori,
                    message_ids=(message.id,),
                    fields=dict(message.fields),
                    created=now,
                    updated=now,
                )
            await self._save(record, "hitconfirm.incoming", message=message.id)
            return record

        return Deferred.fromCoroutine(run())

    def reply(
        self,
        id: str,
        body: Mapping[str, Any],
        terminal: Terminal,
        operator: str | None,
    ) -> Deferred[dict[str, Any]]:
        """Answer an incoming YQ with a YR: ``{"confirmed": Y|N|P..., "remarks"?, "text"?}``."""

        async def run() -> dict[str, Any]:
            for key in body:
                if key not in ("confirmed", "remarks", "text"):
                    raise ValidationError(str(key), f"{key}: unknown field")
            record = await self._load(id)
            if record.direction != "incoming":
                raise ValidationError("id", "id: only a request we received is answered")
            fields = {k: record.fields[k] for k in _ECHOED if record.fields.get(k)}
            fields["confirmed"] = body.get("confirmed", "")
            if body.get("remarks"):
                fields["remarks"] = body["remarks"]
            message, _ = await self._engine.submit(
                {
                    "key": "YR",
                    "to": [record.counterpart],
                    "text": body.get("text") or DEFAULT_YR_TEXT,
                    "priority": "urgent" if record.urgency == "U" else "routine",
                    "fields": fields,
                    "in_reply_to": record.message_ids[-1],
                },
                terminal,
                operator,
            )
            now = self._clock.seconds()
            outcome = record.confirmation.answered(message.fields["confirmed"]).outcome
            record = dataclasses.replace(
                record, outcome=outcome, reply=dict(message.fields), updated=now
            )
            await self._save(record, "hitconfirm.reply", operator=operator, reply=message.id)
            return confirmation_json(record, now)

        return Deferred.fromCoroutine(run())

    # ------------------------------------------------------------------ timers

    def _arm(self, record: ConfirmationRecord) -> None:
        for t in self._timers.pop(record.id, []):
            if t.active():
                t.cancel()
        if not record.open:
            return
        c = record.confirmation
        now = self._clock.seconds()
        timers = []
        if record.warned < record.request_number and now < c.deadline:
            timers.append(self._clock.callLater(max(c.warn_at - now, 0.0), self._fire, record.id))
        if record.overdue_noted < record.request_number:
            timers.append(self._clock.callLater(max(c.deadline - now, 0.0), self._fire, record.id))
        self._timers[record.id] = timers

    def _fire(self, id: str) -> None:
        d = Deferred.fromCoroutine(self._due(id))
        d.addErrback(_log_failure, id)

    async def _due(self, id: str) -> None:
        record = self._open.get(id)
        if record is None:
            return
        c = record.confirmation
        now = self._clock.seconds()
        n = record.request_number
        if now >= c.deadline and record.overdue_noted < n:
            expired = record.direction == "outgoing" and n >= MAX_REQUESTS
            record = dataclasses.replace(
                record,
                warned=n,
                overdue_noted=n,
                outcome="expired" if expired else record.outcome,
                updated=now,
            )
            await self._save(record, "hitconfirm.overdue")
            await self._notify(record, "deadline", {"stage": "expired" if expired else "overdue"})
        elif now >= c.warn_at and record.warned < n:
            record = dataclasses.replace(record, warned=n, updated=now)
            await self._save(record, None)
            await self._notify(record, "deadline", {"stage": "warning"})

    # ------------------------------------------------------------------ helpers

    async def _load(self, id: str) -> ConfirmationRecord:
        record = self._open.get(id) or await self._store.get_confirmation(id)
        if record is None:
            raise ConfirmationNotFound(id)
        return record

    async def _save(self, record: ConfirmationRecord, event: str | None, **extra: Any) -> None:
        await self._store.save_confirmation(record)
        if record.open:
            self._open[record.id] = record
        else:
            self._open.pop(record.id, None)
        self._arm(record)
        self._changed()
        if event is not None:
            await self._audit.record(
                event,
                {
                    "id": record.id,
                    "direction": record.direction,
                    "terminal": record.terminals[0] if record.terminals else None,
                    "ori": record.counterpart,
                    "nic": record.fields.get("nic"),
                    "oca": record.fields.get("oca"),
                    "urgency": record.urgency,
                    "request_number": record.request_number,
                    "outcome": record.outcome,
                    **extra,
                },
            )

    async def _notify(self, record: ConfirmationRecord, kind: str, extra: dict[str, Any]) -> None:
        item = {**confirmation_json(record, self._clock.seconds()), **extra}
        for terminal in record.terminals:
            await self._mailbox.put(terminal, kind, item)

    def _changed(self) -> None:
        if self._on_overdue is not None:
            self._on_overdue(self.overdue_count())


def _same_record(record: ConfirmationRecord, nic: str | None, oca: str | None) -> bool:
    return bool(
        (nic and record.fields.get("nic") == nic) or (oca and record.fields.get("oca") == oca)
    )


def _log_failure(failure: Failure, id: str) -> None:
    log.error("hitconfirm.timer_failed", confirmation=id, error=type(failure.value).__name__)
