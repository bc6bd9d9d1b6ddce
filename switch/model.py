"""Canonical messages: the one vocabulary every layer, codec and simulator speaks.

Wire formats translate to and from these dataclasses; nothing above ``switch/formats``
ever sees wire bytes. Validation lives here so that the API, the codecs and the
simulators refuse the same bad input with the same words (DESIGN §3).
"""

from __future__ import annotations

import datetime as _dt
import itertools
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

# --------------------------------------------------------------------------- closed sets

Priority = Literal["urgent", "routine"]
PRIORITIES: Final = ("urgent", "routine")

SUBJECTS: Final = ("person", "vehicle", "driver", "registration", "gun", "article")

FILES: Final = (
    "wanted_person",
    "stolen_vehicle",
    "stolen_gun",
    "stolen_article",
    "driver",
    "registration",
    "protection_order",
    "missing_person",
)

#: Caveats that put an officer at risk: a hit carrying one of these is ``urgent``.
CAVEATS: Final = ("armed_and_dangerous", "violent", "escape_risk", "suicidal", "medical")
OFFICER_SAFETY_CAVEATS: Final = frozenset({"armed_and_dangerous", "violent", "escape_risk"})

REPLY_STATUSES: Final = ("hit", "no_record", "error", "timeout", "unavailable")

ADMIN_KEYS: Final = ("AM", "YQ", "YR")
NOTICE_KEYS: Final = ("ER", "SM")

#: NCIC-style purpose codes (C criminal justice, J criminal justice employment, ...).
PURPOSES: Final = frozenset("CDEFHJSVX")

SEXES: Final = frozenset("MFU")
RACES: Final = frozenset("WBIAU")

#: NAK codes, the same numbers in every format (DESIGN §4).
NAK_MALFORMED: Final = 10
NAK_TOO_LARGE: Final = 11
NAK_UNKNOWN_TYPE: Final = 12
NAK_INVALID_DESTINATION: Final = 19
NAK_INVALID_FORMAT: Final = 22
NAK_NOT_LOGGED_ON: Final = 30
NAK_WINDOW_EXCEEDED: Final = 31
NAK_INTERNAL: Final = 50
NAK_TEXTS: Final[Mapping[int, str]] = {
    NAK_MALFORMED: "MALFORMED FRAME",
    NAK_TOO_LARGE: "FRAME TOO LARGE",
    NAK_UNKNOWN_TYPE: "UNKNOWN MESSAGE TYPE",
    NAK_INVALID_DESTINATION: "INVALID DESTINATION",
    NAK_INVALID_FORMAT: "INVALID MESSAGE FORMAT",
    NAK_NOT_LOGGED_ON: "NOT LOGGED ON",
    NAK_WINDOW_EXCEEDED: "WINDOW EXCEEDED",
    NAK_INTERNAL: "INTERNAL ERROR",
}

#: NAK code -> the reason name counted in ``switch_frames_rejected_total{reason}`` (and
#: in the simulators' stats), one closed set for the gateway and the networks.
NAK_REASONS: Final[Mapping[int, str]] = {
    NAK_MALFORMED: "malformed",
    NAK_TOO_LARGE: "too_large",
    NAK_UNKNOWN_TYPE: "unknown_type",
    NAK_INVALID_DESTINATION: "invalid_destination",
    NAK_INVALID_FORMAT: "invalid_format",
    NAK_NOT_LOGGED_ON: "not_logged_on",
    NAK_WINDOW_EXCEEDED: "window_exceeded",
    NAK_INTERNAL: "internal",
}

#: US states, DC and territories: the 2-letter codes an ORI may start with.
STATE_CODES: Final = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV "
    "NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP".split()
)

# --------------------------------------------------------------------------- field codes

