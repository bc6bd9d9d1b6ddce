"""The links of the daemon: one :class:`~switch.protocols.link.Link` per ``[[links]]`` entry.

This is the wiring between config and the link state machine: the endpoint to dial
(``tcp:`` through ``clientFromString``; ``tls:`` with our CA, client certificate and key,
verifying ``server_name``), the secret file (refused when group or others can read it),
the codec by network name, and Prometheus. Everything is checked when the manager is
built, so a daemon with a shared secret file or an unreadable key refuses to start
instead of failing later on a dial.

A reload (:mod:`switch.reload`) goes in two steps: :meth:`LinkManager.prepare` builds
the links of the new config and decides what changes (it raises LinkSetupError, and
nothing has changed); :meth:`LinkManager.apply` then leaves unchanged links alone, dials
new ones, drains changed and removed ones (outstanding work and ACKs, bounded), logs them
off, and dials the changed ones with their new config; a link whose only change is its
secret is redialled at once (the link reads its secret at every dial).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint
from twisted.internet.task import deferLater

from switch import paths
from switch.config import LinkConfig, parse_endpoint
from switch.formats.base import Codec
from switch.formats.registry import codec_for
from switch.metrics import Metrics
from switch.model import APPLICATION_KINDS, Ack, ApplicationMessage
from switch.protocols.dedup import DuplicateMemory, MemoryDuplicates
from switch.protocols.link import (
    AUTH_FAILED,
    DOWN,
    UP,
    Dialer,
    Link,
    LinkError,
    LinkMetrics,
    MessageHandler,
    StateListener,
)
from switch.reload import LinkPlan, plan_links

_log = structlog.get_logger("switch.links")

#: How often a draining link is looked at (its outstanding work and ACKs).
DRAIN_POLL = 0.05


class LinkSetupError(Exception):
    """A link cannot be built from its config (endpoint, TLS files); one line, no trace."""


class UnknownLink(LinkError, LookupError):
    """No configured link has this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"no link named {name!r}")
        self.name = name


class PrometheusLinkMetrics:
    """Adapts :class:`switch.metrics.Metrics` to the link's :class:`LinkMetrics` seam."""

    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    def link_state(self, link: str, state: str) -> None:
        self._m.link_up.labels(link=link).set(1 if state == UP else 0)

    def link_reconnect(self, link: str) -> None:
        self._m.link_reconnects.labels(link=link).inc()

    def frame_rejected(self, link: str, reason: str) -> None:
        self._m.frames_rejected.labels(link=link, reason=reason).inc()

    def message(self, link: str, direction: str, kind: str) -> None:
        # switch_messages_total counts application messages; heartbeats would drown them.
        if kind in APPLICATION_KINDS:
            self._m.messages.inc(link, direction, kind)


def build_endpoint(reactor: Any, config: LinkConfig) -> IStreamClientEndpoint:
    """The endpoint of one link; LinkSetupError says what is wrong with its config."""
    try:
        ep = parse_endpoint(config.endpoint)
    except ValueError as exc:
        raise LinkSetupError(f"link {config.name}: endpoint: {exc}") from None
    if not ep.tls:
        endpoint: IStreamClientEndpoint = clientFromString(  # type: ignore[no-untyped-call]
            reactor, config.endpoint
        )
        return endpoint
    if config.ca is None:
        raise LinkSetupError(f"link {config.name}: a tls: endpoint needs 'ca'")
    from switch.pki import PkiError, client_tls_options

    try:
        creator = client_tls_options(
            config.ca, config.certificate, config.private_key, config.server_name or ep.host
        )
    except PkiError as exc:
        raise LinkSetupError(f"link {config.name}: {exc}") from None
    bind = ep.options.get("bindAddress")
    tcp = HostnameEndpoint(
        reactor,
        ep.host,
        ep.port,
        timeout=float(ep.options.get("timeout", "30")),
        bindAddress=(bind, 0) if bind else None,
    )
    tls: IStreamClientEndpoint = wrapClientTLS(creator, tcp)
    return tls


