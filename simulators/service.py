"""Listeners for the simulated networks and their control API, in one process.

The listeners come up first and the synthetic data set is built in a thread afterwards,
so that every port answers within seconds of start (DESIGN §9); inquiries that arrive
before the data is ready simply wait for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import IListeningPort
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThread
from twisted.web.server import Site

from switch.paths import read_secret

from .config import SimConfig
from .control import control_root
from .network import Network, TeletypePolicy
from .session import NetworkFactory

log = structlog.get_logger("simulators.service")

#: How many of our agency's local warrants the scheduled YQs cycle through.
SCHEDULED_WARRANTS = 20


@dataclass
class Simulators:
    """Running simulators: the networks, their ports, the control port."""

    reactor: Any
    config: SimConfig
    networks: dict[str, Network] = field(default_factory=dict)
    ports: dict[str, IListeningPort] = field(default_factory=dict)
    port_numbers: dict[str, int] = field(default_factory=dict)
    control: IListeningPort | None = None
    built: Deferred[None] | None = None
    loops: list[LoopingCall] = field(default_factory=list)
    _stopping: dict[str, Deferred[Any]] = field(default_factory=dict)
    _tls: Any = None

    def listen(self, name: str) -> None:
        settings = self.config.networks[name]
        factory = NetworkFactory(self.networks[name])
        port_no = self.port_numbers.get(name, settings.port)
        if name == "national":
            if self._tls is None:
                from switch.pki import server_tls_options

                # requires a client certificate signed by our CA (mutual TLS)
                self._tls = server_tls_options(self.config.pki_dir)
            port = self.reactor.listenSSL(port_no, factory, self._tls, interface=settings.host)
        else:
            port = self.reactor.listenTCP(port_no, factory, interface=settings.host)
        self.ports[name] = port
        self.port_numbers[name] = port.getHost().port

    def refuse(self, name: str, refuse: bool) -> None:
        """``refuse_connections``: stop listening until cleared, then listen again on the
        same port (once the old listener is really closed)."""
        if refuse and name in self.ports:
            d: Deferred[Any] = maybeDeferred(self.ports.pop(name).stopListening)
            self._stopping[name] = d
            d.addBoth(lambda _: self._stopping.pop(name, None))
            log.info("simulator.refusing_connections", network=name)
        elif not refuse and name not in self.ports:
            pending = self._stopping.get(name)

            def again(_: object) -> None:
                if name in self.ports or self.networks[name].faults.refuse_connections:
                    return
                try:
                    self.listen(name)
                except Exception as exc:
                    log.error("simulator.listen_failed", network=name, error=type(exc).__name__)
                    return
                log.info("simulator.listening_again", network=name)

            if pending is not None:
                pending.addBoth(again)
            else:
                again(None)

    def schedule(self, name: str, every: float, dataset: Any) -> None:
        """Originate an AM / a YQ about one of our warrants every ``every`` seconds."""
        network = self.networks[name]

        def tick() -> None:
            if not network._ready:
                return
            warrants = dataset.our_local_warrants(SCHEDULED_WARRANTS)
            network.originate(network.scheduled(warrants))

        loop = LoopingCall(tick)
        loop.clock = self.reactor
        loop.start(every, now=False).addErrback(
            lambda f: log.error("simulator.schedule_failed", network=name, error=str(f.value))
        )
        self.loops.append(loop)

    async def stop(self) -> None:
        for loop in self.loops:
            if loop.running:
                loop.stop()
        for network in self.networks.values():
            network.stop()
        ports = list(self.ports.values()) + ([self.control] if self.control else [])
        self.ports.clear()
        for port in ports:
            await maybeDeferred(port.stopListening)


def start(reactor: Any, config: SimConfig, names: tuple[str, ...], dataset: Any) -> Simulators:
    """Listen for ``names`` and the control API; build the data set in a thread."""
    sims = Simulators(reactor=reactor, config=config)
    for name in names:
        settings = config.networks[name]
        secret = read_secret(config.secrets_dir / f"{name}.secret")
        network = Network(
            name,
            reactor,
            dataset,
            {config.station: secret},
            heartbeat=config.heartbeat,
            policy=TeletypePolicy(
                delay_ms=settings.teletype_delay_ms,
                no_answer=settings.teletype_no_answer,
                deny=settings.teletype_deny,
                auto_am=settings.auto_reply_am,
            ),
            delays=(settings.delay_ms, settings.slow_delay_ms),
            seed=config.seed,
            station=config.station,
        )
        network.on_refuse_connections = lambda refuse, n=name: sims.refuse(n, refuse)
        sims.networks[name] = network
    for name in names:
        sims.listen(name)
    site = Site(control_root(sims.networks))  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    site.noisy = False
    sims.control = reactor.listenTCP(config.control_port, site, interface=config.control_host)
    for name in names:
        every = config.networks[name].originate_every_s
        if every > 0:
            sims.schedule(name, every, dataset)
    sims.built = deferToThread(dataset.ensure_built)

    def ready(_: object) -> None:
        for network in sims.networks.values():
            network.mark_ready()
        log.info("simulator.data_ready", count=config.persons)

    def failed(failure: Any) -> None:
        log.error("simulator.data_failed", error=type(failure.value).__name__)

    sims.built.addCallbacks(ready, failed)
    return sims
