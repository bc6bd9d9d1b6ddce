"""The ``regional`` wire (DESIGN §4.2): ASN.1 BER PDUs over TCP.

The pyasn1 classes below are the schema of record, written exactly as DESIGN §4.2
(explicit context tags on the CHOICE alternatives, implicit nowhere else). Every PDU goes
bytes -> *raw* plain tuples -> model and back (raw forms: :mod:`switch.formats.ber`).
The hot PDUs take a hand-written path (:func:`~switch.formats.ber.fast_decode`,
:func:`~switch.formats.ber.fast_encode`) proven byte-identical to pyasn1 by property
tests; everything else, and any input the fast path is not sure of, goes through pyasn1.

Carried as fields (3-letter codes, dates ``YYYYMMDD``, :mod:`switch.formats.fields`):
inquiry purpose/requester/recipient as ``PUR``/``ATN``/``SRN``, warrant data as
``WNO OFF DOW EXL ORI OCA NIC CRT``. Notices (ER/SM, absent from the schema) travel as
``message`` with key ``ER``/``SM``, ``to`` empty, priority routine and fields ``COD`` (the
number) and optionally ``REF`` (the id concerned). See docs/protocols/regional.md.
"""

from __future__ import annotations

import re
from typing import Any, Final

from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.codec.ber import encoder as ber_encoder
from pyasn1.error import PyAsn1Error
from pyasn1.type import char, constraint, namedtype, namedval, tag, univ

from switch.model import (
    ADMIN_KEYS,
    NAK_INVALID_FORMAT,
    NAK_MALFORMED,
    NAK_UNKNOWN_TYPE,
    NOTICE_KEYS,
    SUBJECTS,
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
    Reply,
    ValidationError,
    WireMessage,
    validate_fields,
    validate_id,
    validate_ori,
    validate_purpose,
)

from .base import CodecError
from .ber import (
    MAX_PDU,
    BerFramer,
    Raw,
    check_structure,
    fast_decode,
    fast_encode,
    read_header,
)
from .fields import fields_from_codes, fields_to_codes, record_from_codes, record_to_codes

# --------------------------------------------------------------------------- schema


def _ctx(number: int) -> tag.Tag:
    return tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, number)


def _tagged(asn1: Any, number: int) -> Any:
    """``[number] EXPLICIT asn1`` (typed wrapper: pyasn1's stubs leave subtype untyped)."""
    return asn1.subtype(explicitTag=_ctx(number))


def _sized(asn1: Any, size: int) -> Any:
    return asn1.subtype(subtypeSpec=constraint.ValueSizeConstraint(size, size))


class Subject(univ.Enumerated):
    namedValues = namedval.NamedValues(*((name, i) for i, name in enumerate(SUBJECTS)))


class Priority(univ.Enumerated):
    namedValues = namedval.NamedValues(("routine", 0), ("urgent", 1))


class Field(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("code", _sized(char.PrintableString(), 3)),
        namedtype.NamedType("value", char.UTF8String()),
    )


class Fields(univ.SequenceOf):
    componentType = Field()


class Record(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("file", char.UTF8String()),
        namedtype.NamedType("fields", Fields()),
        namedtype.NamedType("caveats", univ.SequenceOf(componentType=char.UTF8String())),
    )


class Bind(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("station", char.PrintableString()),
        namedtype.NamedType("secret", univ.OctetString()),
    )


class BindResult(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("ok", univ.Boolean()),
        namedtype.OptionalNamedType("reason", char.UTF8String()),
    )


class InquiryPDU(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("id", char.UTF8String()),
        namedtype.NamedType("ori", char.PrintableString()),
        namedtype.NamedType("subject", Subject()),
        namedtype.NamedType("fields", Fields()),
    )


class ReplyPDU(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("id", char.UTF8String()),
        namedtype.NamedType("re", char.UTF8String()),
        namedtype.NamedType("hit", univ.Boolean()),
        namedtype.NamedType("records", univ.SequenceOf(componentType=Record())),
        namedtype.NamedType("text", char.UTF8String()),
    )