#: Canonical field name -> NCIC-style code (regional, state and national use the codes).
#: ``make`` is VMA on vehicles and MAK on guns: use :func:`field_code`.
FIELD_CODES: Final[Mapping[str, str]] = {
    "name": "NAM",
    "dob": "DOB",
    "sex": "SEX",
    "race": "RAC",
    "soc": "SOC",
    "oln": "OLN",
    "oln_state": "OLS",
    "plate": "LIC",
    "plate_state": "LIS",
    "plate_year": "LIY",
    "plate_type": "LIT",
    "vin": "VIN",
    "make": "VMA",
    "serial": "SER",
    "caliber": "CAL",
    "article_type": "TYP",
    "brand": "BRA",
    "height": "HGT",
    "weight": "WGT",
    "misc": "MIS",
    "caution": "CMC",
    "ori": "ORI",  # entering agency of a non-warrant record (switch/formats/fields.py)
    # record details the simulators return (codes of our own where NCIC has none we need)
    "status": "STA",
    "expires": "EXP",
    "vehicle_year": "VYR",
    "vehicle_model": "VMO",
    "vehicle_color": "VCO",
    "owner": "OWN",
    "date_of_theft": "DOT",
    # hit-confirmation fields of YQ / YR (DESIGN §3)
    "request_type": "RTY",
    "request_number": "RNO",
    "urgency": "PRI",
    "oca": "OCA",
    "nic": "NIC",
    "requester_name": "RNA",
    "requester_agency": "RAG",
    "phone": "PHO",
    "remarks": "REM",
    "confirmed": "CON",
    # inquiry options carried as fields (DESIGN §3)
    "purpose": "PUR",
    "requester": "ATN",
    "recipient": "SRN",
}

#: Warrant attribute -> code; warrant data travels as these fields on coded wires.
WARRANT_CODES: Final[Mapping[str, str]] = {
    "number": "WNO",
    "offense": "OFF",
    "issued": "DOW",
    "extradition": "EXL",
    "entering_ori": "ORI",
    "oca": "OCA",
    "nic": "NIC",
    "court": "CRT",
}

CODE_FIELDS: Final[Mapping[str, str]] = {
    **{code: name for name, code in FIELD_CODES.items()},
    "MAK": "make",
}

#: Canonical fields whose value is a date: ISO in the model, YYYYMMDD on coded wires.
DATE_FIELDS: Final = frozenset({"dob", "expires", "date_of_theft"})


def field_code(name: str, subject_or_file: str = "") -> str:
    """Return the wire code of a canonical field (``make`` depends on what is described)."""
    if name == "make" and subject_or_file in ("gun", "stolen_gun"):
        return "MAK"
    try:
        return FIELD_CODES[name]
    except KeyError:
        raise ValidationError(name, f"unknown field {name!r}") from None


def code_field(code: str) -> str:
    """Return the canonical name of a wire code; unknown codes are a validation error."""
    try:
        return CODE_FIELDS[code]
    except KeyError:
        raise ValidationError(code, f"unknown field code {code!r}") from None


# --------------------------------------------------------------------------- validation

_Rule = Callable[[object, str], str]


class ValidationError(ValueError):
    """Input that breaks a rule of DESIGN §3; ``field`` names the culprit (API ``error.field``)."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


_ORI_RE: Final = re.compile(r"[A-Z]{2}[A-Z0-9]{7}")
_ID_RE: Final = re.compile(r"[A-Za-z0-9-]{1,40}")
_IDENT_RE: Final = re.compile(r"[A-Z0-9]{1,20}")
_NAME_RE: Final = re.compile(r"[A-Z][A-Z' -]*, [A-Z][A-Z' -]*")


def is_ori(value: str) -> bool:
    return bool(_ORI_RE.fullmatch(value)) and value[:2] in STATE_CODES


def validate_ori(value: object, field: str = "ori") -> str:
    if not isinstance(value, str) or not is_ori(value.strip().upper()):
        raise ValidationError(
            field, f"{field}: an ORI is a 2-letter state code and 7 letters or digits"
        )
    return value.strip().upper()


def validate_id(value: object, field: str = "id") -> str:
    if not isinstance(value, str) or not _ID_RE.fullmatch(value):
        raise ValidationError(field, f"{field}: 1-40 characters of A-Z, a-z, 0-9 and '-'")
    return value


def normalize_name(value: object, field: str = "name") -> str:
    """``Doe,john  a`` -> ``DOE, JOHN A``; refuse what NCIC would refuse."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field}: expected text")
    text = " ".join(value.upper().split())
    text = re.sub(r"\s*,\s*", ", ", text).strip()
    if any(ch.isdigit() for ch in text):
        raise ValidationError(field, f"{field}: a name has no digits")
    if text.count(",") != 1:
        raise ValidationError(field, f"{field}: expected 'LAST, FIRST MIDDLE' with one comma")
    if not 3 <= len(text) <= 30:
        raise ValidationError(field, f"{field}: 3 to 30 characters")
    if not _NAME_RE.fullmatch(text):
        raise ValidationError(
            field, f"{field}: letters, space, hyphen and apostrophe only, 'LAST, FIRST'"
        )
    return text


