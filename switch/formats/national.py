"""The ``national`` wire (DESIGN §4.4): length-prefixed XML documents over mutual TLS.

A frame is a 4-byte unsigned big-endian length (not counting itself) and one UTF-8 XML
document of at most 1 MiB, valid against ``xsd/national.xsd``. Both directions go
through the same checks: ``encode`` builds the tree and validates it exactly as
``decode`` validates what it receives, so the codec never sends what it would refuse.
One exception, the ACK that answers every message: an ACK whose values are each of
their XSD type is written from text and recognised by a pattern (``_ACK_RE``), because
every document that pattern matches is a valid ACK; a property test shows the text is
byte for byte what lxml writes and that both paths decode every input alike.

Untrusted XML is parsed defensively (ENGINEERING.md, Formats): one reused parser that
never resolves entities, loads no DTD, touches no network and keeps libxml2's tree
limits; any DOCTYPE or entity declaration is refused (before parsing, and again from the
parsed document's info); data is parsed from memory only. XInclude is never processed,
and an ``xi:include`` element fails the schema like any foreign element.

Order of checks on decode, and the NAK code each failure gets: size and prefix (10/11),
well-formed XML without DTD (10), ``MessageKeyCodeText`` a known key (12), the schema
(22), then the rules XSD 1.0 cannot express (which body and header elements go with
which key, ``_KEYS``) and the model's own validation (22). ``CodecError.msg_id`` carries
the document's ``MessageID`` once it could be read, so the receiver can NAK it.

What the model holds that this wire does not carry, and the decisions taken where
DESIGN leaves room, are listed in docs/protocols/national.md.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from itertools import islice
from typing import Any, Final, Literal

from lxml import etree
from lxml.etree import _Element

from switch.model import (
    NAK_INVALID_FORMAT,
    NAK_MALFORMED,
    NAK_NOT_LOGGED_ON,
    NAK_TOO_LARGE,
    NAK_UNKNOWN_TYPE,
    STATE_CODES,
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
    ValidationError,
    WireMessage,
    new_id,
    utcnow,
    validate_fields,
    validate_purpose,
)

from .base import CodecError
from .fields import Pairs, fields_from_codes, fields_to_codes, record_from_codes, record_to_codes

NAMESPACE: Final = "urn:switch:national:1"
MAX_DOCUMENT: Final = 1 << 20  # 1 MiB, the prefix not included
PREFIX: Final = 4
MAX_FRAME: Final = MAX_DOCUMENT + PREFIX

_N: Final = "{" + NAMESPACE + "}"
_ROOT: Final = _N + "NLETS"
_HEADER: Final = _N + "NLETSMessageHeader"
_KEY: Final = _N + "MessageKeyCodeText"
_MSGID: Final = _N + "MessageID"
_FIELD: Final = _N + "Field"
_RECORD: Final = _N + "Record"
_CAVEAT: Final = _N + "Caveat"

_ID_RE: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
_ORI9_RE: Final = re.compile(r"[A-Z]{2}[A-Z0-9]{7}")

#: Two-letter destinations of DQ/RQ: a state, or ``NL`` for all states.
_DQ_DESTINATIONS: Final = STATE_CODES | {"NL"}

# --------------------------------------------------------------------------- parser, schema

#: The one parser for untrusted documents. ``encoding`` forces UTF-8 whatever the
#: document declares (DESIGN: one UTF-8 document), so the byte-level DOCTYPE scan in
#: :func:`_parse` sees the markup as the parser will. Comments and processing
#: instructions are dropped so that they can neither split a text value nor reach the
#: model; lxml parsers keep per-thread state, so sharing this one is safe.
_PARSER: Final = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    attribute_defaults=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
    strip_cdata=True,
    encoding="utf-8",
)


def _load_schema() -> etree.XMLSchema:
    """Build the schema once, from package data (works from a wheel or a zip too)."""
    data = resources.files(__package__ or "switch.formats").joinpath("xsd/national.xsd")
    return etree.XMLSchema(etree.fromstring(data.read_bytes(), _PARSER))


SCHEMA: Final = _load_schema()

# --------------------------------------------------------------------------- key rules

Presence = Literal["required", "optional", "forbidden"]


@dataclass(frozen=True, slots=True)
class _KeyRule:
    """What one ``MessageKeyCodeText`` needs beyond the schema (XSD 1.0 cannot say it)."""

    body: str | None  # local name of the body element, None: no body
    reply_to: Presence  # InReplyTo
    destinations: tuple[int, int]  # min, max DestinationORIID
    control: bool = False  # DocumentControlFieldText allowed
    priority: bool = False  # Priority allowed
    agency_origin: bool = False  # OriginatingORIID must be a 9-character ORI


_CONTROL_RULE: Final = _KeyRule(None, "forbidden", (0, 0))
_INQUIRY_RULE: Final = _KeyRule(
    "NLETSInquiryData", "forbidden", (1, 1), control=True, priority=True, agency_origin=True
)
_REPLY_RULE: Final = _KeyRule("NLETSResponseData", "required", (0, 1), control=True, priority=True)
_MAIL_RULE: Final = _KeyRule("NLETSMailData", "optional", (1, 16), control=True, priority=True)
_NOTICE_RULE: Final = _KeyRule("ErrorData", "optional", (0, 1))

_KEYS: Final[Mapping[str, _KeyRule]] = {
    "LOGON": _KeyRule("LogonData", "forbidden", (0, 0), agency_origin=True),
    "LOGON-OK": _CONTROL_RULE,
    "LOGON-FAIL": _KeyRule("ErrorData", "forbidden", (0, 0)),
    "HB": _CONTROL_RULE,
    "LOGOFF": _CONTROL_RULE,
    "ACK": _KeyRule(None, "required", (0, 0)),
    "NAK": _KeyRule("ErrorData", "optional", (0, 0)),
    "QW": _INQUIRY_RULE,
    "QV": _INQUIRY_RULE,
    "QG": _INQUIRY_RULE,
    "QA": _INQUIRY_RULE,
    "DQ": _INQUIRY_RULE,
    "RQ": _INQUIRY_RULE,
    "REPLY": _REPLY_RULE,
    "DR": _REPLY_RULE,
    "RR": _REPLY_RULE,
    "AM": _MAIL_RULE,
    "YQ": _MAIL_RULE,
    "YR": _MAIL_RULE,
    "ER": _NOTICE_RULE,
    "SM": _NOTICE_RULE,
}
KEYS: Final = frozenset(_KEYS)

SUBJECT_KEYS: Final[Mapping[str, str]] = {
    "person": "QW",
    "vehicle": "QV",
    "gun": "QG",
    "article": "QA",
    "driver": "DQ",
    "registration": "RQ",
}
_KEY_SUBJECTS: Final = {key: subject for subject, key in SUBJECT_KEYS.items()}
_REPLY_KEYS: Final[Mapping[str | None, str]] = {"driver": "DR", "registration": "RR"}
_REPLY_SUBJECTS: Final[Mapping[str, str | None]] = {
    "REPLY": None,
    "DR": "driver",
    "RR": "registration",
}

#: Fields a YQ may carry (DESIGN §3); a YR adds CON. AM carries none.
_YQ_CODES: Final = frozenset("RTY RNO PRI OCA NIC NAM DOB SEX RNA RAG PHO REM".split())
_MAIL_CODES: Final[Mapping[str, frozenset[str]]] = {
    "AM": frozenset(),
    "YQ": _YQ_CODES,
    "YR": _YQ_CODES | {"CON"},
}

#: Inquiry options carried as fields (DESIGN §3).
_OPTION_CODES: Final = (("purpose", "PUR"), ("requester", "ATN"), ("recipient", "SRN"))

#: LOGON-FAIL needs an ErrorData code and the model has none: "not logged on".
LOGON_FAIL_CODE: Final = NAK_NOT_LOGGED_ON


def _fail(text: str = "INVALID MESSAGE FORMAT", code: int = NAK_INVALID_FORMAT) -> CodecError:
    return CodecError(code, text)


# --------------------------------------------------------------------------- framing


class NationalFramer:
    """Cuts a byte stream into whole frames (prefix included) of at most 1 MiB + 4.

    A length of 0 or over 1 MiB is refused as soon as the 4 prefix bytes are in, before
    any of the document is buffered: framing is lost, so the error is fatal and every
    later call raises it again. When good frames precede the bad prefix in one read,
    they are returned first and the error is raised on the next call (``feed(b"")``
    suffices), so that nothing already received is lost. The buffer never holds more
    than one frame plus the rest of one read.
    """

    def __init__(self, max_document: int = MAX_DOCUMENT) -> None:
        self._max = max_document
        self._buf = bytearray()
        self._error: CodecError | None = None

    @property
    def buffered(self) -> int:
        """Bytes held for an incomplete frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        if self._error is not None:
            raise CodecError(self._error.code, self._error.text, fatal=True)
        buf = self._buf
        buf += data
        frames: list[bytes] = []
        pos = 0
        while len(buf) - pos >= PREFIX:
            size = int.from_bytes(buf[pos : pos + PREFIX], "big")
            if size == 0 or size > self._max:
                code = NAK_MALFORMED if size == 0 else NAK_TOO_LARGE
                self._error = CodecError(code, fatal=True)
                self._buf = bytearray()
                if frames:
                    return frames
                raise CodecError(code, fatal=True)
            end = pos + PREFIX + size
            if len(buf) < end:
                break
            frames.append(bytes(buf[pos:end]))
            pos = end
        if pos:
            del buf[:pos]
        return frames


