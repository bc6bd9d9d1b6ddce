"""In-memory doubles for the link tests: a tiny JSON-lines codec and a fake network.

The fake codec keeps the link tests independent of the four real codecs (written
elsewhere): only the :class:`switch.formats.base.Codec` contract matters to the link.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionRefusedError
from twisted.internet.interfaces import IProtocolFactory
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

from switch.formats.base import CodecError
from switch.model import (
    Ack,
    AdminMessage,
    Heartbeat,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Origin,
    Reply,
    WireMessage,
)
from switch.protocols.link import Link, LinkProtocol

FAKE_LIMIT = 256


class FakeFramer:
    """Newline-delimited frames of at most FAKE_LIMIT bytes.

    Over the limit: the line is skipped (non-fatal CodecError 11). A NUL byte means the
    stream is lost (fatal CodecError 10), like a real framer that lost sync.
    """

    def __init__(self) -> None:
        self.buf = b""
        self.skipping = False

    def feed(self, data: bytes) -> list[bytes]:
        if b"\x00" in data:
            self.buf = b""
            raise CodecError(10, fatal=True)
        self.buf += data
        frames: list[bytes] = []
        while True:
            i = self.buf.find(b"\n")
            if i < 0:
                if len(self.buf) > FAKE_LIMIT:
                    self.buf = b""
                    self.skipping = True
                    raise CodecError(11)
                return frames
            line, self.buf = self.buf[:i], self.buf[i + 1 :]
            if self.skipping:
                self.skipping = False
                continue
            if len(line) > FAKE_LIMIT:
                raise CodecError(11)
            frames.append(line)


class FakeCodec:
    """JSON lines with a ``t`` type, loosely after the local format (DESIGN §4.1)."""

    name = "fake"
    max_frame = FAKE_LIMIT

    def framer(self) -> FakeFramer:
        return FakeFramer()

    def encode(self, message: WireMessage) -> bytes:
        obj: dict[str, Any]
        if isinstance(message, Logon):
            obj = {"t": "logon", "station": message.station, "secret": message.secret}
        elif isinstance(message, LogonResult):
            obj = {"t": "logon_ok"} if message.ok else {"t": "logon_fail", "reason": ""}
        elif isinstance(message, Heartbeat):
            obj = {"t": "hb"}
        elif isinstance(message, Logoff):
            obj = {"t": "logoff"}
        elif isinstance(message, Ack):
            obj = {"t": "ack", "id": message.id}
        elif isinstance(message, Nak):
            obj = {"t": "nak", "id": message.id, "code": message.code, "text": message.text}
        elif isinstance(message, AdminMessage):
            if message.text == "UNENCODABLE":
                raise CodecError(22, msg_id=message.id)
            obj = {"t": "msg", "id": message.id, "key": message.key, "text": message.text}
        elif isinstance(message, Inquiry):
            obj = {"t": "query", "id": message.id, "subject": message.subject}
        elif isinstance(message, Reply):
            obj = {"t": "reply", "id": message.id, "re": message.in_reply_to, "text": message.text}
        else:
            raise CodecError(12)
        return json.dumps(obj).encode() + b"\n"

    def decode(self, frame: bytes) -> WireMessage:
        try:
            obj = json.loads(frame)
        except ValueError:
            raise CodecError(10) from None
        if not isinstance(obj, dict):
            raise CodecError(10)
        msg_id = obj.get("id", "")
        msg_id = msg_id if isinstance(msg_id, str) else ""
        try:
            t = obj["t"]
            if t == "logon_ok":
                return LogonResult(True)
            if t == "logon_fail":
                return LogonResult(False, obj.get("reason", ""))
            if t == "logon":
                return Logon(obj["station"], obj["secret"])
            if t == "hb":
                return Heartbeat()
            if t == "logoff":
                return Logoff()
            if t == "ack":
                return Ack(obj["id"])
            if t == "nak":
                return Nak(obj["id"], int(obj["code"]), obj["text"])
            if t == "msg":
                return AdminMessage(
                    id=obj["id"],
                    key=obj["key"],
                    from_ori="MO0380000",
                    to=("MO0380100",),
                    text=obj["text"],
                )
            if t == "reply":
                return Reply(
                    id=obj["id"],
                    network="local",
                    status="no_record",
                    text=obj["text"],
                    in_reply_to=obj.get("re"),
                )
        except (KeyError, TypeError, ValueError):
            raise CodecError(22, msg_id=msg_id) from None
        raise CodecError(12, msg_id=msg_id)


# --------------------------------------------------------------------------- harness


class Transport(StringTransport):
    """A StringTransport whose close reaches the protocol on the next clock turn."""

    def __init__(self, clock: task.Clock) -> None:
        super().__init__()
        self.clock = clock
        self.proto: LinkProtocol | None = None
        self._lost = False

    def loseConnection(self) -> None:
        super().loseConnection()
        self._schedule_lost()

    def abortConnection(self) -> None:
        super().abortConnection()
        self._schedule_lost()

    def _schedule_lost(self) -> None:
        if not self._lost:
            self._lost = True
            self.clock.callLater(0, self._deliver_lost)

    def _deliver_lost(self) -> None:
        assert self.proto is not None
        self.proto.connectionLost(Failure(ConnectionDone()))


class Net:
    """The network side of a link: pending dials, written frames, frames to feed."""

    def __init__(self) -> None:
        self.clock = task.Clock()
        self.dials: list[tuple[IProtocolFactory, Deferred[Any]]] = []
        self.proto: LinkProtocol | None = None
        self.transport: Transport | None = None

    def dial(self, factory: IProtocolFactory) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.dials.append((factory, d))
        return d

    def accept(self) -> LinkProtocol:
        """Complete the oldest pending dial with a fresh in-memory connection."""
        factory, d = self.dials.pop(0)
        proto = factory.buildProtocol(None)
        assert isinstance(proto, LinkProtocol)
        tr = Transport(self.clock)
        tr.proto = proto
        proto.makeConnection(tr)
        self.proto, self.transport = proto, tr
        d.callback(proto)
        return proto

    def refuse(self) -> None:
        _factory, d = self.dials.pop(0)
        d.errback(ConnectionRefusedError())

    def sent(self) -> list[dict[str, Any]]:
        """The frames the link wrote since the last call."""
        assert self.transport is not None
        data = self.transport.value()
        self.transport.clear()
        return [json.loads(line) for line in data.splitlines() if line]

    def feed(self, obj: dict[str, Any] | bytes) -> None:
        assert self.proto is not None
        data = obj if isinstance(obj, bytes) else json.dumps(obj).encode() + b"\n"
        self.proto.dataReceived(data)

    def close(self) -> None:
        """The network closes the connection."""
        assert self.transport is not None
        self.transport.loseConnection()
        self.clock.advance(0)

    def logon(self, ok: bool = True) -> None:
        """Accept the pending dial and answer its logon."""
        self.accept()
        frames = self.sent()
        assert frames[0]["t"] == "logon"
        self.feed({"t": "logon_ok"} if ok else {"t": "logon_fail", "reason": "bad secret"})


class Recorder:
    """Counts the link's metric updates, in place of prometheus."""

    def __init__(self) -> None:
        self.states: list[tuple[str, str]] = []
        self.reconnects = 0
        self.rejected: list[str] = []
        self.messages: list[tuple[str, str]] = []

    def link_state(self, link: str, state: str) -> None:
        self.states.append((link, state))

    def link_reconnect(self, link: str) -> None:
        self.reconnects += 1

    def frame_rejected(self, link: str, reason: str) -> None:
        self.rejected.append(reason)

    def message(self, link: str, direction: str, kind: str) -> None:
        self.messages.append((direction, kind))


