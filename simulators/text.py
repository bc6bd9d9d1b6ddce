"""The networks' printable answers (``Reply.text``), in the NCIC reply layout of DESIGN §4.3.

One layout for all four simulated networks, so that operators read one thing and the
state codec can parse records back out of it:

- no record: one line ``NO <NETWORK> WANT`` (person) or ``NO <NETWORK> RECORD`` (other
  subjects; ``NLETS`` for other states' licences and registrations) followed by the
  inquiry's fields in the order given, as ``CODE/value`` items, wrapped at 80 columns like
  the item lines (``NO NCIC WANT NAM/DOE, JOHN A DOB/19800101``);
- per record: the WARNING line, one ``CAUTION - <TEXT>`` line per caveat, ``MKE/<file in
  words>``, one ``CMC/<code> - <text>`` line per caveat, ``EXL/<code - text>`` when the
  warrant has one, the ``CODE/value`` items (``ORI NAM SEX RAC DOB HGT WGT ... OFF DOW OCA
  WNO CRT ... MIS``) several to a line, one space apart, never split, lines at most 80
  characters, ``ORI IS <agency> <state> <phone>``, and last ``NIC/<nic> DTE/<entered>``
  (each part only when known: municipal records have no NCIC number).

Lines are joined with ``\\n``; the state codec puts CR LF on its wire. Pure functions.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping, Sequence
from typing import Final

from switch.model import DATE_FIELDS, Record, ValidationError, field_code, to_wire_date

from .names import agency

WIDTH: Final = 80
WARNING_LINE: Final = "WARNING - DO NOT ARREST OR DETAIN ON THIS RECORD ALONE. CONFIRM WITH ORI."

NETWORK_LABELS: Final[Mapping[str, str]] = {
    "local": "LOCAL",
    "regional": "REGIONAL",
    "state": "STATE",
    "national": "NCIC",
}

FILE_WORDS: Final[Mapping[str, str]] = {
    "wanted_person": "WANTED PERSON",
    "stolen_vehicle": "STOLEN VEHICLE",
    "stolen_gun": "STOLEN GUN",
    "stolen_article": "STOLEN ARTICLE",
    "driver": "DRIVER LICENSE",
    "registration": "VEHICLE REGISTRATION",
    "protection_order": "PROTECTION ORDER",
    "missing_person": "MISSING PERSON",
}

#: Caveat -> (NCIC caution and medical condition code, words) for CMC/ and CAUTION lines.
CAVEAT_CMC: Final[Mapping[str, tuple[str, str]]] = {
    "armed_and_dangerous": ("00", "ARMED AND DANGEROUS"),
    "violent": ("05", "VIOLENT TENDENCIES"),
    "escape_risk": ("25", "ESCAPE RISK"),
    "suicidal": ("70", "SUICIDAL TENDENCIES"),
    "medical": ("80", "MEDICAL CONDITION"),
}

#: Item order of record blocks and no-record echoes; unlisted fields follow, MIS is last.
ITEM_ORDER: Final = (
    "name",
    "sex",
    "race",
    "dob",
    "height",
    "weight",
    "oln",
    "oln_state",
    "soc",
    "plate",
    "plate_state",
    "plate_year",
    "plate_type",
    "vin",
    "vehicle_year",
    "make",
    "vehicle_model",
    "vehicle_color",
    "owner",
    "serial",
    "article_type",
    "brand",
    "caliber",
    "status",
    "expires",
    "date_of_theft",
)
_LATE: Final = frozenset({"ori", "oca", "nic", "misc"})
_UNSAFE: Final = re.compile(r"[^ -~]|[./|]")
_MAX_VALUE: Final = 60


def _clean(value: str) -> str:
    """Printable ASCII without the wire's separators, one line, bounded (echoes of input)."""
    return " ".join(_UNSAFE.sub(" ", value.upper()).split())[:_MAX_VALUE]


def _wire(name: str, value: str) -> str:
    if name in DATE_FIELDS and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return to_wire_date(value)
    return _clean(value)


def _code(name: str, described: str) -> str:
    try:
        return field_code(name, described)
    except ValidationError:
        return _clean(name)[:3].upper() or "XXX"


