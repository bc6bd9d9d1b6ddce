"""One gateway connection to a simulated network: framing, logon, ACK, heartbeat, faults.

A thin adapter: bytes go through the format's framer and codec, decisions are the
:class:`~simulators.network.Network`'s. A malformed frame is NAKed (or, on the state
wire, ACKed and answered with an ER) and never ends the simulator or other sessions;
only a stream whose framing is lost is dropped.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import TYPE_CHECKING

import structlog
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from switch.formats.base import CodecError
from switch.formats.state import StateBodyError, error_notice
from switch.model import (
    NAK_INTERNAL,
    NAK_INVALID_DESTINATION,
    NAK_NOT_LOGGED_ON,
    NAK_REASONS,
    NAK_TEXTS,
    AdminMessage,
    Heartbeat,
    Inquiry,
    LogonResult,
    Nak,
    Reply,
    WireMessage,
    is_application,
)
from switch.model import Ack as AckFrame
from switch.protocols.transport import set_no_delay

if TYPE_CHECKING:
    from .network import Network

log = structlog.get_logger("simulators.session")

#: A framer that keeps raising on an empty feed is broken: stop asking it.
_MAX_FRAMER_RETRIES = 1000
#: Un-ACKed messages we may have in flight on one session (DESIGN §4 default).
WINDOW = 64


class NetworkSession(Protocol):
    """The server end of one connection from the gateway."""

    def __init__(self, network: Network) -> None:
        self.network = network
        self.station: str | None = None
        self.frames_in = 0
        self.unacked_out: set[str] = set()
        # Replies waiting for the gateway's ACK, and those held back by the window
        # (DESIGN §4: at most WINDOW un-ACKed messages from a sender on a link).
        self._replies_unacked: set[str] = set()
        self._backlog: deque[Reply] = deque()
        self._timer: IDelayedCall | None = None
        self._pending: list[IDelayedCall] = []
        self._closing = False
        self._last_rx = 0.0
        self._last_tx = 0.0

    # ------------------------------------------------------------------ connection

    def connectionMade(self) -> None:
        set_no_delay(self.transport)
        self.codec = self.network.codec()
        self.framer = self.codec.framer()
        self.network.connections.add(self)
        self.network.count("connections_total")
        now = self.network.clock.seconds()
        self._last_rx = self._last_tx = now
        self._schedule_tick()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._closing = True
        for call in [self._timer, *self._pending]:
            if call is not None and call.active():
                call.cancel()
        self._pending.clear()
        self.network.lost(self)

    def close(self, abort: bool = False) -> None:
        """Close after flushing what was written (``abort``: at once, unflushed)."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        if abort:
            self.transport.abortConnection()  # type: ignore[attr-defined]
        else:
            self.transport.loseConnection()

    # ------------------------------------------------------------------ heartbeat

    def _schedule_tick(self) -> None:
        interval = min(1.0, self.network.heartbeat / 4)
        self._timer = self.network.clock.callLater(interval, self._tick)

    def _tick(self) -> None:
        now = self.network.clock.seconds()
        hb = self.network.heartbeat
        if now - self._last_rx >= 3 * hb:
            self.network.count("dead_sessions")
            self.close(abort=True)
            return
        if self.station is not None and now - self._last_tx >= hb:
            self.send(Heartbeat())
        self._schedule_tick()

    # ------------------------------------------------------------------ receive

    def dataReceived(self, data: bytes) -> None:
        self._last_rx = self.network.clock.seconds()
        for _ in range(_MAX_FRAMER_RETRIES):
            if self._closing:
                return
            try:
                frames = self.framer.feed(data)
            except CodecError as err:
                self._rejected(err)
                if err.fatal:
                    self.network.count("framing_lost")
                    self.close()
                    return
                data = b""  # the framer keeps the rest of the chunk: collect it
                continue
            except Exception:  # a framer bug must not reach the reactor
                log.exception("simulator.framer_failed", network=self.network.name)
                self.network.count("rejected.internal")
                self.close(abort=True)
                return
            for frame in frames:
                if self._closing:
                    return
                self._frame(frame)
            return
        self.close(abort=True)

    def _frame(self, frame: bytes) -> None:
        network = self.network
        self.frames_in += 1
        network.count("frames_in")
        try:
            message = self.codec.decode(frame)
        except CodecError as err:
            self._rejected(err)
        else:
            try:
                self._handle(message)
            except Exception:  # one bad message must not end the session
                log.exception("simulator.handle_failed", network=network.name)
                self.send(Nak(getattr(message, "id", ""), NAK_INTERNAL, NAK_TEXTS[NAK_INTERNAL]))
        drop_after = network.faults.drop_after
        if drop_after is not None and self.frames_in >= drop_after:
            network.count("dropped_after")
            self.close(abort=True)

    def _rejected(self, err: CodecError) -> None:
        network = self.network
        network.count(f"rejected.{NAK_REASONS.get(err.code, str(err.code))}")
        if isinstance(err, StateBodyError) and self.station is not None:
            # state: a well-framed MSG whose body is no message is ACKed, then an ER
            self.send(AckFrame(err.msg_id))
            self.send(
                error_notice(network.ids(), err.bad_input, from_ori=network.ori, code=err.code)
            )
            network.count("er_out")
            return
        if isinstance(err, StateBodyError):
            self.send(Nak(err.msg_id, NAK_NOT_LOGGED_ON, NAK_TEXTS[NAK_NOT_LOGGED_ON]))
            return
        self.send(Nak(err.msg_id, err.code, err.text))

    def _handle(self, message: WireMessage) -> None:
        network = self.network
        if message.kind == "logon":
            reason = network.check_logon(message.station, message.secret)
            if reason is not None:
                network.count("logon_failures")
                log.info("simulator.logon_refused", network=network.name)
                self.send(LogonResult(False, reason))
                self.close()
                return
            first = self.station is None
            self.station = message.station
            self.send(LogonResult(True))
            if first:
                network.logged_on(self)
        elif message.kind == "logoff":
            network.count("logoffs")
            self.close()
        elif message.kind == "ack":
            network.count("acks_in")
            self._acked_out(message.id)
            network.acked(message.id)
        elif message.kind == "nak":
            network.count(f"naks_in.{message.code}")
            self._acked_out(message.id)
            network.naked(message.id)
        elif message.kind == "heartbeat":
            network.count("heartbeats_in")
        elif is_application(message):
            self._application(message)
        else:  # a logon result from a client: nothing to do
            network.count("unexpected_frames")

    def _application(self, message: WireMessage) -> None:
        network = self.network
        msg_id: str = getattr(message, "id", "")
        if self.station is None:
            self.send(Nak(msg_id, NAK_NOT_LOGGED_ON, NAK_TEXTS[NAK_NOT_LOGGED_ON]))
            return
        if isinstance(message, AdminMessage):
            bad = network.bad_destinations(message)
            if bad:
                self._invalid_destination(message, bad)
                return
        first = network.first_time(self.station, msg_id)
        self._ack(msg_id)
        if not first:
            return
        if isinstance(message, Inquiry):
            network.count("inquiries_received")
            delay = network.answer_delay(message.subject)
            network.when_ready().addCallback(lambda _: self._later(delay, message))
        elif isinstance(message, AdminMessage):
            network.take_teletype(message)
        else:  # replies and notices from the gateway are accepted and ignored
            network.count("unexpected_messages")

    def _ack(self, msg_id: str) -> None:
        if self.network.faults.no_ack:
            self.network.count("acks_withheld")
            return
        self.send(AckFrame(msg_id))

    def _invalid_destination(self, message: AdminMessage, bad: list[str]) -> None:
        """NAK 19; on the state wire, ACK and an ``ER .19.`` from the state switch."""
        network = self.network
        network.count("rejected.invalid_destination")
        if network.name != "state":
            self.send(Nak(message.id, NAK_INVALID_DESTINATION, NAK_TEXTS[NAK_INVALID_DESTINATION]))
            return
        self._ack(message.id)
        echo = f"{message.key}.{message.from_ori}.{','.join(message.to)}"
        self.send(
            error_notice(network.ids(), echo, from_ori=network.ori, code=NAK_INVALID_DESTINATION)
        )
        network.count("er_out")

    def _later(self, delay: float, inquiry: Inquiry) -> None:
        if self._closing:
            return
        if delay <= 0:
            self._reply(inquiry)
            return
        self._pending = [c for c in self._pending if c.active()]
        self._pending.append(self.network.clock.callLater(delay, self._reply, inquiry))

    def _reply(self, inquiry: Inquiry) -> None:
        try:
            reply = self.network.answer(inquiry)
        except Exception:  # a data bug must not kill the session; say so on the wire
            log.exception("simulator.answer_failed", network=self.network.name)
            self.network.count("answer_failures")
            return
        if len(self.unacked_out) + len(self._replies_unacked) >= WINDOW:
            self.network.count("window_waits")
            self._backlog.append(reply)
            return
        self._replies_unacked.add(reply.id)
        self.send(reply)

    def _acked_out(self, msg_id: str) -> None:
        """The gateway ACKed or NAKed one of ours: a window slot is free again."""
        self.unacked_out.discard(msg_id)
        self._replies_unacked.discard(msg_id)
        while self._backlog and len(self.unacked_out) + len(self._replies_unacked) < WINDOW:
            reply = self._backlog.popleft()
            self._replies_unacked.add(reply.id)
            self.send(reply)

    # ------------------------------------------------------------------ send

    def send_originated(self, message: AdminMessage) -> None:
        self.unacked_out.add(message.id)
        self.send(message)

    def send(self, message: WireMessage) -> None:
        network = self.network
        if self._closing or self.transport is None:
            return
        try:
            data = self.codec.encode(message)
        except CodecError as err:
            network.count("encode_errors")
            log.warning("simulator.encode_failed", network=network.name, code=err.code)
            return
        if network.faults.garble:
            network.faults.garble = False
            network.count("garbled")
            data = garble(network.name, data)
        self.transport.write(data)
        self._last_tx = network.clock.seconds()
        network.count("frames_out")
        if message.kind == "ack":
            network.count("acks_out")
        elif message.kind == "nak":
            network.count(f"naks_out.{message.code}")
        elif message.kind == "reply":
            network.count("replies_out")


def garble(fmt: str, frame: bytes) -> bytes:
    """Corrupt a frame's content but keep its framing, so the receiver can NAK it."""
    if fmt == "local":
        return b'{"t": "reply", GARBLED\n'
    if fmt == "regional":
        if len(frame) < 2:
            return frame
        head = 2 + (frame[1] & 0x7F if frame[1] & 0x80 else 0)
        return frame[:head] + bytes(b ^ 0xA5 for b in frame[head:])
    if fmt == "state":
        return b"\x02GARBLED\x7f\r\n\x03"
    body = b"<garbled"
    return struct.pack(">I", len(body)) + body


class NetworkFactory(Factory):
    """Builds one :class:`NetworkSession` per accepted connection."""

    noisy = False

    def __init__(self, network: Network) -> None:
        self.network = network

    def buildProtocol(self, addr: object) -> NetworkSession:
        return NetworkSession(self.network)
