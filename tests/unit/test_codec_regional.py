"""The regional BER codec (DESIGN §4.2): vectors, round trips, fast path == pyasn1, framing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.formats.base import CodecError
from switch.formats.ber import MAX_PDU, BerFramer, check_structure, fast_decode, fast_encode
from switch.formats.regional import RegionalCodec, pyasn1_decode, pyasn1_encode
from switch.model import (
    Ack,
    AdminMessage,
    Heartbeat,
    Inquiry,
    Logon,
    Nak,
    Notice,
    Origin,
    Record,
    Reply,
    Warrant,
    WireMessage,
)
from tests.strategies import (
    acks,
    inquiries,
    message_diff,
    naks,
    replies,
    wire_messages,
)

VECTORS = json.loads(Path("/work/shared/vectors/regional.json").read_text())
#: What the regional wire does not carry (docs/protocols/regional.md).
NOT_CARRIED = (
    "created",
    "Inquiry.priority",
    "Inquiry.networks",
    "control",
    "Reply.subject",
    "Reply.origin",
    "Reply.priority",
    "AdminMessage.in_reply_to",
    "origin",  # Inquiry.origin.ori is compared separately
    "frame_id",
)
FAST = RegionalCodec("MO0380100")
SLOW = RegionalCodec("MO0380100", fast=False)
CODECS = pytest.mark.parametrize("codec", [FAST, SLOW], ids=["fast", "pyasn1"])

#: What each vector means, as model messages (the vectors' ``means`` use wire codes).
EXPECTED: dict[str, WireMessage] = {
    "bind": Logon(station="MO0380100", secret="EXAMPLE-SECRET"),
    "inquiry_person": Inquiry(
        id="01JDZK3V8Y7Q2W0000000000AA",
        subject="person",
        fields={"name": "DOE, JOHN A", "dob": "1980-01-01"},
        origin=Origin(ori="MO0380100"),
    ),
    "reply_hit": Reply(
        id="R7F3K2",
        network="regional",
        status="hit",
        text="REGIONAL WANT NAM/DOE, JOHN A WNO/C26-0042",
        records=(
            Record(
                file="wanted_person",
                fields={"name": "DOE, JOHN A"},
                caveats=("violent",),
                warrant=Warrant(number="C26-0042", offense="BURGLARY", entering_ori="MO0480000"),
            ),
        ),
        in_reply_to="01JDZK3V8Y7Q2W0000000000AA",
    ),
    "accept": Ack(id="01JDZK3V8Y7Q2W0000000000AA"),
    "keepAlive": Heartbeat(),
}


def test_every_vector_has_an_expectation() -> None:
    """The table above covers every regional vector (a new vector must be added here)."""
    assert {v["name"] for v in VECTORS} == set(EXPECTED)


@CODECS
@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors(codec: RegionalCodec, vector: dict[str, Any]) -> None:
    """Each vector decodes to its meaning, and that meaning encodes to exactly its bytes."""
    wire = bytes.fromhex(vector["hex"])
    message = codec.decode(wire)
    assert message_diff(EXPECTED[vector["name"]], message, NOT_CARRIED) == []
    assert codec.encode(EXPECTED[vector["name"]]) == wire
    assert codec.encode(message) == wire


def test_vectors_raw_meaning() -> None:
    """The raw (wire-code) form of each vector is the vector's ``means``."""
    for vector in VECTORS:
        raw = pyasn1_decode(bytes.fromhex(vector["hex"]))
        means = vector["means"]
        assert raw[0] == means["pdu"]
        if raw[0] == "inquiry":
            assert dict(raw[4]) == means["fields"]
        if raw[0] == "reply":
            assert [dict(r[1]) for r in raw[4]] == [r["fields"] for r in means["records"]]
            assert [list(r[2]) for r in raw[4]] == [r["caveats"] for r in means["records"]]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from([FAST, SLOW]), wire_messages(network="regional"))
def test_roundtrip_keeps_every_carried_field(codec: RegionalCodec, message: WireMessage) -> None:
    """model -> BER -> model keeps every field the regional wire carries (fast and pyasn1).

    (hypothesis draws the codec: pytest-twisted cannot combine @given with parametrize.)
    """
    frames = codec.framer().feed(codec.encode(message))
    assert len(frames) == 1
    back = codec.decode(frames[0])
    assert message_diff(message, back, NOT_CARRIED) == []
    if isinstance(message, Inquiry):
        assert isinstance(back, Inquiry)
        assert back.origin.ori == message.origin.ori


