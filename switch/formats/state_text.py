"""Bodies of the state wire's ``MSG`` frames (DESIGN §4.3): canonical model <-> fixed text.

Pure functions on ``str`` (the transport in :mod:`switch.formats.state` has already checked
that a body is printable ASCII with CR LF line ends). Every parse error raises
``CodecError`` with code 22 (invalid message format) or 19 (invalid destination) and no
message id; the codec adds the id and the bad input. Layouts and every decision taken where
DESIGN leaves room are written up in ``docs/protocols/state.md``.

Three families of bodies:

- NCIC style: inquiries ``1N01<control>.<MKE>.<ORI>.<CODE>/<value>...`` (one line) and their
  replies (``1N01<control>`` / destination ORI / record blocks);
- Nlets style: ``DQ``/``RQ`` inquiries and the legacy layout of ``DR``/``RR`` replies and
  ``AM``/``YQ``/``YR`` teletype, "as sent" or "as delivered" (with clock lines);
- notices: ``ER``/``SM`` with a ``.NN.`` reason line.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from switch.model import (
    ADMIN_KEYS,
    CAVEATS,
    FILES,
    NAK_INVALID_DESTINATION,
    NAK_INVALID_FORMAT,
    NAK_TEXTS,
    NOTICE_KEYS,
    STATE_CODES,
    SUBJECT_FIELDS,
    AdminMessage,
    Inquiry,
    Notice,
    Origin,
    Record,
    Reply,
    ValidationError,
    is_ori,
    utcnow,
    validate_fields,
    validate_purpose,
)

from .base import CodecError
from .fields import fields_from_codes, fields_to_codes, record_from_codes, record_to_codes

CRLF: Final = "\r\n"
#: An NCIC-style inquiry line (and the DQ/RQ field line) is at most this long.
MAX_INQUIRY_LINE: Final = 240
#: Reply item lines and wrapped teletype text: at most this many columns.
COLUMNS: Final = 80

WARNING_LINE: Final = "WARNING - DO NOT ARREST OR DETAIN ON THIS RECORD ALONE. CONFIRM WITH ORI."
#: Caveat -> NCIC CMC code and the words written after it (and on the CAUTION line).
CAVEAT_CODES: Final[Mapping[str, str]] = {
    "armed_and_dangerous": "00",
    "violent": "05",
    "escape_risk": "25",
    "suicidal": "70",
    "medical": "80",
}
CAVEAT_TEXTS: Final[Mapping[str, str]] = {
    "armed_and_dangerous": "ARMED AND DANGEROUS",
    "violent": "VIOLENT TENDENCIES",
    "escape_risk": "ESCAPE RISK",
    "suicidal": "SUICIDAL TENDENCIES",
    "medical": "MEDICAL CONDITION",
}
_CAVEAT_BY_CODE: Final = {code: caveat for caveat, code in CAVEAT_CODES.items()}
_CAVEAT_BY_TEXT: Final = {text: caveat for caveat, text in CAVEAT_TEXTS.items()}
#: File -> the words of its ``MKE/`` line (``wanted_person`` -> ``WANTED PERSON``).
FILE_WORDS: Final[Mapping[str, str]] = {f: f.replace("_", " ").upper() for f in FILES}
_FILE_BY_WORDS: Final = {
    **{words: f for f, words in FILE_WORDS.items()},
    # the MKE words a state's DMV answers with (DR/RR)
    "DRIVER LICENSE": "driver",
    "VEHICLE REGISTRATION": "registration",
}

#: NCIC-style inquiry message keys (MKE) per subject; driver/registration go Nlets style.
MKE_BY_SUBJECT: Final[Mapping[str, str]] = {
    "person": "QW",
    "vehicle": "QV",
    "gun": "QG",
    "article": "QA",
}
_SUBJECT_BY_MKE: Final = {mke: s for s, mke in MKE_BY_SUBJECT.items()}
NLETS_INQUIRY_KEYS: Final[Mapping[str, str]] = {"driver": "DQ", "registration": "RQ"}
_SUBJECT_BY_NLETS_KEY: Final = {k: s for s, k in NLETS_INQUIRY_KEYS.items()}
REPLY_KEYS: Final[Mapping[str, str]] = {"driver": "DR", "registration": "RR"}
_SUBJECT_BY_REPLY_KEY: Final = {k: s for s, k in REPLY_KEYS.items()}
#: Inquiry options carried as fields (DESIGN §3).
OPTION_CODES: Final[Mapping[str, str]] = {"purpose": "PUR", "requester": "ATN", "recipient": "SRN"}
_OPTION_BY_CODE: Final = {code: name for name, code in OPTION_CODES.items()}

#: YQ/YR field codes in the order they are written (YR adds CON).
HIT_CONFIRMATION_CODES: Final = (
    "RTY", "RNO", "PRI", "OCA", "NIC", "NAM", "DOB", "SEX", "RNA", "RAG", "PHO", "REM", "CON",
)  # fmt: skip
MAX_STATE_DESTINATIONS: Final = 5
MAX_YQ_ORIS: Final = 3

#: SM reasons (DESIGN §4.3): .02. store and forward, .04. resend.
SM_TEXTS: Final[Mapping[int, str]] = {
    2: "DESTINATION DOWN, WILL STORE AND FORWARD",
    4: "DESTINATION DOWN, RESEND",
}
#: The first this-many characters of a bad input go into an ER (DESIGN §4.3).
ER_ECHO: Final = 100

_CONTROL_RE: Final = re.compile(r"S[A-Z0-9]{0,9}")
_TELETYPE_CONTROL_RE: Final = re.compile(r"[A-Z0-9]{1,10}")
_STATION_RE: Final = re.compile(r"[A-Z][A-Z0-9]{1,8}")
_DEST_RE: Final = re.compile(r"[A-Z0-9]{2,9}")
_CODE_ITEM_RE: Final = re.compile(r"([A-Z]{3})/(.*)", re.DOTALL)
#: Where an item of a reply line starts: a code at the line start or after one space.
_ITEM_START_RE: Final = re.compile(r"(?:^| )([A-Z]{3})/")
_ITEM_LINE_RE: Final = re.compile(r"[A-Z]{3}/")
_INNER_ITEM_RE: Final = re.compile(r" [A-Z]{3}/")
_NCIC_INQUIRY_RE: Final = re.compile(r"1N01(S[A-Z0-9]{0,9})\.(Q[WVGA])\.([A-Z0-9]{9})\.(.*)")
_NCIC_HDR_RE: Final = re.compile(r"1N01(S[A-Z0-9]{0,9})")
_NLETS_INQUIRY_RE: Final = re.compile(
    r"(DQ|RQ)\.([A-Z0-9]{9})\.([A-Z]{2})\.\*(S[A-Z0-9]{0,9})\.TXT"
)
_AS_SENT_RE: Final = re.compile(
    r"([A-Z]{2})\.([A-Z][A-Z0-9]{1,8})\.([A-Z0-9,]+?)(?:\.\*([A-Z0-9]{1,10}))?\.TXT"
)
_DELIVERED_RE: Final = re.compile(r"([A-Z]{2})\.([A-Z][A-Z0-9]{1,8})")
_CLOCK: Final = r"(\d{2}):(\d{2}) (\d{2})/(\d{2})/(\d{4}) (\d{5})"
_IN_CLOCK_RE: Final = re.compile(_CLOCK)
_OUT_CLOCK_RE: Final = re.compile(_CLOCK + r" ([A-Z0-9,]+)")
_NOTICE_CODE_RE: Final = re.compile(r"\.(\d{2})\.(?: (.*))?", re.DOTALL)
_CMC_RE: Final = re.compile(r"(\d{2})(?: - .*)?")


def _bad(text: str, code: int = NAK_INVALID_FORMAT) -> CodecError:
    """A body error; the text names a code or a rule, never message content."""
    return CodecError(code, text)


def is_printable(text: str) -> bool:
    """Printable ASCII (space to tilde) only: what one line of a body may hold."""
    return text.isascii() and text.isprintable()


def normalise_text(text: str) -> str:
    """What free teletype text becomes on this wire: single spaces, no line breaks."""
    return " ".join(text.split())


def to_lines(text: str) -> list[str]:
    """Split model text into lines (CR LF, LF or CR ends), each printable ASCII."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if not all(is_printable(line) for line in lines):
        raise _bad("TEXT NOT PRINTABLE ASCII")
    return lines