# --------------------------------------------------------------------------- parsing


def _parse(document: bytes) -> _Element:
    """Well-formed XML without any DTD, from memory, or CodecError(10)."""
    if b"<!DOCTYPE" in document or b"<!ENTITY" in document:
        raise _fail("DOCTYPE NOT ALLOWED", NAK_MALFORMED)
    try:
        root = etree.fromstring(document, _PARSER)
    except etree.XMLSyntaxError:
        raise _fail("MALFORMED XML", NAK_MALFORMED) from None
    # lxml-stubs know neither ``doctype`` nor the DTD attributes of DocInfo.
    info: Any = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise _fail("DOCTYPE NOT ALLOWED", NAK_MALFORMED)
    return root


def _header(root: _Element) -> _Element | None:
    if root.tag != _ROOT or len(root) == 0 or root[0].tag != _HEADER:
        return None
    return root[0]


def _peek_id(root: _Element) -> str:
    """The MessageID, before the schema has run, when it is there and well formed."""
    header = _header(root)
    if header is None:
        return ""
    for element in islice(header, 3):
        if element.tag == _MSGID:
            text = element.text or ""
            return text if _ID_RE.fullmatch(text) else ""
    return ""


def _check_key(root: _Element) -> None:
    """A MessageKeyCodeText we do not know is NAK 12, not a schema error."""
    header = _header(root)
    if header is not None and len(header) and header[0].tag == _KEY:
        if (header[0].text or "") not in _KEYS:
            raise _fail("UNKNOWN MESSAGE TYPE", NAK_UNKNOWN_TYPE)


