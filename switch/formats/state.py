"""The ``state`` wire (DESIGN §4.3): NCIC-style fixed text in STX/ETX frames over TCP.

A frame is ``STX``, a transport header line, CR LF, the body, ``ETX``: 16 KiB at most,
framing included. The framer cuts frames and enforces that limit before buffering; the
codec turns one frame into one :mod:`switch.model` message and back. Body layouts live in
:mod:`switch.formats.state_text`; the decisions are written up in ``docs/protocols/state.md``.

Errors (always :class:`~switch.formats.base.CodecError`):

- framing: bytes between ETX and the next STX (code 10, once per run of junk), an STX
  inside a frame (10, the cut frame is dropped and the new one kept), a frame over 16 KiB
  (11, skipped up to its ETX). All non-fatal: the framer resynchronises at the next STX.
  Only a junk run longer than 16 KiB is fatal (the peer is not speaking this protocol).
- transport: bad or unknown header (10 / 12), non-printable body (10, with the MSG id);
- body: a well-framed ``MSG`` whose body is no valid message raises
  :class:`StateBodyError` (code 22, or 19 for destinations) with ``msg_id`` and
  ``bad_input``: the receiver ACKs it and answers with :func:`error_notice`.
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Final, Literal

from switch.model import (
    NAK_INTERNAL,
    NAK_INVALID_FORMAT,
    NAK_MALFORMED,
    NAK_TOO_LARGE,
    NAK_UNKNOWN_TYPE,
    Ack,
    AdminMessage,
    Heartbeat,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Notice,
    Reply,
    ValidationError,
    WireMessage,
)

from .base import CodecError
from .state_text import (
    CRLF,
    REPLY_KEYS,
    admin_lines,
    decode_body,
    echo_bad_input,
    encode_inquiry,
    encode_notice,
    error_notice,
    is_printable,
    ncic_reply_body,
    nlets_reply_lines,
    render_legacy,
)

STX: Final = 0x02
ETX: Final = 0x03
MAX_FRAME: Final = 16 * 1024
#: How an empty message id is written in a NAK header: an empty token, so the header
#: has two spaces (``NAK  10 MALFORMED FRAME``). No valid id (not even ``-``) is reserved.
EMPTY_ID: Final = ""

_ID_RE: Final = re.compile(rb"[A-Za-z0-9-]{1,40}")
_TOKEN_RE: Final = re.compile(r"[!-~]+")
_NAK_RE: Final = re.compile(r"NAK (\S*) (\d{1,3})(?: (.*))?")
_PRINTABLE: Final = bytes(range(0x20, 0x7F))

__all__ = [
    "EMPTY_ID",
    "MAX_FRAME",
    "StateBodyError",
    "StateCodec",
    "StateFramer",
    "error_notice",
]


class StateBodyError(CodecError):
    """A well-framed ``MSG`` whose body is no valid message (DESIGN §4.3).

    The receiver ACKs ``msg_id`` and sends ``error_notice(new_id, err.bad_input,
    from_ori=..., code=err.code)``. ``bad_input`` holds the first 100 characters of the
    body: frame content, so never log it.
    """

    def __init__(self, code: int, text: str, *, msg_id: str, bad_input: str) -> None:
        super().__init__(code, text, msg_id=msg_id)
        self.bad_input = bad_input


def _msg_id_of(partial: bytes | bytearray) -> str:
    """The id of a ``MSG`` (or ``ACK``) header at the start of a partial frame, if any."""
    end = partial.find(b"\r\n")
    if end < 0:
        return ""
    verb, _, rest = bytes(partial[1:end]).partition(b" ")
    if verb == b"MSG" and _ID_RE.fullmatch(rest):
        return rest.decode("ascii")
    return ""


class StateFramer:
    """STX ... ETX framing with the 16 KiB limit enforced before anything is buffered.

    ``feed`` returns whole frames (STX and ETX included). On a framing error it raises a
    non-fatal CodecError at once and keeps what followed the bad bytes in that chunk (and
    the frames cut before them): call ``feed(b"")`` to collect them, as
    ``switch.protocols.link`` does. Buffered bytes never exceed ``max_frame`` plus the
    unread rest of one chunk.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._inside = False
        self._skipping = False  # inside an oversized frame, dropping up to its ETX
        self._junk = 0  # length of the current run of bytes outside any frame
        self._junk_reported = False
        self._lost = False
        self._pending: list[bytes] = []
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        if self._lost:
            raise CodecError(NAK_MALFORMED, "FRAMING LOST", fatal=True)
        data = self._rest + data if self._rest else data
        self._rest = b""
        out, self._pending = self._pending, []
        i, n = 0, len(data)
        while i < n:
            if self._skipping:
                i = self._skip(data, i)
            elif self._inside:
                i = self._collect(data, i, out)
            else:
                i = self._outside(data, i, out)
        return out

    # each step consumes from ``data[i:]`` and returns the new position, or stashes
    # (frames so far, rest of the chunk) and raises
    def _fail(self, err: CodecError, out: list[bytes], data: bytes, at: int) -> CodecError:
        self._pending = out
        self._rest = data[at:]
        return err

    def _outside(self, data: bytes, i: int, out: list[bytes]) -> int:
        j = data.find(STX, i)
        junk = (len(data) if j < 0 else j) - i
        if junk:
            self._junk += junk
            if self._junk > self.max_frame:
                self._lost = True
                raise CodecError(NAK_MALFORMED, "NO FRAME IN 16 KIB OF INPUT", fatal=True)
            if not self._junk_reported:
                self._junk_reported = True
                raise self._fail(
                    CodecError(NAK_MALFORMED, "BYTES OUTSIDE A FRAME"), out, data, i + junk
                )
        if j < 0:
            return len(data)
        self._junk = 0
        self._junk_reported = False
        self._inside = True
        self._buf = bytearray(b"\x02")
        return j + 1

    def _collect(self, data: bytes, i: int, out: list[bytes]) -> int:
        etx = data.find(ETX, i)
        stop = len(data) if etx < 0 else etx
        stx = data.find(STX, i, stop)
        if stx >= 0:
            stop = stx
        if len(self._buf) + (stop - i) + 1 > self.max_frame:
            msg_id = _msg_id_of(self._buf + data[i : min(stop, i + self.max_frame)])
            self._buf = bytearray()
            self._inside = False
            self._skipping = True
            raise self._fail(CodecError(NAK_TOO_LARGE, msg_id=msg_id), out, data, i)
        self._buf += data[i:stop]
        if stx >= 0:
            msg_id = _msg_id_of(self._buf)
            self._buf = bytearray()
            self._inside = False
            raise self._fail(
                CodecError(NAK_MALFORMED, "FRAME CUT BY STX", msg_id=msg_id), out, data, stx
            )
        if etx < 0:
            return len(data)
        self._buf.append(ETX)
        out.append(bytes(self._buf))
        self._buf = bytearray()
        self._inside = False
        return etx + 1

    def _skip(self, data: bytes, i: int) -> int:
        etx = data.find(ETX, i)
        stx = data.find(STX, i, len(data) if etx < 0 else etx)
        if stx >= 0:
            self._skipping = False
            return stx
        if etx >= 0:
            self._skipping = False
            return etx + 1
        return len(data)


