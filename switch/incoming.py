"""Incoming teletype and network notices -> the right terminals' mailboxes (DESIGN §6).

The link layer has already dropped duplicates; :meth:`IncomingRouter.on_message` audits
``teletype.in``, commits the message to every recipient's mailbox and only then fires, so
the link ACKs what is durably ours (accepted = committed, DESIGN §7). A terminal that was
offline reads it from its mailbox later.

Recipients:

* AM (and anything not covered below) addressed to an ORI: every terminal with that ORI;
  to a broadcast code we receive (``REG``, ``STATE``, ``NL``, our state code): every
  terminal;
* YQ for our records: those terminals that hold the ``records`` role; the request is
  tracked for its deadline (:mod:`switch.confirmations`);
* YR: the terminal that sent the YQ it answers (its outcome is recorded); failing a match,
  the AM rule;
* ER/SM naming one of our wire ids: handled by the teletype engine (route states); any
  other notice goes to the terminals configured with ``notices = true``.

Nobody to deliver to: the supervisor/admin terminals get it (or, without any, every
terminal), flagged ``fallback`` in the item and the audit. Nothing is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorTime

from switch.audit.interface import AuditSink
from switch.config import BROADCAST_CODES, Terminal
from switch.confirmations import ConfirmationTracker
from switch.inquiry import MailboxPort
from switch.model import AdminMessage, Notice
from switch.teletype import TeletypeEngine, iso
from switch.views import admin_json

log = structlog.get_logger("switch.incoming")

FALLBACK_ROLES = frozenset({"supervisor", "admin"})


class IncomingRouter:
    """Delivers what the networks send us (AM, YQ, YR, ER, SM) to terminal mailboxes.

    Args:
        ori: our agency's ORI; its state code is one of the broadcasts we receive.
        broadcasts: the broadcast destinations we receive (default ``REG``, ``STATE``,
            ``NL`` and our state code).
        engine: ties ER/SM notices to the routes they are about (optional).
        confirmations: tracks YQ deadlines and matches YRs (optional).
    """

    def __init__(
        self,
        clock: IReactorTime,
        audit: AuditSink,
        mailbox: MailboxPort,
        terminals: Mapping[str, Terminal],
        *,
        ori: str,
        broadcasts: Iterable[str] | None = None,
        engine: TeletypeEngine | None = None,
        confirmations: ConfirmationTracker | None = None,
    ) -> None:
        self._clock = clock
        self._audit = audit
        self._mailbox = mailbox
        self._terminals = dict(terminals)
        self._ori = ori
        self._broadcasts = frozenset(
            broadcasts if broadcasts is not None else {*BROADCAST_CODES, "NL", ori[:2]}
        )
        self._engine = engine
        self._confirmations = confirmations

    def set_terminals(self, terminals: Mapping[str, Terminal]) -> None:
        """A reload changed ``terminals.toml``."""
        self._terminals = dict(terminals)

    def on_message(self, link: str, message: AdminMessage | Notice) -> Deferred[None]:
        """Commit one incoming message to its recipients; the link ACKs when this fires."""
        if isinstance(message, Notice):
            return Deferred.fromCoroutine(self._notice(link, message))
        return Deferred.fromCoroutine(self._admin(link, message))

    # ------------------------------------------------------------------ rules

    def addressed(self, to: Iterable[str]) -> list[str]:
        """Terminals the destinations reach: their ORI, or a broadcast we receive."""
        dests = set(to)
        if dests & self._broadcasts:
            return sorted(self._terminals)
        return sorted(t.id for t in self._terminals.values() if t.ori in dests)

    def fallback(self) -> list[str]:
        chosen = sorted(t.id for t in self._terminals.values() if t.roles & FALLBACK_ROLES)
        return chosen or sorted(self._terminals)

    async def _admin(self, link: str, message: AdminMessage) -> None:
        confirmation: str | None = None
        recipients: list[str] = []
        if message.key == "YQ":
            recipients = [
                t for t in self.addressed(message.to) if "records" in self._terminals[t].roles
            ]
        elif message.key == "YR":
            recipients, confirmation = await self._yr_recipients(message)
        else:
            recipients = self.addressed(message.to)
        fallback = not recipients
        if fallback:
            recipients = self.fallback()
        if message.key == "YQ" and self._confirmations is not None:
            record = await self._confirmations.track_incoming(message, tuple(recipients))
            confirmation = record.id
        await self._audit.record(
            "teletype.in",
            {
                "id": message.id,
                "network": link,
                "key": message.key,
                "from": message.from_ori,
                "ori": message.from_ori,
                "to": list(message.to),
                "text": message.text,
                "fields": dict(message.fields),
                "in_reply_to": message.in_reply_to,
                "terminals": recipients,
                "fallback": fallback,
                "confirmation": confirmation,
            },
        )
        item: dict[str, Any] = {
            **admin_json(message),
            "kind": "teletype",
            "network": link,
            "received": iso(self._clock.seconds()),
            "fallback": fallback,
        }
        if confirmation is not None:
            item["confirmation"] = confirmation
        await self._put(recipients, item)
        log.info(
            "teletype.in", message_id=message.id, link=link, key=message.key, count=len(recipients)
        )

    async def _yr_recipients(self, message: AdminMessage) -> tuple[list[str], str | None]:
        """The terminal of the YQ this answers (and the confirmation it settles): by
        confirmation record, else by the message the YR names, else the AM rule."""
        confirmation = None
        if self._confirmations is not None:
            record = await self._confirmations.match_reply(message)
            if record is not None:
                confirmation = record.id
                known = [t for t in record.terminals if t in self._terminals]
                if known:
                    return known, confirmation
        ref = message.in_reply_to
        if ref and self._engine is not None:
            route = await self._engine.store.route_by_wire(ref)
            found = await self._engine.store.get_message(route.message_id if route else ref)
            if found is not None and found[0].terminal in self._terminals:
                return [found[0].terminal], confirmation
        return self.addressed(message.to), confirmation

    async def _notice(self, link: str, notice: Notice) -> None:
        handled = False
        if self._engine is not None and notice.in_reply_to:
            handled = await self._engine.on_notice(link, notice)
        if handled:
            recipients: list[str] = []  # the sender got a ``delivery`` event
            fallback = False
        else:
            recipients = sorted(t.id for t in self._terminals.values() if t.notices)
            fallback = not recipients
            if fallback:
                recipients = self.fallback()
        await self._audit.record(
            "teletype.in",
            {
                "id": notice.id,
                "network": link,
                "key": notice.key,
                "from": notice.from_ori,
                "ori": notice.from_ori,
                "code": notice.code,
                "text": notice.text,
                "in_reply_to": notice.in_reply_to,
                "terminals": recipients,
                "fallback": fallback,
                "route_notice": handled,
            },
        )
        item = {
            "id": notice.id,
            "kind": "notice",
            "key": notice.key,
            "from": notice.from_ori,
            "to": [],
            "code": notice.code,
            "text": notice.text,
            "in_reply_to": notice.in_reply_to,
            "network": link,
            "received": iso(self._clock.seconds()),
            "fallback": fallback,
        }
        await self._put(recipients, item)

    async def _put(self, recipients: list[str], item: Mapping[str, Any]) -> None:
        if not recipients and item.get("kind") != "notice":
            log.error("teletype.no_terminals", message_id=item.get("id"))
        for terminal in recipients:
            await self._mailbox.put(terminal, "teletype", item)
