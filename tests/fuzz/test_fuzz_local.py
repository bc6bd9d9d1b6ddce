"""Hostile input on the local wire: framer + decoder raise nothing but CodecError."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from switch.formats.base import CodecError
from switch.formats.local import MAX_LINE, LocalCodec
from tests.strategies import wire_messages

codec = LocalCodec("MO0380100")


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
            buf[i] = draw(st.sampled_from(b'\n"{}[]:,0\\\x00\xff\xc3 '))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


def _drive(stream: bytes, cuts: list[int]) -> None:
    """Feed ``stream`` in the given chunk sizes, decoding every frame, as a link would."""
    framer = codec.framer()
    pieces = []
    pos = 0
    for cut in cuts:
        pieces.append(stream[pos : pos + cut])
        pos += cut
    pieces.append(stream[pos:])
    for piece in pieces:
        data = piece
        for _ in range(100):  # drain after non-fatal errors, bounded
            try:
                frames = framer.feed(data)
            except CodecError as err:
                assert not err.fatal
                data = b""
                continue
            for frame in frames:
                assert len(frame) <= MAX_LINE
                try:
                    codec.decode(frame)
                except CodecError as err:
                    assert err.code in (10, 11, 12, 22)
            break
        assert framer.buffered < MAX_LINE


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.lists(st.integers(1, 300), max_size=10))
def test_arbitrary_bytes_only_raise_codec_error(data: bytes, cuts: list[int]) -> None:
    """Random bytes in random chunks: no exception but CodecError, buffer bounded."""
    _drive(data, cuts)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(wire_messages(network="local"), min_size=1, max_size=4),
    st.data(),
    st.lists(st.integers(1, 300), max_size=10),
)
def test_mutated_frames_only_raise_codec_error(
    messages: list[Any], data: Any, cuts: list[int]
) -> None:
    """Valid lines with flipped, inserted or deleted bytes never escape as other errors."""
    stream = _mutate(b"".join(codec.encode(m) for m in messages), data.draw)
    _drive(stream, cuts)


@settings(max_examples=50, deadline=None)
@given(st.integers(MAX_LINE - 2, MAX_LINE + 3000), st.lists(st.integers(1, 70_000), max_size=4))
def test_long_lines_stay_bounded(size: int, cuts: list[int]) -> None:
    """Lines around and over the limit, split anywhere, never grow the buffer past it."""
    _drive(b"{" * size + b"\n" + b'{"t": "hb"}\n', cuts)
