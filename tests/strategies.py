"""Hypothesis strategies for valid canonical messages, shared by every codec's tests.

Every strategy returns messages the model accepts, with values already normalised (a
decoder normalises, so a round trip must compare equal). Formats differ in what they
carry and which characters they allow, so each strategy takes the same keyword options
(or a ready :class:`Profile`):

- ``text_alphabet``: the characters of free text (reply text, teletype text, NAK text,
  logon-fail reason): a string of characters or a character strategy. Presets:
  :data:`ANY_TEXT` (default: any Unicode but surrogates), :data:`XML_TEXT`,
  :data:`STATE_TEXT` (printable ASCII upper case). ``text`` replaces the whole free-text
  strategy when an alphabet is not enough (e.g. words joined by single spaces).
- ``field_alphabet``: characters of record/warrant values and requester/recipient
  (default upper-case letters, digits, single spaces; never ``.`` or ``/``).
- ``drop``: field names set to their dataclass default, everywhere in the message tree
  (``"priority"``) or for one class only (``"Reply.subject"``, ``"Warrant.court"``), for
  what a format does not carry; compare with :func:`same_message` and the same names.
- ``network``: ``Reply.network`` (the codec's name); ``control``: give inquiries and
  replies a state control number; ``frame_id``: give control frames a frame id.

Usage::

    from tests.strategies import wire_messages, same_message
    @given(wire_messages(network="regional", drop={"Reply.subject"}))
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import string
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from switch import model
from switch.model import (
    CAVEATS,
    FILES,
    NAK_TEXTS,
    PURPOSES,
    RACES,
    SEXES,
    STATE_CODES,
    SUBJECT_FIELDS,
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
    WireMessage,
)

__all__ = [
    "ANY_TEXT",
    "STATE_TEXT",
    "XML_TEXT",
    "Profile",
    "acks",
    "admin_messages",
    "control_frames",
    "dates",
    "heartbeats",
    "ids",
    "inquiries",
    "inquiry_fields",
    "logoffs",
    "logon_results",
    "logons",
    "message_diff",
    "naks",
    "names",
    "notices",
    "oris",
    "records",
    "replies",
    "same_message",
    "warrants",
    "wire_messages",
]

# --------------------------------------------------------------------------- alphabets

#: Any Unicode scalar value except surrogates (JSON and BER UTF8String carry them all).
ANY_TEXT: SearchStrategy[str] = st.characters(blacklist_categories=("Cs",))
#: What XML 1.0 text content carries unchanged: no C0 controls but TAB and LF (a parser
#: turns CR into LF), no surrogates, no U+FFFE/U+FFFF.
XML_TEXT: SearchStrategy[str] = st.characters(
    blacklist_categories=("Cs", "Cc"), blacklist_characters="\ufffe\uffff"
) | st.sampled_from("\t\n")
#: Printable ASCII upper case: the state wire.
STATE_TEXT: str = "".join(chr(c) for c in range(0x20, 0x7F) if not chr(c).islower())

_UPPER_DIGITS = string.ascii_uppercase + string.digits
_ID_CHARS = string.ascii_letters + string.digits + "-"


@dataclasses.dataclass(frozen=True)
class Profile:
    """What one wire format can carry; see the module docstring."""

    text_alphabet: str | SearchStrategy[str] = ANY_TEXT
    text: SearchStrategy[str] | None = None
    max_text: int = 120
    field_alphabet: str = _UPPER_DIGITS
    network: str = "local"
    control: bool = False
    frame_id: bool = False
    drop: frozenset[str] = frozenset()

    def free_text(self, min_size: int = 1) -> SearchStrategy[str]:
        """Free text, at least ``min_size`` characters."""
        if self.text is not None:
            return self.text.filter(lambda s: len(s) >= min_size)
        return st.text(self.text_alphabet, min_size=min_size, max_size=self.max_text)

    def words(self, max_len: int = 30, min_len: int = 1) -> SearchStrategy[str]:
        """Upper-case values as words joined by single spaces (what NCIC normalises to)."""
        word = st.text(self.field_alphabet.replace(" ", ""), min_size=1, max_size=10)
        return (
            st.lists(word, min_size=1, max_size=4)
            .map(" ".join)
            .filter(lambda s: min_len <= len(s) <= max_len)
        )


def _profile(profile: Profile | None, options: Mapping[str, Any]) -> Profile:
    base = profile if profile is not None else Profile()
    if "drop" in options:
        options = {**options, "drop": frozenset(options["drop"])}
    return dataclasses.replace(base, **options) if options else base


# --------------------------------------------------------------------------- dropping


def _defaults(cls: type) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = f.default_factory()
    return out


def _matches(names: Collection[str], obj: object, field_name: str) -> bool:
    return field_name in names or f"{type(obj).__name__}.{field_name}" in names


def _drop(obj: Any, names: frozenset[str]) -> Any:
    """Set the named fields to their defaults, recursively (records, warrants, origin)."""
    if not names:
        return obj
    if isinstance(obj, tuple):
        return tuple(_drop(o, names) for o in obj)
    if not dataclasses.is_dataclass(obj) or isinstance(obj, type):
        return obj
    defaults = _defaults(type(obj))
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.name in ("kind",):
            continue
        if _matches(names, obj, f.name):
            if f.name not in defaults:
                raise ValueError(f"cannot drop required field {type(obj).__name__}.{f.name}")
            changes[f.name] = defaults[f.name]
        else:
            value = getattr(obj, f.name)
            new = _drop(value, names)
            if new is not value:
                changes[f.name] = new
    return dataclasses.replace(obj, **changes) if changes else obj


def _finish(strategy: SearchStrategy[Any], p: Profile) -> SearchStrategy[Any]:
    return strategy.map(lambda m: _drop(m, p.drop)) if p.drop else strategy


# --------------------------------------------------------------------------- atoms


def ids() -> SearchStrategy[str]:
    """Message ids: 1-40 of ``[A-Za-z0-9-]`` (DESIGN §3)."""
    return st.text(_ID_CHARS, min_size=1, max_size=40)


def oris() -> SearchStrategy[str]:
    """Valid ORIs: a state code and 7 letters or digits."""
    return st.builds(
        lambda s, rest: s + rest,
        st.sampled_from(sorted(STATE_CODES)),
        st.text(_UPPER_DIGITS, min_size=7, max_size=7),
    )


def dates(min_year: int = 1900, max_year: int = 2030) -> SearchStrategy[str]:
    """ISO dates as the model holds them."""
    return st.dates(_dt.date(min_year, 1, 1), _dt.date(max_year, 12, 31)).map(_dt.date.isoformat)


def _name_part(max_size: int) -> SearchStrategy[str]:
    inner = st.text(string.ascii_uppercase, min_size=1, max_size=max_size)
    joined = st.tuples(inner, st.sampled_from(["-", "'", " "]), inner).map("".join)
    return st.one_of(inner, joined)


def _try_name(parts: tuple[str, str, str | None]) -> str | None:
    last, first, middle = parts
    raw = f"{last}, {first}" + (f" {middle}" if middle else "")
    try:
        return model.normalize_name(raw)
    except model.ValidationError:
        return None


def names() -> SearchStrategy[str]:
    """Person names valid per ``normalize_name`` and already normalised."""
    return (
        st.tuples(_name_part(12), _name_part(10), st.none() | _name_part(8))
        .map(_try_name)
        .filter(lambda n: n is not None)
        .map(lambda n: str(n))
    )


def _ident(min_size: int = 1, max_size: int = 20) -> SearchStrategy[str]:
    return st.text(_UPPER_DIGITS, min_size=min_size, max_size=max_size)


def _upper_words(max_len: int) -> SearchStrategy[str]:
    return Profile().words(max_len)


_STATES = st.sampled_from(sorted(STATE_CODES))

#: Canonical inquiry field -> a strategy of values the model accepts (and leaves as is).
_INQUIRY_VALUES: Mapping[str, SearchStrategy[str]] = {
    "name": names(),
    "dob": dates(1900, 2020),
    "sex": st.sampled_from(sorted(SEXES)),
    "race": st.sampled_from(sorted(RACES)),
    "soc": st.text(string.digits, min_size=9, max_size=9),
    "oln": _ident(),
    "oln_state": _STATES,
    "plate": _ident(1, 8),
    "plate_state": _STATES,
    "plate_year": st.integers(1950, 2030).map(str),
    "plate_type": st.sampled_from(["PC", "TK", "MC", "TL", "CM", "RV"]),
    "vin": st.text("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", min_size=17, max_size=17),
    "make": _upper_words(24),
    "serial": _ident(),
    "caliber": st.sampled_from(["9MM", "45", "38", "22", "357", "556", "12GA"]),
    "article_type": st.sampled_from(["TELEVIS", "BICYCLE", "CAMERA", "JEWELRY", "TOOL"]),
    "brand": _upper_words(24),
}


@st.composite
def _fields_for(draw: st.DrawFn, subject: str) -> dict[str, str]:
    alternatives, optional = SUBJECT_FIELDS[subject]
    chosen = list(draw(st.sampled_from(alternatives)))
    chosen += draw(st.lists(st.sampled_from(optional), unique=True, max_size=len(optional)))
    raw = {name: draw(_INQUIRY_VALUES[name]) for name in dict.fromkeys(chosen)}
    return model.validate_fields(subject, raw)


def inquiry_fields(subject: str | None = None) -> SearchStrategy[tuple[str, dict[str, str]]]:
    """``(subject, fields)`` valid per ``validate_fields``, output normalised."""
    subjects = [subject] if subject else list(SUBJECT_FIELDS)
    return st.sampled_from(subjects).flatmap(lambda s: st.tuples(st.just(s), _fields_for(s)))


# --------------------------------------------------------------------------- records

#: Record fields a network returns besides the inquiry fields (never ori/oca/nic: on coded
#: wires those belong to the warrant when there is one, see switch/formats/fields.py).
_RECORD_EXTRA = (
    "height",
    "weight",
    "misc",
    "caution",
    "status",
    "vehicle_year",
    "vehicle_model",
    "vehicle_color",
    "owner",
)
_RECORD_DATES = ("expires", "date_of_theft")


def warrants(profile: Profile | None = None, **options: Any) -> SearchStrategy[Warrant]:
    """Warrants with a number (what marks a warrant on coded wires) and ISO ``issued``."""
    p = _profile(profile, options)
    opt = st.just("") | p.words(30)
    return _finish(
        st.builds(
            Warrant,
            number=p.words(20),
            offense=opt,
            issued=st.just("") | dates(1970, 2030),
            court=opt,
            extradition=st.just("") | st.sampled_from(["1", "2", "3", "4", "5", "6", "E", "N"]),
            entering_ori=st.just("") | oris(),
            oca=st.just("") | p.words(20),
            nic=st.just("") | _ident(10, 10),
        ),
        p,
    )


@st.composite
def _record(draw: st.DrawFn, p: Profile) -> Record:
    file = draw(st.sampled_from(FILES))
    _, fields = draw(inquiry_fields())
    fields.pop("make", None)  # VMA/MAK depends on the file: keep it to the subject's inquiry
    extras = draw(st.lists(st.sampled_from(_RECORD_EXTRA), unique=True, max_size=3))
    for name in extras:
        fields[name] = draw(p.words(30))
    for name in draw(st.lists(st.sampled_from(_RECORD_DATES), unique=True, max_size=2)):
        fields[name] = draw(dates(1990, 2035))
    warrant = draw(st.none() | warrants(p)) if file == "wanted_person" else None
    if warrant is None and draw(st.booleans()):
        fields["ori"] = draw(oris())
    caveats = tuple(draw(st.lists(st.sampled_from(CAVEATS), unique=True, max_size=3)))
    return Record(file=file, fields=fields, caveats=caveats, warrant=warrant)


def records(profile: Profile | None = None, **options: Any) -> SearchStrategy[Record]:
    """Records with canonical fields, caveats and, for wanted persons, maybe a warrant."""
    p = _profile(profile, options)
    return _finish(_record(p), p)


# --------------------------------------------------------------------------- messages


def _priority() -> SearchStrategy[model.Priority]:
    return st.sampled_from(["routine", "urgent"])


def _control() -> SearchStrategy[str]:
    return st.builds(lambda s: "S" + s, _ident(1, 9))


def inquiries(profile: Profile | None = None, **options: Any) -> SearchStrategy[Inquiry]:
    """Inquiries of every subject, with purpose/requester/recipient sometimes set."""
    p = _profile(profile, options)

    @st.composite
    def build(draw: st.DrawFn) -> Inquiry:
        subject, fields = draw(inquiry_fields())
        return Inquiry(
            id=draw(ids()),
            subject=subject,
            fields=fields,
            origin=Origin(ori=draw(oris())),
            priority=draw(_priority()),
            purpose=draw(st.none() | st.sampled_from(sorted(PURPOSES))),
            requester=draw(st.none() | p.words(30)),
            recipient=draw(st.none() | p.words(30)),
            control=draw(_control()) if p.control else None,
        )

    return _finish(build(), p)


def replies(profile: Profile | None = None, **options: Any) -> SearchStrategy[Reply]:
    """Replies with status hit (>= 1 record) or no_record (none), answering an inquiry id."""
    p = _profile(profile, options)

    @st.composite
    def build(draw: st.DrawFn) -> Reply:
        hit = draw(st.booleans())
        recs = tuple(draw(st.lists(_record(p), min_size=1, max_size=3))) if hit else ()
        return Reply(
            id=draw(ids()),
            network=p.network,
            status="hit" if hit else "no_record",
            text=draw(p.free_text()),
            records=recs,
            in_reply_to=draw(ids()),
            control=draw(_control()) if p.control else None,
            subject=draw(st.sampled_from(list(SUBJECT_FIELDS))),
        )

    return _finish(build(), p)


def _destinations() -> SearchStrategy[tuple[str, ...]]:
    dest = st.one_of(oris(), _STATES, st.sampled_from(["REG", "STATE"]))
    return st.lists(dest, min_size=1, max_size=5, unique=True).map(tuple)


@st.composite
def _hit_confirmation_fields(draw: st.DrawFn, key: str, p: Profile) -> dict[str, str]:
    fields = {
        "request_type": draw(st.sampled_from(["WANTED PERSON", "STOLEN VEHICLE", "STOLEN GUN"])),
        "request_number": draw(st.sampled_from(["1", "2", "3"])),
        "urgency": draw(st.sampled_from(["U", "R"])),
    }
    optional: dict[str, SearchStrategy[str]] = {
        "oca": p.words(20),
        "nic": _ident(10, 10),
        "name": names(),
        "dob": dates(1900, 2020),
        "sex": st.sampled_from(sorted(SEXES)),
        "requester_name": p.words(30),
        "requester_agency": p.words(30),
        "phone": st.text(string.digits, min_size=10, max_size=10),
        "remarks": p.words(60),
    }
    for name in draw(st.lists(st.sampled_from(sorted(optional)), unique=True, max_size=5)):
        fields[name] = draw(optional[name])
    if key == "YR":
        fields["confirmed"] = draw(st.sampled_from(["Y", "N", "P"]))
    return fields


def admin_messages(
    profile: Profile | None = None, keys: Iterable[str] = model.ADMIN_KEYS, **options: Any
) -> SearchStrategy[AdminMessage]:
    """AM (no fields), YQ and YR (hit-confirmation fields, YR with ``confirmed``)."""
    p = _profile(profile, options)
    key_list = list(keys)

    @st.composite
    def build(draw: st.DrawFn) -> AdminMessage:
        key = draw(st.sampled_from(key_list))
        return AdminMessage(
            id=draw(ids()),
            key=key,
            from_ori=draw(oris()),
            to=draw(_destinations()),
            text=draw(p.free_text()),
            priority=draw(_priority()),
            fields=draw(_hit_confirmation_fields(key, p)) if key != "AM" else {},
        )

    return _finish(build(), p)


def notices(profile: Profile | None = None, **options: Any) -> SearchStrategy[Notice]:
    """ER (codes 10-50) and SM (2 store-and-forward, 4 resend) from a network's ORI."""
    p = _profile(profile, options)

    @st.composite
    def build(draw: st.DrawFn) -> Notice:
        key = draw(st.sampled_from(model.NOTICE_KEYS))
        code = draw(st.sampled_from(sorted(NAK_TEXTS) if key == "ER" else [2, 4]))
        return Notice(
            id=draw(ids()),
            key=key,
            from_ori=draw(oris()),
            code=code,
            text=draw(p.free_text()),
            in_reply_to=draw(st.none() | ids()),
        )

    return _finish(build(), p)


