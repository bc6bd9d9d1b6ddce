"""The intercept queue (DESIGN §6): teletype an admin must look at.

A route lands here when no destination rule matches it (``unroutable``), when a network
refuses it for good (``rejected``), when it expires (``expired``) or when its bounded
retries are used up (``retries_exhausted``); :mod:`switch.teletype` puts it here. An admin
locks an item first (15 minutes, or until the session ends); only the holder of the lock
may edit its text or destination, reroute it to another link, resend it or delete it;
anyone else gets :class:`InterceptLocked` (HTTP 409). Every action is audited.

A resend queues the route again under the message's next wire id (``<id>-<n+1>``): the
text or the network may have changed, and a network that had taken the old id would drop
the new transmission as a duplicate. The route keeps its place in the message.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from switch.audit.interface import AuditSink
from switch.model import ValidationError
from switch.routing.destinations import match, validate_destinations
from switch.teletype import TeletypeEngine, iso, normalise_text, wire_json
from switch.teletype_store import InterceptRecord, MessageRecord, RouteRecord

#: How long a lock lasts unless released or its session ends (DESIGN §5).
LOCK_SECONDS: Final = 900.0


class InterceptError(Exception):
    """Base of the intercept queue's refusals; ``status`` is the HTTP status to answer."""

    status = 400


class InterceptNotFound(InterceptError, LookupError):
    status = 404

    def __init__(self, id: str) -> None:
        super().__init__(f"no intercept item {id!r}")
        self.id = id


class InterceptLocked(InterceptError):
    """The item is not locked by the caller's session (locked by another, or not at all)."""

    status = 409

    def __init__(self, id: str, locked_by: str | None) -> None:
        who = f"locked by {locked_by}" if locked_by else "not locked"
        super().__init__(f"intercept item {id} is {who}: lock it first")
        self.id = id
        self.locked_by = locked_by


