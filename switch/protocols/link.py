"""One persistent link to a network: the state machine shared by all four (DESIGN §4).

Only the codec differs between networks (:mod:`switch.formats.base`): framing, encoding
and decoding. Everything else lives here once:

* the dial / logon / reconnect cycle with states ``connecting``, ``logging_on``, ``up``,
  ``auth_failed``, ``down`` (DESIGN §9), jittered exponential backoff 1 s doubling to
  60 s and reset after a stable minute, a 5-minute pause after a refused logon;
* heartbeats after ``heartbeat`` seconds without sending, a dead link after three
  heartbeats of silence;
* the ACK window for what we send (typed errors for the layer above) and ACK-after-commit
  with duplicate suppression for what the network sends;
* bounded handling of hostile input: every bad frame is counted, NAKed or the connection
  dropped, never an exception into the reactor.

The :class:`Link` holds what outlives a connection (state, queues, backoff); each TCP/TLS
connection is a thin :class:`LinkProtocol` with its own framer, codec instance and timers.
The clock and the way to dial are injected, so tests drive it with ``task.Clock`` and an
in-memory transport.
"""

from __future__ import annotations

import datetime as _dt
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

import structlog
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import (
    IDelayedCall,
    IProtocol,
    IProtocolFactory,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Factory, connectionDone
from twisted.internet.protocol import Protocol as TwistedProtocol
from twisted.python.failure import Failure
from zope.interface import implementer

from switch.formats.base import Codec, CodecError, Framer
from switch.model import (
    NAK_INTERNAL,
    NAK_NOT_LOGGED_ON,
    NAK_REASONS,
    NAK_TEXTS,
    NAK_WINDOW_EXCEEDED,
    Ack,
    AdminMessage,
    ApplicationMessage,
    Heartbeat,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Notice,
    Reply,
    WireMessage,
    is_application,
)
from switch.protocols.dedup import DuplicateMemory, MemoryDuplicates
from switch.protocols.transport import set_no_delay

log = structlog.get_logger("switch.link")

# --------------------------------------------------------------------------- states

LinkState = Literal["connecting", "logging_on", "up", "auth_failed", "down"]
CONNECTING: Final = "connecting"
LOGGING_ON: Final = "logging_on"
UP: Final = "up"
AUTH_FAILED: Final = "auth_failed"
DOWN: Final = "down"
STATES: Final = (CONNECTING, LOGGING_ON, UP, AUTH_FAILED, DOWN)

#: ``switch_frames_rejected_total{reason}`` values: a closed set (DESIGN §8).
REJECT_REASONS: Final = (*NAK_REASONS.values(), "unexpected", "flood")

#: Consecutive rejected frames after which the peer is treated as broken and dropped: a
#: network spewing garbage must not make us queue NAKs it never reads.
MAX_REJECTS_IN_A_ROW: Final = 100
#: Frames accepted from a peer that does not read our answers before it is dropped.
MAX_FRAMES_WHILE_BLOCKED: Final = 256
#: A framer that keeps raising on an empty feed is broken: stop asking it.
_MAX_FRAMER_RETRIES: Final = 1000
#: Deterministic backoff jitter spread: a delay d becomes d * (1 - JITTER_SPREAD * j).
JITTER_SPREAD: Final = 0.2


# --------------------------------------------------------------------------- errors


class LinkError(Exception):
    """Base of every way :meth:`Link.send` can fail."""


class LinkNak(LinkError):
    """The network refused the message (``local``: our codec could not express it)."""

    def __init__(self, code: int, text: str, *, local: bool = False) -> None:
        super().__init__(f"NAK {code} {text}")
        self.code = code
        self.text = text
        self.local = local


class AckTimeout(LinkError):
    """No ACK or NAK within the link's ``ack_timeout``."""

    def __init__(self, msg_id: str, timeout: float) -> None:
        super().__init__(f"no ACK for {msg_id} within {timeout:g} s")
        self.msg_id = msg_id
        self.timeout = timeout


class LinkDown(LinkError):
    """The link is not up (inquiries are never queued) or went down with it in flight."""

    def __init__(self, link: str, state: str) -> None:
        super().__init__(f"link {link} is {state}")
        self.link = link
        self.state = state


class WindowFull(LinkError):
    """``window`` messages already await their ACK (an inquiry answers ``unavailable``)."""

    def __init__(self, link: str, window: int) -> None:
        super().__init__(f"link {link}: {window} messages await an ACK")
        self.link = link
        self.window = window


# --------------------------------------------------------------------------- seams


class LinkMetrics(Protocol):
    """Where the link reports to Prometheus (adapted to ``switch.metrics`` by the service)."""

    def link_state(self, link: str, state: str) -> None: ...

    def link_reconnect(self, link: str) -> None: ...

    def frame_rejected(self, link: str, reason: str) -> None: ...

    def message(self, link: str, direction: str, kind: str) -> None: ...


class NullMetrics:
    """Metrics that go nowhere (tests, or before the metrics module is wired)."""

    def link_state(self, link: str, state: str) -> None:
        pass

    def link_reconnect(self, link: str) -> None:
        pass

    def frame_rejected(self, link: str, reason: str) -> None:
        pass

    def message(self, link: str, direction: str, kind: str) -> None:
        pass


#: Hands an incoming application message up; the ACK is written when the Deferred fires.
MessageHandler = Callable[[str, ApplicationMessage], Deferred[Any]]
#: Dials once: endpoint.connect(factory) in production, a fake in tests.
Dialer = Callable[[IProtocolFactory], Deferred[IProtocol]]
#: (link, old state, new state)
StateListener = Callable[["Link", str, str], None]


@dataclass
class _Outgoing:
    """A message we sent (or will send) until its ACK, NAK, timeout or cancellation."""

    message: ApplicationMessage
    deferred: Deferred[Ack] = field(init=False)
    #: When its ACK is due, while it awaits one on the current connection; else None.
    deadline: float | None = None

    @property
    def teletype(self) -> bool:
        """Teletype waits for a slot and survives reconnects; the rest is now-or-never."""
        return isinstance(self.message, AdminMessage)


# --------------------------------------------------------------------------- connection


@implementer(IPushProducer)
class LinkProtocol(TwistedProtocol):
    """One connection: framing, decode, timers. Decisions belong to the :class:`Link`.

    It registers itself as the producer of its own writes: while a peer does not read and
    our ACKs/NAKs back up past the transport's buffer, it may send only a bounded number
    of further frames before it is dropped, so a hostile network cannot make us buffer
    without bound.
    """

    def __init__(self, link: Link, codec: Codec, secret: str) -> None:
        self.link = link
        self.codec = codec
        self.framer: Framer = codec.framer()
        self.secret = secret
        self.open = False
        self.reading = True  # False once dropped: the rest of a hostile chunk is ignored
        self.closing = False  # the peer logged off or we are shutting down
        self.last_rx = 0.0
        self.last_tx = 0.0
        self.rejects_in_a_row = 0
        self.write_blocked = False
        self.frames_while_blocked = 0
        self.pending_in = 0  # deliveries whose ACK will go out on this connection
        self.timers: dict[str, IDelayedCall] = {}
        self._lost_waiters: list[Deferred[None]] = []
        self._idle_waiters: list[Deferred[None]] = []

    # Twisted's side ---------------------------------------------------------------
    def connectionMade(self) -> None:
        self.open = True
        assert self.transport is not None
        set_no_delay(self.transport)
        self.transport.registerProducer(self, True)  # type: ignore[attr-defined]
        now = self.link.clock.seconds()
        self.last_rx = self.last_tx = now
        self.link._connection_made(self)

    def dataReceived(self, data: bytes) -> None:
        if not (self.open and self.reading):
            return
        try:
            frames = self.framer.feed(data)
        except CodecError as exc:
            if not self._framing_error(exc):
                return
            frames = self._drain_framer()
        except Exception as exc:  # a framer bug must not reach the reactor
            self.link._reject(self, CodecError(NAK_INTERNAL, fatal=True), type(exc).__name__)
            return
        for frame in frames:
            if not (self.open and self.reading):
                return
            if self.write_blocked:
                self.frames_while_blocked += 1
                if self.frames_while_blocked > MAX_FRAMES_WHILE_BLOCKED:
                    self.link._flooded(self)
                    return
            self.link._frame_received(self, frame)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.open = False
        for timer in self.timers.values():
            if timer.active():
                timer.cancel()
        self.timers.clear()
        self.link._connection_lost(self, reason)
        waiters, self._lost_waiters = self._lost_waiters, []
        for d in waiters:
            d.callback(None)
        self._notify_idle()

    # IPushProducer: backpressure from our writes ------------------------------------
    # The transport pauses us when our writes back up (also briefly during a TLS
    # handshake). Pausing the transport's reads in turn would deadlock a TLS handshake,
    # so instead a peer that keeps sending while not reading what we answer is dropped.
    def pauseProducing(self) -> None:
        self.write_blocked = True

    def resumeProducing(self) -> None:
        self.write_blocked = False
        self.frames_while_blocked = 0

    def stopProducing(self) -> None:
        """The transport is going away; connectionLost does the cleanup."""

    # helpers ----------------------------------------------------------------------
    def _framing_error(self, exc: CodecError) -> bool:
        """Count a framer error; True when the stream can go on."""
        self.link._reject(self, exc, "framing")
        return self.open and self.reading and not exc.fatal

    def _drain_framer(self) -> list[bytes]:
        """After a non-fatal framer error, collect the frames it still holds."""
        frames: list[bytes] = []
        for _ in range(_MAX_FRAMER_RETRIES):
            try:
                frames.extend(self.framer.feed(b""))
                return frames
            except CodecError as exc:
                if not self._framing_error(exc):
                    return []
        self.drop()
        return []

    def write_message(self, message: WireMessage) -> bool:
        """Encode and write one frame; False (nothing written) if the codec refuses it."""
        if not self.open or self.transport is None:
            return False
        data = self.codec.encode(message)
        self.transport.write(data)
        self.last_tx = self.link.clock.seconds()
        self.link.metrics.message(self.link.name, "out", message.kind)
        return True

    def try_write(self, message: WireMessage) -> None:
        """Write a control frame; a codec refusal here is our bug, logged, not raised."""
        try:
            self.write_message(message)
        except CodecError as exc:
            self.link.log.error("control frame not encodable", kind=message.kind, code=exc.code)

    def set_timer(self, name: str, delay: float, fn: Callable[[], None]) -> None:
        old = self.timers.get(name)
        if old is not None and old.active():
            old.cancel()
        self.timers[name] = self.link.clock.callLater(delay, fn)

    def cancel_timer(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None and timer.active():
            timer.cancel()

    def close(self) -> None:
        """Close after what is already written has been sent."""
        if self.open and self.transport is not None:
            # A TLS transport waits for its producer to go before it shuts down.
            self.transport.unregisterProducer()  # type: ignore[attr-defined]
            self.transport.loseConnection()

    def drop(self) -> None:
        """Close at once: framing is lost, the peer is dead, or it is flooding us."""
        self.reading = False
        if self.open and self.transport is not None:
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()

    def when_lost(self) -> Deferred[None]:
        if not self.open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._lost_waiters.append(d)
        return d

    def when_idle(self) -> Deferred[None]:
        """Fires once no delivery is waiting to ACK on this connection."""
        if self.pending_in == 0 or not self.open:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    def _notify_idle(self) -> None:
        if self.pending_in == 0 or not self.open:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)


class _LinkFactory(Factory):
    noisy = False

    def __init__(self, link: Link, codec: Codec, secret: str) -> None:
        self.link = link
        self.codec = codec
        self.secret = secret

    def buildProtocol(self, addr: Any) -> LinkProtocol:
        return LinkProtocol(self.link, self.codec, self.secret)


# --------------------------------------------------------------------------- the link


class Link:
    """A persistent, authenticated link to one network.

    Args:
        name: the link name (``link`` label, ``/v1/status`` name).
        network: the wire format name, for status only.
        station: our station id, sent in the logon.
        secret: reads the secret anew at every dial (a changed file is used at once).
        codec_factory: a fresh codec per connection.
        dial: connects a protocol factory (``endpoint.connect``).
        clock: the reactor, or a ``task.Clock`` in tests.
        on_message: receives incoming application messages; ACK after it fires.
        jitter: returns j in [0, 1); a backoff delay d becomes ``d * (1 - 0.2 * j)``.
    """

    def __init__(
        self,
        name: str,
        *,
        station: str,
        secret: Callable[[], str],
        codec_factory: Callable[[], Codec],
        dial: Dialer,
        clock: IReactorTime,
        on_message: MessageHandler,
        network: str = "",
        heartbeat: float = 15.0,
        window: int = 64,
        ack_timeout: float = 10.0,
        logon_timeout: float | None = None,
        auth_retry: float = 300.0,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        stable_after: float = 60.0,
        close_timeout: float = 5.0,
        dedup: DuplicateMemory | None = None,
        metrics: LinkMetrics | None = None,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.name = name
        self.network = network or name
        self.station = station
        self._secret = secret
        self.codec_factory = codec_factory
        self._dial_fn = dial
        self.clock = clock
        self._on_message = on_message
        self.heartbeat = heartbeat
        self.window = window
        self.ack_timeout = ack_timeout
        self.logon_timeout = ack_timeout if logon_timeout is None else logon_timeout
        self.auth_retry = auth_retry
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.close_timeout = close_timeout
        self.dedup: DuplicateMemory = dedup or MemoryDuplicates(clock.seconds)
        self.metrics: LinkMetrics = metrics or NullMetrics()
        self._jitter = jitter
        self.log = log.bind(link=name)
        self.metrics.link_state(name, DOWN)

        self.state: str = DOWN
        self.since: float = clock.seconds()
        self.last_error: str | None = None
        self._listeners: list[StateListener] = []

        self._started = False
        self._stopping = False
        self._dials = 0
        self._attempts = 0  # consecutive failures since the last stable minute
        self._retry_call: IDelayedCall | None = None
        self._stable_call: IDelayedCall | None = None
        self._connecting: Deferred[IProtocol] | None = None
        self._conn: LinkProtocol | None = None

        self._unacked: dict[str, _Outgoing] = {}  # insertion order = send order
        # ACK deadlines in send order (the timeout is the link's, so also deadline order)
        # and one timer for the earliest: a timer per message cost a schedule and a
        # cancel for every frame. Entries whose message was settled are skipped lazily;
        # they hold only the id, so nothing settled stays alive until its deadline.
        self._ack_deadlines: deque[tuple[float, str]] = deque()
        self._ack_timer: IDelayedCall | None = None
        self._queue_urgent: deque[_Outgoing] = deque()
        self._queue_routine: deque[_Outgoing] = deque()
        self._delivering: dict[str, list[LinkProtocol]] = {}

    # ------------------------------------------------------------------ observation
    def add_listener(self, listener: StateListener) -> None:
        """Call ``listener(link, old, new)`` on every state change."""
        self._listeners.append(listener)

    def remove_listener(self, listener: StateListener) -> None:
        self._listeners.remove(listener)

    @property
    def queue_depth(self) -> int:
        """Teletype waiting for a slot plus every message awaiting its ACK."""
        return len(self._queue_urgent) + len(self._queue_routine) + len(self._unacked)

    def status(self) -> dict[str, object]:
        since = _dt.datetime.fromtimestamp(self.since, _dt.UTC).isoformat()
        return {
            "name": self.name,
            "network": self.network,
            "state": self.state,
            "since": since,
            "last_error": self.last_error,
            "queue_depth": self.queue_depth,
        }

    def _set_state(self, new: str, cause: str, error: str | None = None) -> None:
        if error is not None:
            self.last_error = error
        if new == self.state:
            return
        old, self.state = self.state, new
        self.since = self.clock.seconds()
        # ids, links, states and a closed-set cause only: never secrets or frame contents.
        self.log.info("link state", old=old, new=new, cause=cause)
        self.metrics.link_state(self.name, new)
        for listener in list(self._listeners):
            try:
                listener(self, old, new)
            except Exception as exc:
                self.log.error("link state listener failed", error=type(exc).__name__)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Dial now and keep the link up until :meth:`stop`."""
        if self._started:
            return
        self._started = True
        self._stopping = False
        self._dial()

    def retry(self) -> bool:
        """Dial at once if the link is ``down`` or ``auth_failed`` (``switchctl link retry``).

        Returns False when a dial or a session is already in progress.
        """
        if not self._started or self._stopping:
            return False
        if self._conn is not None or self._connecting is not None:
            return False
        self._cancel_retry()
        self._attempts = 0
        self._dial()
        return True

    def stop(self) -> Deferred[None]:
        """Log off (flush pending ACKs, send Logoff, close) and stop redialling."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self._started:
            return
        self._stopping = True
        self._cancel_retry()
        self._cancel_stable()
        if self._connecting is not None:
            self._connecting.cancel()
        conn = self._conn
        if conn is not None and conn.open:
            conn.closing = True
            idle = conn.when_idle()
            idle.addTimeout(self.close_timeout, self.clock)
            try:
                await idle
            except Exception:
                self.log.warning("logoff without every ACK flushed")
            if self.state == UP and conn.open:
                conn.try_write(Logoff())
            lost = conn.when_lost()
            conn.close()
            lost.addTimeout(self.close_timeout, self.clock)
            try:
                await lost
            except Exception:
                conn.drop()
        self._detach(conn)
        self._fail_all(LinkDown(self.name, "stopped"))
        self._set_state(DOWN, "stopped")
        self._started = False

    # ------------------------------------------------------------------ dialling
    def _dial(self) -> None:
        self._retry_call = None
        if self._stopping:
            return
        self._dials += 1
        if self._dials > 1:
            self.metrics.link_reconnect(self.name)
        self._set_state(CONNECTING, "dial")
        try:
            secret = self._secret()
        except Exception as exc:  # SecretError, OSError: the message names the file only
            self._failed("secret", f"secret: {exc}")
            return
        try:
            codec = self.codec_factory()  # one per connection (DESIGN: codec contract)
        except Exception as exc:  # e.g. the format's module is not installed
            self._failed("codec", f"codec unavailable: {type(exc).__name__}: {exc}")
            return
        try:
            d = self._dial_fn(_LinkFactory(self, codec, secret))
        except Exception as exc:
            self._failed("connect_failed", f"connect failed: {type(exc).__name__}")
            return
        self._connecting = d
        d.addCallbacks(self._dialled, self._dial_failed, errbackArgs=(d,))

    def _dialled(self, _proto: object) -> None:
        self._connecting = None

    def _dial_failed(self, reason: Failure, d: Deferred[IProtocol]) -> None:
        if self._connecting is d:
            self._connecting = None
        if self._stopping:
            return
        self._failed("connect_failed", f"connect failed: {_describe(reason)}")

    def _backoff_delay(self) -> float:
        doublings = min(max(0, self._attempts - 1), 64)  # no float overflow after a long outage
        base = min(self.backoff_max, self.backoff_initial * float(2**doublings))
        return base * (1.0 - JITTER_SPREAD * self._jitter())

    def _failed(self, cause: str, error: str) -> None:
        """The dial or the session failed: down, then redial after the backoff delay."""
        self._attempts += 1
        self._set_state(DOWN, cause, error)
        if self._stopping:
            return
        self._cancel_retry()
        self._retry_call = self.clock.callLater(self._backoff_delay(), self._dial)

    def _cancel_retry(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = None

    def _cancel_stable(self) -> None:
        if self._stable_call is not None and self._stable_call.active():
            self._stable_call.cancel()
        self._stable_call = None

    def _stable(self) -> None:
        self._stable_call = None
        self._attempts = 0

    # ------------------------------------------------------------------ session
    def _connection_made(self, conn: LinkProtocol) -> None:
        if self._stopping or self._conn is not None:
            conn.drop()
            return
        self._conn = conn
        self._set_state(LOGGING_ON, "connected")
        conn.try_write(Logon(self.station, conn.secret))
        conn.set_timer("logon", self.logon_timeout, lambda: self._logon_timeout(conn))
        conn.set_timer("silence", 3 * self.heartbeat, lambda: self._check_silence(conn))

    def _logon_timeout(self, conn: LinkProtocol) -> None:
        if conn is self._conn and self.state == LOGGING_ON:
            self._drop(conn, "logon_timeout", "no logon result")

    def _logon_result(self, conn: LinkProtocol, result: LogonResult) -> None:
        conn.cancel_timer("logon")
        if result.ok:
            self.last_error = None
            self._set_state(UP, "logon_ok")
            self._stable_call = self.clock.callLater(self.stable_after, self._stable)
            conn.set_timer("heartbeat", self.heartbeat, lambda: self._check_heartbeat(conn))
            self._resend_unacked(conn)
            self._pump()
            return
        reason = _printable(result.reason)
        self._detach(conn)
        self._attempts = 0
        self._set_state(AUTH_FAILED, "logon_refused", f"logon refused: {reason}".strip())
        conn.close()
        self._cancel_retry()
        self._retry_call = self.clock.callLater(self.auth_retry, self._dial)

    def _check_heartbeat(self, conn: LinkProtocol) -> None:
        if not conn.open:
            return
        idle = self.clock.seconds() - conn.last_tx
        if idle >= self.heartbeat:
            conn.try_write(Heartbeat())
            idle = 0.0
        conn.set_timer("heartbeat", self.heartbeat - idle, lambda: self._check_heartbeat(conn))

    def _check_silence(self, conn: LinkProtocol) -> None:
        if not conn.open:
            return
        limit = 3 * self.heartbeat
        silent = self.clock.seconds() - conn.last_rx
        if silent >= limit:
            self._drop(conn, "dead", f"nothing received for {limit:g} s")
            return
        conn.set_timer("silence", limit - silent, lambda: self._check_silence(conn))

    def _drop(self, conn: LinkProtocol, cause: str, error: str) -> None:
        """Give up on this connection now and redial with backoff."""
        self._detach(conn)
        conn.drop()
        self._failed(cause, error)

    def _connection_lost(self, conn: LinkProtocol, reason: Failure) -> None:
        if conn is not self._conn:
            return  # already detached (refused logon, dropped, stopping)
        self._detach(conn)
        if self._stopping:
            return
        cause = "logoff" if conn.closing else "connection_lost"
        self._failed(cause, f"connection lost: {_describe(reason)}")

    def _detach(self, conn: LinkProtocol | None) -> None:
        """The link stops using ``conn``: stop its timers, settle what was in flight."""
        if conn is None or conn is not self._conn:
            return
        self._conn = None
        self._cancel_stable()
        for name in list(conn.timers):
            conn.cancel_timer(name)
        self._clear_ack_deadlines()
        for msg_id, out in list(self._unacked.items()):
            out.deadline = None
            if not out.teletype:
                del self._unacked[msg_id]
                out.deferred.errback(LinkDown(self.name, DOWN))

    # ------------------------------------------------------------------ incoming
    def _frame_received(self, conn: LinkProtocol, frame: bytes) -> None:
        conn.last_rx = self.clock.seconds()
        try:
            message = conn.codec.decode(frame)
        except CodecError as exc:
            self._reject(conn, exc)
            return
        except Exception as exc:  # a codec bug: the frame is still only a bad frame
            self._reject(conn, CodecError(NAK_INTERNAL), type(exc).__name__)
            return
        conn.rejects_in_a_row = 0
        self.metrics.message(self.name, "in", message.kind)
        if isinstance(message, Ack):
            self._acked(message)
        elif isinstance(message, Nak):
            self._naked(message)
        elif isinstance(message, Heartbeat):
            pass
        elif isinstance(message, LogonResult):
            if conn is self._conn and self.state == LOGGING_ON:
                self._logon_result(conn, message)
            else:
                self._violation(conn, "logon result outside logon")
        elif isinstance(message, Logoff):
            self._peer_logoff(conn)
        elif isinstance(message, Logon):
            self._violation(conn, "logon from the network")
        elif isinstance(message, Inquiry | Reply | AdminMessage | Notice):
            if conn is not self._conn or self.state != UP:
                self._refuse(conn, message.id, NAK_NOT_LOGGED_ON)
            else:
                self._incoming(conn, message)

    def _reject(self, conn: LinkProtocol, exc: CodecError, detail: str = "") -> None:
        """Count a bad frame, then NAK it or drop the connection (DESIGN §4)."""
        reason = NAK_REASONS.get(exc.code, "malformed")
        self.metrics.frame_rejected(self.name, reason)
        conn.rejects_in_a_row += 1
        self.log.warning(
            "frame rejected", reason=reason, code=exc.code, fatal=exc.fatal, detail=detail or None
        )
        if exc.fatal:
            self._drop_or_close(conn, "protocol_error", f"framing lost: {reason}")
            return
        if conn.rejects_in_a_row > MAX_REJECTS_IN_A_ROW:
            self._drop_or_close(conn, "protocol_error", "too many bad frames in a row")
            return
        conn.try_write(Nak(exc.msg_id, exc.code, exc.text))

    def _flooded(self, conn: LinkProtocol) -> None:
        """The peer keeps sending but does not read our ACKs/NAKs: drop it."""
        self.metrics.frame_rejected(self.name, "flood")
        self.log.warning("peer sends without reading", limit=MAX_FRAMES_WHILE_BLOCKED)
        self._drop_or_close(conn, "protocol_error", "peer sends without reading our answers")

    def _drop_or_close(self, conn: LinkProtocol, cause: str, error: str) -> None:
        if conn is self._conn:
            self._drop(conn, cause, error)
        else:
            conn.drop()

    def _violation(self, conn: LinkProtocol, what: str) -> None:
        """A well-formed frame that makes no sense here: counted, logged, ignored."""
        self.metrics.frame_rejected(self.name, "unexpected")
        self.log.warning("protocol violation", what=what, state=self.state)

    def _refuse(self, conn: LinkProtocol, msg_id: str, code: int) -> None:
        self.metrics.frame_rejected(self.name, NAK_REASONS.get(code, "malformed"))
        self.log.warning("message refused", msg_id=msg_id, code=code)
        conn.try_write(Nak(msg_id, code, NAK_TEXTS[code]))

    def _peer_logoff(self, conn: LinkProtocol) -> None:
        """The network logs off: flush our ACKs, then close; the link redials."""
        conn.closing = True
        d = conn.when_idle()
        d.addTimeout(self.close_timeout, self.clock)
        d.addBoth(lambda _: conn.close())

    def _incoming(self, conn: LinkProtocol, message: ApplicationMessage) -> None:
        msg_id = message.id
        waiters = self._delivering.get(msg_id)
        if waiters is not None:
            # Same id while the first copy is still being committed: ACK both, deliver once.
            waiters.append(conn)
            conn.pending_in += 1
            return
        if len(self._delivering) >= self.window:
            self._refuse(conn, msg_id, NAK_WINDOW_EXCEEDED)
            return
        waiters = [conn]
        conn.pending_in += 1
        self._delivering[msg_id] = waiters
        known = self.dedup.known(self.name, msg_id)
        if known is not None:  # the usual case: answered from memory, no Deferred
            self._deliver_unless_seen(known, message)
            return
        d = self.dedup.seen(self.name, msg_id)
        d.addCallbacks(
            self._deliver_unless_seen,
            self._delivery_failed,
            callbackArgs=(message,),
            errbackArgs=(msg_id,),
        )

    def _deliver_unless_seen(self, seen: bool, message: ApplicationMessage) -> None:
        # Callbacks added to the handler's Deferred, not a Deferred chained into this
        # one: each message passes here, and every nesting costs another hop.
        msg_id = message.id
        if seen:
            self.log.info("duplicate acknowledged again", msg_id=msg_id)
            self._answer(msg_id, Ack(msg_id))
            return
        try:
            d = self._on_message(self.name, message)
        except Exception:
            self._delivery_failed(Failure(), msg_id)  # type: ignore[no-untyped-call]
            return
        d.addCallbacks(
            self._delivered, self._delivery_failed, callbackArgs=(msg_id,), errbackArgs=(msg_id,)
        )

    def _delivered(self, _: object, msg_id: str) -> None:
        """Committed above: remember the id, then ACK. The memory knows the id at once
        (a resend right after is caught); the durable copy follows within the duplicate
        memory's flush delay and the ACK does not wait for it (switch.protocols.dedup)."""
        self.dedup.remember(self.name, msg_id)
        self._answer(msg_id, Ack(msg_id))

    def _delivery_failed(self, reason: Failure, msg_id: str) -> None:
        self.log.error("delivery failed", msg_id=msg_id, error=_failure_name(reason))
        self._answer(msg_id, Nak(msg_id, NAK_INTERNAL, NAK_TEXTS[NAK_INTERNAL]))

    def _answer(self, msg_id: str, answer: Ack | Nak) -> None:
        """ACK/NAK on every open connection that carried ``msg_id``, then let a waiting
        logoff proceed (it must follow the ACKs, never overtake them)."""
        waiters = self._delivering.pop(msg_id, [])
        for conn in waiters:
            conn.pending_in -= 1
            if conn.open:
                conn.try_write(answer)
        for conn in waiters:
            conn._notify_idle()

    # ------------------------------------------------------------------ outgoing
    def send(self, message: ApplicationMessage) -> Deferred[Ack]:
        """Send an application message; fires with the network's ACK.

        Fails with :class:`LinkNak`, :class:`AckTimeout`, :class:`LinkDown` or
        :class:`WindowFull`. Teletype (:class:`AdminMessage`) is never refused for a full
        window or a down link: it waits, and is resent with the same id after a
        reconnect. Everything else is sent now or refused now. Cancelling the Deferred
        withdraws the message (its ACK, if one comes, is then ignored).
        """
        if not is_application(message):
            return fail(TypeError(f"not an application message: {message.kind}"))
        if message.id in self._unacked or self._queued(message.id):
            return fail(ValueError(f"{message.id} is already in flight on {self.name}"))
        out = _Outgoing(message)
        out.deferred = Deferred(lambda _d: self._withdraw(out))
        if isinstance(message, AdminMessage):
            if not self._started or self._stopping:
                out.deferred.errback(LinkDown(self.name, self.state))
                return out.deferred
            queue = self._queue_urgent if message.priority == "urgent" else self._queue_routine
            queue.append(out)
            self._pump()
            return out.deferred
        if self.state != UP or self._conn is None:
            out.deferred.errback(LinkDown(self.name, self.state))
        elif len(self._unacked) >= self.window:
            out.deferred.errback(WindowFull(self.name, self.window))
        else:
            self._transmit(self._conn, out)
        return out.deferred

    def _queued(self, msg_id: str) -> bool:
        if not (self._queue_urgent or self._queue_routine):
            return False  # the usual case, checked on every send
        return any(o.message.id == msg_id for o in self._queue_urgent) or any(
            o.message.id == msg_id for o in self._queue_routine
        )

    def _pump(self) -> None:
        """Move waiting teletype into free window slots while the link is up."""
        while self.state == UP and self._conn is not None and len(self._unacked) < self.window:
            if self._queue_urgent:
                out = self._queue_urgent.popleft()
            elif self._queue_routine:
                out = self._queue_routine.popleft()
            else:
                return
            self._transmit(self._conn, out)

    def _transmit(self, conn: LinkProtocol, out: _Outgoing) -> None:
        msg_id = out.message.id
        try:
            written = conn.write_message(out.message)
        except CodecError as exc:
            self._unacked.pop(msg_id, None)
            self.log.warning("message not encodable", msg_id=msg_id, code=exc.code)
            out.deferred.errback(LinkNak(exc.code, exc.text, local=True))
            return
        self._unacked[msg_id] = out
        if written:
            out.deadline = self.clock.seconds() + self.ack_timeout
            self._ack_deadlines.append((out.deadline, msg_id))
            if self._ack_timer is None:
                self._ack_timer = self.clock.callLater(self.ack_timeout, self._check_acks)

    def _resend_unacked(self, conn: LinkProtocol) -> None:
        """After a logon, teletype still awaiting its ACK goes again with the same id."""
        for out in list(self._unacked.values()):
            if out.deadline is None and self._unacked.get(out.message.id) is out:
                self.log.info("resending after reconnect", msg_id=out.message.id)
                self._transmit(conn, out)

    def _withdraw(self, out: _Outgoing) -> None:
        """Canceller of a send() Deferred: forget the message wherever it is."""
        msg_id = out.message.id
        if self._unacked.get(msg_id) is out:
            del self._unacked[msg_id]
        for queue in (self._queue_urgent, self._queue_routine):
            if out in queue:
                queue.remove(out)
        out.deadline = None
        self._pump()

    def _finish(self, msg_id: str) -> _Outgoing | None:
        out = self._unacked.pop(msg_id, None)
        if out is not None:
            out.deadline = None
        return out

    def _acked(self, ack: Ack) -> None:
        out = self._finish(ack.id)
        if out is None:
            self.log.debug("ACK for no message in flight", msg_id=ack.id)
            return
        out.deferred.callback(ack)
        self._pump()

    def _naked(self, nak: Nak) -> None:
        out = self._finish(nak.id)
        if out is None:
            self.log.warning("NAK for no message in flight", msg_id=nak.id, code=nak.code)
            return
        self.log.info("message refused by the network", msg_id=nak.id, code=nak.code)
        out.deferred.errback(LinkNak(nak.code, nak.text))
        self._pump()

    def _check_acks(self) -> None:
        """Time out every message whose ACK is overdue, then wait for the next."""
        self._ack_timer = None
        now = self.clock.seconds()
        deadlines = self._ack_deadlines
        while deadlines:
            deadline, msg_id = deadlines[0]
            out = self._unacked.get(msg_id)
            live = out is not None and out.deadline == deadline
            if live and deadline > now:
                break
            deadlines.popleft()
            if live and out is not None:
                self._ack_timeout(out)  # may send more (its _pump), armed for below
        if self._ack_timer is not None and self._ack_timer.active():
            self._ack_timer.cancel()
        self._ack_timer = None
        if deadlines:
            self._ack_timer = self.clock.callLater(deadlines[0][0] - now, self._check_acks)

    def _clear_ack_deadlines(self) -> None:
        self._ack_deadlines.clear()
        if self._ack_timer is not None and self._ack_timer.active():
            self._ack_timer.cancel()
        self._ack_timer = None

    def _ack_timeout(self, out: _Outgoing) -> None:
        msg_id = out.message.id
        if self._unacked.get(msg_id) is not out:
            return
        del self._unacked[msg_id]
        out.deadline = None
        self.log.warning("ACK timeout", msg_id=msg_id)
        out.deferred.errback(AckTimeout(msg_id, self.ack_timeout))
        self._pump()

    def _fail_all(self, error: LinkError) -> None:
        pending = list(self._unacked.values())
        pending += list(self._queue_urgent) + list(self._queue_routine)
        self._unacked.clear()
        self._queue_urgent.clear()
        self._queue_routine.clear()
        self._clear_ack_deadlines()
        for out in pending:
            out.deadline = None
            out.deferred.errback(error)


def _describe(reason: Failure) -> str:
    """A short, content-free description of a connection failure."""
    text = reason.getErrorMessage()
    name = _failure_name(reason)
    return f"{name}: {_printable(text)}" if text else name


def _failure_name(reason: Failure) -> str:
    return reason.type.__name__ if reason.type is not None else "Failure"


def _printable(text: str, limit: int = 120) -> str:
    return "".join(ch for ch in text if ch.isprintable())[:limit]