def wrap(text: str, columns: int = COLUMNS) -> list[str]:
    """Greedy wrap at spaces to ``columns``; a longer word is cut at the column.

    The text is first normalised (:func:`normalise_text`), so joining the lines with one
    space gives it back, except that a word longer than ``columns`` comes back cut in two.
    """
    lines: list[str] = []
    current = ""
    for word in text.split():
        while len(word) > columns:
            if current:
                lines.append(current)
                current = ""
            lines.append(word[:columns])
            word = word[columns:]
        if not current:
            current = word
        elif len(current) + 1 + len(word) <= columns:
            current += " " + word
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    return lines


# --------------------------------------------------------------------------- coded items


def _dotted_items(pairs: Iterable[tuple[str, str]]) -> str:
    """``CODE/value.CODE/value``: an inquiry line; ``.`` and ``/`` cannot be expressed."""
    parts = []
    for code, value in pairs:
        if not value:
            continue
        if "." in value or "/" in value or not is_printable(value):
            raise _bad(f"VALUE OF {code} NOT EXPRESSIBLE")
        parts.append(f"{code}/{value}")
    if not parts:
        raise _bad("NO FIELDS")
    return ".".join(parts)


def _parse_dotted(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in text.split("."):
        m = _CODE_ITEM_RE.fullmatch(part)
        if m is None or "/" in m.group(2):
            raise _bad("BAD FIELD ITEM")
        code = m.group(1)
        if code in seen:
            raise _bad(f"DUPLICATE {code}")
        seen.add(code)
        pairs.append((code, m.group(2)))
    return pairs


def _inquiry_pairs(inquiry: Inquiry) -> list[tuple[str, str]]:
    pairs = fields_to_codes(inquiry.fields, inquiry.subject)
    for name, code in OPTION_CODES.items():
        value = getattr(inquiry, name)
        if value:
            pairs.append((code, value))
    return pairs


def _inquiry_from_pairs(
    msg_id: str, subject: str, ori: str, control: str, pairs: list[tuple[str, str]]
) -> Inquiry:
    options = {_OPTION_BY_CODE[c]: v for c, v in pairs if c in _OPTION_BY_CODE}
    plain = [(c, v) for c, v in pairs if c not in _OPTION_BY_CODE]
    try:
        fields = validate_fields(subject, fields_from_codes(plain))
        purpose = validate_purpose(options["purpose"]) if "purpose" in options else None
    except ValidationError as err:
        raise _bad(f"BAD FIELD {(err.field or '')[:12].upper()}") from err
    return Inquiry(
        id=msg_id,
        subject=subject,
        fields=fields,
        origin=Origin(ori=ori),
        purpose=purpose,
        requester=options.get("requester") or None,
        recipient=options.get("recipient") or None,
        control=control,
    )


def _check_ori(ori: str) -> str:
    if not is_ori(ori):
        raise _bad("BAD ORI")
    return ori


def _check_control(control: str | None) -> str:
    if control is None or not _CONTROL_RE.fullmatch(control):
        raise _bad("CONTROL NUMBER MUST BE S AND UP TO 9 OF A-Z 0-9")
    return control


# --------------------------------------------------------------------------- inquiries


def encode_inquiry(inquiry: Inquiry) -> str:
    """An inquiry body: NCIC style for person/vehicle/gun/article, Nlets style otherwise."""
    control = _check_control(inquiry.control)
    ori = _check_ori(inquiry.origin.ori)
    items = _dotted_items(_inquiry_pairs(inquiry))
    if inquiry.subject in MKE_BY_SUBJECT:
        line = f"1N01{control}.{MKE_BY_SUBJECT[inquiry.subject]}.{ori}.{items}"
        if len(line) > MAX_INQUIRY_LINE:
            raise _bad("INQUIRY LINE OVER 240 CHARACTERS")
        return line
    if inquiry.subject in NLETS_INQUIRY_KEYS:
        if len(items) > MAX_INQUIRY_LINE:
            raise _bad("INQUIRY LINE OVER 240 CHARACTERS")
        state_field = "oln_state" if inquiry.subject == "driver" else "plate_state"
        # A VIN-only registration goes to the inquirer's own state (the in-state switch).
        dest = inquiry.fields.get(state_field) or ori[:2]
        key = NLETS_INQUIRY_KEYS[inquiry.subject]
        return f"{key}.{ori}.{dest}.*{control}.TXT{CRLF}{items}"
    raise _bad("UNKNOWN SUBJECT")


def _decode_ncic_inquiry(msg_id: str, lines: list[str]) -> Inquiry:
    if len(lines) != 1 or len(lines[0]) > MAX_INQUIRY_LINE:
        raise _bad("NCIC INQUIRY IS ONE LINE OF AT MOST 240 CHARACTERS")
    m = _NCIC_INQUIRY_RE.fullmatch(lines[0])
    if m is None:
        raise _bad("BAD INQUIRY HEADER")
    control, mke, ori, items = m.groups()
    if mke not in _SUBJECT_BY_MKE:
        raise _bad("UNKNOWN MKE")
    return _inquiry_from_pairs(
        msg_id, _SUBJECT_BY_MKE[mke], _check_ori(ori), control, _parse_dotted(items)
    )


def _decode_nlets_inquiry(msg_id: str, lines: list[str], m: re.Match[str]) -> Inquiry:
    key, ori, dest, control = m.groups()
    if len(lines) != 2 or len(lines[1]) > MAX_INQUIRY_LINE:
        raise _bad("DQ/RQ IS A HEADER LINE AND ONE FIELD LINE")
    if dest not in STATE_CODES and dest != "NL":
        raise _bad("BAD DESTINATION STATE", NAK_INVALID_DESTINATION)
    return _inquiry_from_pairs(
        msg_id, _SUBJECT_BY_NLETS_KEY[key], _check_ori(ori), control, _parse_dotted(lines[1])
    )


# --------------------------------------------------------------------------- reply items


def _item_check(code: str, value: str) -> str:
    """An item of a reply line; refuse what the item grammar cannot carry back exactly:
    empty or non-printable values, runs or ends of spaces, and `` XXX/`` inside."""
    if not value or not is_printable(value) or value != normalise_text(value):
        raise _bad(f"VALUE OF {code} NOT EXPRESSIBLE")
    if _INNER_ITEM_RE.search(value):
        raise _bad(f"VALUE OF {code} LOOKS LIKE AN ITEM")
    return f"{code}/{value}"


def split_items(line: str) -> list[tuple[str, str]]:
    """One reply line -> ``[(code, value)]``: an item starts at ``[A-Z]{3}/`` at the line
    start or after one space; the space before an item is the separator, not the value."""
    starts = list(_ITEM_START_RE.finditer(line))
    if not starts or starts[0].start() != 0:
        raise _bad("BAD ITEM LINE")
    out = []
    for i, m in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(line)
        out.append((m.group(1), line[m.end() : end]))
    return out


_ITEM_RANK: Final[Mapping[str, int]] = {
    "ORI": 0, "NAM": 1, "SEX": 2, "RAC": 3, "DOB": 4, "HGT": 5, "WGT": 6,
    "OFF": 20, "DOW": 21, "OCA": 22, "WNO": 23, "CRT": 24, "MIS": 30,
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _RecordParts:
    extradition: str
    items: list[tuple[str, str]]
    nic: str


def _record_parts(record: Record) -> _RecordParts:
    if "caution" in record.fields:
        raise _bad("CAUTION FIELD NOT CARRIED: USE CAVEATS")
    if len(set(record.caveats)) != len(record.caveats):
        raise _bad("DUPLICATE CAVEAT")
    pairs = record_to_codes(record)
    exl = "".join(v for c, v in pairs if c == "EXL")
    nic = "".join(v for c, v in pairs if c == "NIC")
    items = [(c, v) for c, v in pairs if c not in ("EXL", "NIC") and v]
    items.sort(key=lambda item: _ITEM_RANK.get(item[0], 10))
    for code, value in items:
        _item_check(code, value)
    if nic:
        _item_check("NIC", nic)
    return _RecordParts(exl, items, nic)


def _pack(items: Iterable[str], columns: int = COLUMNS) -> list[str]:
    """Items several to a line, one space apart, never split: lines <= ``columns``."""
    lines: list[str] = []
    current = ""
    for item in items:
        if len(item) > columns:
            raise _bad("ITEM LONGER THAN A LINE")
        if current and len(current) + 1 + len(item) <= columns:
            current += " " + item
        else:
            if current:
                lines.append(current)
            current = item
    if current:
        lines.append(current)
    return lines


def _caveat_from_cmc(value: str) -> str:
    m = _CMC_RE.fullmatch(value)
    if m is None or m.group(1) not in _CAVEAT_BY_CODE:
        raise _bad("UNKNOWN CMC")
    return _CAVEAT_BY_CODE[m.group(1)]


def _build_record(file: str | None, caveats: list[str], pairs: list[tuple[str, str]]) -> Record:
    if file is None:
        raise _bad("RECORD WITHOUT MKE")
    seen: set[str] = set()
    for code, _ in pairs:
        if code in seen:
            raise _bad(f"DUPLICATE {code}")
        seen.add(code)
    return record_from_codes(file, pairs, caveats)


# --------------------------------------------------------------------------- NCIC replies


def no_record_line(subject: str, fields: Mapping[str, str]) -> str:
    """The no-record line echoing an inquiry's identifiers (``NO STATE WANT NAM/...``)."""
    alternatives, _ = SUBJECT_FIELDS.get(subject, ((), ()))
    wanted = [f for alt in alternatives for f in alt]
    pairs = fields_to_codes({f: fields[f] for f in dict.fromkeys(wanted) if f in fields}, subject)
    pairs += fields_to_codes({f: v for f, v in fields.items() if f == "sex"}, subject)
    words = "NO STATE WANT" if subject == "person" else "NO STATE RECORD"
    return " ".join([words, *(f"{c}/{v}" for c, v in pairs if "/" not in v)])


def render_ncic_reply(
    control: str,
    dest_ori: str,
    records: Sequence[Record],
    *,
    no_record: str = "NO STATE RECORD",
    agency: Callable[[str], str] | None = None,
    entered: Sequence[str] = (),
) -> str:
    """The body of a reply to an NCIC-style inquiry (DESIGN §4.3), lines joined by CR LF.

    ``agency(ori)`` gives the ``ORI IS`` text of a record's entering ORI (default: the ORI
    itself); ``entered[i]`` the ISO date entered of record ``i`` (the ``DTE/`` item,
    omitted when not given). Neither is carried back into the model.
    """
    lines = [f"1N01{_check_control(control)}", dest_ori]
    if not records:
        if not is_printable(no_record) or not no_record.startswith("NO "):
            raise _bad("BAD NO-RECORD LINE")
        return CRLF.join([*lines, no_record])
    for index, record in enumerate(records):
        parts = _record_parts(record)
        lines.append(WARNING_LINE)
        lines += [f"CAUTION - {CAVEAT_TEXTS[c]}" for c in record.caveats]
        lines.append(f"MKE/{FILE_WORDS[record.file]}")
        lines += [f"CMC/{CAVEAT_CODES[c]} - {CAVEAT_TEXTS[c]}" for c in record.caveats]
        if parts.extradition:
            if not is_printable(parts.extradition):
                raise _bad("VALUE OF EXL NOT EXPRESSIBLE")
            lines.append(f"EXL/{parts.extradition}")
        lines += _pack(f"{c}/{v}" for c, v in parts.items)
        ori = next((v for c, v in parts.items if c == "ORI"), "")
        if ori:
            said = agency(ori) if agency is not None else ori
            if not is_printable(said):
                raise _bad("BAD AGENCY TEXT")
            lines.append(f"ORI IS {said}")
        last = [f"NIC/{parts.nic}"] if parts.nic else []
        if index < len(entered) and entered[index]:
            last.append(f"DTE/{entered[index].replace('-', '')}")
        if last:
            lines.append(" ".join(last))
    return CRLF.join(lines)


@dataclass(frozen=True, slots=True)
class NcicReply:
    """What an NCIC-style reply body says."""

    control: str
    dest: str
    status: str
    records: tuple[Record, ...]


def parse_ncic_reply(lines: Sequence[str]) -> NcicReply:
    """Parse the lines of an NCIC-style reply body (see :func:`render_ncic_reply`).

    ``ORI IS`` lines and ``DTE/`` items are dropped; ``CAUTION`` lines only add a caveat
    that no ``CMC/`` line names (unknown CAUTION words are ignored).
    """
    m = _NCIC_HDR_RE.fullmatch(lines[0]) if lines else None
    if m is None or len(lines) < 3:
        raise _bad("BAD REPLY HEADER")
    if not _STATION_RE.fullmatch(lines[1]):
        raise _bad("BAD REPLY DESTINATION")
    status, records = parse_record_block(lines[2:])
    return NcicReply(m.group(1), lines[1], status, records)


def parse_record_block(rest: Sequence[str]) -> tuple[str, tuple[Record, ...]]:
    """``(status, records)`` of the lines after an NCIC reply's header (also a DR/RR text):
    one ``NO ...`` line, or record blocks each opening with the WARNING line."""
    if not rest:
        raise _bad("EMPTY REPLY")
    if rest[0].startswith("NO "):
        if len(rest) != 1:
            raise _bad("NO-RECORD REPLY IS ONE LINE")
        return "no_record", ()
    records: list[Record] = []
    file: str | None = None
    caveats: list[str] = []
    cautions: list[str] = []
    pairs: list[tuple[str, str]] = []
    header = True
    started = False

    def finish() -> None:
        records.append(
            _build_record(file, caveats + [c for c in cautions if c not in caveats], pairs)
        )

    for line in rest:
        if line.startswith("WARNING - "):
            if started:
                finish()
            started, header, file = True, True, None
            caveats, cautions, pairs = [], [], []
            continue
        if not started:
            raise _bad("RECORD DOES NOT OPEN WITH THE WARNING LINE")
        if header and line.startswith("CAUTION - "):
            caveat = _CAVEAT_BY_TEXT.get(line[len("CAUTION - ") :])
            if caveat is not None and caveat not in cautions:
                cautions.append(caveat)
        elif header and line.startswith("MKE/"):
            if file is not None or line[4:] not in _FILE_BY_WORDS:
                raise _bad("BAD MKE")
            file = _FILE_BY_WORDS[line[4:]]
        elif header and line.startswith("CMC/"):
            caveat = _caveat_from_cmc(line[4:])
            if caveat in caveats:
                raise _bad("DUPLICATE CMC")
            caveats.append(caveat)
        elif header and line.startswith("EXL/"):
            pairs.append(("EXL", line[4:]))
        elif line.startswith("ORI IS "):
            header = False
        else:
            header = False
            pairs += [(c, v) for c, v in split_items(line) if c != "DTE"]
    finish()
    return "hit", tuple(records)


# --------------------------------------------------------------------------- reply bodies


def _records_match(status: str, records: tuple[Record, ...], reply: Reply) -> bool:
    return status == reply.status and records == tuple(reply.records)


def _check_reply(reply: Reply) -> None:
    if reply.status not in ("hit", "no_record"):
        raise _bad("ONLY HIT AND NO-RECORD REPLIES TRAVEL ON THIS WIRE")
    if (reply.status == "hit") != bool(reply.records):
        raise _bad("A HIT HAS RECORDS, A NO-RECORD NONE")


def ncic_reply_body(reply: Reply, dest_ori: str) -> str:
    """The body of an NCIC-style reply: ``reply.text`` verbatim when it already is such a
    body (or the record part of one) saying exactly ``reply``'s status and records, else
    rendered from the records (:func:`render_ncic_reply`)."""
    _check_reply(reply)
    control = _check_control(reply.control)
    try:
        lines = to_lines(reply.text)
        if not lines[0].startswith("1N01"):
            lines = [f"1N01{control}", dest_ori, *lines]
        parsed = parse_ncic_reply(lines)
        if parsed.control == control and _records_match(parsed.status, parsed.records, reply):
            return CRLF.join(lines)
    except CodecError:
        pass
    if reply.records:
        body = render_ncic_reply(control, dest_ori, reply.records)
    else:
        first = normalise_text(reply.text)
        line = first if first.startswith("NO ") and is_printable(first) else "NO STATE RECORD"
        body = render_ncic_reply(control, dest_ori, (), no_record=line)
    parsed = parse_ncic_reply(body.split(CRLF))
    if not _records_match(parsed.status, parsed.records, reply):
        raise _bad("RECORDS NOT EXPRESSIBLE")
    return body


def nlets_reply_lines(reply: Reply) -> list[str]:
    """The text lines of a DR/RR: the record part of an NCIC-style reply (no-record line or
    record blocks, lines <= 80 columns). ``reply.text`` is kept line for line when it is
    such a part saying exactly the reply's status and records, else it is rendered."""
    _check_reply(reply)
    try:
        lines = to_lines(reply.text)
        if all(len(line) <= COLUMNS for line in lines) and _records_match(
            *parse_record_block(lines), reply
        ):
            return lines
    except CodecError:
        pass
    first = normalise_text(reply.text)
    usable = first.startswith("NO ") and len(first) <= COLUMNS and is_printable(first)
    no_record = first if usable else "NO RECORD"
    body = render_ncic_reply("S", "X0", reply.records, no_record=no_record)
    lines = body.split(CRLF)[2:]
    if not _records_match(*parse_record_block(lines), reply):
        raise _bad("RECORDS NOT EXPRESSIBLE")
    return lines


def decode_ncic_reply(msg_id: str, body: str, lines: list[str], network: str) -> Reply:
    parsed = parse_ncic_reply(lines)
    return Reply(
        id=msg_id,
        network=network,
        status=parsed.status,
        text=body,
        records=parsed.records,
        control=parsed.control,
    )


# --------------------------------------------------------------------------- legacy layout


@dataclass(frozen=True, slots=True)
class Legacy:
    """The Nlets legacy layout of DR/RR and teletype, either form (DESIGN §4.3)."""

    key: str
    from_ori: str
    to: tuple[str, ...]
    control: str | None
    lines: list[str]
    created: _dt.datetime | None = None


def check_destinations(key: str, to: Sequence[str]) -> tuple[str, ...]:
    """Destinations: 1..5 state or region codes, at most 3 ORIs for a YQ (NAK 19 else)."""
    if not to:
        raise _bad("NO DESTINATION", NAK_INVALID_DESTINATION)
    for dest in to:
        if not _DEST_RE.fullmatch(dest):
            raise _bad("BAD DESTINATION", NAK_INVALID_DESTINATION)
    oris = sum(1 for dest in to if is_ori(dest))
    if len(to) - oris > MAX_STATE_DESTINATIONS:
        raise _bad("MORE THAN 5 STATE OR REGION CODES", NAK_INVALID_DESTINATION)
    if key == "YQ" and oris > MAX_YQ_ORIS:
        raise _bad("MORE THAN 3 ORIS FOR A YQ", NAK_INVALID_DESTINATION)
    return tuple(to)


def _clock(when: _dt.datetime, seq: int) -> str:
    try:
        w = when.astimezone(_dt.UTC) if when.tzinfo is not None else when
    except (OverflowError, ValueError):  # year 1 in a zone east of UTC
        w = when
    # written by hand: strftime's %Y does not pad years before 1000 everywhere
    return f"{w.hour:02d}:{w.minute:02d} {w.month:02d}/{w.day:02d}/{w.year:04d} {seq % 100000:05d}"


def render_legacy(
    key: str,
    from_ori: str,
    to: Sequence[str],
    control: str | None,
    lines: Sequence[str],
    *,
    delivered: bool,
    when: _dt.datetime,
    seq: int,
) -> str:
    """``as sent``: ``KEY.FROM.D1,D2.*CTRL.TXT`` then the lines; ``as delivered``:
    ``KEY.FROM``, in and out clock lines (the out line ending with the destinations),
    ``*CTRL``, ``TXT``, then the lines. No control: the ``*`` part is left out."""
    if not _STATION_RE.fullmatch(from_ori):
        raise _bad("BAD FROM ORI")
    if control is not None and not _TELETYPE_CONTROL_RE.fullmatch(control):
        raise _bad("BAD CONTROL NUMBER")
    dests = ",".join(check_destinations(key, to))
    if delivered:
        head = [f"{key}.{from_ori}", _clock(when, seq), f"{_clock(when, seq)} {dests}"]
        head += [f"*{control}"] if control is not None else []
        head.append("TXT")
    else:
        ctrl = f".*{control}" if control is not None else ""
        head = [f"{key}.{from_ori}.{dests}{ctrl}.TXT"]
    return CRLF.join([*head, *lines])


def _clock_time(m: re.Match[str]) -> _dt.datetime:
    hh, mi, mm, dd, yyyy = (int(m.group(i)) for i in range(1, 6))
    try:
        return _dt.datetime(yyyy, mm, dd, hh, mi, tzinfo=_dt.UTC)
    except ValueError as err:
        raise _bad("BAD CLOCK LINE") from err


def parse_legacy(lines: list[str]) -> Legacy | None:
    """Either form of the legacy layout; None when the first line is neither."""
    m = _AS_SENT_RE.fullmatch(lines[0])
    if m is not None:
        key, from_ori, dests, control = m.groups()
        to = check_destinations(key, dests.split(","))
        return Legacy(key, from_ori, to, control, lines[1:])
    m = _DELIVERED_RE.fullmatch(lines[0])
    if m is None or m.group(1) in NOTICE_KEYS:
        return None
    key, from_ori = m.groups()
    if len(lines) < 4:
        raise _bad("DELIVERED LAYOUT TOO SHORT")
    clock_in = _IN_CLOCK_RE.fullmatch(lines[1])
    clock_out = _OUT_CLOCK_RE.fullmatch(lines[2])
    if clock_in is None or clock_out is None:
        raise _bad("BAD CLOCK LINE")
    created = _clock_time(clock_in)
    _clock_time(clock_out)
    to = check_destinations(key, clock_out.group(7).split(","))
    index = 3
    control = None
    if lines[index].startswith("*"):
        control = lines[index][1:]
        if not _TELETYPE_CONTROL_RE.fullmatch(control):
            raise _bad("BAD CONTROL NUMBER")
        index += 1
    if index >= len(lines) or lines[index] != "TXT":
        raise _bad("NO TXT LINE")
    return Legacy(key, from_ori, to, control, lines[index + 1 :], created)


def admin_lines(message: AdminMessage) -> list[str]:
    """The lines after the legacy header: YQ/YR items one per line, then the wrapped text."""
    lines: list[str] = []
    if message.key == "AM":
        if message.fields:
            raise _bad("AN AM CARRIES NO FIELDS")
    else:
        allowed = HIT_CONFIRMATION_CODES if message.key == "YR" else HIT_CONFIRMATION_CODES[:-1]
        pairs = dict(fields_to_codes(message.fields))
        for code in pairs:
            if code not in allowed:
                raise _bad(f"{code} NOT A FIELD OF A {message.key}")
        for code in allowed:
            value = pairs.get(code)
            if value is None:
                continue
            if not value or not is_printable(value) or len(value) + 4 > COLUMNS:
                raise _bad(f"VALUE OF {code} NOT EXPRESSIBLE")
            lines.append(f"{code}/{value}")
    if not is_printable(normalise_text(message.text)):
        raise _bad("TEXT NOT PRINTABLE ASCII")
    text = wrap(message.text)
    if message.key != "AM" and text and _ITEM_LINE_RE.match(text[0]):
        raise _bad("YQ/YR TEXT MAY NOT START LIKE A FIELD")
    return lines + text


def decode_admin(msg_id: str, legacy: Legacy) -> AdminMessage:
    fields: dict[str, str] = {}
    text_lines = legacy.lines
    if legacy.key != "AM":
        allowed = HIT_CONFIRMATION_CODES if legacy.key == "YR" else HIT_CONFIRMATION_CODES[:-1]
        pairs: list[tuple[str, str]] = []
        while text_lines and _ITEM_LINE_RE.match(text_lines[0]):
            code, value = text_lines[0][:3], text_lines[0][4:]
            if code not in allowed or any(code == c for c, _ in pairs):
                raise _bad(f"{code} NOT A FIELD OF A {legacy.key}")
            if not value:
                raise _bad(f"EMPTY {code}")
            pairs.append((code, value))
            text_lines = text_lines[1:]
        fields = fields_from_codes(pairs)
        if _ITEM_LINE_RE.match(normalise_text(" ".join(text_lines))):
            raise _bad("YQ/YR TEXT MAY NOT START LIKE A FIELD")
    return AdminMessage(
        id=msg_id,
        key=legacy.key,
        from_ori=legacy.from_ori,
        to=legacy.to,
        text=normalise_text(" ".join(text_lines)),
        fields=fields,
        control=legacy.control,
        created=legacy.created or utcnow(),
    )


def decode_nlets_reply(msg_id: str, legacy: Legacy, network: str) -> Reply:
    status, records = parse_record_block(legacy.lines)
    text = CRLF.join(legacy.lines)
    return Reply(
        id=msg_id,
        network=network,
        status=status,
        text=text,
        records=records,
        control=legacy.control,
        subject=_SUBJECT_BY_REPLY_KEY[legacy.key],
        origin=Origin(ori=legacy.from_ori),
        created=legacy.created or utcnow(),
    )


# --------------------------------------------------------------------------- notices


def encode_notice(notice: Notice) -> str:
    """``ER.<ORI>`` / ``.NN. <first text line>`` / further text lines."""
    if notice.key not in NOTICE_KEYS:
        raise _bad("UNKNOWN NOTICE KEY")
    if not _STATION_RE.fullmatch(notice.from_ori):
        raise _bad("BAD FROM ORI")
    if not 0 <= notice.code <= 99:
        raise _bad("NOTICE CODE IS TWO DIGITS")
    first, *rest = to_lines(notice.text)
    reason = f".{notice.code:02d}." + (f" {first}" if first else "")
    return CRLF.join([f"{notice.key}.{notice.from_ori}", reason, *rest])


def _decode_notice(msg_id: str, lines: list[str], key: str, from_ori: str) -> Notice:
    m = _NOTICE_CODE_RE.fullmatch(lines[1]) if len(lines) > 1 else None
    if m is None:
        raise _bad("BAD NOTICE REASON LINE")
    return Notice(
        id=msg_id,
        key=key,
        from_ori=from_ori,
        code=int(m.group(1)),
        text=CRLF.join([m.group(2) or "", *lines[2:]]),
    )


def echo_bad_input(bad_input: str | bytes) -> str:
    """The first 100 characters of a bad input, safe for an ER body: printable ASCII and
    CR LF only (anything else becomes ``?``), never ending inside a CR LF."""
    text = bad_input.decode("latin-1") if isinstance(bad_input, bytes) else bad_input
    text = text[:ER_ECHO]
    if text.endswith("\r"):
        text = text[:-1]
    lines = text.split(CRLF)
    return CRLF.join("".join(ch if " " <= ch <= "~" else "?" for ch in line) for line in lines)


def error_notice(
    notice_id: str, bad_input: str | bytes, *, from_ori: str, code: int = NAK_INVALID_FORMAT
) -> Notice:
    """The ER a receiver sends after ACKing a well-framed MSG whose body is no valid
    message: ``.22. INVALID MESSAGE FORMAT`` (or the given code) and the bad input's first
    100 characters. ``bad_input`` is ``StateBodyError.bad_input`` or the raw body."""
    reason = NAK_TEXTS.get(code, "ERROR")
    echo = echo_bad_input(bad_input)
    return Notice(
        id=notice_id, key="ER", from_ori=from_ori, code=code, text=f"{reason}{CRLF}{echo}"
    )


# --------------------------------------------------------------------------- dispatch


def decode_body(
    msg_id: str, body: str, network: str = "state"
) -> Inquiry | Reply | AdminMessage | Notice:
    """A printable CR LF body -> one application message (CodecError 22 or 19 otherwise)."""
    lines = body.split(CRLF)
    first = lines[0]
    if first.startswith("1N01"):
        if "." in first:
            return _decode_ncic_inquiry(msg_id, lines)
        return decode_ncic_reply(msg_id, body, lines, network)
    m = _NLETS_INQUIRY_RE.fullmatch(first)
    if m is not None:
        return _decode_nlets_inquiry(msg_id, lines, m)
    notice = _DELIVERED_RE.fullmatch(first)
    if notice is not None and notice.group(1) in NOTICE_KEYS:
        return _decode_notice(msg_id, lines, notice.group(1), notice.group(2))
    legacy = parse_legacy(lines)
    if legacy is None:
        raise _bad("UNKNOWN MESSAGE")
    if legacy.key in _SUBJECT_BY_REPLY_KEY:
        return decode_nlets_reply(msg_id, legacy, network)
    if legacy.key in ADMIN_KEYS:
        return decode_admin(msg_id, legacy)
    raise _bad("UNKNOWN MESSAGE KEY")


__all__ = [
    "CAVEATS",
    "CAVEAT_CODES",
    "CAVEAT_TEXTS",
    "SM_TEXTS",
    "WARNING_LINE",
    "decode_body",
    "echo_bad_input",
    "error_notice",
    "no_record_line",
    "parse_record_block",
    "render_ncic_reply",
    "wrap",
]