class StateCodec:
    """Codec of the state wire. ``role`` picks the legacy layout written for DR/RR and
    teletype: ``client`` writes it "as sent", ``server`` "as delivered" (with clock lines);
    decoding accepts both. A server-side codec remembers the station of the LOGON it
    decoded: that is the destination written into the replies it encodes."""

    name = "state"
    max_frame = MAX_FRAME

    def __init__(self, own_ori: str, role: Literal["client", "server"] = "client") -> None:
        self.own_ori = own_ori
        self.role = role
        #: The station at the other end (server role: from its LOGON), for reply headers.
        self.peer_ori: str | None = None
        self._seq = 0

    def framer(self) -> StateFramer:
        return StateFramer(self.max_frame)

    # ------------------------------------------------------------------ encode
    def encode(self, message: WireMessage) -> bytes:
        try:
            header, body = self._encode(message)
        except ValidationError as err:
            raise CodecError(NAK_INVALID_FORMAT, "NOT EXPRESSIBLE ON THE STATE WIRE") from err
        if not is_printable(header) or not all(is_printable(x) for x in body.split(CRLF)):
            raise CodecError(NAK_INVALID_FORMAT, "NOT PRINTABLE ASCII")
        frame = b"\x02" + header.encode("ascii") + b"\r\n" + body.encode("ascii") + b"\x03"
        if len(frame) > self.max_frame:
            raise CodecError(NAK_TOO_LARGE, msg_id=getattr(message, "id", ""))
        return frame

    def _encode(self, message: WireMessage) -> tuple[str, str]:
        if isinstance(message, Heartbeat):
            return "HBT", ""
        if isinstance(message, Logoff):
            return "LOGOFF", ""
        if isinstance(message, Ack):
            return f"ACK {_wire_id(message.id)}", ""
        if isinstance(message, Nak):
            msg_id = _wire_id(message.id) if message.id else EMPTY_ID
            if not 0 <= message.code <= 999:
                raise CodecError(NAK_INVALID_FORMAT, "NAK CODE OUT OF RANGE")
            text = f" {_line(message.text)}" if message.text else ""
            return f"NAK {msg_id} {message.code}{text}", ""
        if isinstance(message, Logon):
            return f"LOGON {_token(message.station)} {_token(message.secret)}", ""
        if isinstance(message, LogonResult):
            if message.ok:
                return "LOGON-OK", ""
            return "LOGON-FAIL" + (f" {_line(message.reason)}" if message.reason else ""), ""
        header = f"MSG {_wire_id(message.id)}"
        if isinstance(message, Inquiry):
            return header, encode_inquiry(message)
        if isinstance(message, Notice):
            return header, encode_notice(message)
        if isinstance(message, AdminMessage):
            return header, self._legacy(
                message.key,
                message.from_ori,
                message.to,
                message.control,
                admin_lines(message),
                message.created,
            )
        if isinstance(message, Reply):
            return header, self._reply(message)
        raise CodecError(NAK_UNKNOWN_TYPE)

    def _reply(self, reply: Reply) -> str:
        dest = self.peer_ori or self.own_ori
        key = REPLY_KEYS.get(reply.subject or "")
        if key is not None:
            from_ori = reply.origin.ori if reply.origin is not None else self.own_ori
            text = nlets_reply_lines(reply)
            return self._legacy(key, from_ori, (dest,), reply.control, text, reply.created)
        return ncic_reply_body(reply, dest)

    def _legacy(
        self,
        key: str,
        from_ori: str,
        to: tuple[str, ...],
        control: str | None,
        lines: list[str],
        when: _dt.datetime,
    ) -> str:
        self._seq += 1
        return render_legacy(
            key,
            from_ori,
            to,
            control,
            lines,
            delivered=self.role == "server",
            when=when,
            seq=self._seq,
        )

    # ------------------------------------------------------------------ decode
    def decode(self, frame: bytes) -> WireMessage:
        try:
            return self._decode(frame)
        except CodecError:
            raise
        except Exception as exc:  # a bug here must still be one error type (code 50)
            raise CodecError(NAK_INTERNAL, f"DECODER FAULT {type(exc).__name__}") from exc

    def _decode(self, frame: bytes) -> WireMessage:
        if len(frame) > self.max_frame:
            raise CodecError(NAK_TOO_LARGE, msg_id=_msg_id_of(frame[: self.max_frame]))
        if len(frame) < 4 or frame[0] != STX or frame[-1] != ETX:
            raise CodecError(NAK_MALFORMED, "NOT AN STX/ETX FRAME")
        inner = frame[1:-1]
        end = inner.find(b"\r\n")
        if end < 0 or b"\x02" in inner or b"\x03" in inner:
            raise CodecError(NAK_MALFORMED, "NO HEADER LINE")
        raw_header, raw_body = inner[:end], inner[end + 2 :]
        if raw_header.translate(None, _PRINTABLE):
            raise CodecError(NAK_MALFORMED, "HEADER NOT PRINTABLE")
        header = raw_header.decode("ascii")
        verb, _, rest = header.partition(" ")
        if verb == "MSG":
            if not _ID_RE.fullmatch(raw_header[4:]):
                raise CodecError(NAK_MALFORMED, "BAD MESSAGE ID")
            return self._decode_msg(rest, raw_body)
        if raw_body:
            raise CodecError(NAK_MALFORMED, "BODY ON A CONTROL FRAME")
        message = _decode_control(verb, rest, header)
        if isinstance(message, Logon) and self.role == "server":
            self.peer_ori = message.station
        return message

    def _decode_msg(self, msg_id: str, raw_body: bytes) -> WireMessage:
        if raw_body.replace(b"\r\n", b"").translate(None, _PRINTABLE):
            raise CodecError(NAK_MALFORMED, "BODY NOT PRINTABLE ASCII", msg_id=msg_id)
        body = raw_body.decode("ascii")
        try:
            return decode_body(msg_id, body, self.name)
        except CodecError as err:
            raise StateBodyError(
                err.code, err.text, msg_id=msg_id, bad_input=echo_bad_input(body)
            ) from err
        except ValidationError as err:
            raise StateBodyError(
                NAK_INVALID_FORMAT, "INVALID MESSAGE", msg_id=msg_id, bad_input=echo_bad_input(body)
            ) from err


