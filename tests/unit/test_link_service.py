"""LinkManager: config -> links, status/retry/send, metrics, and real loopback sessions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock

from switch import paths
from switch.config import LinkConfig
from switch.metrics import Metrics
from switch.protocols.link import DOWN, UP, Link, LinkDown
from switch.protocols.link_service import (
    LinkManager,
    LinkSetupError,
    UnknownLink,
    build_endpoint,
)
from tests.unit.test_link_fakes import FakeCodec, Net, inquiry, teletype

SECRET = "test-secret-Zm9vYmFy"


def secret_file(tmp_path: Path, mode: int = 0o600, name: str = "local.secret") -> Path:
    path = tmp_path / name
    path.write_text(SECRET + "\n")
    path.chmod(mode)
    return path


def link_config(tmp_path: Path, endpoint: str = "tcp:127.0.0.1:9", **kw: Any) -> LinkConfig:
    options: dict[str, Any] = {
        "name": "local",
        "network": "local",
        "endpoint": endpoint,
        "station": "MO0380100",
        "secret_file": secret_file(tmp_path),
    }
    options.update(kw)
    return LinkConfig(**options)


class _FakeEndpoint:
    def __init__(self, net: Net) -> None:
        self.net = net

    def connect(self, factory: Any) -> Deferred[Any]:
        return self.net.dial(factory)


def memory_manager(tmp_path: Path, metrics: Any = None) -> tuple[Net, LinkManager]:
    net = Net()
    manager = LinkManager(
        [link_config(tmp_path)],
        net.clock,
        lambda _name, _msg: succeed(None),
        metrics=metrics,
        jitter=lambda: 0.0,
        codecs=lambda _network, _station: FakeCodec(),
        endpoint_for=lambda _reactor, _config: _FakeEndpoint(net),  # type: ignore[arg-type,return-value]
    )
    return net, manager


def test_secret_readable_by_others_refuses_to_start(tmp_path: Path) -> None:
    """A secret file that group or others can read stops the daemon before any dial."""
    config = link_config(tmp_path, secret_file=secret_file(tmp_path, 0o640, "shared.secret"))
    with pytest.raises(LinkSetupError, match="group or others"):
        LinkManager([config], Clock(), lambda _n, _m: succeed(None))


def test_secret_is_read_without_its_newline(tmp_path: Path) -> None:
    """The logon carries the secret as written in the file, trailing newline stripped."""
    net, manager = memory_manager(tmp_path)
    manager.startService()
    net.accept()
    assert net.sent()[0]["secret"] == SECRET


def test_status_retry_send(tmp_path: Path) -> None:
    """status() lists each link; retry() and send() go to the named link."""
    net, manager = memory_manager(tmp_path)
    manager.startService()
    net.refuse()
    (status,) = manager.status()
    assert {k: status[k] for k in ("name", "network", "state", "queue_depth")} == {
        "name": "local",
        "network": "local",
        "state": DOWN,
        "queue_depth": 0,
    }
    assert status["last_error"] and status["since"].startswith("1970-01-01T00:00:00")
    assert manager.retry("local") is True
    net.logon()
    assert manager.status()[0]["state"] == UP
    acked: list[Any] = []
    manager.send("local", inquiry("Q1")).addCallback(acked.append)
    net.feed({"t": "ack", "id": "Q1"})
    assert acked[0].id == "Q1"
    with pytest.raises(UnknownLink):
        manager.retry("nowhere")
    failed: list[Any] = []
    manager.send("nowhere", teletype("T1")).addErrback(failed.append)
    assert failed[0].check(UnknownLink)


def test_stop_service_logs_off(tmp_path: Path) -> None:
    """stopService logs every link off and fails queued teletype with LinkDown."""
    net, manager = memory_manager(tmp_path)
    manager.startService()
    net.logon()
    net.sent()
    stopped: list[Any] = []
    manager.stopService().addCallback(stopped.append)
    assert net.sent() == [{"t": "logoff"}]
    net.clock.advance(0)
    assert stopped and manager.status()[0]["state"] == DOWN
    failed: list[Any] = []
    manager.send("local", teletype("T9")).addErrback(failed.append)
    assert failed[0].check(LinkDown)


def test_prometheus_metrics(tmp_path: Path) -> None:
    """switch_link_up, reconnects, rejected frames and messages reach the registry."""
    metrics = Metrics()
    net, manager = memory_manager(tmp_path, metrics)

    def value(name: str, **labels: str) -> float | None:
        got: float | None = metrics.registry.get_sample_value(name, labels)
        return got

    assert value("switch_link_up", link="local") == 0
    manager.startService()
    net.logon()
    assert value("switch_link_up", link="local") == 1
    net.feed(b"{garbage\n")
    net.feed({"t": "msg", "id": "M1", "key": "AM", "text": "X"})
    assert value("switch_frames_rejected_total", link="local", reason="malformed") == 1
    assert value("switch_messages_total", link="local", direction="in", kind="admin") == 1
    assert value("switch_messages_total", link="local", direction="in", kind="hb") is None
    net.close()
    assert value("switch_link_up", link="local") == 0
    net.clock.advance(1)
    assert value("switch_link_reconnects_total", link="local") == 1


def test_build_endpoint_checks_config(tmp_path: Path) -> None:
    """tcp: goes through clientFromString; tls: without a CA or with a bad key is refused."""
    assert build_endpoint(Clock(), link_config(tmp_path)) is not None
    with pytest.raises(LinkSetupError, match="needs 'ca'"):
        build_endpoint(Clock(), link_config(tmp_path, endpoint="tls:localhost:7104"))
    with pytest.raises(LinkSetupError, match="endpoint"):
        build_endpoint(Clock(), link_config(tmp_path, endpoint="unix:/tmp/x"))
    with pytest.raises(LinkSetupError):
        build_endpoint(
            Clock(),
            link_config(tmp_path, endpoint="tls:localhost:7104", ca=tmp_path / "missing.pem"),
        )


# --------------------------------------------------------------------------- loopback


class _JsonNetwork(Protocol):
    """A tiny local network: answers logons, ACKs everything, records what it got."""

    factory: _JsonNetworkFactory

    def connectionMade(self) -> None:
        self.buf = b""
        self.lost: Deferred[None] = Deferred()
        self.factory.sessions.append(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self.buf += data
        while b"\n" in self.buf:
            line, self.buf = self.buf.split(b"\n", 1)
            obj = json.loads(line)
            self.factory.frames.append(obj)
            assert self.transport is not None
            if obj["t"] == "logon":
                ok = obj["secret"] == SECRET
                answer = {"t": "logon_ok"} if ok else {"t": "logon_fail", "reason": "no"}
                self.transport.write(json.dumps(answer).encode() + b"\n")
            elif "id" in obj and obj["t"] not in ("ack", "nak"):
                self.transport.write(json.dumps({"t": "ack", "id": obj["id"]}).encode() + b"\n")


class _JsonNetworkFactory(Factory):
    protocol = _JsonNetwork
    noisy = False

    def __init__(self) -> None:
        self.sessions: list[_JsonNetwork] = []
        self.frames: list[dict[str, Any]] = []


def _when_state(link: Link, state: str, reactor: Any, timeout: float = 5.0) -> Deferred[None]:
    d: Deferred[None] = Deferred()

    def listener(_link: Link, _old: str, new: str) -> None:
        if new == state and not d.called:
            link.remove_listener(listener)
            d.callback(None)

    link.add_listener(listener)
    d.addTimeout(timeout, reactor)
    return d


async def _session_cycle(reactor: Any, manager: LinkManager, net: _JsonNetworkFactory) -> None:
    link = manager.get("local")
    metrics_up = _when_state(link, UP, reactor)
    manager.startService()
    try:
        await metrics_up
        acked = await manager.send("local", teletype("T1"))
        assert acked.id == "T1"
        down = _when_state(link, DOWN, reactor)
        up_again = _when_state(link, UP, reactor)
        transport = net.sessions[0].transport
        assert transport is not None
        transport.loseConnection()  # the network closes the session
        await down
        await up_again  # by itself, after the 1 s backoff
        assert len(net.sessions) == 2
        assert [f["t"] for f in net.frames].count("logon") == 2
    finally:
        await manager.stopService()
    await net.sessions[-1].lost
    assert net.frames[-1] == {"t": "logoff"}


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_loopback_local_reconnects(reactor: Any, tmp_path: Path) -> None:
    """Over real TCP with the local codec: connect, logon, up, server closes, down, up."""
    net = _JsonNetworkFactory()
    port = reactor.listenTCP(0, net, interface="127.0.0.1")
    metrics = Metrics()
    try:
        config = link_config(tmp_path, endpoint=f"tcp:127.0.0.1:{port.getHost().port}")
        manager = LinkManager(
            [config], reactor, lambda _n, _m: succeed(None), metrics=metrics, jitter=lambda: 0.0
        )
        await _session_cycle(reactor, manager, net)
    finally:
        await port.stopListening()
    reconnects = metrics.registry.get_sample_value(
        "switch_link_reconnects_total", {"link": "local"}
    )
    assert reconnects == 1


@asynccontextmanager
async def _tls_network(
    reactor: Any, tmp_path: Path, server_name: str
) -> AsyncIterator[tuple[LinkManager, _JsonNetworkFactory]]:
    """A JSON-lines network behind our test PKI's server certificate, and a manager
    whose one tls: link dials it expecting ``server_name``."""
    from switch.pki import init_pki, server_tls_options

    pki = tmp_path / "pki"
    init_pki(pki, tmp_path / "keys")
    net = _JsonNetworkFactory()
    port = reactor.listenSSL(0, net, server_tls_options(pki), interface="127.0.0.1")
    try:
        config = link_config(
            tmp_path,
            endpoint=f"tls:127.0.0.1:{port.getHost().port}",
            ca=pki / paths.CA_CERT,
            certificate=pki / paths.CLIENT_CERT,
            private_key=pki / paths.CLIENT_KEY,
            server_name=server_name,
        )
        yield LinkManager([config], reactor, lambda _n, _m: succeed(None), jitter=lambda: 0.0), net
    finally:
        await port.stopListening()


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_loopback_mutual_tls(reactor: Any, tmp_path: Path) -> None:
    """A tls: link presents our client certificate, verifies ``localhost`` and logs on."""
    async with _tls_network(reactor, tmp_path, "localhost") as (manager, net):
        await _session_cycle(reactor, manager, net)


@pytest.mark.integration
@pytest_twisted.ensureDeferred
async def test_tls_refuses_a_wrong_server_name(reactor: Any, tmp_path: Path) -> None:
    """A server whose certificate does not name ``server_name`` never gets our logon."""
    async with _tls_network(reactor, tmp_path, "national.example") as (manager, net):
        link = manager.get("local")
        down = _when_state(link, DOWN, reactor)
        manager.startService()
        await down
        await manager.stopService()
        assert link.last_error and link.last_error.startswith("connection lost")
        assert not any(f["t"] == "logon" for f in net.frames)
