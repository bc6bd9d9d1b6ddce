"""The national codec (DESIGN §4.4): vectors, round trips, refusals and hostile XML."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import re
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st
from lxml import etree

from switch import model
from switch.formats import national
from switch.formats.base import CodecError
from switch.formats.national import MAX_DOCUMENT, NationalCodec, NationalFramer
from switch.model import (
    Ack,
    AdminMessage,
    Heartbeat,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Notice,
    Origin,
    Record,
    Reply,
    Warrant,
)
from tests.strategies import XML_TEXT, Profile, inquiries, message_diff, wire_messages

VECTORS = Path("/work/shared/vectors/national.json")
NS = "urn:switch:national:1"
SENT = dt.datetime(2026, 11, 29, 16, 22, 10, 250000, tzinfo=dt.UTC)
PROFILE = Profile(text_alphabet=XML_TEXT, network="national", frame_id=True)


def codec(own: str = "NCIC") -> NationalCodec:
    return NationalCodec(own, clock=lambda: SENT)


def frame(document: str | bytes) -> bytes:
    data = document.encode() if isinstance(document, str) else document
    return len(data).to_bytes(4, "big") + data


def doc(
    key: str,
    body: str = "",
    head: str = "",
    msg_id: str = "M1",
    origin: str = "NCIC",
    reply_to: str | None = None,
) -> bytes:
    """A framed national document: key, optional InReplyTo, extra header elements, body."""
    in_reply_to = f"<InReplyTo>{reply_to}</InReplyTo>" if reply_to else ""
    return frame(
        f'<NLETS xmlns="{NS}" version="1"><NLETSMessageHeader>'
        f"<MessageKeyCodeText>{key}</MessageKeyCodeText><MessageID>{msg_id}</MessageID>"
        f"{in_reply_to}<OriginatingORIID>{origin}</OriginatingORIID>{head}"
        "<MessageSendDateTime>2026-11-29T16:22:10.25Z</MessageSendDateTime>"
        f"</NLETSMessageHeader>{body}</NLETS>"
    )


def refused(data: bytes, code: int, msg_id: str = "") -> CodecError:
    with pytest.raises(CodecError) as info:
        codec().decode(data)
    assert info.value.code == code, info.value.text
    assert info.value.msg_id == msg_id
    return info.value


# --------------------------------------------------------------------------- vectors


def _vectors() -> list[dict[str, str]]:
    return list(json.loads(VECTORS.read_text()))


def _canonical(xml: bytes) -> bytes:
    """Whitespace between elements removed, then C14N: equal documents compare equal."""
    parser = etree.XMLParser(remove_blank_text=True)
    return etree.tostring(etree.fromstring(xml, parser), method="c14n")


@pytest.mark.parametrize("vector", _vectors(), ids=lambda v: v["name"])
def test_vectors_decode_and_encode_to_an_equivalent_document(vector: dict[str, str]) -> None:
    """Every shared vector decodes, and re-encoding it yields the same document.

    The one exception is a reply's DestinationORIID, which the model does not carry
    (docs/protocols/national.md): it is removed from the vector before comparing.
    """
    c = codec()
    message = c.decode(frame(vector["xml"]))
    encoded = c.encode(message)
    assert int.from_bytes(encoded[:4], "big") == len(encoded) - 4
    expected = etree.fromstring(vector["xml"].encode())
    if isinstance(message, Reply):
        header = expected[0]
        for dest in header.findall(f"{{{NS}}}DestinationORIID"):
            header.remove(dest)
    assert _canonical(encoded[4:]) == _canonical(etree.tostring(expected))
    assert c.decode(encoded) == message


def test_vector_values_map_to_the_model() -> None:
    """The vectors mean what DESIGN says: ids, ORIs, fields, warrant and caveats."""
    c = codec()
    by_name = {v["name"]: c.decode(frame(v["xml"])) for v in _vectors()}
    assert by_name["logon"] == Logon(
        station="MO0380100", secret="EXAMPLE-SECRET", frame_id="01JDZK3V8Y7Q2W0000000000L1"
    )
    inquiry = by_name["qw_person"]
    assert isinstance(inquiry, Inquiry)
    assert inquiry.subject == "person"
    assert dict(inquiry.fields) == {"name": "DOE, JOHN A", "dob": "1980-01-01"}
    assert inquiry.origin == Origin(ori="MO0380100")
    assert inquiry.control == "S00000123"
    assert inquiry.created == SENT
    assert by_name["ack"] == Ack(
        id="01JDZK3V8Y7Q2W0000000000AA", frame_id="01JDZK3V8Y7Q2W0000000000N1"
    )
    reply = by_name["reply_hit"]
    assert isinstance(reply, Reply)
    assert (reply.status, reply.network, reply.in_reply_to) == (
        "hit",
        "national",
        "01JDZK3V8Y7Q2W0000000000AA",
    )
    assert reply.records == (
        Record(
            file="wanted_person",
            fields={"name": "DOE, JOHN A"},
            caveats=("armed_and_dangerous",),
            warrant=Warrant(
                number="F26-7781",
                offense="ARMED ROBBERY",
                extradition="1",
                entering_ori="TX2270000",
                nic="W000000777",
            ),
        ),
    )
    nak = by_name["nak"]
    assert nak == Nak(
        id="01JDZK3V8Y7Q2W0000000000AA",
        code=22,
        text="INVALID MESSAGE FORMAT",
        frame_id="01JDZK3V8Y7Q2W0000000000N3",
    )


# --------------------------------------------------------------------------- round trips


def _national_shape(m: Any) -> Any:
    """What a national round trip can give back for ``m`` (the wire's documented limits)."""
    if isinstance(m, AdminMessage):
        # REG and STATE are broadcast codes of other networks, not national destinations.
        to = tuple(d for d in m.to if d not in ("REG", "STATE")) or ("NL",)
        return dataclasses.replace(m, to=to)
    return m


def _expected(m: Any, own: str) -> Any:
    if isinstance(m, Reply):
        subject = m.subject if m.subject in ("driver", "registration") else None
        origin = m.origin if m.origin is not None else Origin(ori=own)
        return dataclasses.replace(m, subject=subject, origin=origin)
    return m


def _hundredths(t: dt.datetime) -> dt.datetime:
    return t.astimezone(dt.UTC).replace(microsecond=t.microsecond // 10000 * 10000)


@settings(max_examples=300, deadline=None)
@given(wire_messages(PROFILE), st.sampled_from(["NCIC", "MO0380100"]), st.booleans())
def test_every_kind_round_trips(message: Any, own: str, control: bool) -> None:
    """model -> wire -> model gives the same message for every kind, times to 1/100 s."""
    message = _national_shape(message)
    if control and isinstance(message, Inquiry | Reply | AdminMessage):
        message = dataclasses.replace(message, control="S12345")
    c = NationalCodec(own)
    data = c.encode(message)
    frames = c.framer().feed(data)
    assert frames == [data]
    back = c.decode(frames[0])
    expected = _expected(message, own)
    assert message_diff(expected, back) == []
    if hasattr(message, "created"):
        assert back.created == _hundredths(message.created)  # type: ignore[union-attr]


@settings(max_examples=50, deadline=None)
@given(st.sampled_from([Ack(id="X1"), Heartbeat(), Logoff(), LogonResult(ok=True)]))
def test_control_frames_without_frame_id_get_a_fresh_one(message: Any) -> None:
    """A control frame with no frame_id gets a new MessageID on every encode."""
    ids = iter(["F1", "F2"])
    c = NationalCodec("MO0380100", ids=lambda: next(ids))
    first, second = c.decode(c.encode(message)), c.decode(c.encode(message))
    assert (first.frame_id, second.frame_id) == ("F1", "F2")  # type: ignore[union-attr]


def test_control_frames_originate_from_own_ori_and_logon_from_the_station() -> None:
    """OriginatingORIID is the codec's own ORI, except for LOGON (the station)."""
    c = NationalCodec("MO0380100", clock=lambda: SENT)
    hb = etree.fromstring(c.encode(Heartbeat(frame_id="H1"))[4:])
    assert hb.findtext(f"{{{NS}}}NLETSMessageHeader/{{{NS}}}OriginatingORIID") == "MO0380100"
    logon = etree.fromstring(c.encode(Logon(station="TX2270000", secret="s3cret"))[4:])
    assert logon.findtext(f"{{{NS}}}NLETSMessageHeader/{{{NS}}}OriginatingORIID") == "TX2270000"


def test_inquiry_keys_and_destinations_follow_the_subject() -> None:
    """QW/QV/QG/QA go to NCIC; DQ to the licence state, RQ to the plate state or NL."""
    c = codec()
    origin = Origin(ori="MO0380100")
    cases = [
        ("person", {"name": "DOE, JOHN", "dob": "1980-01-01"}, "QW", "NCIC"),
        ("vehicle", {"vin": "1HGCM82633A004352"}, "QV", "NCIC"),
        ("gun", {"serial": "ABC123", "make": "COLT"}, "QG", "NCIC"),
        ("article", {"serial": "X1", "article_type": "CAMERA"}, "QA", "NCIC"),
        ("driver", {"oln": "D123", "oln_state": "KS"}, "DQ", "KS"),
        ("registration", {"plate": "ABC123", "plate_state": "IL"}, "RQ", "IL"),
        ("registration", {"vin": "1HGCM82633A004352"}, "RQ", "NL"),
    ]
    for subject, fields, key, dest in cases:
        inquiry = Inquiry(id="I1", subject=subject, fields=fields, origin=origin, created=SENT)
        root = etree.fromstring(c.encode(inquiry)[4:])
        head = f"{{{NS}}}NLETSMessageHeader/{{{NS}}}"
        assert (
            root.findtext(head + "MessageKeyCodeText"),
            root.findtext(head + "DestinationORIID"),
        ) == (key, dest)
    gun = Inquiry(id="I1", subject="gun", fields={"serial": "A1", "make": "COLT"}, origin=origin)
    assert b'code="MAK"' in c.encode(gun)


def test_inquiry_options_travel_as_pur_atn_srn_fields() -> None:
    """purpose, requester and recipient are the fields PUR, ATN and SRN (DESIGN §3)."""
    c = codec()
    inquiry = Inquiry(
        id="I9",
        subject="gun",
        fields={"serial": "A1"},
        origin=Origin(ori="MO0380100"),
        purpose="C",
        requester="DET SMITH",
        recipient="MO0380200",
        priority="urgent",
        created=SENT,
    )
    data = c.encode(inquiry)
    for piece in (
        b'code="PUR">C<',
        b'code="ATN">DET SMITH<',
        b'code="SRN">MO0380200<',
        b">urgent<",
    ):
        assert piece in data
    assert c.decode(data) == inquiry


def test_reply_keys_follow_the_subject_and_text_is_verbatim() -> None:
    """DR/RR for driver/registration answers, REPLY otherwise; CR, LF and spaces survive."""
    c = codec()
    text = "  LINE 1\r\nLINE 2  \tEND\r\n"
    for subject, key in (("driver", "DR"), ("registration", "RR"), ("person", "REPLY")):
        reply = Reply(
            id="R1",
            network="national",
            status="no_record",
            text=text,
            in_reply_to="I1",
            subject=subject,
            created=SENT,
        )
        data = c.encode(reply)
        assert f"<MessageKeyCodeText>{key}<".encode() in data
        back = c.decode(data)
        assert isinstance(back, Reply)
        assert back.text == text
        assert back.subject == (subject if key != "REPLY" else None)


def test_admin_fields_use_codes_and_wire_dates() -> None:
    """YQ fields are coded (NAM, DOB as YYYYMMDD); destinations are the `to` list."""
    c = codec()
    yq = AdminMessage(
        id="Y1",
        key="YQ",
        from_ori="MO0380100",
        to=("TX2270000", "KS"),
        text="PLEASE CONFIRM",
        fields={
            "request_type": "WANTED PERSON",
            "urgency": "U",
            "name": "DOE, JOHN",
            "dob": "1980-01-31",
        },
        created=SENT,
    )
    data = c.encode(yq)
    assert b'<Field code="DOB">19800131</Field>' in data
    assert data.count(b"<DestinationORIID>") == 2
    assert c.decode(data) == yq


# --------------------------------------------------------------------------- encode refusals


def _reply(**changes: Any) -> Reply:
    base = Reply(
        id="R1", network="national", status="no_record", text="NO RECORD", in_reply_to="I1"
    )
    return dataclasses.replace(base, **changes)


@pytest.mark.parametrize(
    "message",
    [
        _reply(status="timeout"),
        _reply(status="error"),
        _reply(in_reply_to=None),
        _reply(status="hit"),  # a hit with no record
        _reply(text="BELL\x07"),
        _reply(text="X" * 65537),
        _reply(created=dt.datetime(2026, 1, 1)),  # naive: no time zone
        _reply(origin=Origin(ori="REG")),
        AdminMessage(
            id="A1",
            key="AM",
            from_ori="MO0380100",
            to=("TX",),
            text="x",
            fields={"name": "DOE, JO"},
        ),
        AdminMessage(id="A1", key="AM", from_ori="MO0380100", to=(), text="x"),
        AdminMessage(
            id="A1", key="YQ", from_ori="MO0380100", to=("TX",), text="x", fields={"confirmed": "Y"}
        ),
        Notice(id="N1", key="ER", from_ori="NCIC", code=1000, text="x"),
        Notice(id="N1", key="XX", from_ori="NCIC", code=22, text="x"),
        Nak(id="bad id!", code=22, text="x"),
        Logon(station="MO0380100", secret="has space"),
        Logon(station="NCIC", secret="s"),
        Inquiry(
            id="I1", subject="person", fields={"name": "DOE, JOHN"}, origin=Origin(ori="MO0380100")
        ),
        Inquiry(
            id="I1",
            subject="gun",
            fields={"serial": "A"},
            origin=Origin(ori="MO0380100"),
            purpose="Q",
        ),
    ],
    ids=lambda m: type(m).__name__,
)
def test_encode_refuses_what_the_wire_cannot_carry(message: Any) -> None:
    """encode raises CodecError(22) for a message the schema or the key rules refuse."""
    with pytest.raises(CodecError) as info:
        codec().encode(message)
    assert info.value.code == model.NAK_INVALID_FORMAT


def test_encode_refuses_an_unknown_message_type() -> None:
    """Anything that is not a WireMessage is an unknown type (12)."""
    with pytest.raises(CodecError) as info:
        codec().encode(object())  # type: ignore[arg-type]
    assert info.value.code == model.NAK_UNKNOWN_TYPE


def test_own_ori_must_be_an_ori_or_ncic() -> None:
    """A codec cannot be built with an own ORI the schema would refuse."""
    with pytest.raises(ValueError):
        NationalCodec("MO")


# --------------------------------------------------------------------------- decode refusals


INQ_HEAD = "<DestinationORIID>NCIC</DestinationORIID>"
PERSON = (
    '<NLETSInquiryData subject="person"><Field code="NAM">DOE, JOHN</Field>'
    '<Field code="DOB">19800101</Field></NLETSInquiryData>'
)
CON = (
    '<NLETSMailData><MailMessageText>x</MailMessageText><Field code="CON">Y</Field></NLETSMailData>'
)


def edited(data: bytes, old: bytes, new: bytes) -> bytes:
    """A framed document with one replacement, the length prefix fixed."""
    return frame(data[4:].replace(old, new))


def test_a_good_handmade_document_decodes() -> None:
    """The helper documents below are valid unless changed (guards the refusal tests)."""
    message = codec().decode(doc("QW", PERSON, INQ_HEAD, origin="MO0380100"))
    assert isinstance(message, Inquiry)


@pytest.mark.parametrize(
    ("data", "code", "msg_id"),
    [
        (b"", 10, ""),
        (b"\x00\x00\x00\x05<a/>", 10, ""),  # prefix says 5, 4 bytes follow
        (frame(b"<NLETS"), 10, ""),
        (frame(b"\xff\xfe<\x00a\x00/\x00>\x00"), 10, ""),  # UTF-16
        (frame(b"<a>&undefined;</a>"), 10, ""),
        (frame(b"<a>" * 300 + b"</a>" * 300), 10, ""),  # deeper than libxml2 allows
        (doc("ZZ"), 12, "M1"),
        (doc("ZZ", msg_id="bad id!"), 12, ""),
        (doc("HB", msg_id="bad id!"), 22, ""),
        (doc("HB", "<Extra/>"), 22, "M1"),
        (doc("HB", head="<Priority>routine</Priority>"), 22, "M1"),
        (doc("HB", head="<DestinationORIID>TX</DestinationORIID>"), 22, "M1"),
        (doc("HB", head="<DestinationORIID>XX</DestinationORIID>"), 22, "M1"),
        (doc("HB", origin="REG"), 22, "M1"),
        (doc("HB", "<ErrorData code='22'>x</ErrorData>"), 22, "M1"),
        (doc("ACK"), 22, "M1"),  # no InReplyTo
        (doc("LOGON", "<LogonData><Secret>s</Secret></LogonData>", origin="NCIC"), 22, "M1"),
        (doc("NAK", "<ErrorData code='2x'>x</ErrorData>"), 22, "M1"),
        (doc("QW", PERSON, origin="MO0380100"), 22, "M1"),  # no destination
        (
            doc("QW", PERSON, "<DestinationORIID>TX</DestinationORIID>", origin="MO0380100"),
            22,
            "M1",
        ),
        (
            doc(
                "DQ",
                PERSON.replace("person", "driver"),
                "<DestinationORIID>NCIC</DestinationORIID>",
                origin="MO0380100",
            ),
            22,
            "M1",
        ),
        (doc("QV", PERSON, INQ_HEAD, origin="MO0380100"), 22, "M1"),  # subject != key
        (doc("QW", PERSON.replace("19800101", "19801301"), INQ_HEAD, origin="MO0380100"), 22, "M1"),
        (
            doc("QW", PERSON.replace('"DOB">19800101', '"ZZZ">X'), INQ_HEAD, origin="MO0380100"),
            22,
            "M1",
        ),
        (
            doc("QW", PERSON.replace('"DOB">19800101', '"NAM">X'), INQ_HEAD, origin="MO0380100"),
            22,
            "M1",
        ),
        (
            doc(
                "QW",
                PERSON.replace('<Field code="DOB">19800101</Field>', ""),
                INQ_HEAD,
                origin="MO0380100",
            ),
            22,
            "M1",
        ),
        (
            doc("QW", PERSON.replace("DOE, JOHN", "D0E, JOHN"), INQ_HEAD, origin="MO0380100"),
            22,
            "M1",
        ),
        (
            doc(
                "REPLY",
                '<NLETSResponseData hit="true"><Text>x</Text></NLETSResponseData>',
                reply_to="I1",
            ),
            22,
            "M1",
        ),
        (doc("REPLY", '<NLETSResponseData hit="1"><Text>x</Text></NLETSResponseData>'), 22, "M1"),
        (
            doc("AM", "<NLETSMailData><MailMessageText>x</MailMessageText></NLETSMailData>"),
            22,
            "M1",
        ),
        (
            doc(
                "YQ",
                CON,
                "<DestinationORIID>TX</DestinationORIID>",
            ),
            22,
            "M1",
        ),
        (
            doc(
                "AM",
                "<NLETSMailData><MailMessageText>x</MailMessageText></NLETSMailData>",
                "<DestinationORIID>TX</DestinationORIID><DestinationORIID>TX</DestinationORIID>",
            ),
            22,
            "M1",
        ),
        (edited(doc("HB"), b'version="1"', b'version="2"'), 22, "M1"),
        (edited(doc("HB"), b"16:22:10.25Z", b"16:22:10Z"), 22, "M1"),
        (edited(doc("HB"), b"16:22:10.25Z", b"24:00:00.00Z"), 22, "M1"),
        (edited(doc("HB"), NS.encode(), b"urn:other"), 22, ""),
        (
            edited(doc("HB"), b"<MessageID>M1</MessageID>", b"<MessageID>\xd9\xa1</MessageID>"),
            22,
            "",
        ),
        (
            edited(doc("HB"), b"<MessageID>M1</MessageID>", b"<MessageID>\xff</MessageID>"),
            10,
            "",
        ),
    ],
)
def test_decode_refuses_with_the_right_code_and_id(data: bytes, code: int, msg_id: str) -> None:
    """Malformed XML is 10, an unknown key 12, anything the schema or rules refuse 22.

    ``msg_id`` is the MessageID whenever it could be read, so the peer can be NAKed.
    """
    refused(data, code, msg_id)


def test_decode_checks_frame_size_and_prefix() -> None:
    """A frame whose prefix disagrees with its size, or over 1 MiB, is refused."""
    refused(b"\x00\x00\x00", 10)
    big = (MAX_DOCUMENT + 1).to_bytes(4, "big") + b" " * (MAX_DOCUMENT + 1)
    refused(big, 11)


# --------------------------------------------------------------------------- hostile XML


def _secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("SECRETMARKER")
    return path


HOSTILE = {
    "billion_laughs": '<!DOCTYPE NLETS [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">'
    '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">'
    '<!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;"><!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">]>'
    "<NLETS>&f;&f;&f;&f;&f;&f;&f;&f;&f;&f;</NLETS>",
    "xxe_file": '<!DOCTYPE NLETS [<!ENTITY x SYSTEM "file://{path}">]><NLETS>&x;</NLETS>',
    "external_subset": '<!DOCTYPE NLETS SYSTEM "file://{path}"><NLETS/>',
    "parameter_entity": '<!DOCTYPE NLETS [<!ENTITY % p SYSTEM "file://{path}"> %p;]><NLETS/>',
    "xxe_network": '<!DOCTYPE NLETS [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]><NLETS>&x;</NLETS>',
    "dtd_network": '<!DOCTYPE NLETS SYSTEM "http://127.0.0.1:{port}/x.dtd"><NLETS/>',
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_doctype_and_entities_are_refused_without_file_or_network_access(
    name: str, tmp_path: Path
) -> None:
    """DOCTYPE, entity tricks and external references: CodecError(10), nothing fetched.

    The codec and also its bare parser (bypassing the byte-level DOCTYPE check) are
    run against a FIFO and a listening socket: libxml2 opening the FIFO or connecting
    would be seen (lxml 6.1 with ``collect_ids=False`` does open external subsets).
    """
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    opened = threading.Event()

    def writer() -> None:
        fd = os.open(fifo, os.O_WRONLY)  # returns only once a reader opened the FIFO
        opened.set()
        try:
            os.write(fd, b"SECRETMARKER")
        except BrokenPipeError:  # our own release below: the reader is already gone
            pass
        finally:
            os.close(fd)

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.setblocking(False)
        port = listener.getsockname()[1]
        data = HOSTILE[name].format(path=fifo, port=port).encode()
        error = refused(frame(data), model.NAK_MALFORMED)
        assert "SECRET" not in error.text
        try:
            parsed = etree.tostring(etree.fromstring(data, national._PARSER))
        except etree.XMLSyntaxError:
            parsed = b""
        assert b"SECRETMARKER" not in parsed
        with pytest.raises(BlockingIOError):
            listener.accept()
    assert not opened.wait(0.2), "the parser opened the external file"
    os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))  # release the writer
    thread.join(2)


def test_xinclude_is_not_processed(tmp_path: Path) -> None:
    """An xi:include is never expanded: it is a foreign element, refused by the schema."""
    secret = _secret_file(tmp_path)
    body = (
        '<NLETSMailData xmlns:xi="http://www.w3.org/2001/XInclude"><MailMessageText>'
        f'<xi:include href="file://{secret}" parse="text"/></MailMessageText></NLETSMailData>'
    )
    error = refused(doc("AM", body, "<DestinationORIID>TX</DestinationORIID>"), 22, "M1")
    assert "SECRET" not in error.text


def test_comments_and_cdata_do_not_change_values() -> None:
    """A comment inside a value is dropped (not a split); CDATA is plain text."""
    body = (
        '<NLETSResponseData hit="false"><Text>NO <!-- c --><![CDATA[RECORD <&>]]><?pi x?></Text>'
        "</NLETSResponseData>"
    )
    message = codec().decode(doc("REPLY", body, reply_to="I1"))
    assert isinstance(message, Reply)
    assert message.text == "NO RECORD <&>"


def test_the_doctype_check_applies_anywhere_in_the_document() -> None:
    """The byte sequences <!DOCTYPE and <!ENTITY are refused even in comments or CDATA."""
    data = doc("HB")[4:].replace(b"</NLETS>", b"<![CDATA[ <!DOCTYPE ]]></NLETS>")
    refused(frame(data), 10)
    data = doc("HB")[4:].replace(b"</NLETS>", b"<!-- <!ENTITY x --></NLETS>")
    refused(frame(data), 10)


# --------------------------------------------------------------------------- framing


def test_framer_refuses_a_huge_length_before_buffering() -> None:
    """A prefix over 1 MiB is fatal (11) as soon as its 4 bytes arrive; nothing kept."""
    framer = NationalFramer()
    assert framer.feed(b"\x7f\xff") == []
    with pytest.raises(CodecError) as info:
        framer.feed(b"\xff\xff")
    assert (info.value.code, info.value.fatal, framer.buffered) == (11, True, 0)
    with pytest.raises(CodecError) as again:
        framer.feed(b"more")
    assert again.value.fatal


def test_framer_refuses_a_zero_length() -> None:
    """A zero-length frame carries no document: framing is lost (fatal 10)."""
    with pytest.raises(CodecError) as info:
        NationalFramer().feed(b"\x00\x00\x00\x00")
    assert (info.value.code, info.value.fatal) == (10, True)


def test_framer_returns_good_frames_before_a_bad_prefix() -> None:
    """Frames that precede a bad prefix in one read are returned; the error comes next."""
    good = codec().encode(Heartbeat(frame_id="H1"))
    framer = NationalFramer()
    assert framer.feed(good + good + b"\xff\xff\xff\xff") == [good, good]
    with pytest.raises(CodecError) as info:
        framer.feed(b"")
    assert (info.value.code, info.value.fatal) == (11, True)


def test_framer_accepts_exactly_one_mebibyte() -> None:
    """The limit is inclusive: a 1 MiB document is one frame; the buffer stays bounded."""
    data = MAX_DOCUMENT.to_bytes(4, "big") + b"x" * MAX_DOCUMENT
    framer = NationalFramer()
    out: list[bytes] = []
    for i in range(0, len(data), 65536):
        out += framer.feed(data[i : i + 65536])
        assert framer.buffered <= national.MAX_FRAME
    assert out == [data]
    assert framer.buffered == 0


@settings(max_examples=100, deadline=None)
@given(
    st.lists(wire_messages(PROFILE), min_size=1, max_size=4),
    st.lists(st.integers(1, 400), min_size=1, max_size=40),
)
def test_framer_reassembles_any_chunking(messages: list[Any], cuts: list[int]) -> None:
    """However the stream is cut, the framer returns exactly the encoded frames."""
    c = codec()
    frames = [c.encode(_national_shape(m)) for m in messages]
    stream = b"".join(frames)
    framer = c.framer()
    got: list[bytes] = []
    pos = 0
    for cut in cuts * (len(stream) // max(sum(cuts), 1) + 1):
        if pos >= len(stream):
            break
        got += framer.feed(stream[pos : pos + cut])
        pos += cut
    got += framer.feed(stream[pos:])
    assert got == frames
    assert framer.buffered == 0


# --------------------------------------------------------------------------- schema vs model


def _schema() -> etree._Element:
    from importlib import resources

    data = resources.files("switch.formats").joinpath("xsd/national.xsd").read_bytes()
    return etree.fromstring(data)


def _enum(name: str) -> set[str]:
    xs = "{http://www.w3.org/2001/XMLSchema}"
    for simple in _schema().iter(xs + "simpleType"):
        if simple.get("name") == name:
            return {e.get("value") or "" for e in simple.iter(xs + "enumeration")}
    raise AssertionError(name)


def test_schema_enumerations_match_the_model() -> None:
    """Keys, subjects, files and caveats in the XSD are exactly the model's closed sets."""
    assert _enum("KeyType") == national.KEYS
    assert _enum("SubjectType") == set(model.SUBJECTS)
    assert _enum("FileType") == set(model.FILES)
    assert _enum("CaveatType") == set(model.CAVEATS)
    assert set(national.SUBJECT_KEYS) == set(model.SUBJECTS)


def test_schema_ori_codes_are_the_state_codes_and_nl() -> None:
    """The ORIID pattern lists STATE_CODES plus NL, nothing else."""
    xs = "{http://www.w3.org/2001/XMLSchema}"
    pattern = next(
        p.get("value") or ""
        for s in _schema().iter(xs + "simpleType")
        if s.get("name") == "OriIdType"
        for p in s.iter(xs + "pattern")
    )
    codes = set(re.fullmatch(r"\(([A-Z|]+)\).*", pattern).group(1).split("|"))  # type: ignore[union-attr]
    assert codes == model.STATE_CODES | {"NL"}


# --------------------------------------------------------------------------- ACK fast path

_ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"
ack_ids = st.text(_ID_CHARS, min_size=1, max_size=40)
schema_oris = st.one_of(
    st.just("NCIC"),
    st.sampled_from(sorted(model.STATE_CODES | {"NL"})).flatmap(
        lambda code: st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=7, max_size=7).map(
            lambda rest: code + rest
        )
    ),
)
wire_times = st.datetimes(
    min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31)
).map(lambda t: t.replace(tzinfo=dt.UTC))


