"""BER plumbing for the regional wire: the stream framer, a structure check, a fast path.

pyasn1 is the schema of record (:mod:`switch.formats.regional`), but it trusts its input
more than a network service can and costs ~100 us per PDU. This module does what must
happen before pyasn1 sees a byte, and a hand-written codec for the hot PDUs:

- :class:`BerFramer` reads TLV headers itself (definite lengths only, at most 4 length
  octets), refuses a PDU over the limit *before* buffering it (its bytes are skipped as
  they arrive: framing is kept) and hands out whole PDUs.
- :func:`check_structure` walks every TLV of one PDU: lengths nest exactly, no
  indefinite lengths, constructed depth at most 8 (the outer ``[n]`` is 1).
- :func:`fast_decode` / :func:`fast_encode` translate the hot PDUs (inquiry, reply,
  accept, refuse, keepAlive) between bytes and the plain-tuple *raw* form that the pyasn1
  path also produces. ``fast_decode`` only accepts the plain, minimal BER that pyasn1
  would give the same meaning; for anything else it returns ``None`` and the caller asks
  pyasn1, so both paths accept and reject exactly the same inputs
  (tests/unit/test_codec_regional.py proves it with hypothesis).

Raw forms (all strings ``str``, sequences ``tuple``)::

    ("bind", station, secret: bytes)        ("bindResult", ok: bool, reason | None)
    ("inquiry", id, ori, subject: int, fields)
    ("reply", id, re, hit: bool, records: ((file, fields, caveats), ...), text)
    ("message", id, key, from, to, priority: int, text, fields | None)
    ("accept", id)  ("refuse", id, code: int, text)  ("keepAlive",)  ("unbind",)

where ``fields`` is ``((code, value), ...)``.
"""

from __future__ import annotations

from typing import Any, Final

from switch.model import NAK_MALFORMED, NAK_TOO_LARGE

from .base import CodecError, EventFramer

MAX_PDU: Final = 64 * 1024
MAX_DEPTH: Final = 8
_MAX_LENGTH_OCTETS: Final = 4
_MAX_TAG_OCTETS: Final = 4

Raw = tuple[Any, ...]


def read_header(buf: bytes | bytearray, pos: int, end: int) -> tuple[int, bool, int, int] | None:
    """Parse one TLV header at ``pos``: ``(first tag octet, constructed, content start,
    content length)``, or ``None`` when more bytes are needed.

    Raises a fatal CodecError(10) for what cannot be framed: an indefinite length, more
    than 4 length octets, the reserved 0xFF length, an over-long tag number.
    """
    if pos >= end:
        return None
    first = buf[pos]
    i = pos + 1
    if first & 0x1F == 0x1F:  # high tag number form: continuation octets
        for _ in range(_MAX_TAG_OCTETS):
            if i >= end:
                return None
            more = buf[i] & 0x80
            i += 1
            if not more:
                break
        else:
            raise CodecError(NAK_MALFORMED, "TAG TOO LONG", fatal=True)
    if i >= end:
        return None
    octet = buf[i]
    i += 1
    if octet < 0x80:
        return first, bool(first & 0x20), i, octet
    count = octet & 0x7F
    if count == 0:
        raise CodecError(NAK_MALFORMED, "INDEFINITE LENGTH", fatal=True)
    if count > _MAX_LENGTH_OCTETS:
        raise CodecError(NAK_MALFORMED, "LENGTH TOO LONG", fatal=True)
    if i + count > end:
        return None
    length = int.from_bytes(buf[i : i + count], "big")
    return first, bool(first & 0x20), i + count, length


