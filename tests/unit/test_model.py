"""The canonical model refuses what DESIGN §3 forbids and normalises what it allows."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from switch import model
from switch.model import ValidationError


def test_person_needs_name_and_dob_or_oln() -> None:
    """An inquiry missing its identifying fields is refused, naming the field."""
    with pytest.raises(ValidationError) as err:
        model.validate_fields("person", {"name": "DOE, JOHN"})
    assert err.value.field == "dob"
    with pytest.raises(ValidationError) as err:
        model.validate_fields("person", {"dob": "1980-01-01"})
    assert err.value.field == "name"
    assert model.validate_fields("person", {"name": "doe,john a", "oln": "r100-200 300"}) == {
        "name": "DOE, JOHN A",
        "oln": "R100200300",
    }


@pytest.mark.parametrize(
    ("subject", "fields", "missing"),
    [
        ("vehicle", {"plate": "ABC1234"}, "plate_state"),
        ("vehicle", {}, "plate"),
        ("driver", {"oln": "R100200300"}, "oln_state"),
        ("registration", {"plate_state": "MO"}, "plate"),
        ("gun", {"make": "COLT"}, "serial"),
        ("article", {"serial": "X1"}, "article_type"),
    ],
)
def test_required_fields_per_subject(subject: str, fields: dict[str, str], missing: str) -> None:
    """Each subject's identifying fields are required, and the error names the missing one."""
    with pytest.raises(ValidationError) as err:
        model.validate_fields(subject, fields)
    assert err.value.field == missing


def test_vin_alone_identifies_a_vehicle() -> None:
    """A VIN is enough for a vehicle or registration check."""
    assert model.validate_fields("vehicle", {"vin": "1HGCM82633A004352"}) == {
        "vin": "1HGCM82633A004352"
    }


@pytest.mark.parametrize(
    ("subject", "fields", "bad"),
    [
        ("person", {"name": "DOE, JOHN", "dob": "1980-02-30"}, "dob"),
        ("person", {"name": "DOE, JOHN", "dob": "01/01/1980"}, "dob"),
        ("person", {"name": "DOE2, JOHN", "dob": "1980-01-01"}, "name"),
        ("person", {"name": "DOE JOHN", "dob": "1980-01-01"}, "name"),
        ("person", {"name": "DOE, JOHN", "dob": "1980-01-01", "sex": "Q"}, "sex"),
        ("person", {"name": "DOE, JOHN", "dob": "1980-01-01", "eyes": "BLU"}, "eyes"),
        ("vehicle", {"plate": "ABC1234", "plate_state": "ZZ"}, "plate_state"),
        ("vehicle", {"vin": "1HGCM82633A00435"}, "vin"),
    ],
)
def test_bad_values_are_named(subject: str, fields: dict[str, str], bad: str) -> None:
    """Malformed or unknown fields are refused with the field named."""
    with pytest.raises(ValidationError) as err:
        model.validate_fields(subject, fields)
    assert err.value.field == bad


def test_unknown_subject() -> None:
    """An unknown subject is a validation error on ``subject``."""
    with pytest.raises(ValidationError) as err:
        model.validate_fields("boat", {"name": "X, Y"})
    assert err.value.field == "subject"


_letters = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=12)


@given(last=_letters, first=_letters, middle=st.one_of(st.none(), _letters))
def test_name_normalisation_is_idempotent(last: str, first: str, middle: str | None) -> None:
    """Normalising a valid name twice changes nothing; case and spacing never matter."""
    raw = f"{last.lower()} ,  {first}" + (f"  {middle.lower()}" if middle else "")
    expected = f"{last}, {first}" + (f" {middle}" if middle else "")
    if len(expected) > 30:
        with pytest.raises(ValidationError):
            model.normalize_name(raw)
        return
    assert model.normalize_name(raw) == expected
    assert model.normalize_name(expected) == expected


@given(st.text(max_size=40))
def test_name_rule_never_crashes(text: str) -> None:
    """Any text is either a valid normalised name or a ValidationError on ``name``."""
    try:
        name = model.normalize_name(text)
    except ValidationError as err:
        assert err.field == "name"
    else:
        assert 3 <= len(name) <= 30 and name.count(",") == 1
        assert not any(c.isdigit() for c in name)


@given(
    st.sampled_from(sorted(model.STATE_CODES)),
    st.text("ABCDEFGHXYZ0123456789", min_size=7, max_size=7),
)
def test_valid_oris(state: str, rest: str) -> None:
    """A state code plus seven letters/digits is an ORI."""
    assert model.validate_ori(state + rest) == state + rest


@given(st.text(max_size=12))
def test_ori_rule(text: str) -> None:
    """Anything else is refused on the ``ori`` field."""
    try:
        ori = model.validate_ori(text)
    except ValidationError as err:
        assert err.field == "ori"
    else:
        assert len(ori) == 9 and ori[:2] in model.STATE_CODES


def test_ids_unique_across_restarts() -> None:
    """Two id sources (two process starts, same millisecond) never collide."""
    a = model.IdSource(now_ms=1_700_000_000_000)
    b = model.IdSource(now_ms=1_700_000_000_000)
    ids = {a() for _ in range(1000)} | {b() for _ in range(1000)}
    assert len(ids) == 2000
    assert all(model.validate_id(i) for i in ids)


def test_reply_text_never_empty() -> None:
    """A reply without printable text is refused."""
    with pytest.raises(ValidationError):
        model.Reply(id="R1", network="local", status="no_record", text="")


def test_logon_repr_hides_secret() -> None:
    """A logon frame's repr never shows the secret (it might reach a log)."""
    assert "s3cret" not in repr(model.Logon(station="MO0380100", secret="s3cret"))
