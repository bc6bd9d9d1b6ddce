"""What every wire codec offers, so that one link state machine serves all four networks.

A codec is two pure pieces: a *framer* that cuts a byte stream into whole frames
(enforcing the size limit before anything is parsed) and ``encode``/``decode`` between
one frame and one canonical :mod:`switch.model` message.
"""

from __future__ import annotations

from typing import Protocol

from switch.model import NAK_MALFORMED, NAK_TEXTS, WireMessage


class CodecError(Exception):
    """Any malformed input, in any format. ``code`` is a NAK code of DESIGN §4.

    ``msg_id`` is the id of the offending message when it could be read ("" otherwise),
    so the receiver can NAK it. ``fatal`` means framing is lost: drop the connection.
    """

    def __init__(
        self,
        code: int = NAK_MALFORMED,
        text: str | None = None,
        *,
        msg_id: str = "",
        fatal: bool = False,
    ) -> None:
        self.code = code
        self.text = text if text is not None else NAK_TEXTS.get(code, "ERROR")
        self.msg_id = msg_id
        self.fatal = fatal
        super().__init__(f"{self.code} {self.text}")


class Framer(Protocol):
    """Incremental framing: bytes in arbitrary chunks -> whole frames.

    ``feed`` returns every complete frame so far. It raises CodecError for a frame over
    the limit or a broken stream; with ``fatal`` false the framer has skipped the bad
    frame and can go on, with ``fatal`` true the stream is unusable.
    Buffered bytes never exceed the frame limit (plus one read).
    """

    def feed(self, data: bytes) -> list[bytes]: ...


class EventFramer:
    """The Framer contract on top of a framer's ``feed_events``.

    ``feed_events(data)`` gives frames and errors in stream order and never raises;
    ``feed`` raises the first error of a chunk and keeps the chunk's other frames (and
    errors) for the next call, so ``feed(b"")`` after a non-fatal error loses nothing.
    """

    def __init__(self) -> None:
        self._pending: list[bytes | CodecError] = []

    def feed_events(self, data: bytes) -> list[bytes | CodecError]:
        raise NotImplementedError

    def feed(self, data: bytes) -> list[bytes]:
        events = self._pending + self.feed_events(data) if self._pending else self.feed_events(data)
        self._pending = []
        for i, event in enumerate(events):
            if isinstance(event, CodecError):
                self._pending = events[:i] + events[i + 1 :]
                raise event
        return [event for event in events if isinstance(event, bytes)]


class Codec(Protocol):
    """One wire format. Instances are per connection: ``own_ori`` fills header fields
    (the national MessageID/OriginatingORIID of ACKs and heartbeats, ...)."""

    name: str
    max_frame: int

    def framer(self) -> Framer: ...

    def encode(self, message: WireMessage) -> bytes:
        """One whole frame, framing included. Raises CodecError for a message the format
        cannot express (e.g. a field value the wire forbids)."""
        ...

    def decode(self, frame: bytes) -> WireMessage:
        """One frame as returned by the framer -> one message. Raises only CodecError."""
        ...