def make_link(net: Net, **kwargs: Any) -> tuple[Link, list[Any], Recorder]:
    """A link on ``net`` whose incoming messages land in the returned list (ACK at once)."""
    received: list[Any] = []
    metrics = Recorder()

    def on_message(link: str, message: Any) -> Deferred[None]:
        received.append(message)
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d

    options: dict[str, Any] = {
        "station": "MO0380100",
        "secret": lambda: "s3cret",
        "codec_factory": FakeCodec,
        "dial": net.dial,
        "clock": net.clock,
        "on_message": on_message,
        "jitter": lambda: 0.0,
        "metrics": metrics,
    }
    options.update(kwargs)
    return Link("local", **options), received, metrics


def inquiry(msg_id: str) -> Inquiry:
    return Inquiry(
        id=msg_id,
        subject="person",
        fields={"name": "DOE, JOHN", "dob": "1980-01-01"},
        origin=Origin("MO0380100"),
    )


def teletype(msg_id: str, text: str = "HELLO", priority: Any = "routine") -> AdminMessage:
    return AdminMessage(
        id=msg_id,
        key="AM",
        from_ori="MO0380100",
        to=("MO0380200",),
        text=text,
        priority=priority,
    )


def test_fake_codec_round_trips() -> None:
    """The fake codec decodes what it encodes, so the link tests exercise the link only."""
    codec = FakeCodec()
    for message in (Ack("A1"), Nak("A1", 31, "WINDOW EXCEEDED"), Heartbeat(), Logoff()):
        (frame,) = codec.framer().feed(codec.encode(message))
        assert codec.decode(frame) == message