class MessagePDU(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("id", char.UTF8String()),
        namedtype.NamedType("key", char.PrintableString()),
        namedtype.NamedType("from", char.PrintableString()),
        namedtype.NamedType("to", univ.SequenceOf(componentType=char.PrintableString())),
        namedtype.NamedType("priority", Priority()),
        namedtype.NamedType("text", char.UTF8String()),
        namedtype.OptionalNamedType("fields", Fields()),
    )


class AcceptPDU(univ.Sequence):
    componentType = namedtype.NamedTypes(namedtype.NamedType("id", char.UTF8String()))


class RefusePDU(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("id", char.UTF8String()),
        namedtype.NamedType("code", univ.Integer()),
        namedtype.NamedType("text", char.UTF8String()),
    )


class RegionalPDU(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("bind", _tagged(Bind(), 0)),
        namedtype.NamedType("bindResult", _tagged(BindResult(), 1)),
        namedtype.NamedType("inquiry", _tagged(InquiryPDU(), 2)),
        namedtype.NamedType("reply", _tagged(ReplyPDU(), 3)),
        namedtype.NamedType("message", _tagged(MessagePDU(), 4)),
        namedtype.NamedType("accept", _tagged(AcceptPDU(), 5)),
        namedtype.NamedType("refuse", _tagged(RefusePDU(), 6)),
        namedtype.NamedType("keepAlive", _tagged(univ.Null(), 7)),
        namedtype.NamedType("unbind", _tagged(univ.Null(), 8)),
    )


_SPEC: Final = RegionalPDU()
#: pyasn1 raises these besides PyAsn1Error on hostile input or bad values.
_PYASN1_ERRORS: Final = (
    PyAsn1Error,
    KeyError,
    ValueError,
    TypeError,
    IndexError,
    AttributeError,
    OverflowError,
    RecursionError,
)

# --------------------------------------------------------------------------- raw <-> pyasn1


def _pairs(fields: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(f["code"]), str(f["value"])) for f in fields)


def raw_from_pyasn1(pdu: Any) -> Raw:
    """A decoded RegionalPDU -> its raw tuple form."""
    name = pdu.getName()
    c = pdu.getComponent()
    if name == "bind":
        return ("bind", str(c["station"]), bytes(c["secret"]))
    if name == "bindResult":
        reason = c["reason"]
        return ("bindResult", bool(c["ok"]), str(reason) if reason.isValue else None)
    if name == "inquiry":
        return ("inquiry", str(c["id"]), str(c["ori"]), int(c["subject"]), _pairs(c["fields"]))
    if name == "reply":
        records = tuple(
            (str(r["file"]), _pairs(r["fields"]), tuple(str(x) for x in r["caveats"]))
            for r in c["records"]
        )
        return ("reply", str(c["id"]), str(c["re"]), bool(c["hit"]), records, str(c["text"]))
    if name == "message":
        fields = c["fields"]
        return (
            "message",
            str(c["id"]),
            str(c["key"]),
            str(c["from"]),
            tuple(str(x) for x in c["to"]),
            int(c["priority"]),
            str(c["text"]),
            _pairs(fields) if fields.isValue else None,
        )
    if name == "accept":
        return ("accept", str(c["id"]))
    if name == "refuse":
        return ("refuse", str(c["id"]), int(c["code"]), str(c["text"]))
    return (name,)  # keepAlive, unbind


def pyasn1_decode(frame: bytes) -> Raw:
    """The pyasn1 path: one PDU -> raw. Raises CodecError(22) for a schema mismatch."""
    try:
        pdu, rest = ber_decoder.decode(frame, asn1Spec=_SPEC)
        if rest:
            raise CodecError(NAK_MALFORMED, "TRAILING BYTES")
        return raw_from_pyasn1(pdu)
    except _PYASN1_ERRORS as err:
        raise CodecError(NAK_INVALID_FORMAT, "INVALID PDU") from err


def _fields_obj(pairs: tuple[tuple[str, str], ...]) -> Fields:
    obj = Fields()
    for i, (code, value) in enumerate(pairs):
        obj[i]["code"] = code
        obj[i]["value"] = value
    return obj


