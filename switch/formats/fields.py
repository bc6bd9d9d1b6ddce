"""Canonical fields <-> NCIC-style coded pairs, shared by the regional, state and national codecs.

The coded wires carry fields as ``(code, value)`` pairs with dates as ``YYYYMMDD``; the
model uses canonical names and ISO dates. Warrant data travels as ordinary coded fields
(WNO OFF DOW EXL ORI OCA NIC CRT). Decoding rule, the same in every format: a record
with any of WNO, OFF, DOW, EXL or CRT carries a :class:`~switch.model.Warrant` (and ORI,
OCA, NIC go into it); otherwise ORI, OCA and NIC stay in ``fields`` as ``ori``, ``oca``,
``nic``. Pure functions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from switch.model import (
    DATE_FIELDS,
    NAK_INVALID_FORMAT,
    WARRANT_CODES,
    Record,
    ValidationError,
    Warrant,
    code_field,
    field_code,
    from_wire_date,
    to_wire_date,
)

from .base import CodecError

#: Codes that mark a record as a warrant (ORI, OCA and NIC alone do not).
WARRANT_MARKERS = frozenset({"WNO", "OFF", "DOW", "EXL", "CRT"})
_WARRANT_BY_CODE = {code: attr for attr, code in WARRANT_CODES.items()}
_DATE_CODES = frozenset({field_code(name) for name in DATE_FIELDS} | {"DOW"})

Pairs = list[tuple[str, str]]


def _wire_value(code: str, value: str) -> str:
    return to_wire_date(value) if code in _DATE_CODES and value else value


def _model_value(code: str, value: str) -> str:
    if code in _DATE_CODES and value:
        try:
            return from_wire_date(value, code)
        except ValidationError as err:
            raise CodecError(NAK_INVALID_FORMAT, f"BAD DATE IN {code}") from err
    return value


def fields_to_codes(fields: Mapping[str, str], described: str = "") -> Pairs:
    """Canonical ``{name: value}`` -> ``[(code, wire value)]`` in the given order.

    ``described`` is the subject or file (``make`` is VMA on vehicles, MAK on guns).
    """
    try:
        return [
            (code, _wire_value(code, value))
            for name, value in fields.items()
            for code in (field_code(name, described),)
        ]
    except ValidationError as err:
        raise CodecError(NAK_INVALID_FORMAT, f"NO CODE FOR FIELD {err.field}") from err


def fields_from_codes(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``[(code, wire value)]`` -> canonical fields; an unknown code is a format error."""
    out: dict[str, str] = {}
    for code, value in pairs:
        try:
            name = code_field(code)
        except ValidationError as err:
            raise CodecError(NAK_INVALID_FORMAT, f"UNKNOWN FIELD {code[:3]}") from err
        out[name] = _model_value(code, value)
    return out


def record_to_codes(record: Record) -> Pairs:
    """A record's fields then its warrant data (non-empty attributes only) as coded pairs."""
    pairs = fields_to_codes(record.fields, record.file)
    if record.warrant is not None:
        for attr, code in WARRANT_CODES.items():
            value = getattr(record.warrant, attr)
            if value:
                pairs.append((code, _wire_value(code, value)))
    return pairs


def record_from_codes(
    file: str, pairs: Iterable[tuple[str, str]], caveats: Iterable[str]
) -> Record:
    """Rebuild a Record from coded pairs, applying the warrant rule of this module."""
    pairs = list(pairs)
    is_warrant = any(code in WARRANT_MARKERS for code, _ in pairs)
    warrant: dict[str, str] = {}
    plain: Pairs = []
    for code, value in pairs:
        if is_warrant and code in _WARRANT_BY_CODE:
            warrant[_WARRANT_BY_CODE[code]] = _model_value(code, value)
        else:
            plain.append((code, value))
    try:
        return Record(
            file=file,
            fields=fields_from_codes(plain),
            caveats=tuple(caveats),
            warrant=Warrant(**warrant) if is_warrant else None,
        )
    except ValidationError as err:
        raise CodecError(NAK_INVALID_FORMAT, f"BAD RECORD {err.field}") from err