def _lxml_ack(c: NationalCodec, frame_id: str, acked: str, sent: dt.datetime) -> bytes:
    """The ACK as the general path builds, validates and serializes it."""
    root, _ = c._doc("ACK", frame_id, c.own_ori, sent, in_reply_to=acked)
    return national._serialize(root)


@settings(max_examples=300)
@given(ack_ids, ack_ids, schema_oris, wire_times)
def test_ack_fast_path_writes_exactly_what_lxml_writes(
    frame_id: str, acked: str, ori: str, sent: dt.datetime
) -> None:
    c = NationalCodec(ori, clock=lambda: sent)
    data = c.encode(Ack(id=acked, frame_id=frame_id))
    assert data == _lxml_ack(c, frame_id, acked, sent)
    assert national._ACK_RE.fullmatch(data, 4) is not None  # it took the fast path
    assert c.decode(data) == Ack(id=acked, frame_id=frame_id)
    assert national._decode_document(data[4:]) == Ack(id=acked, frame_id=frame_id)


@pytest.mark.parametrize(
    ("frame_id", "acked", "own"),
    [
        ("BAD ID", "M1", "NCIC"),  # a space: not an IdType
        ("F1", "x" * 41, "NCIC"),  # too long
        ("F1", "M\u00e91", "NCIC"),  # not ASCII
        ("F1", "M1", "ZZ0000000"),  # an ORI the codec takes but the schema does not
    ],
)
def test_ack_outside_the_fast_path_is_built_and_validated(
    frame_id: str, acked: str, own: str
) -> None:
    c = NationalCodec(own, clock=lambda: SENT)
    with pytest.raises(CodecError) as info:
        c.encode(Ack(id=acked, frame_id=frame_id))
    assert info.value.code == 22