def _dialer(endpoint: IStreamClientEndpoint) -> Dialer:
    def dial(factory: IProtocolFactory) -> Deferred[IProtocol]:
        d: Deferred[IProtocol] = endpoint.connect(factory)
        return d

    return dial


@dataclass
class PreparedLinks:
    """The links of a new config, built but not started, and what changes (a reload)."""

    plan: LinkPlan
    configs: tuple[LinkConfig, ...]
    built: dict[str, Link] = field(default_factory=dict)  # added and changed links
    digests: dict[str, str | None] = field(default_factory=dict)  # name -> secret digest
    tls: dict[str, str | None] = field(default_factory=dict)  # name -> TLS files digest


class LinkManager(Service):
    """Builds, starts and logs off every configured link; the API's view of them.

    ``startService`` dials every link; ``stopService`` logs them all off concurrently
    (each waits for its pending ACKs, sends its logoff and closes, bounded in time).
    ``prepare``/``apply`` change the set of links under a running daemon (reload).
    """

    name = "links"

    def __init__(
        self,
        links: Iterable[LinkConfig],
        reactor: Any,
        on_message: MessageHandler,
        *,
        metrics: Metrics | LinkMetrics | None = None,
        dedup: DuplicateMemory | None = None,
        jitter: Callable[[], float] = random.random,
        codecs: Callable[[str, str], Codec] = codec_for,
        endpoint_for: Callable[[Any, LinkConfig], IStreamClientEndpoint] = build_endpoint,
    ) -> None:
        configs = tuple(links)
        self.links: dict[str, Link] = {}
        self.configs: dict[str, LinkConfig] = {}
        self._reactor = reactor
        self._on_message = on_message
        self._metrics = metrics if isinstance(metrics, Metrics) else None
        self._link_metrics: LinkMetrics | None
        if isinstance(metrics, Metrics):
            metrics.init_links((c.name, c.network) for c in configs)
            self._link_metrics = PrometheusLinkMetrics(metrics)
        else:
            self._link_metrics = metrics
        self._dedup = dedup if dedup is not None else MemoryDuplicates(reactor.seconds)
        self._jitter = jitter
        self._codecs = codecs
        self._endpoint_for = endpoint_for
        self._listeners: list[StateListener] = []
        self._secrets: dict[str, str | None] = {}
        self._tls: dict[str, str | None] = {}
        #: Links being drained and logged off by a reload (removed or replaced).
        self._retiring: set[Deferred[None]] = set()
        #: Called with a removed link's name once it has logged off (reload).
        self.on_removed: list[Callable[[str], object]] = []
        for config in configs:
            if config.name in self.links:
                raise LinkSetupError(f"link {config.name}: configured twice")
            digest = _secret_digest(config)
            self.links[config.name] = self._build(config)
            self.configs[config.name] = config
            self._secrets[config.name] = digest
            self._tls[config.name] = _tls_digest(config)

    def _build(self, config: LinkConfig) -> Link:
        endpoint = self._endpoint_for(self._reactor, config)
        link = Link(
            config.name,
            network=config.network,
            station=config.station,
            secret=_secret_reader(config),
            codec_factory=_codec_factory(self._codecs, config),
            dial=_dialer(endpoint),
            clock=self._reactor,
            on_message=self._on_message,
            heartbeat=config.heartbeat,
            window=config.window,
            ack_timeout=config.ack_timeout,
            dedup=self._dedup,
            metrics=self._link_metrics,
            jitter=self._jitter,
        )
        for listener in self._listeners:
            link.add_listener(listener)
        return link

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        for link in self.links.values():
            link.start()

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        stops = [link.stop() for link in self.links.values()]
        stops += list(self._retiring)  # a reload's drains: they end with a logoff too
        d: Deferred[Any] = DeferredList(stops, consumeErrors=True)
        return d

    def get(self, name: str) -> Link:
        try:
            return self.links[name]
        except KeyError:
            raise UnknownLink(name) from None

    def status(self) -> list[dict[str, Any]]:
        """``[{name, network, state, since, last_error, queue_depth, ...}]`` in config order.

        With Prometheus metrics, each row adds the teletype queue of the link as the
        teletype engine exports it (``queue_teletype``, ``queue_oldest_seconds``).
        """
        rows = []
        for link in self.links.values():
            row: dict[str, Any] = dict(link.status())
            if self._metrics is not None:
                registry = self._metrics.registry
                labels = {"link": link.name}
                depth = registry.get_sample_value("switch_queue_depth", labels)
                oldest = registry.get_sample_value("switch_queue_oldest_seconds", labels)
                row["queue_teletype"] = int(depth or 0)
                row["queue_oldest_seconds"] = round(float(oldest or 0.0), 1)
            rows.append(row)
        return rows

    def retry(self, name: str) -> bool:
        """``switchctl link retry NAME``: dial now if the link is down or auth_failed."""
        return self.get(name).retry()

    def send(self, name: str, message: ApplicationMessage) -> Deferred[Ack]:
        """Send on link ``name``; see :meth:`Link.send` for what it fires or fails with."""
        link = self.links.get(name)
        if link is None:
            return fail(UnknownLink(name))
        return link.send(message)

    def add_listener(self, listener: StateListener) -> None:
        """Watch every link's state changes (status page, audit of link events); links
        added by a later reload get the listener too."""
        self._listeners.append(listener)
        for link in self.links.values():
            link.add_listener(listener)

    # ------------------------------------------------------------------ reload

    def secret_digests(self) -> dict[str, str | None]:
        """Link name -> SHA-256 of the secret it was built (or last redialled) with."""
        return dict(self._secrets)

    def prepare(self, configs: Iterable[LinkConfig]) -> PreparedLinks:
        """Build what ``configs`` needs (nothing is started or changed yet).

        Raises LinkSetupError (duplicate name, unreadable or shared secret, bad endpoint
        or TLS files): the reload is then refused as a whole.
        """
        new = tuple(configs)
        digests: dict[str, str | None] = {}
        tls: dict[str, str | None] = {}
        for config in new:
            if config.name in digests:
                raise LinkSetupError(f"link {config.name}: configured twice")
            digests[config.name] = _secret_digest(config)
            tls[config.name] = _tls_digest(config)
        old = tuple(self.configs.values())
        plan = plan_links(old, new, self._secrets, digests, self._tls, tls)
        prepared = PreparedLinks(plan=plan, configs=new, digests=digests, tls=tls)
        by_name = {c.name: c for c in new}
        for name in (*plan.added, *plan.changed):
            prepared.built[name] = self._build(by_name[name])
        return prepared

    def apply(
        self,
        prepared: PreparedLinks,
        *,
        drain_timeout: float = 5.0,
        busy: Callable[[str], bool] | None = None,
    ) -> Deferred[None]:
        """Make the running links match ``prepared``; fires once every change settled.

        What changes synchronously (before this returns): the config and secret records,
        added links (dialled at once), removed links (gone from :attr:`links`, so nothing
        new is sent on them). Then, concurrently: removed and changed links drain —
        until they have nothing awaiting an ACK and ``busy(name)`` is False (the inquiry
        engine's outstanding answers), at most ``drain_timeout`` — and log off; a changed
        link is then replaced by its new build and dialled; a secret-only change redials
        the same link (at once: no backoff).
        """
        plan = prepared.plan
        by_name = {c.name: c for c in prepared.configs}
        self.configs = {c.name: c for c in prepared.configs}
        self._secrets = dict(prepared.digests)
        self._tls = dict(prepared.tls)
        if self._metrics is not None:  # a changed link keeps its series (it is up now)
            self._metrics.init_links((n, by_name[n].network) for n in plan.added)
        work: list[Deferred[None]] = []
        for name in plan.removed:
            link = self.links.pop(name, None)
            if link is not None:
                work.append(
                    self._retire(Deferred.fromCoroutine(self._remove(link, drain_timeout, busy)))
                )
        for name in plan.added:
            link = prepared.built[name]
            self.links[name] = link
            if self.running:
                link.start()
        for name in plan.changed:
            work.append(
                self._retire(
                    Deferred.fromCoroutine(
                        self._replace(name, prepared.built[name], drain_timeout, busy)
                    )
                )
            )
        for name in plan.secret_only:
            work.append(Deferred.fromCoroutine(self._redial(name, drain_timeout, busy)))
        if plan.touched:
            _log.info(
                "links reconfigured",
                what={
                    "added": list(plan.added),
                    "removed": list(plan.removed),
                    "redialled": list(plan.changed),
                    "secret_changed": list(plan.secret_only),
                },
            )
        d: Deferred[Any] = DeferredList(work, consumeErrors=True)
        return d.addCallback(lambda _: None)

    def _retire(self, d: Deferred[None]) -> Deferred[None]:
        self._retiring.add(d)

        def done(result: object) -> object:
            self._retiring.discard(d)
            return result

        d.addBoth(done)
        return d

    async def _drain(self, link: Link, timeout: float, busy: Callable[[str], bool] | None) -> None:
        """Wait while ``link`` is up and still has work: un-ACKed messages, or answers
        the inquiry engine waits for; at most ``timeout`` seconds."""
        clock = self._reactor
        deadline = clock.seconds() + timeout
        while link.state == UP and clock.seconds() < deadline:
            if link.queue_depth == 0 and not (busy is not None and busy(link.name)):
                return
            await deferLater(clock, DRAIN_POLL, lambda: None)
        if link.state == UP:
            _log.warning("link drain timed out; logging off", link=link.name)

    async def _remove(self, link: Link, timeout: float, busy: Callable[[str], bool] | None) -> None:
        await self._drain(link, timeout, busy)
        await link.stop()
        if self._metrics is not None:
            for gauge in (
                self._metrics.link_up,
                self._metrics.queue_depth,
                self._metrics.queue_oldest_seconds,
            ):
                try:
                    gauge.remove(link.name)
                except KeyError:
                    pass
        _log.info("link removed", link=link.name)
        for hook in list(self.on_removed):
            try:
                hook(link.name)
            except Exception as exc:
                _log.error("link removal hook failed", link=link.name, error=type(exc).__name__)

    async def _replace(
        self, name: str, new: Link, timeout: float, busy: Callable[[str], bool] | None
    ) -> None:
        old = self.links.get(name)
        if old is not None:
            await self._drain(old, timeout, busy)
            await old.stop()
        if self.links.get(name) is not old:
            return  # a later reload or shutdown took over
        self.links[name] = new
        if self.running:
            new.start()
            _log.info("link redialled with its new config", link=name)

    async def _redial(self, name: str, timeout: float, busy: Callable[[str], bool] | None) -> None:
        link = self.links.get(name)
        if link is None or not self.running:
            return
        if link.state in (DOWN, AUTH_FAILED):
            link.retry()  # nothing to drain: dial now, queued teletype stays queued
        else:
            await self._drain(link, timeout, busy)
            if self.links.get(name) is not link or not self.running:
                return
            await link.stop()
            if self.running:
                link.start()
        _log.info("link redialled with its new secret", link=name)