@settings(max_examples=200, deadline=None)
@given(st.one_of(inquiries(), replies(network="regional"), acks(), naks()))
def test_fast_encode_is_byte_identical_to_pyasn1(message: WireMessage) -> None:
    """For the hot PDUs the hand-written encoder writes exactly pyasn1's bytes."""
    assert FAST.encode(message) == SLOW.encode(message)


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=150)
_pairs = st.lists(st.tuples(st.text("ABCXYZ", min_size=3, max_size=3), _text), max_size=4).map(
    tuple
)
_raws = st.one_of(
    st.tuples(
        st.just("inquiry"), _text, st.text("ABC09 ", max_size=12), st.integers(-300, 300), _pairs
    ),
    st.tuples(
        st.just("reply"),
        _text,
        _text,
        st.booleans(),
        st.lists(st.tuples(_text, _pairs, st.lists(_text, max_size=3).map(tuple)), max_size=3).map(
            tuple
        ),
        _text,
    ),
    st.tuples(st.just("accept"), _text),
    st.tuples(st.just("refuse"), _text, st.integers(-(2**40), 2**40), _text),
    st.just(("keepAlive",)),
)


@settings(max_examples=300, deadline=None)
@given(_raws)
def test_fast_raw_encode_and_decode_match_pyasn1(raw: tuple[Any, ...]) -> None:
    """On any raw hot PDU (odd ints, long strings) fast encode == pyasn1, decode inverts it."""
    data = fast_encode(raw)
    assert data == pyasn1_encode(raw)
    assert fast_decode(data) == pyasn1_decode(data) == raw


def _mutate(data: bytes, draw: Any) -> bytes:
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        if not buf:
            break
        i = draw(st.integers(0, len(buf) - 1))
        if op == "flip":
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set":
            buf[i] = draw(st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0x81, 0x82, 0xFF, 0x0C, 0x30]))
        elif op == "insert":
            buf[i:i] = draw(st.binary(min_size=1, max_size=3))
        elif op == "delete":
            del buf[i]
        else:
            del buf[i:]
    return bytes(buf)


def _outcome(codec: RegionalCodec, data: bytes) -> Any:
    try:
        message = codec.decode(data)
    except CodecError as err:
        return ("error", err.code, err.msg_id)
    return ("ok", message.kind, [(f.name, getattr(message, f.name)) for f in _fields(message)])


def _fields(message: WireMessage) -> list[Any]:
    import dataclasses

    return [f for f in dataclasses.fields(message) if f.name != "created"]


_hot = st.one_of(inquiries(), replies(network="regional"), acks(), naks(), st.just(Heartbeat()))


@settings(max_examples=400, deadline=None)
@given(_hot, st.data())
def test_fast_decode_equivalent_to_pyasn1_on_mutated_frames(
    message: WireMessage, data: Any
) -> None:
    """On damaged hot PDUs the fast path accepts and rejects exactly what pyasn1 does."""
    frame = _mutate(SLOW.encode(message), data.draw)
    raw = fast_decode(frame)
    if raw is not None:
        assert pyasn1_decode(frame) == raw
    assert _outcome(FAST, frame) == _outcome(SLOW, frame)


@pytest.mark.parametrize("codec", [FAST, SLOW], ids=["fast", "pyasn1"])
@pytest.mark.parametrize("octet", [b"\x01", b"\x7f", b"\x80", b"\xff"])
def test_any_nonzero_boolean_is_true(codec: RegionalCodec, octet: bytes) -> None:
    """DESIGN §4.2: decoders take any non-zero octet as BOOLEAN TRUE."""
    wire = bytes.fromhex(VECTORS[2]["hex"]).replace(b"\x01\x01\x01", b"\x01\x01" + octet, 1)
    reply = codec.decode(wire)
    assert isinstance(reply, Reply) and reply.status == "hit"
    wire = wire.replace(b"\x01\x01" + octet, b"\x01\x01\x00", 1)
    assert codec.decode(wire).status == "no_record"


@CODECS
def test_trailing_bytes_are_refused(codec: RegionalCodec) -> None:
    """decode() checks leftovers that pyasn1 would return silently."""
    with pytest.raises(CodecError) as err:
        codec.decode(bytes.fromhex(VECTORS[3]["hex"]) + b"\x05\x00")
    assert err.value.code == 10


@CODECS
@pytest.mark.parametrize("frame", ["a9020500", "3000", "0500", "1f8101020500"])
def test_unknown_pdu_types_are_code_12(codec: RegionalCodec, frame: str) -> None:
    """A TLV that is none of the CHOICE's [0]..[8] is an unknown message type."""
    with pytest.raises(CodecError) as err:
        codec.decode(bytes.fromhex(frame))
    assert err.value.code == 12


def _nested(depth: int) -> bytes:
    inner = b"\x05\x00"
    for _ in range(depth - 1):
        inner = b"\x30" + bytes((len(inner),)) + inner
    return b"\xa4" + bytes((len(inner),)) + inner


@CODECS
def test_nesting_depth_limit(codec: RegionalCodec) -> None:
    """Depth 9 is refused as malformed before pyasn1; depth 8 reaches the schema check."""
    check_structure(_nested(8))
    with pytest.raises(CodecError) as err:
        codec.decode(_nested(9))
    assert (err.value.code, err.value.fatal) == (10, False)
    with pytest.raises(CodecError) as err:
        codec.decode(_nested(8))
    assert err.value.code == 22