def test_ack_fast_path_uses_one_frame_id_and_one_clock_reading() -> None:
    """A generated frame id is drawn once, even when the slow path builds the ACK."""
    drawn: list[str] = []

    def ids() -> str:
        drawn.append(f"F{len(drawn)}")
        return drawn[-1]

    c = NationalCodec("NCIC", clock=lambda: SENT, ids=ids)
    assert c.decode(c.encode(Ack(id="M1"))) == Ack(id="M1", frame_id="F0")
    with pytest.raises(CodecError):
        c.encode(Ack(id="M 1"))
    assert drawn == ["F0", "F1"]


def _mutations() -> st.SearchStrategy[tuple[int, str, bytes]]:
    return st.tuples(
        st.integers(min_value=0, max_value=400),
        st.sampled_from(["replace", "insert", "delete"]),
        st.binary(min_size=1, max_size=3)
        | st.sampled_from([b"<", b">", b"&", b"'", b'"', b" ", b"\xc3\xa9", b"\x00", b"1", b"A"]),
    )


@settings(max_examples=500)
@given(ack_ids, ack_ids, schema_oris, wire_times, st.lists(_mutations(), max_size=3))
def test_decode_agrees_with_the_full_path_on_mutated_acks(
    frame_id: str,
    acked: str,
    ori: str,
    sent: dt.datetime,
    mutations: list[tuple[int, str, bytes]],
) -> None:
    """Whatever bytes arrive, the fast path answers only where the full parse and
    validation give the same answer, and otherwise defers to them."""
    data = bytearray(NationalCodec(ori, clock=lambda: sent).encode(Ack(acked, frame_id))[4:])
    for where, how, what in mutations:
        at = where % (len(data) + 1)
        if how == "replace":
            data[at : at + len(what)] = what
        elif how == "insert":
            data[at:at] = what
        else:
            del data[at : at + len(what)]
    document = bytes(data)
    try:
        expected: object = national._decode_document(document)
    except CodecError as err:
        expected = (err.code, err.text, err.msg_id)
    try:
        got: object = codec().decode(frame(document))
    except CodecError as err:
        got = (err.code, err.text, err.msg_id)
    assert got == expected


