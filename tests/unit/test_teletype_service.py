"""The daemon's teletype service with a clock we control: the overdue gauge at the
deadline, the queue gauges, locks of ended sessions, the purge timer, start/stop order."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed

from switch.confirmations import ConfirmationTracker
from switch.incoming import IncomingRouter
from switch.metrics import Metrics
from switch.model import AdminMessage
from switch.store.interface import PurgeCounts
from switch.teletype_service import TeletypeService
from tests.unit.test_teletype_fakes import ORI, TERMINALS, FakeLinks, World, am, build, done


class Parts:
    """A world whose tracker reports to the service, as ``add_gateway`` wires it."""

    def __init__(self, links: FakeLinks | None = None, live: set[str] | None = None) -> None:
        changed: list[Callable[[str], None]] = []
        self.w: World = build(links, start=False, on_change=lambda link: changed[0](link))
        self.metrics = Metrics()
        self.live = live if live is not None else set()
        self.purges: list[float] = []
        hook: list[Callable[[int], None]] = []
        self.tracker = ConfirmationTracker(
            self.w.clock,
            self.w.engine,
            self.w.audit,
            self.w.mailbox,
            on_overdue=lambda n: hook[0](n),
        )
        self.incoming = IncomingRouter(
            self.w.clock,
            self.w.audit,
            self.w.mailbox,
            TERMINALS,
            ori=ORI,
            engine=self.w.engine,
            confirmations=self.tracker,
        )
        self.service = TeletypeService(
            self.w.clock,
            self.w.engine,
            self.tracker,
            self.w.intercept,
            self.metrics,
            links=["local", "regional", "state", "national"],
            queue_stats=self.w.queue.queue_stats,
            purge=self._purge,
            live_sessions=lambda: set(self.live),
            gauge_seconds=10_000.0,
            purge_seconds=3600.0,
        )
        hook.append(self.service.overdue)
        changed.append(self.service.changed)

    def _purge(self, now: float) -> Deferred[PurgeCounts]:
        self.purges.append(now)
        return succeed(PurgeCounts())

    def value(self, name: str, **labels: str) -> float | None:
        return self.metrics.registry.get_sample_value(name, labels)  # type: ignore[no-any-return]


def yq(id: str = "YQ1", urgency: str = "U") -> AdminMessage:
    return AdminMessage(
        id=id,
        key="YQ",
        from_ori="TX2270000",
        to=(ORI,),
        text="PLEASE CONFIRM",
        fields={"urgency": urgency, "nic": "W123456789", "request_number": "1"},
    )


def test_unanswered_incoming_yq_raises_the_overdue_gauge_at_its_deadline() -> None:
    """An urgent YQ left unanswered sets switch_hit_confirmations_overdue to 1 exactly at
    its 10-minute deadline (not before, and not by the periodic refresh); the YR that
    answers it brings the gauge back to 0."""
    p = Parts()
    p.service.startService()
    assert p.service.started is not None and done(p.service.started) is None
    done(p.incoming.on_message("national", yq()))
    assert p.value("switch_hit_confirmations_overdue") == 0
    p.w.clock.advance(599)
    assert p.value("switch_hit_confirmations_overdue") == 0
    p.w.clock.advance(1)
    assert p.value("switch_hit_confirmations_overdue") == 1
    assert p.w.mailbox.of("deadline", "RECORDS1")[-1]["stage"] == "overdue"
    record = p.tracker.list_items()
    confirmation = done(record)[0]["id"]
    done(p.tracker.reply(confirmation, {"confirmed": "Y"}, TERMINALS["RECORDS1"], "demo"))
    assert p.value("switch_hit_confirmations_overdue") == 0
    p.service.stopService()


def test_queue_gauges_follow_the_durable_queue() -> None:
    """Queued teletype for a link that is down shows in switch_queue_depth and
    switch_queue_oldest_seconds soon after it is submitted; delivery brings them to 0."""
    links = FakeLinks(up=set())
    p = Parts(links)
    p.service.startService()
    done(p.w.engine.submit(am(["KS"]), TERMINALS["DISPATCH1"], "demo"))
    p.w.clock.advance(30)
    assert p.value("switch_queue_depth", link="national") == 1
    assert p.value("switch_queue_oldest_seconds", link="national") == 30
    assert p.value("switch_queue_depth", link="local") == 0
    assert p.service.depths["national"] == 1
    links.up.add("national")
    link: Any = type("L", (), {"name": "national"})()
    p.service.link_state_changed(link, "connecting", "up")
    p.w.clock.advance(1)
    assert links.ids("national")
    assert p.value("switch_queue_depth", link="national") == 0
    p.service.stopService()


def test_locks_of_ended_sessions_are_released_and_purge_runs_on_its_timer() -> None:
    """An intercept lock whose API session has ended is released (audited as an unlock)
    by the housekeeping sweep; the store's purge runs at start and then every period;
    after stop no timer is left."""
    p = Parts(live={"s1"})
    p.service.startService()
    _, routes = done(p.w.engine.submit(am(["IL0000001"]), TERMINALS["DISPATCH1"], "demo"))
    item = routes[0].wire_id
    done(p.w.intercept.lock(item, "demo", "s1"))
    p.w.clock.pump([100.0] * 100)
    assert done(p.w.intercept.get(item))["locked_by"] is None  # lock expired, item kept
    done(p.w.intercept.lock(item, "demo", "s1"))
    p.live.clear()
    p.w.clock.pump([100.0] * 100)
    assert done(p.w.intercept.get(item))["locked_by"] is None
    unlocks = [e for e in p.w.audit.of("intercept.unlock") if e.get("cause") == "session_end"]
    assert unlocks and unlocks[-1]["id"] == item
    assert len(p.purges) == 1 + 5  # at start, then at every hour of the 20,000 s
    p.service.stopService()
    assert p.w.clock.getDelayedCalls() == [] or all(
        not c.active() for c in p.w.clock.getDelayedCalls()
    )
