"""The teletype side of the running daemon: life cycle, gauges, housekeeping.

:class:`TeletypeService` is the ``Service`` that ``service.add_gateway`` puts after the
links: it starts the engine (which first recovers the durable queue) and the hit
confirmation tracker, and runs the periodic work nobody asks for:

- the queue gauges ``switch_queue_depth{link}`` and ``switch_queue_oldest_seconds{link}``
  from the durable queue, every ``gauge_seconds`` and (coalesced) soon after any change;
- ``switch_hit_confirmations_overdue`` (the tracker also sets it at each deadline);
- intercept locks whose API session has ended (logoff, idle expiry) are released;
- the store's retention ``purge(now)`` every ``purge_seconds``.

Stopping it stops the engine first, so that the failures the links report while they log
off leave the items ``sent`` for the next start (queued again with the same wire id).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog
from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from switch.confirmations import ConfirmationTracker
from switch.intercept import InterceptQueue
from switch.metrics import Metrics
from switch.store.interface import PurgeCounts
from switch.teletype import TeletypeEngine

log = structlog.get_logger("switch.teletype")

GAUGE_SECONDS = 5.0
CHANGE_DELAY = 0.25
PURGE_SECONDS = 3600.0


class TeletypeService(Service):
    """Starts and stops the teletype engine and the tracker; keeps gauges and tables tidy.

    Args:
        queue_stats: the store's ``queue_stats`` (link -> (count, oldest created)).
        purge: the store's ``purge``.
        live_sessions: ids of the API sessions alive now (locks of others are released).
    """

    def __init__(
        self,
        clock: IReactorTime,
        engine: TeletypeEngine,
        confirmations: ConfirmationTracker,
        intercept: InterceptQueue,
        metrics: Metrics,
        *,
        links: Iterable[str],
        queue_stats: Callable[[], Deferred[dict[str, tuple[int, float | None]]]],
        purge: Callable[[float], Deferred[PurgeCounts]],
        live_sessions: Callable[[], set[str]],
        gauge_seconds: float = GAUGE_SECONDS,
        purge_seconds: float = PURGE_SECONDS,
    ) -> None:
        self.setName("teletype")  # type: ignore[no-untyped-call]
        self._clock = clock
        self.engine = engine
        self.confirmations = confirmations
        self.intercept = intercept
        self._metrics = metrics
        self._links = tuple(links)
        self._queue_stats = queue_stats
        self._purge = purge
        self._live_sessions = live_sessions
        self._gauge_seconds = gauge_seconds
        self._purge_seconds = purge_seconds
        self._timers: dict[str, IDelayedCall] = {}
        self._refreshing = False
        self._again = False
        #: link -> durable queue depth at the last refresh (``/v1/status`` shows it)
        self.depths: dict[str, int] = {}
        self.started: Deferred[None] | None = None

    # ------------------------------------------------------------------ life cycle

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        for link in self._links:
            self._metrics.queue_depth.labels(link).set(0)
            self._metrics.queue_oldest_seconds.labels(link).set(0)
        self._metrics.hit_confirmations_overdue.set(0)
        self.started = Deferred.fromCoroutine(self._start())
        self.started.addErrback(_log_failure, "teletype.start_failed")

    async def _start(self) -> None:
        await self.engine.start()
        await self.confirmations.start()
        self._every("gauges", self._gauge_seconds, self._housekeeping)
        self._every("purge", self._purge_seconds, self._purge_now)
        self._housekeeping()
        self._purge_now()
        log.info("teletype started", links=len(self._links))

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self.engine.stop()
        self.confirmations.stop()
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()

    # ------------------------------------------------------------------ hooks

    def changed(self, link: str) -> None:
        """Something moved in ``link``'s queue: refresh the gauges soon (coalesced)."""
        if not self.running:
            return
        timer = self._timers.get("change")
        if timer is None or not timer.active():
            self._timers["change"] = self._clock.callLater(CHANGE_DELAY, self._refresh)

    def overdue(self, count: int) -> None:
        self._metrics.hit_confirmations_overdue.set(count)

    def link_state_changed(self, link: Any, old: str, new: str) -> None:
        """A link state listener: release held teletype on ``up``; refresh the gauges."""
        self.engine.link_state_changed(link, old, new)
        self.changed(str(link.name))

    # ------------------------------------------------------------------ periodic work

    def _every(self, name: str, seconds: float, fn: Callable[[], None]) -> None:
        def run() -> None:
            if not self.running:
                return
            self._timers[name] = self._clock.callLater(seconds, run)
            fn()

        self._timers[name] = self._clock.callLater(seconds, run)

    def _housekeeping(self) -> None:
        self._refresh()
        self.overdue(self.confirmations.overdue_count())
        d = Deferred.fromCoroutine(self._release_dead_locks())
        d.addErrback(_log_failure, "intercept.sweep_failed")

    def _refresh(self) -> None:
        if self._refreshing:
            self._again = True
            return
        self._refreshing = True
        d = Deferred.fromCoroutine(self._gauges())
        d.addErrback(_log_failure, "teletype.gauges_failed")

    async def _gauges(self) -> None:
        try:
            while True:
                self._again = False
                stats = await self._queue_stats()
                now = self._clock.seconds()
                for link in {*self._links, *stats}:
                    count, oldest = stats.get(link, (0, None))
                    self.depths[link] = count
                    age = max(now - oldest, 0.0) if oldest is not None else 0.0
                    self._metrics.queue_depth.labels(link).set(count)
                    self._metrics.queue_oldest_seconds.labels(link).set(age)
                if not self._again:
                    return
        finally:
            self._refreshing = False

    async def _release_dead_locks(self) -> None:
        live = self._live_sessions()
        dead = {
            item.lock_session
            for item in await self.engine.store.list_intercepts()
            if item.lock_session is not None and item.lock_session not in live
        }
        for session in sorted(dead):
            await self.intercept.session_ended(session)

    def _purge_now(self) -> None:
        d = self._purge(self._clock.seconds())
        d.addCallback(_log_purge)
        d.addErrback(_log_failure, "store.purge_failed")


def _log_purge(counts: PurgeCounts) -> None:
    log.info(
        "store purged",
        inquiries=counts.inquiries,
        mailbox=counts.mailbox,
        duplicates=counts.duplicates,
        teletype=counts.teletype,
        **{str(k): v for k, v in counts.extra.items()},
    )


def _log_failure(failure: Failure, event: str) -> None:
    log.error(event, error=type(failure.value).__name__)