def _decode_control(verb: str, rest: str, header: str) -> WireMessage:
    if verb == "HBT" and header == "HBT":
        return Heartbeat()
    if verb == "LOGOFF" and header == "LOGOFF":
        return Logoff()
    if verb == "LOGON-OK" and header == "LOGON-OK":
        return LogonResult(ok=True)
    if verb == "LOGON-FAIL":
        return LogonResult(ok=False, reason=rest)
    if verb == "ACK":
        if not _ID_RE.fullmatch(rest.encode("ascii")):
            raise CodecError(NAK_MALFORMED, "BAD ACK")
        return Ack(rest)
    if verb == "NAK":
        m = _NAK_RE.fullmatch(header)
        if m is None:
            raise CodecError(NAK_MALFORMED, "BAD NAK")
        raw_id = m.group(1)
        if raw_id and not _ID_RE.fullmatch(raw_id.encode("ascii")):
            raise CodecError(NAK_MALFORMED, "BAD NAK")
        return Nak(raw_id, int(m.group(2)), m.group(3) or "")
    if verb == "LOGON":
        parts = rest.split(" ")
        if len(parts) != 2 or not all(_TOKEN_RE.fullmatch(p) for p in parts):
            raise CodecError(NAK_MALFORMED, "BAD LOGON")
        return Logon(station=parts[0], secret=parts[1])
    if verb in ("HBT", "LOGOFF", "LOGON-OK"):
        raise CodecError(NAK_MALFORMED, f"BAD {verb}")
    raise CodecError(NAK_UNKNOWN_TYPE)


def _wire_id(msg_id: str) -> str:
    if not _ID_RE.fullmatch(msg_id.encode("ascii", "replace")):
        raise CodecError(NAK_INVALID_FORMAT, "BAD MESSAGE ID")
    return msg_id


def _token(value: str) -> str:
    if not _TOKEN_RE.fullmatch(value) or not value.isascii():
        raise CodecError(NAK_INVALID_FORMAT, "LOGON TOKENS ARE PRINTABLE ASCII WITHOUT SPACES")
    return value


def _line(text: str) -> str:
    if not is_printable(text):
        raise CodecError(NAK_INVALID_FORMAT, "HEADER TEXT NOT PRINTABLE ASCII")
    return text