def pyasn1_encode(raw: Raw) -> bytes:
    """The pyasn1 path: raw -> BER. Raises CodecError(22) for values the schema refuses."""
    try:
        return bytes(ber_encoder.encode(_pdu_from_raw(raw)))
    except _PYASN1_ERRORS as err:
        raise CodecError(NAK_INVALID_FORMAT, "CANNOT ENCODE") from err


def _pdu_from_raw(raw: Raw) -> RegionalPDU:
    pdu = RegionalPDU()
    kind = raw[0]
    if kind in ("keepAlive", "unbind"):
        types: Any = pdu.componentType
        pdu[kind] = types.getTypeByPosition(types.getPositionByName(kind)).clone("")
        return pdu
    c = pdu.getComponentByName(kind)
    if kind == "bind":
        c["station"], c["secret"] = raw[1], raw[2]
    elif kind == "bindResult":
        c["ok"] = raw[1]
        if raw[2] is not None:
            c["reason"] = raw[2]
    elif kind == "inquiry":
        c["id"], c["ori"], c["subject"] = raw[1], raw[2], raw[3]
        c["fields"] = _fields_obj(raw[4])
    elif kind == "reply":
        c["id"], c["re"], c["hit"] = raw[1], raw[2], raw[3]
        records = c["records"]
        records.clear()
        for i, (file, pairs, caveats) in enumerate(raw[4]):
            records[i]["file"] = file
            records[i]["fields"] = _fields_obj(pairs)
            cav = records[i]["caveats"]
            cav.clear()
            for j, caveat in enumerate(caveats):
                cav[j] = caveat
        c["text"] = raw[5]
    elif kind == "message":
        c["id"], c["key"], c["from"] = raw[1], raw[2], raw[3]
        to = c["to"]
        to.clear()
        for i, dest in enumerate(raw[4]):
            to[i] = dest
        c["priority"], c["text"] = raw[5], raw[6]
        if raw[7] is not None:
            c["fields"] = _fields_obj(raw[7])
    elif kind == "accept":
        c["id"] = raw[1]
    elif kind == "refuse":
        c["id"], c["code"], c["text"] = raw[1], raw[2], raw[3]
    else:
        raise KeyError(kind)
    return pdu


# --------------------------------------------------------------------------- raw <-> model

_PRINTABLE_RE: Final = re.compile(r"[A-Za-z0-9 '()+,\-./:=?]*")
_DEST_RE: Final = re.compile(r"[A-Z0-9]{1,9}")
_INQUIRY_OPTIONS: Final = {"PUR": "purpose", "ATN": "requester", "SRN": "recipient"}
_PRIORITY_NUMBERS: Final = {"routine": 0, "urgent": 1}
_NOTICE_CODE: Final = "COD"
_NOTICE_REF: Final = "REF"


def _printable(value: str, field: str) -> str:
    if not _PRINTABLE_RE.fullmatch(value):
        raise ValidationError(field, f"{field}: not a PrintableString")
    return value


def _destination(value: str) -> str:
    if not _DEST_RE.fullmatch(value):
        raise ValidationError("to", "to: ORIs or broadcast codes")
    return value