def _frame_id(p: Profile) -> SearchStrategy[str | None]:
    return ids() if p.frame_id else st.none()


def acks(profile: Profile | None = None, **options: Any) -> SearchStrategy[Ack]:
    p = _profile(profile, options)
    return _finish(st.builds(Ack, id=ids(), frame_id=_frame_id(p)), p)


def naks(profile: Profile | None = None, **options: Any) -> SearchStrategy[Nak]:
    """NAKs with a DESIGN §4 code; the id is empty when the refused id was unreadable."""
    p = _profile(profile, options)
    return _finish(
        st.builds(
            Nak,
            id=st.just("") | ids(),
            code=st.sampled_from(sorted(NAK_TEXTS)),
            text=p.free_text(),
            frame_id=_frame_id(p),
        ),
        p,
    )


def logons(profile: Profile | None = None, **options: Any) -> SearchStrategy[Logon]:
    """Logons with an ORI station and a ``token_urlsafe``-style secret."""
    p = _profile(profile, options)
    secret = st.text(string.ascii_letters + string.digits + "-_", min_size=1, max_size=64)
    return _finish(st.builds(Logon, station=oris(), secret=secret, frame_id=_frame_id(p)), p)


def logon_results(profile: Profile | None = None, **options: Any) -> SearchStrategy[LogonResult]:
    """Logon OK (no reason) or refused (a reason)."""
    p = _profile(profile, options)
    ok = st.builds(LogonResult, ok=st.just(True), reason=st.just(""), frame_id=_frame_id(p))
    fail = st.builds(LogonResult, ok=st.just(False), reason=p.free_text(), frame_id=_frame_id(p))
    return _finish(ok | fail, p)