class InterceptQueue:
    """Admin actions on intercepted routes.

    ``session`` arguments are opaque ids of the caller's API session (never audited: a
    token is a secret); ``operator`` is who is shown as ``locked_by`` and audited.
    """

    def __init__(
        self,
        clock: IReactorTime,
        engine: TeletypeEngine,
        audit: AuditSink,
        *,
        lock_seconds: float = LOCK_SECONDS,
    ) -> None:
        self._clock = clock
        self._engine = engine
        self._store = engine.store
        self._audit = audit
        self._lock_seconds = lock_seconds

    # ------------------------------------------------------------------ reading

    def list_items(self) -> Deferred[list[dict[str, Any]]]:
        """``GET /v1/intercept`` items, oldest first."""

        async def run() -> list[dict[str, Any]]:
            out = []
            for item in await self._store.list_intercepts():
                found = await self._route(item)
                if found is not None:
                    out.append(self._json(item, *found))
            return out

        return Deferred.fromCoroutine(run())

    def get(self, id: str) -> Deferred[dict[str, Any]]:
        """``GET /v1/intercept/{id}``; fails with InterceptNotFound."""

        async def run() -> dict[str, Any]:
            item, message, route = await self._load(id)
            return self._json(item, message, route)

        return Deferred.fromCoroutine(run())

    # ------------------------------------------------------------------ locking

    def lock(self, id: str, operator: str, session: str) -> Deferred[dict[str, Any]]:
        """Take (or renew) the lock; InterceptLocked while another session holds it."""

        async def run() -> dict[str, Any]:
            item, message, route = await self._load(id)
            now = self._now()
            if item.locked(now) and item.lock_session != session:
                raise InterceptLocked(id, item.locked_by)
            item = dataclasses.replace(
                item,
                locked_by=operator,
                lock_session=session,
                lock_expires=now + self._lock_seconds,
            )
            await self._store.put_intercept(item)
            await self._record("intercept.lock", item, operator)
            return self._json(item, message, route)

        return Deferred.fromCoroutine(run())

    def unlock(self, id: str, operator: str, session: str) -> Deferred[dict[str, Any]]:
        async def run() -> dict[str, Any]:
            item, message, route = await self._locked(id, session)
            item = dataclasses.replace(item, locked_by=None, lock_session=None, lock_expires=None)
            await self._store.put_intercept(item)
            await self._record("intercept.unlock", item, operator)
            return self._json(item, message, route)

        return Deferred.fromCoroutine(run())

    def session_ended(self, session: str) -> Deferred[int]:
        """Release every lock the session holds (logoff or session expiry)."""

        async def run() -> int:
            released = 0
            for item in await self._store.list_intercepts():
                if item.lock_session == session:
                    operator = item.locked_by or ""
                    item = dataclasses.replace(
                        item, locked_by=None, lock_session=None, lock_expires=None
                    )
                    await self._store.put_intercept(item)
                    await self._record("intercept.unlock", item, operator, cause="session_end")
                    released += 1
            return released

        return Deferred.fromCoroutine(run())

    # ------------------------------------------------------------------ actions

    def edit(
        self,
        id: str,
        operator: str,
        session: str,
        *,
        text: object = None,
        to: object = None,
    ) -> Deferred[dict[str, Any]]:
        """``PATCH``: new text and/or destination (one: the item is one route). A new
        destination is routed again by the destination rules."""

        async def run() -> dict[str, Any]:
            item, message, route = await self._locked(id, session)
            if text is None and to is None:
                raise ValidationError("text", "text: give text or to")
            changes: dict[str, Any] = {}
            new = route
            if text is not None:
                new = dataclasses.replace(new, text=normalise_text(message.key, text))
                changes["text"] = new.text
            if to is not None:
                dests = validate_destinations(message.key, to if isinstance(to, list) else [to])
                if len(dests) != 1:
                    raise ValidationError("to", "to: exactly one destination per item")
                rule = match(self._engine.rules, dests[0])
                link = rule.link if rule and rule.link in self._engine.link_names else None
                new = dataclasses.replace(new, dest=dests[0], link=link)
                changes.update({"to": dests[0], "old_to": route.dest, "network": link})
            new = dataclasses.replace(new, updated=self._now())
            await self._store.update_route(new)
            await self._record("intercept.edit", item, operator, **changes)
            return self._json(item, message, new)

        return Deferred.fromCoroutine(run())

    def reroute(
        self, id: str, operator: str, session: str, link: str | None
    ) -> Deferred[dict[str, Any]]:
        """Send the route over ``link`` (a configured link), or back to the rules (None)."""

        async def run() -> dict[str, Any]:
            item, message, route = await self._locked(id, session)
            if link is None:
                rule = match(self._engine.rules, route.dest)
                chosen = rule.link if rule and rule.link in self._engine.link_names else None
            elif link in self._engine.link_names:
                chosen = link
            else:
                raise ValidationError("network", f"network: no link named {link!r}")
            new = dataclasses.replace(route, link=chosen, updated=self._now())
            await self._store.update_route(new)
            await self._record(
                "intercept.reroute", item, operator, old_network=route.link, network=chosen
            )
            return self._json(item, message, new)

        return Deferred.fromCoroutine(run())

    def resend(self, id: str, operator: str, session: str) -> Deferred[dict[str, Any]]:
        """Queue the route again (fresh wire id, fresh TTL); the item leaves the queue.
        Fires with the route's new ``{dest, network, state, wire_id}``."""

        async def run() -> dict[str, Any]:
            item, _message, route = await self._locked(id, session)
            if route.link is None:
                raise ValidationError(
                    "network", "network: unroutable; edit the destination or reroute it first"
                )
            await self._store.delete_intercept(item.id)
            new = await self._engine.resend(
                route, dest=route.dest, link=route.link, text=route.text
            )
            await self._record(
                "intercept.resend", item, operator, wire_id=new.wire_id, network=new.link
            )
            return {
                "dest": new.dest,
                "network": new.link,
                "state": new.state,
                "wire_id": new.wire_id,
            }

        return Deferred.fromCoroutine(run())

    def delete(self, id: str, operator: str, session: str) -> Deferred[None]:
        """Drop the item for good; the route keeps its last state."""

        async def run() -> None:
            item, _message, _route = await self._locked(id, session)
            await self._store.delete_intercept(item.id)
            await self._record("intercept.delete", item, operator)

        return Deferred.fromCoroutine(run())

    # ------------------------------------------------------------------ helpers

    async def _route(self, item: InterceptRecord) -> tuple[MessageRecord, RouteRecord] | None:
        found = await self._store.get_message(item.message_id)
        if found is None:
            return None
        message, routes = found
        route = next((r for r in routes if r.number == item.number), None)
        return None if route is None else (message, route)

    async def _load(self, id: str) -> tuple[InterceptRecord, MessageRecord, RouteRecord]:
        item = await self._store.get_intercept(id)
        found = None if item is None else await self._route(item)
        if item is None or found is None:
            raise InterceptNotFound(id)
        return item, found[0], found[1]

    async def _locked(
        self, id: str, session: str
    ) -> tuple[InterceptRecord, MessageRecord, RouteRecord]:
        item, message, route = await self._load(id)
        if not item.locked(self._now()) or item.lock_session != session:
            holder = item.locked_by if item.locked(self._now()) else None
            raise InterceptLocked(id, holder)
        return item, message, route

    async def _record(self, event: str, item: InterceptRecord, operator: str, **extra: Any) -> None:
        await self._audit.record(
            event,
            {"id": item.id, "msg_id": item.message_id, "operator": operator, **extra},
        )

    def _json(
        self, item: InterceptRecord, message: MessageRecord, route: RouteRecord
    ) -> dict[str, Any]:
        """``{"id", "reason", "message", "locked_by", ...}`` (DESIGN §9)."""
        now = self._now()
        locked = item.locked(now)
        wire = wire_json(message, route)
        return {
            "id": item.id,
            "reason": item.reason,
            "detail": item.detail,
            "created": iso(item.created),
            "message": {
                "id": message.id,
                "key": message.key,
                "from": message.from_ori,
                "to": [route.dest],
                "text": wire["text"],
                "priority": message.priority,
                "fields": dict(message.fields),
                "terminal": message.terminal,
                "created": iso(message.created),
            },
            "route": {
                "number": route.number,
                "dest": route.dest,
                "network": route.link,
                "state": route.state,
            },
            "locked_by": item.locked_by if locked else None,
            "lock_expires": iso(item.lock_expires) if locked and item.lock_expires else None,
        }

    def _now(self) -> float:
        return self._clock.seconds()
