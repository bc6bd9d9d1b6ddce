"""The root service: builds everything from config; starts it; stops it in order.

``make_service(config, reactor, audit)`` returns one :class:`SwitchService`
(a ``MultiService``). Starting it opens the API socket and the metrics port; callers
that must know whether that worked (``switchd``) await :meth:`SwitchService.ready`.
Stopping is ordered, each step awaited (DESIGN §8): mark the API draining, close the
listeners (no new clients), drain in-flight work (``drain_checks``, bounded by
``drain_timeout``), close the API's open connections, then stop the rest in reverse order
of creation (teletype, links logging off, session sweeper; bounded by ``CHILDREN_GRACE``),
and last ``stop_last`` (the audit's flush and final checkpoint, then the database), which
is never skipped. ``MultiService.stopService`` would stop them all at once.

A reload (SIGHUP, ``POST /v1/reload``) goes through :attr:`SwitchService.reloader`
(:mod:`switch.reload`): ``config`` here, in the API and in the sessions is swapped whole.

The UNIX socket: a socket file left by a crashed run is replaced; one that a live
daemon still answers on is never stolen (we try to connect to it first), and the start
fails instead.
"""

from __future__ import annotations

import grp
import os
import socket
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool

from switch.audit.interface import AuditSink
from switch.config import Config
from switch.confirmations import ConfirmationTracker
from switch.incoming import IncomingRouter
from switch.inquiry import InquiryEngine
from switch.intercept import InterceptQueue
from switch.locks import LockStore
from switch.mailbox import Mailbox
from switch.metrics import Metrics, metrics_site
from switch.model import SUBJECTS, AdminMessage, ApplicationMessage, Inquiry, Notice, Reply
from switch.passwords import verify_password
from switch.protocols.api import Api, ApiSite
from switch.protocols.api_admin import AdminRoutes
from switch.protocols.api_inquiries import InquiryRoutes
from switch.protocols.api_teletype import TeletypeRoutes
from switch.protocols.dedup import StoreDuplicates
from switch.protocols.link import UP
from switch.protocols.link_service import LinkManager
from switch.reload import Reloader, ReloadResult
from switch.sessions import SessionManager, Verifier, iso_utc
from switch.store.interface import Store
from switch.teletype import TeletypeEngine
from switch.teletype_service import TeletypeService

_log = structlog.get_logger("switch.service")


class StartupError(Exception):
    """The daemon cannot start (exit status 1): socket in use, port taken, ..."""


class SocketInUse(StartupError):
    """Another live process answers on the API socket."""


class ListenerService(Service):
    """Listens when started (``listen`` returns the port's Deferred); closes when stopped.

    ``ready()`` fires with the port, or fails with why listening failed; the failure is
    held here, so a caller that never asks does not lose an error in a Deferred.
    """

    def __init__(self, name: str, listen: Callable[[], IListeningPort]) -> None:
        self.setName(name)  # type: ignore[no-untyped-call]
        self._listen = listen
        self.port: IListeningPort | None = None
        self.error: BaseException | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        try:
            self.port = self._listen()
        except Exception as exc:
            self.error = exc
            _log.error("cannot listen", route=self.name, error=str(exc))

    def ready(self) -> IListeningPort:
        if self.error is not None:
            raise self.error
        assert self.port is not None, "service not started"
        return self.port

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        port, self.port = self.port, None
        return Deferred.fromCoroutine(_stop_listening(port))


async def _stop_listening(port: IListeningPort | None) -> None:
    if port is not None:
        await maybeDeferred(port.stopListening)


class _SweeperService(Service):
    def __init__(self, sessions: SessionManager) -> None:
        self.setName("session-sweeper")  # type: ignore[no-untyped-call]
        self._sessions = sessions

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self._sessions.start()

    def stopService(self) -> None:
        super().stopService()  # type: ignore[no-untyped-call]
        self._sessions.stop()
        self._sessions.end_all("shutdown")


#: Seconds the children (links logging off, ...) may take to stop after the drain; the
#: audit flush and final checkpoint follow whatever happened (DESIGN §8: drain + 5 s).
CHILDREN_GRACE = 3.0
#: How often the drain looks at ``drain_checks``.
DRAIN_POLL = 0.05