class RegionalCodec:
    """ASN.1 BER codec for the ``regional`` network (county and neighbouring cities).

    ``fast=False`` forces pyasn1 for every PDU (the tests compare the two paths).
    """

    name: str = "regional"
    max_frame: int = MAX_PDU

    def __init__(self, own_ori: str, *, fast: bool = True) -> None:
        self.own_ori = own_ori
        self.fast = fast

    def framer(self) -> BerFramer:
        return BerFramer(self.max_frame)

    # ----------------------------------------------------------------- encode

    def encode(self, message: WireMessage) -> bytes:
        """One BER PDU; CodecError for what the wire cannot say."""
        raw = self.to_raw(message)
        data: bytes | None = None
        if self.fast:
            try:
                data = fast_encode(raw)
            except (ValueError, TypeError, AttributeError, OverflowError) as err:
                raise CodecError(NAK_INVALID_FORMAT, "CANNOT ENCODE") from err
        if data is None:
            data = pyasn1_encode(raw)
        if len(data) > self.max_frame:
            raise CodecError(11)
        return data

    def to_raw(self, m: WireMessage) -> Raw:
        """Model -> raw tuple, checking what the schema's string types allow."""
        try:
            return self._to_raw(m)
        except ValidationError as err:
            raise CodecError(NAK_INVALID_FORMAT, "CANNOT ENCODE FIELD") from err

    def _to_raw(self, m: WireMessage) -> Raw:
        if isinstance(m, Inquiry):
            pairs = fields_to_codes(m.fields, m.subject)
            for code, attr in _INQUIRY_OPTIONS.items():
                value = getattr(m, attr)
                if value is not None:
                    pairs.append((code, value))
            if m.subject not in SUBJECTS:
                raise ValidationError("subject", "subject: unknown")
            return (
                "inquiry",
                m.id,
                _printable(m.origin.ori, "ori"),
                SUBJECTS.index(m.subject),
                tuple(pairs),
            )
        if isinstance(m, Reply):
            if m.status not in ("hit", "no_record"):
                raise CodecError(NAK_INVALID_FORMAT, f"NO WIRE FORM FOR REPLY STATUS {m.status}")
            if m.in_reply_to is None:
                raise CodecError(NAK_INVALID_FORMAT, "REPLY WITHOUT INQUIRY ID")
            records = tuple(
                (r.file, tuple(record_to_codes(r)), tuple(r.caveats)) for r in m.records
            )
            return ("reply", m.id, m.in_reply_to, m.status == "hit", records, m.text)
        if isinstance(m, AdminMessage):
            fields = tuple(fields_to_codes(m.fields)) if m.fields else None
            return (
                "message",
                m.id,
                m.key,
                _printable(m.from_ori, "from"),
                tuple(_printable(d, "to") for d in m.to),
                _PRIORITY_NUMBERS[m.priority],
                m.text,
                fields,
            )
        if isinstance(m, Notice):
            pairs = [(_NOTICE_CODE, str(m.code))]
            if m.in_reply_to is not None:
                pairs.append((_NOTICE_REF, m.in_reply_to))
            return (
                "message",
                m.id,
                m.key,
                _printable(m.from_ori, "from"),
                (),
                0,
                m.text,
                tuple(pairs),
            )
        if isinstance(m, Ack):
            return ("accept", m.id)
        if isinstance(m, Nak):
            return ("refuse", m.id, m.code, m.text)
        if isinstance(m, Logon):
            return ("bind", _printable(m.station, "station"), m.secret.encode("utf-8"))
        if isinstance(m, LogonResult):
            return ("bindResult", m.ok, m.reason or None)
        if isinstance(m, Heartbeat):
            return ("keepAlive",)
        if isinstance(m, Logoff):
            return ("unbind",)
        raise CodecError(NAK_UNKNOWN_TYPE, "NO WIRE FORM FOR MESSAGE")

    # ----------------------------------------------------------------- decode

    def decode(self, frame: bytes) -> WireMessage:
        """One PDU as cut by the framer -> one message; only CodecError escapes."""
        if len(frame) > self.max_frame:
            raise CodecError(11)
        raw = fast_decode(frame) if self.fast else None
        if raw is None:
            if not frame or not 0xA0 <= frame[0] <= 0xA8:
                raise CodecError(NAK_UNKNOWN_TYPE)
            check_structure(frame)
            try:
                raw = pyasn1_decode(frame)
            except CodecError as err:
                err.msg_id = _sniff_id(frame)
                raise
        return self.from_raw(raw)

    def from_raw(self, raw: Raw) -> WireMessage:
        """Raw tuple -> model, validated; CodecError(22) names the id when it is readable."""
        kind = raw[0]
        msg_id = ""
        if kind in ("inquiry", "reply", "message"):
            try:
                msg_id = validate_id(raw[1])
            except ValidationError:
                msg_id = ""
        try:
            return self._from_raw(raw)
        except ValidationError as err:
            raise CodecError(NAK_INVALID_FORMAT, "INVALID FIELD", msg_id=msg_id) from err
        except CodecError as err:
            err.msg_id = err.msg_id or msg_id
            raise
        except UnicodeDecodeError as err:
            raise CodecError(NAK_INVALID_FORMAT, "INVALID FIELD", msg_id=msg_id) from err

    def _from_raw(self, raw: Raw) -> WireMessage:
        kind = raw[0]
        if kind == "inquiry":
            _, ident, ori, subject_no, pairs = raw
            if not 0 <= subject_no < len(SUBJECTS):
                raise ValidationError("subject", "subject: unknown")
            subject = SUBJECTS[subject_no]
            options: dict[str, str] = {}
            plain = []
            for code, value in pairs:
                if code in _INQUIRY_OPTIONS:
                    options[_INQUIRY_OPTIONS[code]] = value
                else:
                    plain.append((code, value))
            purpose = options.get("purpose")
            return Inquiry(
                id=validate_id(ident),
                subject=subject,
                fields=validate_fields(subject, fields_from_codes(plain)),
                origin=Origin(ori=validate_ori(ori)),
                purpose=None if purpose is None else validate_purpose(purpose),
                requester=options.get("requester"),
                recipient=options.get("recipient"),
            )
        if kind == "reply":
            _, ident, re_, hit, records, text = raw
            return Reply(
                id=validate_id(ident),
                network=self.name,
                status="hit" if hit else "no_record",
                text=text,
                records=tuple(record_from_codes(f, p, c) for f, p, c in records),
                in_reply_to=validate_id(re_, "re"),
            )
        if kind == "message":
            return self._message(raw)
        if kind == "accept":
            return Ack(id=validate_id(raw[1]))
        if kind == "refuse":
            _, ident, code, text = raw
            return Nak(id=validate_id(ident) if ident else "", code=code, text=text)
        if kind == "bind":
            station = raw[1]
            if not station:
                raise ValidationError("station", "station: empty")
            return Logon(station=_printable(station, "station"), secret=raw[2].decode("utf-8"))
        if kind == "bindResult":
            return LogonResult(ok=raw[1], reason=raw[2] or "")
        if kind == "keepAlive":
            return Heartbeat()
        if kind == "unbind":
            return Logoff()
        raise CodecError(NAK_UNKNOWN_TYPE)

    def _message(self, raw: Raw) -> WireMessage:
        _, ident, key, from_, to, priority_no, text, pairs = raw
        msg_id = validate_id(ident)
        from_ori = validate_ori(from_, "from")
        if key in NOTICE_KEYS:
            extra = dict(pairs or ())
            code = extra.pop(_NOTICE_CODE, "")
            ref = extra.pop(_NOTICE_REF, None)
            if extra or not re.fullmatch(r"\d{1,3}", code):
                raise ValidationError("fields", "fields: a notice carries COD and REF only")
            return Notice(
                id=msg_id,
                key=key,
                from_ori=from_ori,
                code=int(code),
                text=text,
                in_reply_to=None if ref is None else validate_id(ref, "re"),
            )
        if key not in ADMIN_KEYS:
            raise ValidationError("key", "key: unknown message key")
        if priority_no not in (0, 1):
            raise ValidationError("priority", "priority: routine or urgent")
        return AdminMessage(
            id=msg_id,
            key=key,
            from_ori=from_ori,
            to=tuple(_destination(d) for d in to),
            text=text,
            priority="urgent" if priority_no else "routine",
            fields=fields_from_codes(pairs) if pairs else {},
        )


def _sniff_id(frame: bytes) -> str:
    """The id of an inquiry, reply or message PDU pyasn1 refused, if it can be read."""
    if not frame or frame[0] not in (0xA2, 0xA3, 0xA4):
        return ""
    try:
        outer = read_header(frame, 0, len(frame))
        if outer is None:
            return ""
        seq = read_header(frame, outer[2], len(frame))
        if seq is None or seq[0] != 0x30:
            return ""
        first = read_header(frame, seq[2], len(frame))
        if first is None or first[0] != 0x0C:
            return ""
        return validate_id(frame[first[2] : first[2] + first[3]].decode("utf-8"))
    except (CodecError, ValidationError, UnicodeDecodeError):
        return ""
