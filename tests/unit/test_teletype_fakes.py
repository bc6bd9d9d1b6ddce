"""Doubles for the teletype tests: a fake link layer with a network's duplicate memory,
a mailbox, the demo routes and terminals, and a builder wiring the engine together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from switch.audit.interface import MemoryAudit
from switch.config import DestinationRule, Terminal
from switch.confirmations import ConfirmationTracker
from switch.incoming import IncomingRouter
from switch.intercept import InterceptQueue
from switch.model import AdminMessage, IdSource
from switch.protocols.link import LinkNak
from switch.teletype import TeletypeEngine
from switch.teletype_store import MemoryQueue, MemoryTeletypeStore

ORI = "MO0380100"
LINKS = ("local", "regional", "state", "national")
RULES = (
    DestinationRule("IL0000001", None),  # explicitly unroutable
    DestinationRule("MO038*", "local"),
    DestinationRule("MO048*", "regional"),
    DestinationRule("REG", "regional"),
    DestinationRule("STATE", "state"),
    DestinationRule("MO", "state"),
    DestinationRule("MO*", "state"),
    DestinationRule("*", "national"),
)
_ALL = frozenset({"person", "vehicle", "driver", "registration", "gun", "article"})


def terminal(id: str, roles: set[str], ori: str = ORI, notices: bool = False) -> Terminal:
    return Terminal(
        id=id,
        ori=ori,
        roles=frozenset(roles),
        subjects=_ALL,
        networks=frozenset(LINKS),
        notices=notices,
    )


TERMINALS = {
    "DISPATCH1": terminal("DISPATCH1", {"dispatch"}),
    "RECORDS1": terminal("RECORDS1", {"records"}),
    "ADMIN1": terminal("ADMIN1", {"admin", "supervisor"}),
    "OTHER1": terminal("OTHER1", {"dispatch", "records"}, ori="MO0380200"),
}


class FakeLinks:
    """The link layer as the engine sees it, plus the far end's duplicate memory.

    ``auto``: "ack" ACKs at once, None leaves each send pending until the test answers;
    ``fail_next`` fails sends with the given exceptions in turn.
    """

    def __init__(self, up: set[str] | None = None, auto: str | None = "ack") -> None:
        self.up = set(LINKS) if up is None else up
        self.auto = auto
        self.sent: list[tuple[str, AdminMessage]] = []
        self.pending: dict[str, Deferred[None]] = {}
        self.fail_next: list[Exception] = []
        self.received: dict[str, list[str]] = {name: [] for name in LINKS}

    def is_up(self, name: str) -> bool:
        return name in self.up

    def send(self, name: str, message: AdminMessage) -> Deferred[Any]:
        self.sent.append((name, message))
        if self.fail_next:
            return fail(self.fail_next.pop(0))
        if self.auto == "ack":
            self._take(name, message)
            return succeed(None)
        d: Deferred[None] = Deferred()
        self.pending[message.id] = d
        self._take(name, message)
        return d

    def _take(self, name: str, message: AdminMessage) -> None:
        """The network processes each id once (DESIGN §4 duplicate memory)."""
        if message.id not in self.received[name]:
            self.received[name].append(message.id)

    def ack(self, wire_id: str) -> None:
        self.pending.pop(wire_id).callback(None)

    def nak(self, wire_id: str, code: int, text: str = "REFUSED") -> None:
        self.pending.pop(wire_id).errback(LinkNak(code, text))

    def ids(self, link: str | None = None) -> list[str]:
        return [m.id for name, m in self.sent if link is None or name == link]


class FakeMailbox:
    def __init__(self) -> None:
        self.items: list[tuple[str, str, dict[str, Any]]] = []
        self.fail = False

    def put(self, terminal: str, kind: str, item: Mapping[str, Any]) -> Deferred[int]:
        if self.fail:
            return fail(OSError("disk full"))
        self.items.append((terminal, kind, dict(item)))
        return succeed(len(self.items))

    def of(self, kind: str, terminal: str | None = None) -> list[dict[str, Any]]:
        return [i for t, k, i in self.items if k == kind and (terminal is None or t == terminal)]

    def terminals(self, kind: str) -> list[str]:
        return [t for t, k, _ in self.items if k == kind]


@dataclass
class World:
    clock: Clock
    links: FakeLinks
    queue: MemoryQueue
    store: MemoryTeletypeStore
    audit: MemoryAudit
    mailbox: FakeMailbox
    engine: TeletypeEngine
    intercept: InterceptQueue
    confirmations: ConfirmationTracker
    incoming: IncomingRouter
    options: dict[str, Any] = field(default_factory=dict)

    def restart(self) -> World:
        """A new engine over the same durable state (the process was killed)."""
        self.engine.stop()
        self.confirmations.stop()
        return build(
            self.links,
            clock=self.clock,
            queue=self.queue,
            store=self.store,
            audit=self.audit,
            mailbox=self.mailbox,
            **self.options,
        )


def build(
    links: FakeLinks | None = None,
    *,
    clock: Clock | None = None,
    queue: MemoryQueue | None = None,
    store: MemoryTeletypeStore | None = None,
    audit: MemoryAudit | None = None,
    mailbox: FakeMailbox | None = None,
    start: bool = True,
    **options: Any,
) -> World:
    clock = clock or Clock()
    clock.advance(1_800_000_000 - clock.seconds() if clock.seconds() == 0 else 0)
    links = links or FakeLinks()
    queue = queue or MemoryQueue()
    store = store or MemoryTeletypeStore()
    audit = audit or MemoryAudit()
    mailbox = mailbox or FakeMailbox()
    counter = IdSource(now_ms=int(clock.seconds() * 1000), entropy=bytes(5))
    engine = TeletypeEngine(
        clock,
        links,
        queue,
        store,
        audit,
        mailbox,
        rules=RULES,
        link_names=LINKS,
        ids=options.get("ids", counter),
        **{k: v for k, v in options.items() if k != "ids"},
    )
    confirmations = ConfirmationTracker(clock, engine, audit, mailbox, ids=counter)
    world = World(
        clock=clock,
        links=links,
        queue=queue,
        store=store,
        audit=audit,
        mailbox=mailbox,
        engine=engine,
        intercept=InterceptQueue(clock, engine, audit),
        confirmations=confirmations,
        incoming=IncomingRouter(
            clock,
            audit,
            mailbox,
            TERMINALS,
            ori=ORI,
            engine=engine,
            confirmations=confirmations,
        ),
        options=options,
    )
    if start:
        done(engine.start())
        done(confirmations.start())
    return world


def done(d: Deferred[Any]) -> Any:
    """The result of a Deferred that must already have fired (in-memory fakes)."""
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, "Deferred has not fired"
    result = results[0]
    if hasattr(result, "raiseException") and hasattr(result, "value"):
        result.raiseException()
    return result


def am(to: list[str], text: str = "TEST MESSAGE", priority: str = "routine") -> dict[str, Any]:
    return {"key": "AM", "to": to, "text": text, "priority": priority}


def test_fake_network_remembers_ids() -> None:
    """The fake network processes a repeated id once, as DESIGN §4 demands of receivers."""
    links = FakeLinks()
    message = AdminMessage(id="X-1", key="AM", from_ori=ORI, to=("MO0380200",), text="HI")
    done(links.send("local", message))
    done(links.send("local", message))
    assert links.received["local"] == ["X-1"]
    assert len(links.sent) == 2