class BerFramer(EventFramer):
    """Whole top-level TLVs out of a byte stream; never buffers more than one PDU.

    An oversized PDU raises ``CodecError(11)`` (non-fatal) as soon as its header is read,
    and its content is then skipped without being stored. Unframeable headers are fatal.
    Errors work as in :class:`switch.formats.local.LineFramer`: ``feed`` raises the first
    error of a chunk and keeps the chunk's PDUs for ``feed(b"")``; :meth:`feed_events`
    never raises and gives PDUs and errors in stream order.
    """

    def __init__(self, limit: int = MAX_PDU) -> None:
        super().__init__()
        self._limit = limit
        self._buf = bytearray()
        self._skip = 0
        self._dead: CodecError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete PDU (never more than the limit)."""
        return len(self._buf)

    def feed_events(self, data: bytes) -> list[bytes | CodecError]:
        """Every complete PDU and every error, in stream order."""
        if self._dead is not None:
            return [self._dead] if data else []
        out: list[bytes | CodecError] = []
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        if self._buf:
            self._buf += data
            buf: bytes | bytearray = self._buf
        else:
            buf = data
        pos, end = 0, len(buf)
        while pos < end:
            try:
                header = read_header(buf, pos, end)
            except CodecError as err:
                self._dead = err
                self._buf = bytearray()
                out.append(err)
                return out
            if header is None:
                break
            _, _, start, length = header
            total = start - pos + length
            if total > self._limit:
                out.append(CodecError(NAK_TOO_LARGE))
                available = end - start
                if length > available:
                    self._skip = length - available
                    pos = end
                else:
                    pos = start + length
                continue
            if start + length > end:
                break
            out.append(bytes(buf[pos : start + length]))
            pos = start + length
        self._buf = bytearray(buf[pos:end]) if pos < end else bytearray()
        return out


def check_structure(frame: bytes, max_depth: int = MAX_DEPTH) -> None:
    """Exactly one TLV, every nested length consistent and definite, depth <= max_depth.

    Raises non-fatal CodecError(10): the frame came whole out of the framer, so the
    stream is still in step.
    """
    end = len(frame)
    # stack of (content end) for open constructed TLVs
    stack: list[int] = []
    pos = 0
    limit = end
    try:
        while True:
            while stack and pos == stack[-1]:
                stack.pop()
            if pos == end and not stack:
                return
            limit = stack[-1] if stack else end
            if not stack and pos != 0:
                raise CodecError(NAK_MALFORMED, "TRAILING BYTES")
            header = read_header(frame, pos, limit)
            if header is None:
                raise CodecError(NAK_MALFORMED, "TRUNCATED TLV")
            _, constructed, start, length = header
            if start + length > limit:
                raise CodecError(NAK_MALFORMED, "TLV OVERRUNS ITS PARENT")
            if constructed:
                if len(stack) + 1 > max_depth:
                    raise CodecError(NAK_MALFORMED, "NESTING TOO DEEP")
                stack.append(start + length)
                pos = start
            else:
                pos = start + length
    except CodecError as err:
        err.fatal = False
        raise


# --------------------------------------------------------------------------- fast decode

# Tag octets of the schema (universal primitives and constructed SEQUENCE).
_BOOLEAN, _INTEGER, _NULL, _ENUMERATED = 0x01, 0x02, 0x05, 0x0A
_UTF8, _PRINTABLE, _SEQ = 0x0C, 0x13, 0x30
_INQUIRY, _REPLY, _ACCEPT, _REFUSE, _KEEPALIVE = 0xA2, 0xA3, 0xA5, 0xA6, 0xA7


class _Fallback(Exception):
    """Not plain minimal BER: let pyasn1 decide."""


def _tl(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """Expect ``tag`` at pos with a minimal definite length: (content start, content end)."""
    if pos + 2 > end or buf[pos] != tag:
        raise _Fallback
    n = buf[pos + 1]
    if n < 0x80:
        start = pos + 2
    elif n == 0x81:
        if pos + 3 > end or buf[pos + 2] < 0x80:
            raise _Fallback
        n = buf[pos + 2]
        start = pos + 3
    elif n == 0x82:
        if pos + 4 > end or buf[pos + 2] == 0:
            raise _Fallback
        n = (buf[pos + 2] << 8) | buf[pos + 3]
        start = pos + 4
    else:
        raise _Fallback
    stop = start + n
    if stop > end:
        raise _Fallback
    return start, stop


def _utf8(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    start, stop = _tl(buf, pos, end, _UTF8)
    try:
        return buf[start:stop].decode("utf-8"), stop
    except UnicodeDecodeError:
        raise _Fallback from None


def _printable(buf: bytes, pos: int, end: int) -> tuple[str, int]:
    start, stop = _tl(buf, pos, end, _PRINTABLE)
    try:
        return buf[start:stop].decode("ascii"), stop
    except UnicodeDecodeError:
        raise _Fallback from None


def _small_int(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    start, stop = _tl(buf, pos, end, tag)
    if not 1 <= stop - start <= 8:
        raise _Fallback
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


def _fields(buf: bytes, pos: int, end: int) -> tuple[tuple[tuple[str, str], ...], int]:
    start, stop = _tl(buf, pos, end, _SEQ)
    out: list[tuple[str, str]] = []
    p = start
    while p < stop:
        s, e = _tl(buf, p, stop, _SEQ)
        code, q = _printable(buf, s, e)
        if len(code) != 3:
            raise _Fallback
        value, q = _utf8(buf, q, e)
        if q != e:
            raise _Fallback
        out.append((code, value))
        p = e
    return tuple(out), stop


def _record(buf: bytes, pos: int, end: int) -> tuple[tuple[Any, ...], int]:
    start, stop = _tl(buf, pos, end, _SEQ)
    file, p = _utf8(buf, start, stop)
    fields, p = _fields(buf, p, stop)
    cs, ce = _tl(buf, p, stop, _SEQ)
    caveats: list[str] = []
    q = cs
    while q < ce:
        caveat, q = _utf8(buf, q, ce)
        caveats.append(caveat)
    if ce != stop:
        raise _Fallback
    return (file, fields, tuple(caveats)), stop


def fast_decode(frame: bytes) -> Raw | None:
    """The raw form of a hot PDU in plain minimal BER, else ``None`` (ask pyasn1)."""
    try:
        return _fast_decode(frame)
    except (_Fallback, IndexError):
        return None


def _fast_decode(buf: bytes) -> Raw | None:
    end = len(buf)
    if end < 2:
        return None
    tag = buf[0]
    if tag == _KEEPALIVE:
        return ("keepAlive",) if buf == b"\xa7\x02\x05\x00" else None
    if tag not in (_INQUIRY, _REPLY, _ACCEPT, _REFUSE):
        return None
    os_, oe = _tl(buf, 0, end, tag)
    if oe != end:
        return None
    start, stop = _tl(buf, os_, oe, _SEQ)
    if stop != oe:
        return None
    ident, p = _utf8(buf, start, stop)
    raw: Raw
    if tag == _INQUIRY:
        ori, p = _printable(buf, p, stop)
        subject, p = _small_int(buf, p, stop, _ENUMERATED)
        fields, p = _fields(buf, p, stop)
        raw = ("inquiry", ident, ori, subject, fields)
    elif tag == _REPLY:
        re_, p = _utf8(buf, p, stop)
        bs, be = _tl(buf, p, stop, _BOOLEAN)
        if be - bs != 1:
            return None
        hit = buf[bs] != 0
        rs, re_end = _tl(buf, be, stop, _SEQ)
        records = []
        q = rs
        while q < re_end:
            record, q = _record(buf, q, re_end)
            records.append(record)
        text, p = _utf8(buf, re_end, stop)
        raw = ("reply", ident, re_, hit, tuple(records), text)
    elif tag == _ACCEPT:
        raw = ("accept", ident)
    else:
        code, p = _small_int(buf, p, stop, _INTEGER)
        text, p = _utf8(buf, p, stop)
        raw = ("refuse", ident, code, text)
    return raw if p == stop else None


# --------------------------------------------------------------------------- fast encode


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    octets = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(octets),)) + octets


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _len(len(content)) + content


def _int_content(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)


def _fields_bytes(fields: tuple[tuple[str, str], ...]) -> bytes:
    return _tlv(
        _SEQ,
        b"".join(
            _tlv(_SEQ, _tlv(_PRINTABLE, code.encode("ascii")) + _tlv(_UTF8, value.encode("utf-8")))
            for code, value in fields
        ),
    )


def fast_encode(raw: Raw) -> bytes | None:
    """BER of a hot PDU, byte-identical to pyasn1's; ``None`` for other PDUs.

    Raises UnicodeEncodeError (ValueError) for text the wire cannot carry, as pyasn1 does.
    """
    kind = raw[0]
    if kind == "inquiry":
        _, ident, ori, subject, fields = raw
        body = (
            _tlv(_UTF8, ident.encode("utf-8"))
            + _tlv(_PRINTABLE, ori.encode("ascii"))
            + _tlv(_ENUMERATED, _int_content(subject))
            + _fields_bytes(fields)
        )
        return _tlv(_INQUIRY, _tlv(_SEQ, body))
    if kind == "reply":
        _, ident, re_, hit, records, text = raw
        recs = b"".join(
            _tlv(
                _SEQ,
                _tlv(_UTF8, file.encode("utf-8"))
                + _fields_bytes(fields)
                + _tlv(_SEQ, b"".join(_tlv(_UTF8, c.encode("utf-8")) for c in caveats)),
            )
            for file, fields, caveats in records
        )
        body = (
            _tlv(_UTF8, ident.encode("utf-8"))
            + _tlv(_UTF8, re_.encode("utf-8"))
            + (b"\x01\x01\x01" if hit else b"\x01\x01\x00")
            + _tlv(_SEQ, recs)
            + _tlv(_UTF8, text.encode("utf-8"))
        )
        return _tlv(_REPLY, _tlv(_SEQ, body))
    if kind == "accept":
        return _tlv(_ACCEPT, _tlv(_SEQ, _tlv(_UTF8, raw[1].encode("utf-8"))))
    if kind == "refuse":
        _, ident, code, text = raw
        body = (
            _tlv(_UTF8, ident.encode("utf-8"))
            + _tlv(_INTEGER, _int_content(code))
            + _tlv(_UTF8, text.encode("utf-8"))
        )
        return _tlv(_REFUSE, _tlv(_SEQ, body))
    if kind == "keepAlive":
        return b"\xa7\x02\x05\x00"
    return None