def test_ack_with_an_unreal_time_is_refused_as_before() -> None:
    """24:00 matches the XSD pattern (and xs:dateTime) but is no real time: the fast path
    leaves it to the full path, which refuses it."""
    data = doc("ACK", reply_to="M0").replace(b"16:22:10.25", b"24:00:00.00")
    assert national._ACK_RE.fullmatch(data, 4) is not None
    refused(data, 22, "M1")


# --------------------------------------------------------------------------- inquiry fast path


def _outcome(encode: Any, message: Any) -> Any:
    """The frame, or the refusal as (code, text)."""
    try:
        return encode(message)
    except CodecError as exc:
        return (exc.code, str(exc))


def _tree_only(own: str) -> NationalCodec:
    """A codec whose inquiries always take the tree, the schema and lxml's serializer."""
    codec = NationalCodec(own)
    codec._encode_inquiry = lambda m: None  # type: ignore[method-assign]
    return codec


#: Free text with everything that must not reach the template unescaped: markup,
#: controls, surrogates, non-characters, non-ASCII.
_HOSTILE = st.text(
    st.characters(codec=None, categories=None) | st.sampled_from("&<>\"'\r\n\t\x00\x7f\ufffe"),
    max_size=260,
)


@settings(max_examples=400, deadline=None)
@given(
    st.builds(
        lambda m, created, control, requester, recipient, priority: dataclasses.replace(
            m,
            created=created,
            control=control,
            requester=requester,
            recipient=recipient,
            priority=priority,
        ),
        inquiries(PROFILE),
        wire_times,
        st.none() | ack_ids | st.text(max_size=42),
        st.none() | _HOSTILE,
        st.none() | st.text(XML_TEXT, min_size=1, max_size=300),
        st.sampled_from(["routine", "urgent"]),
    ),
    st.sampled_from(["NCIC", "MO0380100"]),
)
def test_inquiry_fast_path_agrees_with_the_tree(message: Inquiry, own: str) -> None:
    """For every inquiry, the fast path gives the same bytes as building, validating
    and serializing the tree with lxml, or the same refusal; hostile text, long or
    odd control numbers and every subject included."""
    codec = NationalCodec(own)
    fast = _outcome(codec.encode, message)
    assert fast == _outcome(_tree_only(own).encode, message)
    took = isinstance(fast, bytes) and codec._encode_inquiry(message) is not None
    event("fast path" if took else "tree")