@dataclass(slots=True)
class _Head:
    """The header, read once after the schema guaranteed its shape."""

    key: str
    id: str
    in_reply_to: str | None
    origin: str
    destinations: list[str]
    control: str | None
    sent: str
    priority: str | None
    created: _dt.datetime | None = None


_HEAD_SLOTS: Final = {
    _N + "InReplyTo": "in_reply_to",
    _N + "DocumentControlFieldText": "control",
    _N + "Priority": "priority",
}


def _read_head(header: _Element) -> _Head:
    head = _Head(
        key=header[0].text or "",
        id=header[1].text or "",
        in_reply_to=None,
        origin="",
        destinations=[],
        control=None,
        sent="",
        priority=None,
    )
    for element in islice(header, 2, None):
        tag, text = element.tag, element.text or ""
        if tag == _N + "OriginatingORIID":
            head.origin = text
        elif tag == _N + "DestinationORIID":
            head.destinations.append(text)
        elif tag == _N + "MessageSendDateTime":
            head.sent = text
        else:
            setattr(head, _HEAD_SLOTS[tag], text)
    return head


def _local(element: _Element) -> str:
    return str(element.tag)[len(_N) :]


def _validate(root: _Element) -> tuple[_Head, _Element | None]:
    """The schema, then the key-dependent rules; returns the header and the body."""
    if not SCHEMA.validate(root):
        raise _fail()
    head = _read_head(root[0])
    head.created = _model_time(head.sent)  # every frame's time is a real one (not 24:00)
    rule = _KEYS[head.key]
    body = root[1] if len(root) > 1 else None
    if (None if body is None else _local(body)) != rule.body:
        raise _fail(f"WRONG BODY FOR {head.key}")
    if (rule.reply_to == "required" and head.in_reply_to is None) or (
        rule.reply_to == "forbidden" and head.in_reply_to is not None
    ):
        raise _fail(f"InReplyTo {rule.reply_to.upper()} FOR {head.key}")
    low, high = rule.destinations
    if not low <= len(head.destinations) <= high:
        raise _fail(f"WRONG DESTINATIONS FOR {head.key}")
    if head.control is not None and not rule.control:
        raise _fail(f"NO DocumentControlFieldText IN {head.key}")
    if head.priority is not None and not rule.priority:
        raise _fail(f"NO Priority IN {head.key}")
    if rule.agency_origin and not _ORI9_RE.fullmatch(head.origin):
        raise _fail("OriginatingORIID MUST BE AN ORI")
    if body is not None:
        _check_body(head, body)
    return head, body


