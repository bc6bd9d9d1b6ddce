"""The root service: builds everything from config; starts it; stops it in order.

``make_service(config, reactor, audit)`` returns one :class:`SwitchService`
(a ``MultiService``). Starting it opens the API socket and the metrics port; callers
that must know whether that worked (``switchd``) await :meth:`SwitchService.ready`.
Stopping is ordered, each step awaited: mark the API draining, close the listeners (no
new clients), close the API's open connections, then stop the rest (session sweeper;
later: links, queues, audit flush and the final checkpoint, the database) in reverse
order of creation. ``MultiService.stopService`` would stop them all at once.

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
from twisted.internet.threads import deferToThreadPool

from switch.audit.interface import AuditSink
from switch.config import Config
from switch.inquiry import InquiryEngine
from switch.locks import JsonLockStore, LockStore
from switch.mailbox import Mailbox
from switch.metrics import Metrics, metrics_site
from switch.model import SUBJECTS, ApplicationMessage, Inquiry, Notice, Reply
from switch.passwords import verify_password
from switch.protocols.api import Api, ApiSite
from switch.protocols.api_inquiries import InquiryRoutes
from switch.protocols.dedup import StoreDuplicates
from switch.protocols.link import UP
from switch.protocols.link_service import LinkManager
from switch.sessions import SessionManager, Verifier
from switch.store.interface import Store

_log = structlog.get_logger("switch.service")

#: Lock file under ``var/`` (until the durable store holds locks).
LOCKS_FILE = "locks.json"


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
        self.api.draining = True
        for listener in self.listeners:
            await _quietly(listener)
        self.api_site.close_connections()
        others = [s for s in self if s not in self.listeners]
        for service in reversed(others):
            await _quietly(service)
        for name, stop in self.stop_last:
            try:
                await stop()
            except Exception as exc:
                _log.error("stop failed", route=name, error=str(exc))
        _log.info("stopped")


async def _quietly(service: IService) -> None:
    """Stop one child; a failure is logged and shutdown goes on."""
    try:
        await maybeDeferred(service.stopService)
    except Exception as exc:
        _log.error("stop failed", route=service.name, error=str(exc))


# --------------------------------------------------------------------------- building


def make_service(
    config: Config,
    reactor: Any,
    audit: AuditSink,
    *,
    metrics: Metrics | None = None,
    locks: LockStore | None = None,
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
        locks=locks if locks is not None else JsonLockStore(config.var_dir / LOCKS_FILE),
        metrics=metrics,
    )
    api = Api(config=config, sessions=sessions, audit=audit, clock=reactor, links=links)
    api_site = api.site(reactor)
    root = SwitchService(
        config=config, api=api, api_site=api_site, sessions=sessions, metrics=metrics
    )
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
    """The inquiry engine's view of the links."""

    def __init__(self, manager: LinkManager) -> None:
        self._manager = manager

    def is_up(self, name: str) -> bool:
        link = self._manager.links.get(name)
        return link is not None and link.state == UP

    def send(self, name: str, message: Inquiry) -> Deferred[None]:
        return self._manager.send(name, message).addCallback(lambda _: None)


@dataclass
class Gateway:
    """The parts of the running switch that tests and later layers reach for."""

    store: Store
    audit: AuditSink
    mailbox: Mailbox
    links: LinkManager
    inquiries: InquiryEngine


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
    """Attach links, inquiries, mailboxes and their API routes to ``root``.

    ``store`` and ``audit`` are already started; the root stops them last (audit, then
    store), after the links have logged off, so every ACKed message is committed and
    the shutdown checkpoint is the audit's last write.
    """
    metrics = root.metrics
    if stop_audit is not None:
        root.stop_last.append(("audit", stop_audit))
    root.stop_last.append(("store", store.stop))
    mailbox = Mailbox(store, reactor)
    engine_ref: list[InquiryEngine] = []

    def on_message(link: str, message: ApplicationMessage) -> Deferred[None]:
        engine = engine_ref[0]
        if isinstance(message, Reply) or (
            isinstance(message, Notice) and engine.knows(message.in_reply_to)
        ):
            return engine.on_reply(link, message)
        _log.warning("message not handled", link=link, kind=message.kind, id=message.id)
        return audit.record(
            "message.unhandled", {"network": link, "kind": message.kind, "id": message.id}
        ).addCallback(lambda _: None)

    links = LinkManager(
        config.links,
        reactor,
        on_message,
        metrics=metrics,
        dedup=StoreDuplicates(store, reactor.seconds),
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
    return Gateway(store=store, audit=audit, mailbox=mailbox, links=links, inquiries=engine)