@settings(max_examples=200, deadline=None)
@given(
    inquiries(PROFILE),
    wire_times,
)
def test_ordinary_inquiries_take_the_fast_path(message: Inquiry, created: dt.datetime) -> None:
    """What the gateway sends every time (upper-case fields, a state control number)
    is written from the template, and it is a valid document that decodes back."""
    message = dataclasses.replace(message, created=created, control="S0000A1B2C")
    c = NationalCodec("NCIC")
    data = c._encode_inquiry(message)
    assert data is not None
    assert data == _tree_only("NCIC").encode(message)
    root = etree.fromstring(data[4:])
    assert national.SCHEMA.validate(root)
    back = c.decode(data)
    assert isinstance(back, Inquiry) and back.id == message.id and back.control == "S0000A1B2C"


def test_inquiry_with_markup_in_a_field_is_escaped_by_lxml() -> None:
    """A requester with & and < leaves the fast path; lxml escapes it."""
    m = Inquiry(
        id="Q1",
        subject="person",
        fields={"name": "DOE, JOHN", "dob": "1980-01-01"},
        origin=Origin(ori="MO0380100"),
        requester="SMITH & <JONES>",
        created=SENT,
    )
    c = NationalCodec("NCIC")
    assert c._encode_inquiry(m) is None
    data = c.encode(m)
    assert b"SMITH &amp; &lt;JONES&gt;" in data