def _check_body(head: _Head, body: _Element) -> None:
    key = head.key
    if key in _KEY_SUBJECTS:
        if body.get("subject") != _KEY_SUBJECTS[key]:
            raise _fail(f"SUBJECT DOES NOT MATCH {key}")
        dest = head.destinations[0]
        if (key in ("DQ", "RQ")) != (dest in _DQ_DESTINATIONS) or (
            key not in ("DQ", "RQ") and dest != "NCIC"
        ):
            raise _fail(f"INVALID DESTINATION FOR {key}")
    elif key in _REPLY_SUBJECTS:
        hit = body.get("hit") == "true"
        if hit != (body[0].tag == _RECORD):
            raise _fail("HIT WITHOUT RECORDS" if hit else "RECORDS IN A NO-RECORD REPLY")
    elif key in _MAIL_CODES:
        allowed = _MAIL_CODES[key]
        for element in islice(body, 1, None):
            if element.get("code") not in allowed:
                raise _fail(f"FIELD NOT ALLOWED IN {key}")


# --------------------------------------------------------------------------- values


def _wire_time(value: _dt.datetime) -> str:
    """UTC with hundredths (truncated): ``2026-11-29T16:22:10.25Z``."""
    if value.tzinfo is _dt.UTC:
        t = value  # the usual case (model.utcnow): nothing to convert
    elif value.tzinfo is None or value.utcoffset() is None:
        raise _fail("TIME WITHOUT TIME ZONE")
    else:
        try:
            t = value.astimezone(_dt.UTC)
        except (OverflowError, ValueError):
            raise _fail("TIME OUT OF RANGE") from None
    return (
        f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}"
        f".{t.microsecond // 10000:02d}Z"
    )


def _model_time(text: str) -> _dt.datetime:
    try:
        return _dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail("BAD MessageSendDateTime") from None


def _real_time(text: bytes) -> bool:
    """Is a MessageSendDateTime that matched the XSD pattern a real time (what
    :func:`_model_time` accepts)?"""
    try:
        _dt.datetime.fromisoformat(text.decode("ascii"))
    except ValueError:
        return False
    return True


def _serialize(root: _Element) -> bytes:
    """Validate a built tree as :meth:`NationalCodec.decode` would, then frame it."""
    _validate(root)
    document = etree.tostring(root, encoding="utf-8", xml_declaration=False)
    if len(document) > MAX_DOCUMENT:
        raise _fail("FRAME TOO LARGE", NAK_TOO_LARGE)
    return len(document).to_bytes(PREFIX, "big") + document


# --------------------------------------------------------------------------- ACK fast path

#: The XSD's OriIdType, exactly (its 2-letter list is STATE_CODES plus NL; a unit test
#: keeps the schema and the model in step).
_ORI_ID_PATTERN: Final = (
    "(?:(?:" + "|".join(sorted(STATE_CODES | {"NL"})) + ")(?:[A-Z0-9]{7})?|NCIC)"
)
_ORI_ID_RE: Final = re.compile(_ORI_ID_PATTERN)

#: An ACK exactly as :meth:`NationalCodec._doc` and lxml write it.
_ACK_TEXT: Final = (
    '<NLETS xmlns="urn:switch:national:1" version="1"><NLETSMessageHeader>'
    "<MessageKeyCodeText>ACK</MessageKeyCodeText><MessageID>{}</MessageID>"
    "<InReplyTo>{}</InReplyTo><OriginatingORIID>{}</OriginatingORIID>"
    "<MessageSendDateTime>{}</MessageSendDateTime></NLETSMessageHeader></NLETS>"
)

#: That same text with each value as its XSD type (IdType, IdType, OriIdType and the
#: DateTimeType pattern): ASCII only, nothing to escape. Anything else, even an ACK
#: that is valid in another spelling, takes the full parse and validation.
_ID_GROUP: Final = rb"([A-Za-z0-9-]{1,40})"
_ACK_RE: Final = re.compile(
    rb'<NLETS xmlns="urn:switch:national:1" version="1"><NLETSMessageHeader>'
    rb"<MessageKeyCodeText>ACK</MessageKeyCodeText><MessageID>" + _ID_GROUP + rb"</MessageID>"
    rb"<InReplyTo>" + _ID_GROUP + rb"</InReplyTo>"
    rb"<OriginatingORIID>(" + _ORI_ID_PATTERN.encode("ascii") + rb")</OriginatingORIID>"
    rb"<MessageSendDateTime>([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{2}Z)"
    rb"</MessageSendDateTime></NLETSMessageHeader></NLETS>"
)