def _ordered(fields: Mapping[str, str]) -> list[str]:
    listed = [n for n in ITEM_ORDER if n in fields]
    rest = [n for n in fields if n not in ITEM_ORDER and n not in _LATE]
    return listed + rest


def wrap_items(items: Sequence[str], first: str = "") -> list[str]:
    """Greedy fill: items one space apart, never split, lines at most WIDTH characters."""
    lines: list[str] = []
    line = first
    for item in items:
        if not item:
            continue
        if not line:
            line = item
        elif len(line) + 1 + len(item) <= WIDTH:
            line += " " + item
        else:
            lines.append(line)
            line = item
    if line:
        lines.append(line)
    return lines


def _next_day(iso: str) -> str:
    try:
        return (_dt.date.fromisoformat(iso) + _dt.timedelta(days=1)).strftime("%Y%m%d")
    except ValueError:
        return ""


def record_lines(record: Record) -> list[str]:
    """One record's block (see the module docstring)."""
    fields = record.fields
    warrant = record.warrant
    lines = [WARNING_LINE]
    cmc = [CAVEAT_CMC[c] for c in record.caveats if c in CAVEAT_CMC]
    lines.extend(f"CAUTION - {words}" for _, words in cmc)
    lines.append(f"MKE/{FILE_WORDS.get(record.file, _clean(record.file))}")
    lines.extend(f"CMC/{code} - {words}" for code, words in cmc)
    if warrant is not None and warrant.extradition:
        lines.append(f"EXL/{_clean(warrant.extradition)}")
    ori = warrant.entering_ori if warrant is not None else fields.get("ori", "")
    items = [f"ORI/{_clean(ori)}"] if ori else []
    items.extend(
        f"{_code(n, record.file)}/{_wire(n, fields[n])}" for n in _ordered(fields) if fields[n]
    )
    pairs: tuple[tuple[str, str], ...]
    if warrant is not None:
        pairs = (
            ("OFF", _clean(warrant.offense)),
            ("DOW", _wire("dob", warrant.issued)),
            ("OCA", _clean(warrant.oca)),
            ("WNO", _clean(warrant.number)),
            ("CRT", _clean(warrant.court)),
        )
        nic = warrant.nic
        entered = _next_day(warrant.issued) if warrant.issued else ""
    else:
        pairs = (("OCA", _clean(fields.get("oca", ""))),)
        nic = fields.get("nic", "")
        theft = fields.get("date_of_theft", "")
        entered = _next_day(theft) if theft else ""
    items.extend(f"{code}/{value}" for code, value in pairs if value)
    if fields.get("misc"):
        items.append(f"MIS/{_clean(fields['misc'])}")
    lines.extend(wrap_items(items))
    if ori:
        name, phone = agency(_clean(ori))
        lines.append(f"ORI IS {name} {_clean(ori)[:2]} {phone}"[:WIDTH])
    last = [f"NIC/{_clean(nic)}" if nic else "", f"DTE/{entered}" if entered else ""]
    lines.extend(wrap_items(last))
    return lines


def no_record_line(tier: str, subject: str, fields: Mapping[str, str]) -> list[str]:
    """``NO STATE WANT NAM/DOE, JOHN A DOB/19800101`` (wrapped like item lines)."""
    label = NETWORK_LABELS.get(tier, _clean(tier)[:10] or "NETWORK")
    if tier == "national" and subject in ("driver", "registration"):
        label = "NLETS"
    what = "WANT" if subject == "person" else "RECORD"
    items = [f"{_code(n, subject)}/{_wire(n, v)}" for n, v in fields.items() if v]
    return wrap_items(items, f"NO {label} {what}")


def render_text(
    tier: str, subject: str, fields: Mapping[str, str], records: Sequence[Record]
) -> str:
    """The network's printable answer to one inquiry; never empty (DESIGN §3 Reply.text)."""
    if not records:
        return "\n".join(no_record_line(tier, subject, fields))
    lines: list[str] = []
    for record in records:
        lines.extend(record_lines(record))
    return "\n".join(lines)
