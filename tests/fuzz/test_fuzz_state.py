"""Hostile input on the state wire: only CodecError, never a hang, buffers bounded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from switch.formats.base import CodecError
from switch.formats.state import MAX_FRAME, StateCodec, StateFramer
from switch.model import NAK_INTERNAL, AdminMessage, Inquiry, Origin, Record, Reply
from tests.strategies import same_message

VECTORS = [
    v["wire"].encode("ascii")
    for v in json.loads(Path("/work/shared/vectors/state.json").read_text())
]


def _seeds() -> list[bytes]:
    """More layouts than the vectors have: delivered YQ, YR as sent, DR, DQ."""
    srv, cli = StateCodec("MO0000000", role="server"), StateCodec("MO0380100")
    yq_fields = {"request_type": "W", "name": "DOE, JOHN", "dob": "1980-01-01"}
    return [
        srv.encode(AdminMessage("a", "YQ", "MO0950000", ("MO0380100", "KS"), "CONFIRM",
                                fields=yq_fields, control="S1")),
        cli.encode(AdminMessage("a", "YR", "MO0950000", ("MO0380100",), "OK",
                                fields={"request_type": "W", "confirmed": "Y"})),
        srv.encode(Reply("r", "state", "hit", "x",
                         (Record("driver", {"oln": "D1", "oln_state": "MO"}, ("violent",)),),
                         control="S2", subject="driver")),
        cli.encode(Inquiry("q", "driver", {"oln": "D1", "oln_state": "KS", "name": "DOE, JOHN"},
                           Origin("MO0380100"), control="S3", purpose="C")),
    ]  # fmt: skip


SEEDS = VECTORS + _seeds()
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
#: Bytes that matter to the grammar, so mutations hit the interesting paths.
_SPECIAL = st.sampled_from(
    [b"\x02", b"\x03", b"\r\n", b"\r", b"\n", b".", b"/", b" ", b"\xff", b"*", b",", b"TXT",
     b"MKE/", b"CMC/", b"WARNING - ", b"ORI IS ", b"1N01S", b"0"]
)  # fmt: skip


def _decode(codec: StateCodec, frame: bytes) -> None:
    try:
        codec.decode(frame)
    except CodecError as err:
        assert err.code != NAK_INTERNAL, err.text  # a decoder fault, not bad input
        assert err.text.isascii() and err.text.isprintable()


def _drain(framer: StateFramer, chunks: list[bytes]) -> tuple[list[bytes], list[CodecError]]:
    frames: list[bytes] = []
    errors: list[CodecError] = []
    for chunk in chunks:
        data = chunk
        for _ in range(len(chunk) + 2):
            try:
                frames += framer.feed(data)
                break
            except CodecError as err:
                errors.append(err)
                if err.fatal:
                    return frames, errors
                data = b""
        else:
            raise AssertionError("framer kept raising on an empty feed")
        assert len(framer._buf) <= framer.max_frame
        assert len(framer._rest) <= len(chunk)
    return frames, errors


def _chunked(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_decode_to_codec_error_only(data: bytes) -> None:
    """decode() of any bytes either yields a message or raises a (non-internal) CodecError."""
    _decode(StateCodec("MO0380100"), data)
    _decode(StateCodec("MO0000000", role="server"), b"\x02" + data + b"\x03")


_EDITS = st.lists(
    st.tuples(st.integers(0, 2000), st.integers(0, 2), _SPECIAL | st.binary(max_size=3)),
    min_size=1,
    max_size=6,
)


def _mutate(frame: bytes, edits: list[tuple[int, int, bytes]]) -> bytes:
    data = bytearray(frame)
    for pos, op, blob in edits:
        pos %= len(data) + 1
        if op == 0:
            data[pos:pos] = blob
        elif op == 1:
            del data[pos : pos + len(blob) + 1]
        else:
            data[pos : pos + len(blob)] = blob
    return bytes(data)


@FUZZ
@given(st.sampled_from(SEEDS), _EDITS)
def test_mutated_frames_decode_to_codec_error_only(
    frame: bytes, edits: list[tuple[int, int, bytes]]
) -> None:
    """Frames with bytes replaced, inserted or deleted never raise anything but CodecError."""
    data = _mutate(frame, edits)
    for role in ("client", "server"):
        _decode(StateCodec("MO0380100", role=role), data)  # type: ignore[arg-type]


@FUZZ
@given(st.sampled_from(SEEDS), _EDITS, st.sampled_from(["client", "server"]))
def test_whatever_decodes_re_encodes_to_the_same_message(
    frame: bytes, edits: list[tuple[int, int, bytes]], role: str
) -> None:
    """A mutated frame that decodes can be encoded again, and that decodes to the same
    message (teletype and reply text up to the documented normalisation)."""
    try:
        message = StateCodec("MO0380100", role=role).decode(_mutate(frame, edits))  # type: ignore[arg-type]
    except CodecError:
        return
    again = StateCodec("MO0380100", role=role).encode(message)  # type: ignore[arg-type]
    back = StateCodec("MO0380100").decode(again)
    ignore = ("created", "text") if message.kind in ("admin", "reply") else ("created",)
    assert same_message(back, message, ignore=ignore)


@FUZZ
@given(
    st.lists(st.sampled_from(SEEDS) | st.binary(max_size=40) | _SPECIAL, max_size=12),
    st.lists(st.integers(0, 10_000), max_size=8),
)
def test_framer_on_arbitrary_streams(parts: list[bytes], cuts: list[int]) -> None:
    """Any stream, cut anywhere: the framer only raises CodecError, always settles, keeps
    its buffer within the limit, and every frame it returns is STX ... ETX."""
    stream = b"".join(parts)
    frames, _ = _drain(StateFramer(), _chunked(stream, cuts))
    for f in frames:
        assert f[:1] == b"\x02" and f[-1:] == b"\x03" and len(f) <= MAX_FRAME
        _decode(StateCodec("MO0380100"), f)


@FUZZ
@given(
    st.lists(st.sampled_from(SEEDS), min_size=1, max_size=8),
    st.lists(st.integers(0, 5000), max_size=10),
)
def test_framing_ignores_chunk_boundaries(frames: list[bytes], cuts: list[int]) -> None:
    """Valid frames cut at arbitrary points come out whole and in order, without errors."""
    out, errors = _drain(StateFramer(), _chunked(b"".join(frames), cuts))
    assert out == frames and errors == []


@FUZZ
@given(
    st.binary(min_size=1, max_size=50).filter(lambda b: b"\x02" not in b),
    st.sampled_from(SEEDS),
)
def test_junk_between_frames_is_reported_once_and_skipped(junk: bytes, frame: bytes) -> None:
    """Bytes between ETX and STX: one non-fatal code 10, then the next frame still arrives."""
    out, errors = _drain(StateFramer(), [frame + junk + frame])
    assert out == [frame, frame]
    assert [(e.code, e.fatal) for e in errors] == [(10, False)]


def test_oversized_frame_refused_before_buffering() -> None:
    """A frame passing 16 KiB raises code 11 (with its MSG id) while the buffer is within
    the limit; the rest is skipped to its ETX and the next frame is taken."""
    framer = StateFramer()
    head = b"\x02MSG big-1\r\n"
    with pytest.raises(CodecError) as info:
        for _ in range(40):
            framer.feed(head if not framer._buf else b"A" * 1000)
            assert len(framer._buf) <= MAX_FRAME
    assert (info.value.code, info.value.msg_id, info.value.fatal) == (11, "big-1", False)
    assert len(framer._buf) <= MAX_FRAME
    out, errors = _drain(framer, [b"A" * 100_000 + b"\x03" + VECTORS[0]])
    assert out == [VECTORS[0]] and errors == []


def test_exact_limit_frame_is_taken() -> None:
    """A frame of exactly 16 KiB passes; one byte more is refused in one feed."""
    body = b"A" * (MAX_FRAME - len(b"\x02MSG x\r\n\x03"))
    exact = b"\x02MSG x\r\n" + body + b"\x03"
    assert len(exact) == MAX_FRAME
    assert StateFramer().feed(exact) == [exact]
    out, errors = _drain(StateFramer(), [b"\x02MSG x\r\n" + body + b"A\x03"])
    assert out == [] and [e.code for e in errors] == [11]


def test_stx_inside_a_frame_drops_the_cut_frame() -> None:
    """An STX before the ETX: code 10 for the cut frame (naming its id), then the new one."""
    out, errors = _drain(StateFramer(), [b"\x02MSG cut-1\r\nHALF" + VECTORS[0]])
    assert out == [VECTORS[0]]
    assert [(e.code, e.msg_id) for e in errors] == [(10, "cut-1")]


def test_endless_junk_is_fatal() -> None:
    """More than 16 KiB without any STX means the peer does not speak this protocol."""
    _, errors = _drain(StateFramer(), [b"J" * 5000] * 5)
    assert errors[0].code == 10 and not errors[0].fatal
    assert errors[-1].fatal
    with pytest.raises(CodecError) as info:
        StateFramer.feed(_lost(), b"\x02HBT\r\n\x03")
    assert info.value.fatal


def _lost() -> StateFramer:
    framer = StateFramer()
    _drain(framer, [b"J" * (MAX_FRAME + 1)])
    return framer