# --------------------------------------------------------------------------- inquiry fast path

_INQUIRY_HEAD: Final = (
    '<NLETS xmlns="urn:switch:national:1" version="1"><NLETSMessageHeader><MessageKeyCodeText>'
)
#: InquiryDataType: 1 to 16 Field elements, codes unique (FieldCodeType: [A-Z]{3}).
_MAX_INQUIRY_FIELDS: Final = 16
_CODE_RE: Final = re.compile(r"[A-Z]{3}")
#: A FieldValueType (1-256 characters) that lxml writes as is: no markup character to
#: escape, no control character (XML 1.0 forbids most; the rest lxml may escape), no
#: surrogate or non-character. Anything else takes the tree and the schema.
_PLAIN_VALUE_RE: Final = re.compile("[^\x00-\x1f\x7f&<>\ud800-\udfff\ufffe\uffff]{1,256}")


def _error_code(code: int) -> str:
    if not 0 <= code <= 999:
        raise _fail("ERROR CODE OUT OF RANGE")
    return f"{code:02d}"


def _pairs(elements: Iterable[_Element]) -> Pairs:
    return [(e.get("code") or "", e.text or "") for e in elements if e.tag == _FIELD]


# --------------------------------------------------------------------------- the codec


class NationalCodec:
    """Length-prefixed NLETS-style XML (DESIGN §4.4); one instance per connection.

    ``own_ori`` is the OriginatingORIID of the control frames this side sends: the
    station ORI on the gateway side, ``NCIC`` on the simulator side. ``clock`` and
    ``ids`` stamp control frames (MessageSendDateTime, a fresh MessageID when the model
    has no ``frame_id``); tests inject them.
    """

    name = "national"
    max_frame = MAX_FRAME

    def __init__(
        self,
        own_ori: str,
        *,
        clock: Callable[[], _dt.datetime] = utcnow,
        ids: Callable[[], str] = new_id,
    ) -> None:
        if not (_ORI9_RE.fullmatch(own_ori) or own_ori == "NCIC"):
            raise ValueError("own_ori: a 9-character ORI or NCIC")
        self.own_ori = own_ori
        self._ori_in_schema = bool(_ORI_ID_RE.fullmatch(own_ori))
        self._clock = clock
        self._ids = ids

    def framer(self) -> NationalFramer:
        return NationalFramer()

    # ------------------------------------------------------------------ encode

    def encode(self, message: WireMessage) -> bytes:
        """One whole frame; CodecError(22) when the message cannot be expressed validly."""
        if type(message) is Ack:
            return self._encode_ack(message)
        try:
            if type(message) is Inquiry:
                frame = self._encode_inquiry(message)
                if frame is not None:
                    return frame
            root = self._build(message)
        except ValidationError as err:
            raise _fail(f"INVALID {err.field or 'VALUE'}".upper()[:80]) from None
        except (ValueError, TypeError):
            # lxml refuses text that XML 1.0 cannot carry (NUL, control characters,
            # lone surrogates): the message cannot travel on this wire.
            raise _fail("TEXT NOT XML-SAFE") from None
        return _serialize(root)

    def _encode_ack(self, m: Ack) -> bytes:
        """The ACK fast path: every reply is ACKed, and a tree, a schema run and a
        serialization cost more than the rest of the ACK's way through the gateway. When
        the three variable values match their XSD types exactly, the text below *is* the
        valid document lxml would write (a property test compares the two byte for byte);
        otherwise the tree is built and validated as for any frame."""
        frame_id = m.frame_id or self._ids()
        sent = _wire_time(self._clock())
        if self._ori_in_schema and _ID_RE.fullmatch(frame_id) and _ID_RE.fullmatch(m.id):
            document = _ACK_TEXT.format(frame_id, m.id, self.own_ori, sent).encode("ascii")
            return len(document).to_bytes(PREFIX, "big") + document
        root, _ = self._doc("ACK", frame_id, self.own_ori, sent, in_reply_to=m.id)
        return _serialize(root)

    def _encode_inquiry(self, m: Inquiry) -> bytes | None:
        """The inquiry fast path, as for ACKs: when every value is of its XSD type and
        every field value is plain text (nothing lxml would escape, no character XML
        forbids), the text below is the valid document lxml would write (a property test
        compares the two byte for byte, and validates). None: build and validate it."""
        key, destination, pairs = self._inquiry_parts(m)
        rule = _KEYS[key]
        control, priority = m.control, m.priority
        if not (
            _ID_RE.fullmatch(m.id)
            and _ORI_ID_RE.fullmatch(m.origin.ori)
            and (not rule.agency_origin or _ORI9_RE.fullmatch(m.origin.ori))
            and _ORI_ID_RE.fullmatch(destination)
            and ((key in ("DQ", "RQ")) == (destination in _DQ_DESTINATIONS))
            and (key in ("DQ", "RQ") or destination == "NCIC")
            and (control is None or (rule.control and _ID_RE.fullmatch(control)))
            and (priority != "urgent" or rule.priority)
            and 1 <= len(pairs) <= _MAX_INQUIRY_FIELDS
            and len({code for code, _ in pairs}) == len(pairs)
            and all(_CODE_RE.fullmatch(c) and _PLAIN_VALUE_RE.fullmatch(v) for c, v in pairs)
        ):
            return None
        sent = _wire_time(m.created)
        document = (
            f"{_INQUIRY_HEAD}{key}</MessageKeyCodeText><MessageID>{m.id}</MessageID>"
            f"<OriginatingORIID>{m.origin.ori}</OriginatingORIID>"
            f"<DestinationORIID>{destination}</DestinationORIID>"
            + (
                ""
                if control is None
                else f"<DocumentControlFieldText>{control}</DocumentControlFieldText>"
            )
            + f"<MessageSendDateTime>{sent}</MessageSendDateTime>"
            + ("<Priority>urgent</Priority>" if priority == "urgent" else "")
            + f'</NLETSMessageHeader><NLETSInquiryData subject="{m.subject}">'
            + "".join(f'<Field code="{code}">{value}</Field>' for code, value in pairs)
            + "</NLETSInquiryData></NLETS>"
        ).encode("utf-8")
        return len(document).to_bytes(PREFIX, "big") + document

    def _build(self, m: WireMessage) -> _Element:
        if isinstance(m, Inquiry):
            return self._build_inquiry(m)
        if isinstance(m, Reply):
            return self._build_reply(m)
        if isinstance(m, AdminMessage):
            root, _ = self._doc(
                m.key,
                m.id,
                m.from_ori,
                m.created,
                in_reply_to=m.in_reply_to,
                destinations=m.to,
                control=m.control,
                priority=m.priority,
            )
            body = etree.SubElement(root, _N + "NLETSMailData")
            etree.SubElement(body, _N + "MailMessageText").text = m.text
            self._fields(body, fields_to_codes(m.fields))
            return root
        if isinstance(m, Notice):
            root, _ = self._doc(m.key, m.id, m.from_ori, m.created, in_reply_to=m.in_reply_to)
            self._error(root, m.code, m.text)
            return root
        return self._build_control(m)

    def _build_control(self, m: WireMessage) -> _Element:
        frame_id = getattr(m, "frame_id", None) or self._ids()
        now = self._clock()
        if isinstance(m, Ack):
            root, _ = self._doc("ACK", frame_id, self.own_ori, now, in_reply_to=m.id)
        elif isinstance(m, Nak):
            root, _ = self._doc("NAK", frame_id, self.own_ori, now, in_reply_to=m.id or None)
            self._error(root, m.code, m.text)
        elif isinstance(m, Logon):
            root, _ = self._doc("LOGON", frame_id, m.station, now)
            body = etree.SubElement(root, _N + "LogonData")
            etree.SubElement(body, _N + "Secret").text = m.secret
        elif isinstance(m, LogonResult):
            root, _ = self._doc("LOGON-OK" if m.ok else "LOGON-FAIL", frame_id, self.own_ori, now)
            if not m.ok:
                self._error(root, LOGON_FAIL_CODE, m.reason)
        elif isinstance(m, Heartbeat):
            root, _ = self._doc("HB", frame_id, self.own_ori, now)
        elif isinstance(m, Logoff):
            root, _ = self._doc("LOGOFF", frame_id, self.own_ori, now)
        else:
            raise _fail("UNKNOWN MESSAGE TYPE", NAK_UNKNOWN_TYPE)
        return root

    @staticmethod
    def _inquiry_parts(m: Inquiry) -> tuple[str, str, Pairs]:
        """Key, destination and fields (options included) of an inquiry's document."""
        key = SUBJECT_KEYS.get(m.subject)
        if key is None:
            raise _fail("UNKNOWN SUBJECT")
        fields = validate_fields(m.subject, m.fields)
        if key == "DQ":
            destination = fields["oln_state"]
        elif key == "RQ":
            destination = fields.get("plate_state", "NL")
        else:
            destination = "NCIC"
        pairs = fields_to_codes(fields, m.subject)
        for attr, code in _OPTION_CODES:
            value = getattr(m, attr)
            if value is not None:
                pairs.append((code, validate_purpose(value) if code == "PUR" else value))
        return key, destination, pairs

    def _build_inquiry(self, m: Inquiry) -> _Element:
        key, destination, pairs = self._inquiry_parts(m)
        root, _ = self._doc(
            key,
            m.id,
            m.origin.ori,
            m.created,
            destinations=(destination,),
            control=m.control,
            priority=m.priority,
        )
        body = etree.SubElement(root, _N + "NLETSInquiryData", subject=m.subject)
        self._fields(body, pairs)
        return root

    def _build_reply(self, m: Reply) -> _Element:
        if m.status not in ("hit", "no_record"):
            raise _fail(f"STATUS {m.status.upper()} NOT CARRIED")
        origin = m.origin.ori if m.origin is not None else self.own_ori
        root, _ = self._doc(
            _REPLY_KEYS.get(m.subject, "REPLY"),
            m.id,
            origin,
            m.created,
            in_reply_to=m.in_reply_to,
            control=m.control,
            priority=m.priority,
        )
        body = etree.SubElement(
            root, _N + "NLETSResponseData", hit="true" if m.status == "hit" else "false"
        )
        for record in m.records:
            element = etree.SubElement(body, _N + "Record", file=record.file)
            self._fields(element, record_to_codes(record))
            for caveat in record.caveats:
                etree.SubElement(element, _CAVEAT).text = caveat
        etree.SubElement(body, _N + "Text").text = m.text
        return root

    @staticmethod
    def _doc(
        key: str,
        msg_id: str,
        origin: str,
        sent: _dt.datetime | str,
        *,
        in_reply_to: str | None = None,
        destinations: Iterable[str] = (),
        control: str | None = None,
        priority: str | None = None,
    ) -> tuple[_Element, _Element]:
        nsmap: Any = {None: NAMESPACE}  # the default namespace; lxml-stubs want str keys
        root = etree.Element(_ROOT, nsmap=nsmap, version="1")
        header = etree.SubElement(root, _HEADER)
        etree.SubElement(header, _KEY).text = key
        etree.SubElement(header, _MSGID).text = msg_id
        if in_reply_to is not None:
            etree.SubElement(header, _N + "InReplyTo").text = in_reply_to
        etree.SubElement(header, _N + "OriginatingORIID").text = origin
        for destination in destinations:
            etree.SubElement(header, _N + "DestinationORIID").text = destination
        if control is not None:
            etree.SubElement(header, _N + "DocumentControlFieldText").text = control
        etree.SubElement(header, _N + "MessageSendDateTime").text = (
            sent if isinstance(sent, str) else _wire_time(sent)
        )
        if priority == "urgent":  # absent means routine: the smaller document
            etree.SubElement(header, _N + "Priority").text = priority
        return root, header

    @staticmethod
    def _fields(parent: _Element, pairs: Pairs) -> None:
        for code, value in pairs:
            etree.SubElement(parent, _FIELD, code=code).text = value

    @staticmethod
    def _error(root: _Element, code: int, text: str) -> None:
        etree.SubElement(root, _N + "ErrorData", code=_error_code(code)).text = text

    # ------------------------------------------------------------------ decode

    def decode(self, frame: bytes) -> WireMessage:
        """One frame (prefix included) -> one message; raises only CodecError."""
        if len(frame) <= PREFIX:
            raise _fail("SHORT FRAME", NAK_MALFORMED)
        size = int.from_bytes(frame[:PREFIX], "big")
        if size > MAX_DOCUMENT:
            raise _fail("FRAME TOO LARGE", NAK_TOO_LARGE)
        if size != len(frame) - PREFIX:
            raise _fail("LENGTH MISMATCH", NAK_MALFORMED)
        ack = _ACK_RE.fullmatch(frame, PREFIX)
        if ack is not None and _real_time(ack[4]):
            # Matching this pattern makes the document well formed, DTD-free and valid
            # (each group is its XSD type; the time is a real one): the ACK fast path.
            return Ack(id=ack[2].decode("ascii"), frame_id=ack[1].decode("ascii"))
        return _decode_document(bytes(frame[PREFIX:]))


