"""The baseline of the inquiry benchmark: a bare Twisted relay of the same frames.

It holds one logged-on connection to each of the four simulated networks and, for each
request, sends the four inquiry frames with the project's real codecs and answers once the
four replies are in (each reply ACKed, as the networks expect). There is no HTTP, no
audit, no store, no validation, no metrics and no logging: whatever the gateway costs
above this relay is what the gateway adds.

Requests arrive on a UNIX socket, one JSON object per line (``{"fields": {...}}``, a
person inquiry); the answer is one line with the four reply statuses in network order
(``hit,no_record,no_record,hit``) or ``error <why>``. Started by ``bench_inquiries.py``::

    python bench/relay_baseline.py --ports READY.json --var VAR --socket S --ready FILE

``--ports`` is the simulators' ``--ready-file`` (their free ports); ``--var`` holds the
secrets and PKI the simulators use. The relay writes ``FILE`` once all four links are up
and runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet import defer, task
from twisted.internet.endpoints import (
    HostnameEndpoint,
    TCP4ClientEndpoint,
    UNIXServerEndpoint,
    connectProtocol,
    wrapClientTLS,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.protocols.basic import LineOnlyReceiver

from switch.formats.registry import codec_for
from switch.model import Ack, Heartbeat, IdSource, Inquiry, Logon, Origin

NETWORKS = ("local", "regional", "state", "national")
STATION = "MO0380100"
REQUEST_TIMEOUT = 10.0  # seconds: a network that never answers fails the request
_BASE36 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


class Controls:
    """State control numbers ``S`` + 9 base-36 digits, as the gateway makes them."""

    def __init__(self) -> None:
        self._n = int.from_bytes(os.urandom(5), "big")

    def __call__(self) -> str:
        self._n += 1
        n = self._n % 36**9
        digits = []
        for _ in range(9):
            n, d = divmod(n, 36)
            digits.append(_BASE36[d])
        return "S" + "".join(reversed(digits))


class _Asked:
    """One outstanding inquiry on one link, reachable by id or by control number."""

    __slots__ = ("control", "d", "msg_id")

    def __init__(self, msg_id: str, control: str) -> None:
        self.d: defer.Deferred[str] = defer.Deferred()
        self.msg_id = msg_id
        self.control = control


class Upstream(Protocol):
    """One logged-on network connection: send inquiries, ACK and correlate replies."""

    def __init__(self, network: str, secret: str) -> None:
        self.network = network
        self.secret = secret
        self.codec = codec_for(network, STATION)
        self.framer = self.codec.framer()
        self.logged_on: defer.Deferred[None] = defer.Deferred()
        self.by_id: dict[str, _Asked] = {}
        self.by_control: dict[str, _Asked] = {}

    nodelay = False

    def connectionMade(self) -> None:
        if self.nodelay:
            assert self.transport is not None
            self.transport.setTcpNoDelay(True)  # type: ignore[attr-defined]
        self.send(Logon(STATION, self.secret))

    def send(self, message: Any) -> None:
        assert self.transport is not None
        self.transport.write(self.codec.encode(message))

    def ask(self, inquiry: Inquiry) -> defer.Deferred[str]:
        asked = _Asked(inquiry.id, inquiry.control or "")
        self.by_id[asked.msg_id] = asked
        self.by_control[asked.control] = asked
        self.send(inquiry)
        return asked.d

    def settle(self, msg_id: str | None, control: str | None, status: str) -> None:
        """Fire the inquiry an answer belongs to (by id, else by control number)."""
        asked = self.by_id.get(msg_id or "") or self.by_control.get(control or "")
        if asked is None:
            return
        del self.by_id[asked.msg_id]
        del self.by_control[asked.control]
        asked.d.callback(status)

    def dataReceived(self, data: bytes) -> None:
        for frame in self.framer.feed(data):
            message = self.codec.decode(frame)
            kind = message.kind
            if kind in ("reply", "notice"):
                self.send(Ack(message.id))
                self.settle(
                    message.in_reply_to,
                    getattr(message, "control", None),
                    getattr(message, "status", "error"),
                )
            elif kind == "logon_result":
                if message.ok:
                    self.logged_on.callback(None)
                else:
                    self.logged_on.errback(RuntimeError(f"{self.network}: logon refused"))
            elif kind == "nak":
                self.settle(message.id, None, "error")
            # ack, heartbeat: nothing to do


class Front(LineOnlyReceiver):
    """One client connection: a request line in, a status line out."""

    delimiter = b"\n"
    MAX_LENGTH = 65536

    def __init__(self, relay: Relay) -> None:
        self.relay = relay

    def lineReceived(self, line: bytes) -> None:
        try:
            fields = json.loads(line)["fields"]
        except (ValueError, KeyError, TypeError):
            self.sendLine(b"error bad request")
            return
        self.relay.relay(fields).addCallback(self.sendLine)


class Relay:
    def __init__(self, reactor: Any, links: dict[str, Upstream]) -> None:
        self.reactor = reactor
        self.links = links
        self.ids = IdSource()
        self.controls = Controls()

    def relay(self, fields: dict[str, str]) -> defer.Deferred[bytes]:
        msg_id = self.ids()
        asked: list[tuple[Upstream, Inquiry]] = []
        waits = []
        for name in NETWORKS:
            link = self.links[name]
            inquiry = Inquiry(
                id=msg_id,
                subject="person",
                fields=fields,
                origin=Origin(ori=STATION, terminal="DISPATCH1", operator="demo"),
                purpose="C",
                control=self.controls(),
            )
            asked.append((link, inquiry))
            waits.append(link.ask(inquiry))
        timer = self.reactor.callLater(REQUEST_TIMEOUT, _expire, asked)
        d = defer.gatherResults(waits)

        def done(statuses: list[str]) -> bytes:
            if timer.active():
                timer.cancel()
            return ",".join(statuses).encode()

        return d.addCallback(done)


def _expire(asked: list[tuple[Upstream, Inquiry]]) -> None:
    for link, inquiry in asked:
        link.settle(inquiry.id, inquiry.control, "timeout")


def _secret(var: Path, network: str) -> str:
    return (var / "secrets" / f"{network}.secret").read_text().strip()


async def _main(reactor: Any, args: argparse.Namespace) -> None:
    ports = json.loads(Path(args.ports).read_text())
    var = Path(args.var)
    links: dict[str, Upstream] = {}
    for name in NETWORKS:
        tcp = TCP4ClientEndpoint(reactor, "127.0.0.1", ports[name], timeout=10)
        endpoint: Any = tcp
        if name == "national":
            from switch.pki import client_tls_options

            creator = client_tls_options(
                var / "pki" / "ca.pem",
                var / "pki" / "gateway-client.pem",
                var / "pki" / "gateway-client.key",
                "localhost",
            )
            endpoint = wrapClientTLS(
                creator, HostnameEndpoint(reactor, "127.0.0.1", ports[name], timeout=10)
            )
        proto = Upstream(name, _secret(var, name))
        proto.nodelay = args.nodelay
        await connectProtocol(endpoint, proto)
        await proto.logged_on
        links[name] = proto

    def heartbeat() -> None:  # keep the networks from calling the links dead
        for link in links.values():
            link.send(Heartbeat())

    beat = task.LoopingCall(heartbeat)
    beat.clock = reactor
    beat.start(5.0, now=False)
    relay = Relay(reactor, links)
    await UNIXServerEndpoint(reactor, args.socket).listen(Factory.forProtocol(lambda: Front(relay)))
    Path(args.ready).write_text(json.dumps({"pid": os.getpid()}))
    await defer.Deferred()  # until SIGTERM stops the reactor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ports", required=True, help="the simulators' ready file")
    parser.add_argument("--var", required=True, help="the simulators' var/ (secrets, PKI)")
    parser.add_argument("--socket", required=True, help="UNIX socket to listen on")
    parser.add_argument("--ready", required=True, help="written once all links are up")
    parser.add_argument(
        "--nodelay", action="store_true", help="TCP_NODELAY on the links (switchd does not)"
    )
    args = parser.parse_args()
    task.react(lambda reactor: defer.Deferred.fromCoroutine(_main(reactor, args)))


if __name__ == "__main__":
    main()