def validate_date(value: object, field: str = "dob") -> str:
    """Accept an ISO date (``1980-01-01``); return it normalised. Never a future DOB."""
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValidationError(field, f"{field}: expected a date YYYY-MM-DD")
    try:
        day = _dt.date.fromisoformat(value)
    except ValueError:
        raise ValidationError(field, f"{field}: not a calendar date") from None
    if day.year < 1850:
        raise ValidationError(field, f"{field}: year before 1850")
    return day.isoformat()


def to_wire_date(iso: str) -> str:
    """``1980-01-01`` -> ``19800101`` (regional, state and national wires)."""
    return iso.replace("-", "")


def from_wire_date(wire: str, field: str = "dob") -> str:
    """``19800101`` -> ``1980-01-01``; a malformed value is a validation error."""
    if not re.fullmatch(r"\d{8}", wire):
        raise ValidationError(field, f"{field}: expected a date YYYYMMDD")
    return validate_date(f"{wire[:4]}-{wire[4:6]}-{wire[6:]}", field)


def _identifier(value: object, field: str) -> str:
    """LIC, VIN, OLN, SER: upper case, no spaces or hyphens."""
    if not isinstance(value, str):
        raise ValidationError(field, f"{field}: expected text")
    text = value.upper().replace(" ", "").replace("-", "")
    if not _IDENT_RE.fullmatch(text):
        raise ValidationError(field, f"{field}: 1-20 letters or digits")
    return text


def _state(value: object, field: str) -> str:
    if not isinstance(value, str) or value.strip().upper() not in STATE_CODES:
        raise ValidationError(field, f"{field}: expected a 2-letter state code")
    return value.strip().upper()


def _choice(allowed: frozenset[str]) -> _Rule:
    def rule(value: object, field: str) -> str:
        if not isinstance(value, str) or value.strip().upper() not in allowed:
            raise ValidationError(field, f"{field}: one of {', '.join(sorted(allowed))}")
        return value.strip().upper()

    return rule


def _text(limit: int) -> _Rule:
    def rule(value: object, field: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValidationError(field, f"{field}: expected non-empty text")
        text = " ".join(value.upper().split())
        if len(text) > limit or not text.isprintable() or not text.isascii():
            raise ValidationError(field, f"{field}: at most {limit} printable ASCII characters")
        return text

    return rule


def _year(value: object, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}", value):
        raise ValidationError(field, f"{field}: expected a 4-digit year")
    return value


def _vin(value: object, field: str) -> str:
    text = _identifier(value, field)
    if len(text) != 17 or any(ch in "IOQ" for ch in text):
        raise ValidationError(field, f"{field}: 17 characters, no I, O or Q")
    return text


def _ssn(value: object, field: str) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"\d{9}", value.replace("-", "")):
        raise ValidationError(field, f"{field}: expected 9 digits")
    return value.replace("-", "")


_FIELD_RULES: Final[Mapping[str, _Rule]] = {
    "name": normalize_name,
    "dob": validate_date,
    "sex": _choice(SEXES),
    "race": _choice(RACES),
    "soc": _ssn,
    "oln": _identifier,
    "oln_state": _state,
    "plate": _identifier,
    "plate_state": _state,
    "plate_year": _year,
    "plate_type": _text(2),
    "vin": _vin,
    "make": _text(24),
    "serial": _identifier,
    "caliber": _text(4),
    "article_type": _text(7),
    "brand": _text(24),
}

#: subject -> (alternatives of required field sets, optional fields). The first required
#: field missing from the closest alternative is the one an error names.
SUBJECT_FIELDS: Final[Mapping[str, tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]]] = {
    "person": ((("name", "dob"), ("name", "oln")), ("sex", "race", "oln_state", "soc")),
    "vehicle": ((("plate", "plate_state"), ("vin",)), ("plate_year", "plate_type", "make")),
    "driver": ((("oln", "oln_state"),), ("name", "dob")),
    "registration": ((("plate", "plate_state"), ("vin",)), ("plate_year", "plate_type")),
    "gun": ((("serial",),), ("make", "caliber")),
    "article": ((("serial", "article_type"),), ("brand",)),
}


