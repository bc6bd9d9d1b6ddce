"""The local JSON-lines codec (DESIGN §4.1): vectors, round trips, refusals, framing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.formats.base import CodecError
from switch.formats.local import MAX_LINE, LineFramer, LocalCodec
from switch.model import (
    AdminMessage,
    Inquiry,
    LogonResult,
    Notice,
    Origin,
    Record,
    Reply,
    Warrant,
    WireMessage,
)
from tests.strategies import message_diff, wire_messages

VECTORS = json.loads(Path("/work/shared/vectors/local.json").read_text())
#: What the local wire does not carry (DESIGN §4.1; docs/protocols/local.md).
NOT_CARRIED = (
    "created",
    "Inquiry.priority",
    "Inquiry.networks",
    "control",
    "Reply.subject",
    "Reply.origin",
    "Reply.priority",
    "origin",  # AdminMessage.origin; Inquiry.origin.ori is compared below
    "frame_id",
)

codec = LocalCodec("MO0380100")


def roundtrip(message: WireMessage) -> WireMessage:
    frames = codec.framer().feed(codec.encode(message))
    assert len(frames) == 1
    return codec.decode(frames[0])


@pytest.mark.parametrize("vector", VECTORS, ids=[v["name"] for v in VECTORS])
def test_vectors_decode_and_encode_back(vector: dict[str, Any]) -> None:
    """Every example line decodes, and encoding the result gives the same JSON object."""
    wire = vector["wire"].encode()
    message = codec.decode(wire)
    again = codec.encode(message)
    assert json.loads(again) == json.loads(wire)
    assert again == wire  # our key order is the examples' order


def test_vector_meanings() -> None:
    """The examples mean what DESIGN §4.1 says: canonical names and ISO dates, hit -> status."""
    by_name = {v["name"]: codec.decode(v["wire"].encode()) for v in VECTORS}
    query = by_name["query_person"]
    assert isinstance(query, Inquiry)
    assert query.fields == {"name": "DOE, JOHN A", "dob": "1980-01-01"}
    assert query.origin.ori == "MO0380100"
    reply = by_name["reply_hit"]
    assert isinstance(reply, Reply)
    assert (reply.status, reply.network, reply.in_reply_to) == (
        "hit",
        "local",
        "01JDZK3V8Y7Q2W0000000000AA",
    )
    assert reply.records[0].warrant is not None
    assert reply.records[0].warrant.issued == "2026-02-03"
    nak = by_name["nak_garbage"]
    assert (nak.kind, nak.id, nak.code) == ("nak", "", 10)


@settings(max_examples=300, deadline=None)
@given(wire_messages(network="local"))
def test_roundtrip_keeps_every_carried_field(message: WireMessage) -> None:
    """model -> line -> model keeps every field the local wire carries, for every kind."""
    back = roundtrip(message)
    assert message_diff(message, back, NOT_CARRIED) == []
    if isinstance(message, Inquiry):
        assert isinstance(back, Inquiry)
        assert back.origin.ori == message.origin.ori


def test_notice_travels_as_msg_with_code() -> None:
    """An ER notice is a msg with key ER, an integer code and the id it concerns in re."""
    notice = Notice(id="N1", key="ER", from_ori="MO0380000", code=22, text="BAD", in_reply_to="X")
    obj = json.loads(codec.encode(notice))
    assert obj == {
        "t": "msg",
        "id": "N1",
        "key": "ER",
        "from": "MO0380000",
        "to": [],
        "priority": "routine",
        "text": "BAD",
        "code": 22,
        "re": "X",
    }
    assert message_diff(notice, codec.decode(codec.encode(notice))) == []


@pytest.mark.parametrize("status", ["error", "timeout", "unavailable"])
def test_reply_statuses_without_wire_form_are_refused(status: str) -> None:
    """Only hit/no_record exist on the wire: other statuses raise CodecError, not ValueError."""
    reply = Reply(id="R1", network="local", status=status, text="X", in_reply_to="Q1")
    with pytest.raises(CodecError):
        codec.encode(reply)


def test_decode_hit_false_is_no_record() -> None:
    """hit false (or anything but JSON true) decodes as no_record; a non-boolean is refused."""
    line = b'{"t":"reply","id":"R","re":"Q","hit":false,"records":[],"text":"NO RECORD"}\n'
    assert codec.decode(line).status == "no_record"
    with pytest.raises(CodecError) as err:
        codec.decode(line.replace(b"false", b"1"))
    assert (err.value.code, err.value.msg_id) == (22, "R")


@pytest.mark.parametrize(
    ("line", "code", "msg_id"),
    [
        (b"\xff\xfe{}\n", 10, ""),
        (b"{not json\n", 10, ""),
        (b"[1, 2]\n", 10, ""),
        (b"[" * 60_000 + b"\n", 10, ""),
        (b'{"code": ' + b"9" * 5000 + b"}\n", 10, ""),
        (b'{"t": "frobnicate", "id": "A1"}\n', 12, "A1"),
        (b'{"id": "A1"}\n', 22, "A1"),
        (
            b'{"t": "query", "id": "A1", "ori": "XX123", "subject": "person",'
            b' "fields": {"name": "DOE, J", "dob": "1980-01-01"}}\n',
            22,
            "A1",
        ),
        (
            b'{"t": "query", "id": "A1", "ori": "MO0380100", "subject": "person",'
            b' "fields": {"name": "DOE, J", "dob": "1980-02-30"}}\n',
            22,
            "A1",
        ),
        (
            b'{"t": "query", "id": "A1", "ori": "MO0380100", "subject": "person",'
            b' "fields": {"name": "DOE, J"}}\n',
            22,
            "A1",
        ),
        (
            b'{"t": "query", "id": "bad id!", "ori": "MO0380100", "subject": "gun",'
            b' "fields": {"serial": "X1"}}\n',
            22,
            "",
        ),
        (
            b'{"t": "msg", "id": "M1", "key": "ZZ", "from": "MO0380100", "to": [],'
            b' "priority": "routine", "text": ""}\n',
            22,
            "M1",
        ),
        (
            b'{"t": "msg", "id": "M1", "key": "AM", "from": "MO0380100", "to": ["MO0380200"],'
            b' "priority": "soon", "text": ""}\n',
            22,
            "M1",
        ),
        (
            b'{"t": "reply", "id": "R1", "re": "Q1", "hit": true, "records": [{"file": "bogus"}],'
            b' "text": "X"}\n',
            22,
            "R1",
        ),
        (
            b'{"t": "reply", "id": "R1", "re": "Q1", "hit": true, "records": [], "text": ""}\n',
            22,
            "R1",
        ),
        (b'{"t": "ack"}\n', 22, ""),
        (b'{"t": ["query"], "id": "A1"}\n', 22, "A1"),  # unhashable type once crashed decode
        (b'{"t": "nak", "id": "", "code": "10", "text": "X"}\n', 22, ""),
    ],
)
def test_refusals_carry_nak_codes(line: bytes, code: int, msg_id: str) -> None:
    """Bad UTF-8/JSON -> 10, unknown t -> 12, missing/ill-typed/invalid fields -> 22 + id."""
    with pytest.raises(CodecError) as err:
        codec.decode(line)
    assert (err.value.code, err.value.msg_id, err.value.fatal) == (code, msg_id, False)


def test_inquiry_fields_are_normalised_and_options_carried() -> None:
    """Decoding normalises fields with the model and keeps purpose/requester/recipient."""
    line = (
        b'{"t": "query", "id": "Q1", "ori": "MO0380100", "subject": "person", "fields":'
        b' {"name": "doe,john", "oln": "r100-200"}, "purpose": "c", "requester": "SGT X",'
        b' "recipient": "DET Y"}\n'
    )
    inquiry = codec.decode(line)
    assert isinstance(inquiry, Inquiry)
    assert inquiry.fields == {"name": "DOE, JOHN", "oln": "R100200"}
    assert (inquiry.purpose, inquiry.requester, inquiry.recipient) == ("C", "SGT X", "DET Y")


def test_encode_refuses_lone_surrogates_and_oversize() -> None:
    """What cannot be a UTF-8 line of <= 64 KiB is a CodecError at encode time."""
    with pytest.raises(CodecError) as err:
        codec.encode(LogonResult(ok=False, reason="\ud800"))
    assert err.value.code == 22
    record = Record(file="wanted_person", fields={"misc": "X" * MAX_LINE})
    big = Reply(id="R", network="local", status="hit", text="T", records=(record,), in_reply_to="Q")
    with pytest.raises(CodecError) as err:
        codec.encode(big)
    assert err.value.code == 11


def test_line_of_exactly_the_limit_passes_and_one_more_is_refused() -> None:
    """64 KiB including the newline is allowed; one byte more is CodecError(11), non-fatal."""
    framer = LineFramer()
    exact = b"x" * (MAX_LINE - 1) + b"\n"
    assert framer.feed(exact) == [exact]
    with pytest.raises(CodecError) as err:
        framer.feed(b"x" * MAX_LINE + b"\n")
    assert (err.value.code, err.value.fatal) == (11, False)
    assert framer.feed(b"") == []
    assert framer.buffered == 0


def test_overlong_line_is_dropped_before_it_is_buffered() -> None:
    """A line that outgrows the limit is reported at once and skipped up to its newline."""
    framer = LineFramer()
    assert framer.feed(b"y" * (MAX_LINE - 1)) == []
    assert framer.buffered == MAX_LINE - 1
    with pytest.raises(CodecError) as err:
        framer.feed(b"y")
    assert err.value.code == 11
    assert framer.buffered == 0
    for _ in range(10):  # the rest of the line is discarded as it arrives, nothing is kept
        assert framer.feed(b"z" * 50_000) == []
        assert framer.buffered == 0
    assert framer.feed(b"tail\n{}\n") == [b"{}\n"]


def test_error_keeps_the_other_lines_of_the_chunk() -> None:
    """Good lines before and after an over-long one come out of feed(b"") after the error."""
    framer = LineFramer(limit=16)
    chunk = b"a\n" + b"b" * 40 + b"\nc\n"
    with pytest.raises(CodecError):
        framer.feed(chunk)
    assert framer.feed(b"") == [b"a\n", b"c\n"]
    events = LineFramer(limit=16).feed_events(chunk)
    assert [e if isinstance(e, bytes) else e.code for e in events] == [b"a\n", 11, b"c\n"]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(wire_messages(network="local"), min_size=1, max_size=5),
    st.lists(st.integers(min_value=1, max_value=200), max_size=20),
)
def test_any_chunking_gives_the_same_frames(messages: list[WireMessage], cuts: list[int]) -> None:
    """Lines split across reads at arbitrary points are reassembled exactly."""
    stream = b"".join(codec.encode(m) for m in messages)
    framer = codec.framer()
    frames: list[bytes] = []
    pos = 0
    for cut in cuts:
        frames += framer.feed(stream[pos : pos + cut])
        pos += cut
    frames += framer.feed(stream[pos:])
    assert [codec.decode(f).kind for f in frames] == [m.kind for m in messages]


def test_admin_message_with_hit_confirmation_fields() -> None:
    """YQ fields keep canonical names and ISO dates on the local wire."""
    yq = AdminMessage(
        id="Y1",
        key="YQ",
        from_ori="MO0380100",
        to=("MO0480000",),
        text="CONFIRM",
        priority="urgent",
        fields={"request_number": "1", "urgency": "U", "dob": "1980-01-01"},
    )
    obj = json.loads(codec.encode(yq))
    assert obj["fields"]["dob"] == "1980-01-01"
    assert message_diff(yq, codec.decode(codec.encode(yq))) == []


def test_warrant_and_inquiry_model_objects_roundtrip() -> None:
    """A warrant record with every attribute set survives; an inquiry keeps its ORI."""
    warrant = Warrant("W1", "OFF", "2020-01-01", "COURT", "1", "MO0380100", "OCA1", "NIC1")
    reply = Reply(
        id="R",
        network="local",
        status="hit",
        text="T",
        records=(Record("wanted_person", {"name": "DOE, J"}, ("violent",), warrant),),
        in_reply_to="Q",
    )
    assert message_diff(reply, roundtrip(reply)) == []
    inquiry = Inquiry(id="Q", subject="gun", fields={"serial": "X1"}, origin=Origin("MO0380100"))
    assert message_diff(inquiry, roundtrip(inquiry), NOT_CARRIED) == []