def _decode_document(document: bytes) -> WireMessage:
    """The full path: parse, schema, key rules, model."""
    root = _parse(document)
    msg_id = _peek_id(root)
    try:
        _check_key(root)
        head, body = _validate(root)
        return _DECODERS[head.key](head, body)
    except CodecError as err:
        err.msg_id = err.msg_id or msg_id
        raise
    except ValueError as err:  # ValidationError included: the model refused a value
        field = getattr(err, "field", None)
        text = f"INVALID {field}".upper()[:80] if field else "INVALID MESSAGE FORMAT"
        raise CodecError(NAK_INVALID_FORMAT, text, msg_id=msg_id) from None


# --------------------------------------------------------------------------- decoders

_Decoder = Callable[[_Head, _Element | None], WireMessage]


def _created(head: _Head) -> _dt.datetime:
    assert head.created is not None  # set by _validate
    return head.created


def _text(body: _Element | None) -> str:
    assert body is not None  # _validate checked the key's body
    return body.text or ""


def _code(body: _Element | None) -> int:
    assert body is not None
    return int(body.get("code") or "0")


def _decode_inquiry(head: _Head, body: _Element | None) -> Inquiry:
    assert body is not None
    subject = _KEY_SUBJECTS[head.key]
    fields = fields_from_codes(_pairs(body))
    options = {attr: fields.pop(attr, None) for attr, _ in _OPTION_CODES}
    purpose = options["purpose"]
    return Inquiry(
        id=head.id,
        subject=subject,
        fields=validate_fields(subject, fields),
        origin=Origin(ori=head.origin),
        priority="urgent" if head.priority == "urgent" else "routine",
        purpose=None if purpose is None else validate_purpose(purpose),
        requester=options["requester"],
        recipient=options["recipient"],
        control=head.control,
        created=_created(head),
    )