def _tls_digest(config: LinkConfig) -> str | None:
    """SHA-256 over the link's CA, certificate and key files (None without TLS files);
    an unreadable file counts as a change (building the link then says what is wrong)."""
    files = [p for p in (config.ca, config.certificate, config.private_key) if p is not None]
    if not files:
        return None
    h = hashlib.sha256()
    for path in files:
        try:
            h.update(hashlib.sha256(path.read_bytes()).digest())
        except OSError:
            h.update(b"unreadable:" + str(path).encode())
    return h.hexdigest()


def _secret_digest(config: LinkConfig) -> str | None:
    """SHA-256 of the link's secret; LinkSetupError when it cannot be used (refuse to
    start or to reload rather than fail later on a dial)."""
    try:
        secret = paths.read_secret(config.secret_file)
    except paths.SecretError as exc:
        raise LinkSetupError(f"link {config.name}: {exc}") from None
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _secret_reader(config: LinkConfig) -> Callable[[], str]:
    path = config.secret_file

    def read() -> str:
        return paths.read_secret(path)

    return read


def _codec_factory(codecs: Callable[[str, str], Codec], config: LinkConfig) -> Callable[[], Codec]:
    network, station = config.network, config.station

    def make() -> Codec:
        return codecs(network, station)

    return make