class SwitchService(MultiService):
    """The daemon. Attributes give tests and ``switchd`` the parts they need."""

    def __init__(
        self,
        *,
        config: Config,
        api: Api,
        api_site: ApiSite,
        sessions: SessionManager,
        metrics: Metrics,
        clock: Any = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.config = config
        self.api = api
        self.api_site = api_site
        self.sessions = sessions
        self.metrics = metrics
        self.listeners: list[ListenerService] = []
        #: Stopped after every child service, in this order (audit, then the store):
        #: whatever the children still record during their own stop is committed.
        self.stop_last: list[tuple[str, Callable[[], Deferred[None]]]] = []
        self.clock = clock
        #: Shutdown drains while any of these says there is still work in flight.
        self.drain_checks: list[Callable[[], bool]] = []
        self.reloader: Reloader | None = None

    def reload(self, trigger: str = "sighup") -> Deferred[ReloadResult]:
        """Reload the configuration (SIGHUP); see :mod:`switch.reload`."""
        assert self.reloader is not None, "make_service sets the reloader"
        return self.reloader.reload(trigger)

    def add_listener(self, listener: ListenerService) -> None:
        self.listeners.append(listener)
        listener.setServiceParent(self)  # type: ignore[no-untyped-call]

    def ready(self) -> None:
        """Raise the first listener's start-up error, if any (call after startService)."""
        for listener in self.listeners:
            listener.ready()

    def stopService(self) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self.running:
            return
        Service.stopService(self)  # type: ignore[no-untyped-call]
        if self.reloader is not None:
            self.reloader.closed = True
        self.api.draining = True
        for listener in self.listeners:
            await _quietly(listener)
        await self._drain(self.config.drain_timeout)
        self.api_site.close_connections()
        others = [s for s in self if s not in self.listeners]
        deadline = None if self.clock is None else self.clock.seconds() + CHILDREN_GRACE
        for service in reversed(others):
            await _quietly(service, self.clock, deadline)
        for name, stop in self.stop_last:
            try:
                await stop()
            except Exception as exc:
                _log.error("stop failed", route=name, error=str(exc))
        _log.info("stopped")

    async def _drain(self, timeout: float) -> None:
        """Wait (at most ``timeout``) until no drain check reports work in flight."""
        if self.clock is None or not self.drain_checks:
            return
        deadline = self.clock.seconds() + timeout
        while self.clock.seconds() < deadline:
            busy = [check for check in self.drain_checks if _busy(check)]
            if not busy:
                return
            await deferLater(self.clock, DRAIN_POLL, lambda: None)
        _log.warning("drain timed out; stopping anyway", limit=timeout)


def _busy(check: Callable[[], bool]) -> bool:
    try:
        return check()
    except Exception as exc:  # a broken check must not hold shutdown up
        _log.error("drain check failed", error=type(exc).__name__)
        return False


async def _quietly(service: IService, clock: Any = None, deadline: float | None = None) -> None:
    """Stop one child; a failure or overrun is logged and shutdown goes on."""
    try:
        d = maybeDeferred(service.stopService)
        if clock is not None and deadline is not None:
            d.addTimeout(max(0.0, deadline - clock.seconds()), clock)
        await d
    except Exception as exc:
        _log.error("stop failed", route=service.name, error=str(exc) or type(exc).__name__)


# --------------------------------------------------------------------------- building


def make_service(
    config: Config,
    reactor: Any,
    audit: AuditSink,
    *,
    metrics: Metrics | None = None,
    locks: LockStore,
    verify: Verifier | None = None,
    links: Callable[[], list[dict[str, Any]]] | None = None,
) -> SwitchService:
    """Build the daemon from ``config``; nothing listens until it is started."""
    metrics = metrics if metrics is not None else Metrics()
    metrics.init_links((link.name, link.network) for link in config.links)
    if verify is None:
        pool = reactor.getThreadPool()

        def verify(password: str, stored: str) -> Deferred[bool]:
            d: Deferred[bool] = deferToThreadPool(reactor, pool, verify_password, password, stored)
            return d

    sessions = SessionManager(
        config=config.sessions,
        terminals=config.terminals,
        operators=config.operators,
        audit=audit,
        clock=reactor,
        verify=verify,
        locks=locks,
        metrics=metrics,
    )
    api = Api(config=config, sessions=sessions, audit=audit, clock=reactor, links=links)
    api_site = api.site(reactor)
    root = SwitchService(
        config=config,
        api=api,
        api_site=api_site,
        sessions=sessions,
        metrics=metrics,
        clock=reactor,
    )
    root.drain_checks.append(lambda: api.in_flight > 0)
    root.reloader = Reloader(root, reactor, audit, path=config.source)
    AdminRoutes(api, root.reloader.reload).install()
    api.status_extras.append(lambda: _status_extras(root))
    _SweeperService(sessions).setServiceParent(root)  # type: ignore[no-untyped-call]
    root.add_listener(ListenerService("api", lambda: listen_api_socket(reactor, config, api_site)))
    msite = metrics_site(metrics, reactor=reactor)

    def listen_metrics() -> IListeningPort:
        port: IListeningPort = reactor.listenTCP(
            config.metrics.port, msite, interface=config.metrics.host
        )
        host = port.getHost()
        _log.info(
            "metrics listening", host=getattr(host, "host", ""), port=getattr(host, "port", 0)
        )
        return port

    root.add_listener(ListenerService("metrics", listen_metrics))
    return root


def _status_extras(root: SwitchService) -> dict[str, Any]:
    """``/v1/status`` beyond links/audit/sessions: who is logged on (never a token) and
    the hit confirmations past their deadline (the metric the alert reads)."""
    now = root.clock.seconds() if root.clock is not None else None
    rows = []
    for s in sorted(root.sessions.sessions(), key=lambda s: s.created):
        rows.append(
            {
                "session": s.id,
                "terminal": s.terminal,
                "operator": s.operator,
                "roles": sorted(s.roles),
                "since": iso_utc(s.created),
                "idle_seconds": None if now is None else max(0, int(now - s.last_used)),
            }
        )
    overdue = root.metrics.registry.get_sample_value("switch_hit_confirmations_overdue")
    return {
        "session_list": rows,
        "hit_confirmations": {"overdue": int(overdue or 0)},
    }


def listen_api_socket(reactor: Any, config: Config, site: ApiSite) -> IListeningPort:
    """Bind the API socket with the configured mode and group, replacing a stale one."""
    path = config.api.socket
    clear_stale_socket(path)
    port: IListeningPort = reactor.listenUNIX(
        os.fspath(path), site, mode=config.api.socket_mode, wantPID=False
    )
    if config.api.socket_group:
        try:
            gid = grp.getgrnam(config.api.socket_group).gr_gid
            os.chown(path, -1, gid)
        except (KeyError, OSError) as exc:
            port.stopListening()
            raise StartupError(
                f"{path}: cannot give the socket to group {config.api.socket_group}: {exc}"
            ) from None
    _log.info("api listening", socket=os.fspath(path))
    return port


def clear_stale_socket(path: Path) -> None:
    """Remove ``path`` if it is a socket nobody answers on; refuse if someone does."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise StartupError(f"{path}: exists and is not a socket; not replacing it")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe.settimeout(1.0)
    try:
        probe.connect(os.fspath(path))
    except (ConnectionRefusedError, FileNotFoundError):
        _log.warning("replacing stale API socket", socket=os.fspath(path))
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    except OSError as exc:
        raise StartupError(f"{path}: cannot check the existing socket: {exc}") from None
    finally:
        probe.close()
    raise SocketInUse(f"{path}: another switchd is listening on it")


# --------------------------------------------------------------------------- the gateway


class _LinkPort:
    """The inquiry and teletype engines' view of the links."""

    def __init__(self, manager: LinkManager) -> None:
        self._manager = manager

    def is_up(self, name: str) -> bool:
        link = self._manager.links.get(name)
        return link is not None and link.state == UP

    def send(self, name: str, message: Inquiry | AdminMessage) -> Deferred[None]:
        return self._manager.send(name, message).addCallback(lambda _: None)


@dataclass
class Gateway:
    """The parts of the running switch that tests and later layers reach for."""

    store: Store
    audit: AuditSink
    mailbox: Mailbox
    links: LinkManager
    inquiries: InquiryEngine
    dedup: StoreDuplicates
    teletype: TeletypeEngine
    intercept: InterceptQueue
    confirmations: ConfirmationTracker
    incoming: IncomingRouter
    teletype_service: TeletypeService


def add_gateway(
    root: SwitchService,
    config: Config,
    reactor: Any,
    store: Store,
    audit: AuditSink,
    *,
    stop_audit: Callable[[], Deferred[None]] | None = None,
    link_options: Mapping[str, Any] | None = None,
) -> Gateway:
    """Attach links, inquiries, teletype, mailboxes and their API routes to ``root``.

    ``store`` and ``audit`` are already started; the root stops them last (audit, then
    store), after the links have logged off, so every ACKed message is committed and
    the shutdown checkpoint is the audit's last write. The teletype service is started
    after the links and stopped before them (children stop in reverse order): what a
    link fails while it logs off stays ``sent`` and goes again, same id, next start.
    """
    metrics = root.metrics
    if stop_audit is not None:
        root.stop_last.append(("audit", stop_audit))
    # Ids the links remembered in the last moments are written before the store stops.
    dedup = StoreDuplicates(store, reactor.seconds, call_later=reactor.callLater)
    root.stop_last.append(("duplicates", dedup.flush))
    root.stop_last.append(("store", store.stop))
    mailbox = Mailbox(store, reactor)
    engine_ref: list[InquiryEngine] = []
    incoming_ref: list[IncomingRouter] = []

    def on_message(link: str, message: ApplicationMessage) -> Deferred[None]:
        engine = engine_ref[0]
        if isinstance(message, Reply) or (
            isinstance(message, Notice) and engine.knows(message.in_reply_to)
        ):
            return engine.on_reply(link, message)
        if isinstance(message, AdminMessage | Notice):
            # committed to the mailboxes (and audited) before the link ACKs it
            return incoming_ref[0].on_message(link, message)
        _log.warning("message not handled", link=link, kind=message.kind, id=message.id)
        return audit.record(
            "message.unhandled", {"network": link, "kind": message.kind, "id": message.id}
        ).addCallback(lambda _: None)

    links = LinkManager(
        config.links,
        reactor,
        on_message,
        metrics=metrics,
        dedup=dedup,
        **dict(link_options or {}),
    )
    links.setServiceParent(root)  # type: ignore[no-untyped-call]

    metrics.init_inquiries(SUBJECTS)
    engine = InquiryEngine(
        reactor,
        _LinkPort(links),
        audit,
        mailbox,
        timeout=config.inquiry.timeout,
        metrics=metrics,
        results=store,
    )
    engine_ref.append(engine)
    root.api.links = links.status
    InquiryRoutes(
        root.api,
        lambda: root.config,
        engine,
        mailbox,
        reactor,
        on_rejected=lambda subject: metrics.inquiry_done(
            subject if subject in SUBJECTS else "unknown", "rejected"
        ),
    ).install()

    # -- teletype: store-and-forward out, mailboxes in, intercept queue, hit confirmations
    changes: list[Callable[[str], None]] = []
    overdue: list[Callable[[int], None]] = []

    def on_change(link: str) -> None:
        for f in changes:
            f(link)

    def on_overdue(count: int) -> None:
        for f in overdue:
            f(count)

    teletype = TeletypeEngine(
        reactor,
        _LinkPort(links),
        store,
        store,
        audit,
        mailbox,
        rules=config.routes.destinations,
        link_names=[link.name for link in config.links],
        ttl=config.teletype.ttl_hours * 3600.0,
        max_attempts=config.teletype.max_attempts,
        window=min((link.window for link in config.links), default=64),
        on_change=on_change,
    )
    confirmations = ConfirmationTracker(reactor, teletype, audit, mailbox, on_overdue=on_overdue)
    intercept = InterceptQueue(reactor, teletype, audit)
    incoming = IncomingRouter(
        reactor,
        audit,
        mailbox,
        config.terminals,
        ori=config.ori,
        engine=teletype,
        confirmations=confirmations,
    )
    incoming_ref.append(incoming)
    teletype_service = TeletypeService(
        reactor,
        teletype,
        confirmations,
        intercept,
        metrics,
        links=[link.name for link in config.links],
        queue_stats=store.queue_stats,
        purge=store.purge,
        live_sessions=lambda: {s.id for s in root.sessions.sessions()},
    )
    changes.append(teletype_service.changed)
    overdue.append(teletype_service.overdue)
    links.add_listener(teletype_service.link_state_changed)
    teletype_service.setServiceParent(root)  # type: ignore[no-untyped-call]

    def link_rows() -> list[dict[str, Any]]:
        """``/v1/status`` links; ``queue_depth`` is the durable queue (last refresh)
        when it holds more than the link layer has in hand."""
        rows = links.status()
        for row in rows:
            durable = teletype_service.depths.get(str(row["name"]), 0)
            row["queue_depth"] = max(int(row.get("queue_depth") or 0), durable)
        return rows

    root.api.links = link_rows
    TeletypeRoutes(
        root.api,
        lambda: root.config,
        teletype,
        intercept,
        confirmations,
        audit,
        links=links,
    ).install()
    return Gateway(
        store=store,
        audit=audit,
        mailbox=mailbox,
        links=links,
        inquiries=engine,
        teletype=teletype,
        intercept=intercept,
        confirmations=confirmations,
        incoming=incoming,
        teletype_service=teletype_service,
        dedup=dedup,
    )
