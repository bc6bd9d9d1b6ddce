"""Fuzzing the national codec: random and mutated input only ever raises CodecError.

Every input is bounded and every test has a time budget, so a hang or a quadratic path
shows up as a failure rather than a stuck suite.
"""

from __future__ import annotations

import os
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from switch.formats.base import CodecError
from switch.formats.national import MAX_DOCUMENT, MAX_FRAME, NationalCodec
from switch.model import AdminMessage, WireMessage
from tests.strategies import XML_TEXT, Profile, message_diff, wire_messages

PROFILE = Profile(text_alphabet=XML_TEXT, network="national", frame_id=True)
NS = "{urn:switch:national:1}"
#: ``FUZZ_EXAMPLES=5000 pytest tests/fuzz`` for a deeper run than the suite's default.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "200")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def carriable(m: WireMessage) -> WireMessage:
    """REG/STATE are other networks' broadcast codes: not national destinations."""
    if isinstance(m, AdminMessage):
        to = tuple(d for d in m.to if d not in ("REG", "STATE")) or ("NL",)
        return AdminMessage(**{**{f: getattr(m, f) for f in m.__slots__}, "to": to})
    return m


def frame(document: bytes) -> bytes:
    return len(document).to_bytes(4, "big") + document


def decode_or_codec_error(data: bytes) -> WireMessage | None:
    """Decode; a CodecError is fine, anything else fails the test (by propagating).

    When the input is accepted, the message must encode again and come back equal:
    the codec never accepts what it could not send.
    """
    codec = NationalCodec("NCIC")
    try:
        message = codec.decode(data)
    except CodecError as err:
        assert err.code in (10, 11, 12, 22)
        assert err.msg_id == "" or len(err.msg_id) <= 40
        return None
    again = codec.decode(codec.encode(message))
    assert message_diff(message, again) == []
    return message


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes_raise_only_codec_error(data: bytes) -> None:
    """Random bytes as a frame, with or without a correct prefix: CodecError or a message."""
    decode_or_codec_error(data)
    decode_or_codec_error(frame(data))


@FUZZ
@given(
    wire_messages(PROFILE),
    st.lists(
        st.tuples(
            st.sampled_from(["delete", "insert", "replace", "duplicate"]),
            st.integers(0, 10_000),
            st.integers(0, 40),
            st.binary(min_size=1, max_size=8)
            | st.sampled_from([b"<", b">", b"&", b"]]>", b"</", b'"', b"\x00", b"\xff", b"&#0;"]),
        ),
        min_size=1,
        max_size=4,
    ),
    st.booleans(),
)
def test_mutated_frames_raise_only_codec_error(
    message: WireMessage, edits: list[tuple[str, int, int, bytes]], fix_prefix: bool
) -> None:
    """Byte-level mutations of valid frames: CodecError, or a message that re-encodes."""
    data = bytearray(NationalCodec("NCIC").encode(carriable(message)))
    for action, where, span, chunk in edits:
        at = where % (len(data) + 1)
        if action == "delete":
            del data[at : at + span]
        elif action == "insert":
            data[at:at] = chunk
        elif action == "replace":
            data[at : at + len(chunk)] = chunk
        else:
            data[at:at] = data[at : at + span]
    if fix_prefix and len(data) > 4:
        data[:4] = (len(data) - 4).to_bytes(4, "big")
    decode_or_codec_error(bytes(data))


_TEXTS = st.text(XML_TEXT, max_size=30) | st.sampled_from(
    ["", " ", "NCIC", "NL", "TX", "MO0380100", "true", "false", "QW", "ACK", "99", "19801301"]
)
_ATTRS = st.sampled_from(["code", "hit", "subject", "file", "version"])


@FUZZ
@given(
    wire_messages(PROFILE),
    st.lists(
        st.tuples(
            st.sampled_from(["remove", "duplicate", "text", "attr", "swap", "wrap"]),
            st.integers(0, 1000),
            _TEXTS,
            _ATTRS,
        ),
        min_size=1,
        max_size=3,
    ),
)
def test_structural_mutations_raise_only_codec_error(
    message: WireMessage, edits: list[tuple[str, int, str, str]]
) -> None:
    """Element-level mutations (drop, repeat, retext, re-attribute, reorder, nest)."""
    root = etree.fromstring(NationalCodec("NCIC").encode(carriable(message))[4:])
    for action, index, text, attr in edits:
        elements = list(root.iter())
        element = elements[index % len(elements)]
        parent = element.getparent()
        if action == "remove" and parent is not None:
            parent.remove(element)
        elif action == "duplicate" and parent is not None:
            parent.insert(parent.index(element), etree.fromstring(etree.tostring(element)))
        elif action == "text":
            element.text = text
        elif action == "attr":
            element.set(attr, text)
        elif action == "swap" and parent is not None:
            position = parent.index(element)
            if position + 1 < len(parent):
                parent.insert(position, parent[position + 1])
        elif action == "wrap" and parent is not None:
            wrapper = etree.Element(NS + "Field", code="NAM")
            parent.replace(element, wrapper)
            wrapper.append(element)
    decode_or_codec_error(frame(etree.tostring(root)))


@FUZZ
@given(st.binary(max_size=3000), st.lists(st.integers(1, 700), min_size=1, max_size=20))
def test_framer_on_arbitrary_streams(stream: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes in arbitrary chunks: frames or CodecError, buffer bounded."""
    framer = NationalCodec("NCIC").framer()
    pos = 0
    step = 0
    while pos < len(stream):
        cut = cuts[step % len(cuts)]
        step += 1
        try:
            for f in framer.feed(stream[pos : pos + cut]):
                assert 4 < len(f) <= MAX_FRAME
                decode_or_codec_error(f)
        except CodecError as err:
            assert err.fatal
            return
        assert framer.buffered <= MAX_FRAME + cut
        pos += cut


def _timed(data: bytes) -> float:
    start = time.perf_counter()
    decode_or_codec_error(data)
    return time.perf_counter() - start


def test_worst_case_documents_decode_quickly() -> None:
    """1 MiB documents built to be expensive are refused in well under a second each."""
    field = b'<Field code="NAM">DOE, JOHN</Field>'
    head = (
        b'<NLETS xmlns="urn:switch:national:1" version="1"><NLETSMessageHeader>'
        b"<MessageKeyCodeText>QW</MessageKeyCodeText><MessageID>M1</MessageID>"
        b"<OriginatingORIID>MO0380100</OriginatingORIID><DestinationORIID>NCIC</DestinationORIID>"
        b"<MessageSendDateTime>2026-11-29T16:22:10.25Z</MessageSendDateTime>"
        b'</NLETSMessageHeader><NLETSInquiryData subject="person">'
    )
    tail = b"</NLETSInquiryData></NLETS>"
    room = MAX_DOCUMENT - len(head) - len(tail)
    cases: list[Any] = [
        head + field * (room // len(field)) + tail,  # ~29,000 fields
        b"<a>" + b"<b/>" * ((MAX_DOCUMENT - 7) // 4) + b"</a>",  # 260,000 siblings
        b'<a b="' + b"x" * (MAX_DOCUMENT - 12) + b'"/>',  # one huge attribute
        b"<a>" + b"&amp;" * ((MAX_DOCUMENT - 7) // 5) + b"</a>",  # many entity references
        b"<a " + b" ".join(b"a%d='1'" % i for i in range(60_000)) + b"/>",  # many attributes
    ]
    for document in cases:
        assert len(document) <= MAX_DOCUMENT
        assert _timed(frame(document)) < 1.0