def validate_subject(subject: object) -> str:
    if not isinstance(subject, str) or subject not in SUBJECTS:
        raise ValidationError("subject", f"subject: one of {', '.join(SUBJECTS)}")
    return subject


def validate_fields(subject: str, fields: object) -> dict[str, str]:
    """Check and normalise an inquiry's fields against the subject's rules (DESIGN §3).

    Raises ValidationError naming the first missing identifying field, an unknown field
    or a malformed value, so that nothing incomplete is ever sent to a network.
    """
    validate_subject(subject)
    if not isinstance(fields, Mapping):
        raise ValidationError("fields", "fields: expected an object")
    alternatives, optional = SUBJECT_FIELDS[subject]
    allowed = {f for alt in alternatives for f in alt} | set(optional)
    out: dict[str, str] = {}
    for name, value in fields.items():
        if name not in allowed:
            raise ValidationError(str(name), f"{name}: not a field of a {subject} inquiry")
        if value is None or value == "":
            continue
        rule = _FIELD_RULES[name]
        out[name] = rule(value, name)
    for alt in alternatives:
        if all(f in out for f in alt):
            return out
    best = max(alternatives, key=lambda alt: sum(f in out for f in alt))
    missing = next(f for f in best if f not in out)
    raise ValidationError(missing, f"{missing}: required for a {subject} inquiry")


def validate_purpose(value: object) -> str:
    if not isinstance(value, str) or value.strip().upper() not in PURPOSES:
        raise ValidationError("purpose", f"purpose: one of {', '.join(sorted(PURPOSES))}")
    return value.strip().upper()


def validate_priority(value: object) -> Priority:
    if value == "urgent":
        return "urgent"
    if value == "routine":
        return "routine"
    raise ValidationError("priority", "priority: 'urgent' or 'routine'")


# --------------------------------------------------------------------------- ids


_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class IdSource:
    """Ids unique across restarts: a per-process-start prefix plus a counter.

    The prefix is the start time in milliseconds (base 32) and 40 random bits, so two
    starts in the same millisecond still differ; the counter makes ids within one
    process unique and sortable. 26 characters, ``[0-9A-Z]`` (DESIGN §3).
    """

    def __init__(self, now_ms: int | None = None, entropy: bytes | None = None) -> None:
        ms = int(time.time() * 1000) if now_ms is None else now_ms
        rnd = int.from_bytes(os.urandom(5) if entropy is None else entropy[:5], "big")
        self._prefix = _b32(ms, 10) + _b32(rnd, 8)
        self._counter = itertools.count(1)
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            n = next(self._counter)
        return self._prefix + _b32(n, 8)


def _b32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


#: The process-wide id source; tests may build their own.
new_id: Final = IdSource()


def utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.UTC)


