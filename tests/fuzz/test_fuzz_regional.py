"""Hostile input on the regional wire: framer + decoder raise nothing but CodecError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.formats.base import CodecError
from switch.formats.ber import MAX_PDU
from switch.formats.regional import RegionalCodec
from tests.strategies import wire_messages

FAST = RegionalCodec("MO0380100")
SLOW = RegionalCodec("MO0380100", fast=False)


def _mutate(data: bytes, draw: Any) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 5))):
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[i] = draw(
                st.sampled_from(b"\x00\x01\x05\x0a\x0c\x13\x30\x7f\x80\x81\x82\x84\xa2\xff")
            )
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


def _drive(codec: RegionalCodec, stream: bytes, cuts: list[int]) -> None:
    """Feed ``stream`` in the given chunk sizes as a link would; stop on a fatal error."""
    framer = codec.framer()
    pieces = []
    pos = 0
    for cut in cuts:
        pieces.append(stream[pos : pos + cut])
        pos += cut
    pieces.append(stream[pos:])
    for piece in pieces:
        data = piece
        for _ in range(100):
            try:
                frames = framer.feed(data)
            except CodecError as err:
                if err.fatal:
                    return
                data = b""
                continue
            for frame in frames:
                assert len(frame) <= MAX_PDU
                try:
                    codec.decode(frame)
                except CodecError as err:
                    assert err.code in (10, 11, 12, 22)
            break
        assert framer.buffered <= MAX_PDU


_tagged_junk = st.builds(
    lambda tag, body: bytes([tag]) + body,
    st.integers(0xA0, 0xA8),
    st.binary(max_size=600),
)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([FAST, SLOW]),
    st.binary(max_size=1000) | _tagged_junk,
    st.lists(st.integers(1, 300), max_size=10),
)
def test_arbitrary_bytes_only_raise_codec_error(
    codec: RegionalCodec, data: bytes, cuts: list[int]
) -> None:
    """Random bytes in random chunks: no exception but CodecError, buffer bounded."""
    _drive(codec, data, cuts)


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from([FAST, SLOW]),
    st.lists(wire_messages(network="regional"), min_size=1, max_size=4),
    st.data(),
    st.lists(st.integers(1, 300), max_size=10),
)
def test_mutated_frames_only_raise_codec_error(
    codec: RegionalCodec, messages: list[Any], data: Any, cuts: list[int]
) -> None:
    """Valid PDUs with flipped, inserted or deleted bytes never escape as other errors."""
    stream = _mutate(b"".join(codec.encode(m) for m in messages), data.draw)
    _drive(codec, stream, cuts)


@st.composite
def _trees(draw: Any, depth: int = 0) -> bytes:
    """Well-formed TLV trees of any shape, up to depth 12 (definite, minimal lengths)."""
    if depth >= 12 or draw(st.integers(0, 3)) == 0:
        tag = draw(st.sampled_from([0x01, 0x02, 0x04, 0x05, 0x0A, 0x0C, 0x13]))
        body = draw(st.binary(max_size=12))
    else:
        tag = draw(st.sampled_from([0x30, 0x31, 0x2C, 0xA0, 0xA2, 0xA3, 0xA4]))
        body = b"".join(draw(st.lists(_trees(depth + 1), max_size=3)))
    n = len(body)
    length = bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])
    return bytes([tag]) + length + body


@settings(max_examples=150, deadline=None)
@given(st.sampled_from([FAST, SLOW]), st.integers(0xA0, 0xA8), _trees())
def test_well_formed_but_wrong_trees_are_refused_cleanly(
    codec: RegionalCodec, tag: int, tree: bytes
) -> None:
    """Any definite-length TLV tree under a CHOICE tag decodes or raises CodecError only."""
    n = len(tree)
    length = bytes([n]) if n < 0x80 else bytes([0x82, n >> 8, n & 0xFF])
    _drive(codec, bytes([tag]) + length + tree, [])