def test_deepest_valid_pdu_is_a_reply_of_depth_six() -> None:
    """A reply with a record and fields (depth 6, DESIGN §4.2) passes the structure check."""
    check_structure(bytes.fromhex(VECTORS[2]["hex"]), max_depth=6)
    with pytest.raises(CodecError):
        check_structure(bytes.fromhex(VECTORS[2]["hex"]), max_depth=5)


@CODECS
def test_refused_message_names_its_id(codec: RegionalCodec) -> None:
    """A schema-valid inquiry with a bad field value is refused with 22 and its id."""
    frame = bytes.fromhex(VECTORS[1]["hex"]).replace(b"19800101", b"19801301")
    with pytest.raises(CodecError) as err:
        codec.decode(frame)
    assert (err.value.code, err.value.msg_id) == (22, "01JDZK3V8Y7Q2W0000000000AA")
    broken = bytes.fromhex(VECTORS[1]["hex"]).replace(b"\x0a\x01\x00", b"\x04\x01\x00")
    with pytest.raises(CodecError) as err:
        codec.decode(broken)
    assert (err.value.code, err.value.msg_id) == (22, "01JDZK3V8Y7Q2W0000000000AA")


def test_notice_travels_as_message_with_cod_and_ref() -> None:
    """An ER notice is a message PDU with key ER, no destinations and fields COD, REF."""
    notice = Notice(id="N1", key="ER", from_ori="MO0480000", code=19, text="BAD", in_reply_to="Q")
    raw = FAST.to_raw(notice)
    assert raw == ("message", "N1", "ER", "MO0480000", (), 0, "BAD", (("COD", "19"), ("REF", "Q")))
    assert message_diff(notice, FAST.decode(FAST.encode(notice))) == []


def test_encode_refuses_what_the_schema_cannot_carry() -> None:
    """Timeouts, non-printable ORIs and unknown field names raise CodecError, nothing else."""
    timeout = Reply(id="R", network="regional", status="timeout", text="X", in_reply_to="Q")
    bad_from = AdminMessage(id="A", key="AM", from_ori="MO03801é0", to=("MO",), text="X")
    bad_field = AdminMessage(
        id="A", key="YQ", from_ori="MO0380100", to=("MO",), text="X", fields={"nope": "1"}
    )
    for message in (timeout, bad_from, bad_field, Nak(id="\ud800", code=10, text="X")):
        for codec in (FAST, SLOW):
            with pytest.raises(CodecError):
                codec.encode(message)


# --------------------------------------------------------------------------- framer


def test_oversized_pdu_is_refused_before_it_is_buffered() -> None:
    """The header of a PDU over 64 KiB raises 11 at once; its content is skipped, not kept."""
    framer = BerFramer()
    size = 10 * MAX_PDU
    header = b"\xa4\x83" + size.to_bytes(3, "big")
    with pytest.raises(CodecError) as err:
        framer.feed(header + b"\x00" * 100)
    assert (err.value.code, err.value.fatal) == (11, False)
    assert framer.feed(b"") == []
    sent = 100
    while sent < size:
        chunk = min(50_000, size - sent)
        assert framer.feed(b"\x00" * chunk) == []
        assert framer.buffered == 0
        sent += chunk
    assert framer.feed(b"\xa7\x02\x05\x00") == [b"\xa7\x02\x05\x00"]


def test_pdu_of_exactly_the_limit_is_framed() -> None:
    """A PDU of exactly 64 KiB (header included) is delivered whole."""
    content = MAX_PDU - 4
    pdu = b"\xa4\x82" + content.to_bytes(2, "big") + b"\x00" * content
    framer = BerFramer()
    assert framer.feed(pdu[:1000]) == []
    assert framer.buffered <= MAX_PDU
    assert framer.feed(pdu[1000:]) == [pdu]
    with pytest.raises(CodecError) as err:
        BerFramer().feed(b"\xa4\x82" + (content + 1).to_bytes(2, "big"))
    assert err.value.code == 11


@pytest.mark.parametrize("header", ["a480", "a485ffffffffff", "a4ff", "bf8181818181"])
def test_unframeable_headers_are_fatal(header: str) -> None:
    """Indefinite lengths, over-long length or tag octets lose framing: fatal CodecError(10)."""
    framer = BerFramer()
    with pytest.raises(CodecError) as err:
        framer.feed(bytes.fromhex(header) + b"\x00" * 8)
    assert (err.value.code, err.value.fatal) == (10, True)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(wire_messages(network="regional"), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=200), max_size=20),
)
def test_any_chunking_gives_the_same_pdus(messages: list[WireMessage], cuts: list[int]) -> None:
    """PDUs split across reads at arbitrary points are reassembled exactly."""
    stream = b"".join(FAST.encode(m) for m in messages)
    framer = FAST.framer()
    frames: list[bytes] = []
    pos = 0
    for cut in cuts:
        frames += framer.feed(stream[pos : pos + cut])
        assert framer.buffered <= MAX_PDU
        pos += cut
    frames += framer.feed(stream[pos:])
    assert [FAST.decode(f).kind for f in frames] == [m.kind for m in messages]
