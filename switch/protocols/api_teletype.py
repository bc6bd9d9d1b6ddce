"""Teletype, intercept-queue, hit-confirmation and link routes of the client API (DESIGN §5).

Thin handlers over :mod:`switch.teletype`, :mod:`switch.intercept` and
:mod:`switch.confirmations`: they check who may do what, turn the engines' refusals into
the statuses of DESIGN §5 (400 naming the field, 404, 409 for an intercept item not
locked by the caller) and shape the answers ``switchctl`` reads. ``POST /v1/messages``
answers 202 only once :meth:`TeletypeEngine.submit` has committed the message, its routes
and its queue items.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from switch.audit.interface import AuditSink
from switch.config import Config, Terminal
from switch.confirmations import ConfirmationNotFound, ConfirmationTracker
from switch.intercept import InterceptError, InterceptQueue
from switch.model import ValidationError
from switch.routing.destinations import is_destination, match
from switch.sessions import Session
from switch.teletype import TeletypeEngine, submitted_json

from .api import ADMIN, SUPERVISOR, Api, ApiError, Call, Response, Route, bad_field

ANY: frozenset[str] = frozenset()  # any logged-on session


class LinkControl(Protocol):
    """What ``POST /v1/links/{name}/retry`` needs of the links (``LinkManager`` fits)."""

    def retry(self, name: str) -> bool: ...

    def status(self) -> list[dict[str, Any]]: ...


class TeletypeRoutes:
    """The handlers and what they need; :meth:`install` adds them to the route table."""

    def __init__(
        self,
        api: Api,
        config: Callable[[], Config],
        engine: TeletypeEngine,
        intercept: InterceptQueue,
        confirmations: ConfirmationTracker,
        audit: AuditSink,
        *,
        links: LinkControl | None = None,
    ) -> None:
        self.api = api
        self.config = config
        self.engine = engine
        self.intercept = intercept
        self.confirmations = confirmations
        self.audit = audit
        self.links = links

    def install(self) -> None:
        """Add the routes: (method, template, handler, roles, JSON body, audited, summary)."""
        table: list[tuple[str, str, Any, frozenset[str], bool, bool, str]] = [
            ("POST", "/v1/messages", self.send, ANY, True, True,
             "Send a teletype message (AM, YQ, YR)"),
            ("GET", "/v1/messages/{id}", self.get_message, ANY, False, False,
             "A sent message and the state of each route"),
            ("GET", "/v1/routes/explain", self.explain, ANY, False, False,
             "Which rule and network a teletype destination gets"),
            ("GET", "/v1/intercept", self.intercept_list, ADMIN, False, False,
             "The intercept queue (admin)"),
            ("GET", "/v1/intercept/{id}", self.intercept_get, ADMIN, False, False,
             "One intercept item (admin)"),
            ("POST", "/v1/intercept/{id}/lock", self.intercept_lock, ADMIN, False, True,
             "Lock an intercept item for 15 minutes (admin)"),
            ("POST", "/v1/intercept/{id}/unlock", self.intercept_unlock, ADMIN, False, True,
             "Release your lock (admin)"),
            ("PATCH", "/v1/intercept/{id}", self.intercept_edit, ADMIN, True, True,
             "Edit text or destination, or reroute (admin, lock needed)"),
            ("POST", "/v1/intercept/{id}/resend", self.intercept_resend, ADMIN, False, True,
             "Queue the item again (admin, lock needed)"),
            ("DELETE", "/v1/intercept/{id}", self.intercept_delete, ADMIN, False, True,
             "Drop the item (admin, lock needed)"),
            ("POST", "/v1/hit-confirmations", self.confirm_request, ANY, True, True,
             "Ask the entering agency to confirm a hit (YQ)"),
            ("GET", "/v1/hit-confirmations", self.confirm_list, ANY, False, False,
             "Hit confirmations and their deadlines"),
            ("GET", "/v1/hit-confirmations/{id}", self.confirm_get, ANY, False, False,
             "One hit confirmation"),
            ("POST", "/v1/hit-confirmations/{id}/reply", self.confirm_reply, ANY, True, True,
             "Answer a request we received (YR)"),
            ("POST", "/v1/hit-confirmations/{id}/next", self.confirm_next, ANY, False, True,
             "Send the 2nd or 3rd request once overdue"),
            ("POST", "/v1/links/{name}/retry", self.link_retry, ADMIN, False, True,
             "Redial a link now (admin)"),
        ]  # fmt: skip
        for method, template, handler, roles, body, audited, summary in table:
            self.api.router.add(
                Route(
                    method,
                    template,
                    handler,
                    roles=roles,
                    body=body,
                    audited=audited,
                    summary=summary,
                )
            )

    # ---------------------------------------------------------------- helpers

    def _terminal(self, session: Session) -> Terminal:
        terminal = self.config().terminals.get(session.terminal)
        if terminal is None:
            raise ApiError(403, "forbidden", "terminal no longer configured")
        return terminal

    # ---------------------------------------------------------------- messages

    async def send(self, call: Call) -> Response:
        session = call.require_session()
        terminal = self._terminal(session)
        try:
            message, routes = await self.engine.submit(call.body or {}, terminal, session.operator)
        except ValidationError as err:
            raise _invalid(err) from None
        return Response(
            202, submitted_json(message, routes), headers={"Location": f"/v1/messages/{message.id}"}
        )

    async def get_message(self, call: Call) -> Response:
        session = call.require_session()
        # Supervisors and admins see every terminal's messages (the intercept queue
        # shows them anyway); others only their terminal's.
        owner = None if session.has_any(SUPERVISOR) else session.terminal
        found = await self.engine.get_message(call.params["id"], owner)
        if found is None:
            raise ApiError(404, "not_found", "no such message for this terminal", field="id")
        return Response(200, found)

    async def explain(self, call: Call) -> Response:
        call.require_session()
        dest = call.query.get("dest", [""])[-1].strip().upper()
        if not is_destination(dest):
            raise bad_field("dest", "dest: an ORI, a state code or a broadcast code")
        rule = match(self.engine.rules, dest)
        link = rule.link if rule is not None else None
        network = link if link in self.engine.link_names else None
        return Response(
            200,
            {
                "dest": dest,
                "rule": rule.pattern if rule is not None else None,
                "network": network,
                "configured_link": link,
            },
        )

    # ---------------------------------------------------------------- intercept

    async def intercept_list(self, call: Call) -> Response:
        return Response(200, {"items": await self.intercept.list_items()})

    async def intercept_get(self, call: Call) -> Response:
        try:
            return Response(200, await self.intercept.get(call.params["id"]))
        except InterceptError as err:
            raise _intercept_error(err) from None

    async def intercept_lock(self, call: Call) -> Response:
        session = call.require_session()
        try:
            item = await self.intercept.lock(call.params["id"], session.operator, session.id)
        except InterceptError as err:
            raise _intercept_error(err) from None
        return Response(200, {**item, "expires": item.get("lock_expires")})

    async def intercept_unlock(self, call: Call) -> Response:
        session = call.require_session()
        try:
            item = await self.intercept.unlock(call.params["id"], session.operator, session.id)
        except InterceptError as err:
            raise _intercept_error(err) from None
        return Response(200, item)

    async def intercept_edit(self, call: Call) -> Response:
        """``{"text"?, "to"?, "network"?}``: text and destination go to ``edit``;
        ``network`` (a link name, or null for the rules) to ``reroute``."""
        session = call.require_session()
        body = call.body or {}
        unknown = set(body) - {"text", "to", "network"}
        if unknown:
            name = sorted(unknown)[0]
            raise bad_field(name, f"{name}: not a field of an intercept edit")
        if not body:
            raise bad_field("text", "text: give text, to or network")
        id = call.params["id"]
        try:
            item: dict[str, Any] | None = None
            if "text" in body or "to" in body:
                item = await self.intercept.edit(
                    id, session.operator, session.id, text=body.get("text"), to=body.get("to")
                )
            if "network" in body:
                network = body["network"]
                if network is not None and not isinstance(network, str):
                    raise bad_field("network", "network: a link name or null")
                item = await self.intercept.reroute(id, session.operator, session.id, network)
        except InterceptError as err:
            raise _intercept_error(err) from None
        except ValidationError as err:
            raise _invalid(err) from None
        return Response(200, item)

    async def intercept_resend(self, call: Call) -> Response:
        session = call.require_session()
        try:
            route = await self.intercept.resend(call.params["id"], session.operator, session.id)
        except InterceptError as err:
            raise _intercept_error(err) from None
        except ValidationError as err:
            raise _invalid(err) from None
        message_id = call.params["id"].rsplit("-", 1)[0]
        return Response(200, {"id": message_id, "routes": [route]})

    async def intercept_delete(self, call: Call) -> Response:
        session = call.require_session()
        try:
            await self.intercept.delete(call.params["id"], session.operator, session.id)
        except InterceptError as err:
            raise _intercept_error(err) from None
        return Response(204)

    # ---------------------------------------------------------------- hit confirmations

    async def confirm_request(self, call: Call) -> Response:
        session = call.require_session()
        terminal = self._terminal(session)
        try:
            record = await self.confirmations.request(call.body or {}, terminal, session.operator)
        except ValidationError as err:
            raise _invalid(err) from None
        return Response(202, record, headers={"Location": f"/v1/hit-confirmations/{record['id']}"})

    async def confirm_list(self, call: Call) -> Response:
        session = call.require_session()
        everything = call.query.get("all", ["0"])[-1] in ("1", "true", "yes")
        items = await self.confirmations.list_items(open_only=not everything)
        if not session.has_any(SUPERVISOR):
            items = [i for i in items if session.terminal in i["terminals"]]
        return Response(200, {"items": items})

    async def confirm_get(self, call: Call) -> Response:
        session = call.require_session()
        try:
            item = await self.confirmations.get(call.params["id"])
        except ConfirmationNotFound:
            raise _no_confirmation() from None
        if not session.has_any(SUPERVISOR) and session.terminal not in item["terminals"]:
            raise _no_confirmation()
        return Response(200, item)

    async def confirm_reply(self, call: Call) -> Response:
        session = call.require_session()
        terminal = self._terminal(session)
        if "records" not in terminal.roles or not session.has_any(frozenset({"records"})):
            raise ApiError(403, "forbidden", "answering a hit confirmation needs the records role")
        try:
            item = await self.confirmations.reply(
                call.params["id"], call.body or {}, terminal, session.operator
            )
        except ConfirmationNotFound:
            raise _no_confirmation() from None
        except ValidationError as err:
            raise _invalid(err) from None
        return Response(200, item)

    async def confirm_next(self, call: Call) -> Response:
        session = call.require_session()
        terminal = self._terminal(session)
        try:
            current = await self.confirmations.get(call.params["id"])
            if session.terminal not in current["terminals"] and not session.has_any(SUPERVISOR):
                raise _no_confirmation()
            item = await self.confirmations.request_next(
                call.params["id"], terminal, session.operator
            )
        except ConfirmationNotFound:
            raise _no_confirmation() from None
        except ValidationError as err:
            raise _invalid(err) from None
        return Response(202, item)

    # ---------------------------------------------------------------- links

    async def link_retry(self, call: Call) -> Response:
        session = call.require_session()
        name = call.params["name"]
        rows = {str(r["name"]): r for r in self.links.status()} if self.links else {}
        if self.links is None or name not in rows:
            raise ApiError(404, "not_found", "no such link", field="name")
        await self.audit.record(
            "link.retry",
            {
                "network": name,
                "operator": session.operator,
                "terminal": session.terminal,
            },
        )
        redialing = self.links.retry(name)
        state = next((r["state"] for r in self.links.status() if r["name"] == name), None)
        return Response(200, {"name": name, "state": state, "redialing": redialing})


def _invalid(err: ValidationError) -> ApiError:
    return bad_field(err.field or "body", err.message)


def _intercept_error(err: InterceptError) -> ApiError:
    codes = {404: "not_found", 409: "not_locked"}
    return ApiError(err.status, codes.get(err.status, "invalid_field"), str(err), field="id")


def _no_confirmation() -> ApiError:
    return ApiError(404, "not_found", "no such hit confirmation", field="id")
