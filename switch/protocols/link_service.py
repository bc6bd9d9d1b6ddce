"""The links of the daemon: one :class:`~switch.protocols.link.Link` per ``[[links]]`` entry.

This is the wiring between config and the link state machine: the endpoint to dial
(``tcp:`` through ``clientFromString``; ``tls:`` with our CA, client certificate and key,
verifying ``server_name``), the secret file (refused when group or others can read it),
the codec by network name, and Prometheus. Everything is checked when the manager is
built, so a daemon with a shared secret file or an unreadable key refuses to start
instead of failing later on a dial.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, fail
from twisted.internet.endpoints import HostnameEndpoint, clientFromString, wrapClientTLS
from twisted.internet.interfaces import IProtocol, IProtocolFactory, IStreamClientEndpoint

from switch import paths
from switch.config import LinkConfig, parse_endpoint
from switch.formats.base import Codec
from switch.formats.registry import codec_for
from switch.metrics import Metrics
from switch.model import APPLICATION_KINDS, Ack, ApplicationMessage
from switch.protocols.dedup import DuplicateMemory, MemoryDuplicates
from switch.protocols.link import (
    UP,
    Dialer,
    Link,
    LinkError,
    LinkMetrics,
    MessageHandler,
    StateListener,
)


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
            self._m.messages.labels(link=link, direction=direction, kind=kind).inc()


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


class LinkManager(Service):
    """Builds, starts and logs off every configured link; the API's view of them.

    ``startService`` dials every link; ``stopService`` logs them all off concurrently
    (each waits for its pending ACKs, sends its logoff and closes, bounded in time).
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
        link_metrics: LinkMetrics | None
        if isinstance(metrics, Metrics):
            metrics.init_links((c.name, c.network) for c in configs)
            link_metrics = PrometheusLinkMetrics(metrics)
        else:
            link_metrics = metrics
        memory = dedup if dedup is not None else MemoryDuplicates(reactor.seconds)
        for config in configs:
            if config.name in self.links:
                raise LinkSetupError(f"link {config.name}: configured twice")
            try:
                paths.read_secret(config.secret_file)  # refuse to start, not to dial
            except paths.SecretError as exc:
                raise LinkSetupError(f"link {config.name}: {exc}") from None
            endpoint = endpoint_for(reactor, config)
            self.links[config.name] = Link(
                config.name,
                network=config.network,
                station=config.station,
                secret=_secret_reader(config),
                codec_factory=_codec_factory(codecs, config),
                dial=_dialer(endpoint),
                clock=reactor,
                on_message=on_message,
                heartbeat=config.heartbeat,
                window=config.window,
                ack_timeout=config.ack_timeout,
                dedup=memory,
                metrics=link_metrics,
                jitter=jitter,
            )

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        for link in self.links.values():
            link.start()

    def stopService(self) -> Deferred[Any]:
        super().stopService()  # type: ignore[no-untyped-call]
        stops = [link.stop() for link in self.links.values()]
        d: Deferred[Any] = DeferredList(stops, consumeErrors=True)
        return d

    def get(self, name: str) -> Link:
        try:
            return self.links[name]
        except KeyError:
            raise UnknownLink(name) from None

    def status(self) -> list[dict[str, Any]]:
        """``[{name, network, state, since, last_error, queue_depth}]`` in config order."""
        return [link.status() for link in self.links.values()]

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
        """Watch every link's state changes (status page, audit of link events)."""
        for link in self.links.values():
            link.add_listener(listener)


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