def _decode_reply(head: _Head, body: _Element | None) -> Reply:
    assert body is not None
    records: list[Record] = []
    for element in body:
        if element.tag == _RECORD:
            caveats = [c.text or "" for c in element if c.tag == _CAVEAT]
            records.append(record_from_codes(element.get("file") or "", _pairs(element), caveats))
    return Reply(
        id=head.id,
        network="national",
        status="hit" if body.get("hit") == "true" else "no_record",
        text=body[-1].text or "",
        records=tuple(records),
        in_reply_to=head.in_reply_to,
        control=head.control,
        subject=_REPLY_SUBJECTS[head.key],
        origin=Origin(ori=head.origin),
        created=_created(head),
        priority="urgent" if head.priority == "urgent" else "routine",
    )


def _decode_mail(head: _Head, body: _Element | None) -> AdminMessage:
    assert body is not None
    return AdminMessage(
        id=head.id,
        key=head.key,
        from_ori=head.origin,
        to=tuple(head.destinations),
        text=body[0].text or "",
        priority="urgent" if head.priority == "urgent" else "routine",
        fields=fields_from_codes(_pairs(body)),
        in_reply_to=head.in_reply_to,
        control=head.control,
        created=_created(head),
    )


def _decode_notice(head: _Head, body: _Element | None) -> Notice:
    return Notice(
        id=head.id,
        key=head.key,
        from_ori=head.origin,
        code=_code(body),
        text=_text(body),
        in_reply_to=head.in_reply_to,
        created=_created(head),
    )


def _decode_logon(head: _Head, body: _Element | None) -> Logon:
    assert body is not None
    return Logon(station=head.origin, secret=body[0].text or "", frame_id=head.id)


_DECODERS: Final[Mapping[str, _Decoder]] = {
    "LOGON": _decode_logon,
    "LOGON-OK": lambda head, _: LogonResult(ok=True, frame_id=head.id),
    "LOGON-FAIL": lambda head, body: LogonResult(ok=False, reason=_text(body), frame_id=head.id),
    "HB": lambda head, _: Heartbeat(frame_id=head.id),
    "LOGOFF": lambda head, _: Logoff(frame_id=head.id),
    "ACK": lambda head, _: Ack(id=head.in_reply_to or "", frame_id=head.id),
    "NAK": lambda head, body: Nak(
        id=head.in_reply_to or "", code=_code(body), text=_text(body), frame_id=head.id
    ),
    **{key: _decode_inquiry for key in _KEY_SUBJECTS},
    **{key: _decode_reply for key in _REPLY_SUBJECTS},
    **{key: _decode_mail for key in _MAIL_CODES},
    "ER": _decode_notice,
    "SM": _decode_notice,
}