# --------------------------------------------------------------------------- messages


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent a message: the ORI always, terminal and operator when it came from us."""

    ori: str
    terminal: str | None = None
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Warrant:
    """Warrant data of a wanted-person record; dates ISO (``issued``), empty when unknown."""

    number: str = ""
    offense: str = ""
    issued: str = ""
    court: str = ""
    extradition: str = ""
    entering_ori: str = ""
    oca: str = ""
    nic: str = ""


@dataclass(frozen=True, slots=True)
class Record:
    """One record a network found. ``fields`` use canonical names and model values."""

    file: str
    fields: Mapping[str, str] = field(default_factory=dict)
    caveats: tuple[str, ...] = ()
    warrant: Warrant | None = None

    def __post_init__(self) -> None:
        if self.file not in FILES:
            raise ValidationError("file", f"file: unknown file {self.file!r}")
        for caveat in self.caveats:
            if caveat not in CAVEATS:
                raise ValidationError("caveats", f"caveats: unknown caveat {caveat!r}")


@dataclass(frozen=True, slots=True)
class Inquiry:
    """A wants/warrants check of one subject, sent to one or more networks.

    ``control`` is the state network's control number (``S`` + up to 9 of [A-Z0-9]) or
    the national DocumentControlFieldText; it maps a reply back where the id cannot.
    """

    id: str
    subject: str
    fields: Mapping[str, str]
    origin: Origin
    priority: Priority = "routine"
    networks: tuple[str, ...] = ()
    purpose: str | None = None
    requester: str | None = None
    recipient: str | None = None
    control: str | None = None
    created: _dt.datetime = field(default_factory=utcnow)
    kind: Literal["inquiry"] = "inquiry"


@dataclass(frozen=True, slots=True)
class Reply:
    """One network's answer to one inquiry; ``text`` is verbatim and never empty.

    ``in_reply_to`` is the inquiry id when the wire carries it; the state network answers
    by ``control`` number only. ``subject`` lets a codec pick DR/RR layouts for driver and
    registration answers.
    """

    id: str
    network: str
    status: str
    text: str
    records: tuple[Record, ...] = ()
    in_reply_to: str | None = None
    control: str | None = None
    subject: str | None = None
    origin: Origin | None = None
    created: _dt.datetime = field(default_factory=utcnow)
    priority: Priority = "routine"
    kind: Literal["reply"] = "reply"

    def __post_init__(self) -> None:
        if self.status not in REPLY_STATUSES:
            raise ValidationError("status", f"status: unknown reply status {self.status!r}")
        if not self.text:
            raise ValidationError("text", "text: a reply always carries printable text")


@dataclass(frozen=True, slots=True)
class AdminMessage:
    """Teletype: AM free text, YQ hit-confirmation request, YR hit-confirmation response.

    ``fields`` (YQ/YR only) use the canonical names of DESIGN §3 (request_type, urgency,
    oca, nic, name, dob, ..., confirmed).
    """

    id: str
    key: str
    from_ori: str
    to: tuple[str, ...]
    text: str
    priority: Priority = "routine"
    fields: Mapping[str, str] = field(default_factory=dict)
    in_reply_to: str | None = None
    control: str | None = None
    origin: Origin | None = None
    created: _dt.datetime = field(default_factory=utcnow)
    kind: Literal["admin"] = "admin"

    def __post_init__(self) -> None:
        if self.key not in ADMIN_KEYS:
            raise ValidationError("key", f"key: one of {', '.join(ADMIN_KEYS)}")


@dataclass(frozen=True, slots=True)
class Notice:
    """A network's own message: ``ER`` error (code 22, 19, ...) or ``SM`` status (.02, .04)."""

    id: str
    key: str
    from_ori: str
    code: int
    text: str
    in_reply_to: str | None = None
    created: _dt.datetime = field(default_factory=utcnow)
    kind: Literal["notice"] = "notice"


@dataclass(frozen=True, slots=True)
class Ack:
    """The receiver durably accepted message ``id``. ``frame_id`` is the national ACK's own id."""

    id: str
    frame_id: str | None = None
    kind: Literal["ack"] = "ack"


@dataclass(frozen=True, slots=True)
class Nak:
    """The receiver refused message ``id`` (empty when it could not be read)."""

    id: str
    code: int
    text: str
    frame_id: str | None = None
    kind: Literal["nak"] = "nak"


@dataclass(frozen=True, slots=True)
class Logon:
    station: str
    secret: str
    frame_id: str | None = None
    kind: Literal["logon"] = "logon"

    def __repr__(self) -> str:  # never let a secret reach a log line
        return f"Logon(station={self.station!r}, secret='***')"


@dataclass(frozen=True, slots=True)
class LogonResult:
    ok: bool
    reason: str = ""
    frame_id: str | None = None
    kind: Literal["logon_result"] = "logon_result"


@dataclass(frozen=True, slots=True)
class Heartbeat:
    frame_id: str | None = None
    kind: Literal["heartbeat"] = "heartbeat"


@dataclass(frozen=True, slots=True)
class Logoff:
    frame_id: str | None = None
    kind: Literal["logoff"] = "logoff"


#: Everything a codec turns bytes into. Application messages are ACKed; control frames not.
ApplicationMessage = Inquiry | Reply | AdminMessage | Notice
ControlFrame = Ack | Nak | Logon | LogonResult | Heartbeat | Logoff
WireMessage = ApplicationMessage | ControlFrame

APPLICATION_KINDS: Final = frozenset({"inquiry", "reply", "admin", "notice"})


def is_application(message: WireMessage) -> bool:
    return message.kind in APPLICATION_KINDS


def caveats_urgent(caveats: tuple[str, ...] | list[str]) -> bool:
    return any(c in OFFICER_SAFETY_CAVEATS for c in caveats)