def heartbeats(profile: Profile | None = None, **options: Any) -> SearchStrategy[Heartbeat]:
    p = _profile(profile, options)
    return _finish(st.builds(Heartbeat, frame_id=_frame_id(p)), p)


def logoffs(profile: Profile | None = None, **options: Any) -> SearchStrategy[Logoff]:
    p = _profile(profile, options)
    return _finish(st.builds(Logoff, frame_id=_frame_id(p)), p)


def control_frames(profile: Profile | None = None, **options: Any) -> SearchStrategy[WireMessage]:
    p = _profile(profile, options)
    return st.one_of(acks(p), naks(p), logons(p), logon_results(p), heartbeats(p), logoffs(p))


def wire_messages(
    profile: Profile | None = None, *, notices_too: bool = True, **options: Any
) -> SearchStrategy[WireMessage]:
    """Every message kind a link carries (``notices_too=False`` leaves Notices out)."""
    p = _profile(profile, options)
    kinds: list[SearchStrategy[WireMessage]] = [
        inquiries(p),
        replies(p),
        admin_messages(p),
        acks(p),
        naks(p),
        logons(p),
        logon_results(p),
        heartbeats(p),
        logoffs(p),
    ]
    if notices_too:
        kinds.append(notices(p))
    return st.one_of(kinds)


# --------------------------------------------------------------------------- comparing


def _as_plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, list):
        return tuple(value)
    return value


def message_diff(
    a: Any, b: Any, ignore: Iterable[str] = ("created",), _path: str = ""
) -> list[str]:
    """Differences between two messages, field by field (mappings compared as dicts).

    ``ignore`` uses the names of ``drop``: ``"created"`` anywhere, ``"Reply.subject"`` on
    one class only. Returns human-readable lines, empty when the messages agree.
    """
    names = frozenset(ignore)
    where = _path or type(a).__name__
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return [] if dict(a) == dict(b) else [f"{where}: {dict(a)!r} != {dict(b)!r}"]
    if type(a) is not type(b):
        return [f"{where}: {type(a).__name__} != {type(b).__name__}"]
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        out: list[str] = []
        for f in dataclasses.fields(a):
            if _matches(names, a, f.name):
                continue
            out += message_diff(getattr(a, f.name), getattr(b, f.name), names, f"{where}.{f.name}")
        return out
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items != {len(b)} items"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += message_diff(x, y, names, f"{where}[{i}]")
        return out
    if _as_plain(a) != _as_plain(b):
        return [f"{where}: {a!r} != {b!r}"]
    return []


def same_message(a: Any, b: Any, ignore: Iterable[str] = ("created",)) -> bool:
    """True when ``a`` and ``b`` agree on every field not in ``ignore`` (see message_diff)."""
    return not message_diff(a, b, ignore)
