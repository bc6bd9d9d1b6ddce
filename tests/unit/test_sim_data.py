"""The simulators' synthetic data set: deterministic, indexed, valid, and it holds the known
test subjects of docs/test-subjects.md at the documented tiers; its reply text follows the
NCIC layout of DESIGN §4.3."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator, Mapping

import pytest

from simulators import data as sim_data
from simulators.data import TIERS, Dataset, vin_check_digit
from simulators.text import WARNING_LINE, render_text
from switch import model
from switch.formats.fields import record_from_codes, record_to_codes
from switch.model import Record, Warrant

SMALL = 2_000
DOE = {"name": "DOE, JOHN A", "dob": "1980-01-01"}
ROE = {"name": "ROE, JANE", "dob": "1975-05-05"}
CLEAN = {"name": "CLEAN, CARL", "dob": "1990-01-01"}
_ITEM_SPLIT = re.compile(r" (?=[A-Z]{3}/)")
_ITEM = re.compile(r"[A-Z]{3}/\S.*")
_VALUE_OK = re.compile(r"[ -~]*")


@pytest.fixture(scope="module")
def small() -> Dataset:
    ds = Dataset(seed=7, persons=SMALL)
    ds.ensure_built()
    return ds


@pytest.fixture(scope="module")
def full() -> Dataset:
    ds = Dataset()
    ds.ensure_built()
    return ds


def hits(ds: Dataset, subject: str, fields: Mapping[str, str]) -> dict[str, list[str]]:
    return {tier: [r.file for r in ds.lookup(tier, subject, fields)] for tier in TIERS}


# --------------------------------------------------------------------------- known subjects


@pytest.mark.parametrize("seed", [1, 2, 99])
def test_doe_is_wanted_at_every_tier(seed: int) -> None:
    """DOE, JOHN A (1980-01-01) has one warrant per tier; the NCIC one is armed and dangerous
    with full extradition; name + OLN finds the same records as name + DOB."""
    ds = Dataset(seed=seed, persons=500)
    for tier in TIERS:
        by_dob = ds.lookup(tier, "person", DOE)
        assert [r.file for r in by_dob] == ["wanted_person"], tier
        assert by_dob[0].warrant is not None
        by_oln = ds.lookup(
            tier, "person", {"name": "DOE, JOHN A", "oln": "D100200300", "oln_state": "MO"}
        )
        assert by_oln == by_dob
    national = ds.lookup("national", "person", DOE)[0]
    assert national.caveats == ("armed_and_dangerous",)
    assert national.warrant is not None
    assert national.warrant.extradition == "1 - FULL EXTRADITION"
    assert national.warrant.nic == "W000000777"
    local = ds.lookup("local", "person", DOE)[0]
    assert local.warrant is not None and local.warrant.entering_ori == "MO0380100"


@pytest.mark.parametrize("seed", [1, 2])
def test_roe_has_a_suspended_licence_and_no_warrant(seed: int) -> None:
    """ROE, JANE: no person record anywhere; her Missouri licence is suspended at state."""
    ds = Dataset(seed=seed, persons=500)
    assert hits(ds, "person", ROE) == {t: [] for t in TIERS}
    assert hits(ds, "person", {"name": "ROE, JANE", "oln": "R100200300"}) == {t: [] for t in TIERS}
    driver = {"oln": "R100200300", "oln_state": "MO"}
    assert hits(ds, "driver", driver) == {
        "local": [],
        "regional": [],
        "state": ["driver"],
        "national": [],
    }
    record = ds.lookup("state", "driver", driver)[0]
    assert record.fields["status"] == "SUSPENDED"
    assert record.fields["name"] == "ROE, JANE"
    assert ds.lookup("state", "driver", {"oln": "R100200300", "oln_state": "KS"}) == []


def test_known_vehicle_gun_and_article() -> None:
    """ABC1234 MO / VIN 1HGCM82633A004352 is stolen (national only) and registered to ROE
    (state); G1234567 is a stolen gun at national only; laptop LT0000042 is a stolen
    article at local, state and national."""
    ds = Dataset(seed=3, persons=500)
    only_national = {"local": [], "regional": [], "state": [], "national": ["stolen_vehicle"]}
    assert hits(ds, "vehicle", {"plate": "ABC1234", "plate_state": "MO"}) == only_national
    assert hits(ds, "vehicle", {"vin": "1HGCM82633A004352"}) == only_national
    both = {"plate": "ABC1234", "plate_state": "MO", "vin": "1HGCM82633A004352"}
    assert len(ds.lookup("national", "vehicle", both)) == 1
    assert ds.lookup("national", "vehicle", {"plate": "ABC1234", "plate_state": "KS"}) == []
    for fields in ({"plate": "ABC1234", "plate_state": "MO"}, {"vin": "1HGCM82633A004352"}):
        assert hits(ds, "registration", fields) == {
            "local": [],
            "regional": [],
            "state": ["registration"],
            "national": [],
        }
        assert ds.lookup("state", "registration", fields)[0].fields["owner"] == "ROE, JANE"
    assert hits(ds, "gun", {"serial": "G1234567"}) == {
        "local": [],
        "regional": [],
        "state": [],
        "national": ["stolen_gun"],
    }
    assert hits(ds, "article", {"serial": "LT0000042", "article_type": "LAPTOP"}) == {
        "local": ["stolen_article"],
        "regional": [],
        "state": ["stolen_article"],
        "national": ["stolen_article"],
    }
    assert hits(ds, "article", {"serial": "LT0000042", "article_type": "PHONE"}) == {
        t: [] for t in TIERS
    }


@pytest.mark.parametrize("seed", [1, 5])
def test_clean_carl_has_no_record_anywhere(seed: int) -> None:
    """CLEAN, CARL (1990-01-01) and OLN C100200300 MO are found nowhere, for every seed."""
    ds = Dataset(seed=seed, persons=SMALL)
    assert hits(ds, "person", CLEAN) == {t: [] for t in TIERS}
    assert hits(ds, "driver", {"oln": "C100200300", "oln_state": "MO"}) == {t: [] for t in TIERS}


# --------------------------------------------------------------------------- determinism


def _all(ds: Dataset) -> list[tuple[tuple[str, ...], Record]]:
    return list(ds.iter_records())


def test_same_seed_same_records() -> None:
    """Two data sets of one seed hold identical records, in the same order."""
    first = _all(Dataset(seed=11, persons=SMALL))
    second = _all(Dataset(seed=11, persons=SMALL))
    assert first == second
    assert len(first) > SMALL


def test_other_seed_other_bulk_same_known_subjects(small: Dataset) -> None:
    """Another seed draws other persons and records, but the known subjects are the same."""
    other = Dataset(seed=8, persons=SMALL)
    names_a = {r.fields.get("name") for _, r in small.iter_records()}
    names_b = {r.fields.get("name") for _, r in other.iter_records()}
    assert names_a != names_b
    assert len(names_a & names_b) < len(names_a) * 0.9
    for tier in TIERS:
        assert small.lookup(tier, "person", DOE) == other.lookup(tier, "person", DOE)
    plate = {"plate": "ABC1234", "plate_state": "MO"}
    assert small.lookup("state", "registration", plate) == other.lookup(
        "state", "registration", plate
    )


def test_construction_is_lazy_and_build_is_once_and_thread_safe(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Dataset() builds nothing; concurrent ensure_built calls build exactly once."""
    calls = []
    real = sim_data._Generator.build

    def counting(self: sim_data._Generator) -> sim_data._Built:
        calls.append(1)
        return real(self)

    monkeypatch.setattr(sim_data._Generator, "build", counting)
    ds = Dataset(seed=4, persons=300)
    assert not ds.built and calls == []
    threads = [threading.Thread(target=ds.ensure_built) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ds.ensure_built()
    assert ds.built and calls == [1]


# --------------------------------------------------------------------------- lookups


def _keys(record: Record) -> Iterator[tuple[str, dict[str, str]]]:
    """The inquiries that must find a record."""
    f = record.fields
    if record.file in ("wanted_person", "protection_order", "missing_person"):
        yield "person", {"name": f["name"], "dob": f["dob"]}
        if "oln" in f:
            yield "person", {"name": f["name"], "oln": f["oln"], "oln_state": f["oln_state"]}
    elif record.file == "stolen_vehicle":
        yield "vehicle", {"plate": f["plate"], "plate_state": f["plate_state"]}
        yield "vehicle", {"vin": f["vin"]}
    elif record.file == "stolen_gun":
        yield "gun", {"serial": f["serial"]}
    elif record.file == "stolen_article":
        yield "article", {"serial": f["serial"], "article_type": f["article_type"]}
    elif record.file == "driver":
        yield "driver", {"oln": f["oln"], "oln_state": f["oln_state"]}
    elif record.file == "registration":
        yield "registration", {"plate": f["plate"], "plate_state": f["plate_state"]}
        yield "registration", {"vin": f["vin"]}


def test_every_record_is_found_exactly_at_its_tiers(small: Dataset) -> None:
    """Each record answers its identifying inquiries at the tiers holding it, and only there;
    every record a lookup returns matches the inquiry's identifiers."""
    for tiers, record in small.iter_records():
        for subject, fields in _keys(record):
            for tier in TIERS:
                found = small.lookup(tier, subject, fields)
                assert (record in found) == (tier in tiers), (tier, subject, fields)
                for other in found:
                    for key in ("name", "dob", "oln", "plate", "vin", "serial", "article_type"):
                        if key in fields:
                            assert other.fields[key] == fields[key]


def test_lookups_use_indexes_not_the_record_list() -> None:
    """Lookups read dict indexes: they still answer with the build's record list emptied,
    over 10,000 sampled inquiries (a scan would find nothing)."""
    ds = Dataset(seed=7, persons=SMALL)
    ds.ensure_built()
    assert ds._built is not None
    before = {
        (s, tuple(sorted(f.items()))): [r.file for t in TIERS for r in ds.lookup(t, s, f)]
        for s in ("person", "vehicle", "driver", "registration", "gun", "article")
        for f in ds.sample_fields(s, 2_000, seed=1)
    }
    assert sum(len(v) > 0 for v in before.values()) > 1_000
    ds._built.records.clear()
    for (subject, items), files in before.items():
        assert [r.file for t in TIERS for r in ds.lookup(t, subject, dict(items))] == files


def test_sampled_fields_are_valid_inquiries(small: Dataset) -> None:
    """sample_fields yields field sets that pass the model's inquiry validation unchanged."""
    for subject in model.SUBJECTS:
        samples = small.sample_fields(subject, 200)
        assert samples, subject
        for fields in samples:
            assert model.validate_fields(subject, fields) == fields


def test_lookup_refuses_unknown_tier_and_ignores_unknown_subject(small: Dataset) -> None:
    """An unknown tier is a programming error; an unknown subject or empty fields find nothing."""
    with pytest.raises(ValueError):
        small.lookup("county", "person", DOE)
    assert small.lookup("state", "spaceship", DOE) == []
    assert small.lookup("state", "person", {}) == []
    assert small.lookup("state", "registration", {}) == []


def test_our_local_warrants(small: Dataset) -> None:
    """our_local_warrants lists local warrants entered by our ORI, DOE's among them."""
    ours = small.our_local_warrants(10_000)
    assert ours and all(r.warrant and r.warrant.entering_ori == "MO0380100" for r in ours)
    assert all(r in small.lookup("local", "person", r.fields) for r in ours[:50])
    assert any(r.fields["name"] == "DOE, JOHN A" for r in ours)
    assert len(small.our_local_warrants(3)) == 3


# --------------------------------------------------------------------------- validity


def _check_value(name: str, value: str) -> None:
    assert value, name
    assert _VALUE_OK.fullmatch(value) and value == value.upper(), (name, value)
    assert not set(value) & set("./|"), (name, value)
    assert not re.search(r" [A-Z]{3}/", value)
    assert value == " ".join(value.split())


_SUBJECT_OF = {
    "stolen_vehicle": "vehicle",
    "registration": "vehicle",
    "stolen_gun": "gun",
    "stolen_article": "article",
}


def _check_record(record: Record) -> None:
    assert record.file in model.FILES
    assert set(record.caveats) <= set(model.CAVEATS)
    assert len(set(record.caveats)) == len(record.caveats)
    for name, value in record.fields.items():
        assert name in model.FIELD_CODES, name
        _check_value(name, value)
    f = record.fields
    if "name" in f:
        assert model.normalize_name(f["name"]) == f["name"]
        person = {k: f[k] for k in ("name", "dob", "sex", "race", "oln", "oln_state") if k in f}
        assert model.validate_fields("person", person) == person
    if "owner" in f:
        assert model.normalize_name(f["owner"]) == f["owner"]
    for date in ("dob", "expires", "date_of_theft"):
        if date in f:
            assert model.validate_date(f[date]) == f[date]
    if "ori" in f:
        assert model.validate_ori(f["ori"]) == f["ori"]
    subject = _SUBJECT_OF.get(record.file)
    if subject is not None:
        allowed = model.SUBJECT_FIELDS[subject]
        names = {n for alt in allowed[0] for n in alt} | set(allowed[1])
        ident = {k: v for k, v in f.items() if k in names}
        assert model.validate_fields(subject, ident) == ident
    if record.file == "wanted_person":
        w = record.warrant
        assert w is not None and w.number and w.offense and w.oca
        assert model.validate_ori(w.entering_ori) == w.entering_ori
        assert model.validate_date(w.issued) == w.issued
        for attr in ("number", "offense", "court", "extradition", "oca", "nic"):
            if getattr(w, attr):
                _check_value(attr, getattr(w, attr))
        assert not {"ori", "oca", "nic"} & set(f), "warrant data lives in the warrant"
    else:
        assert record.warrant is None
        assert record.file in ("driver", "registration") or "nic" in f
    # survives the coded wires unchanged (DESIGN §4.2-4.4, switch/formats/fields.py)
    assert record_from_codes(record.file, record_to_codes(record), record.caveats) == record


def test_every_generated_record_is_valid(small: Dataset) -> None:
    """Every record is a valid model Record whose fields obey the model's rules and the
    fixed-text wire's (printable upper case, no . / |), and survives the coded wires."""
    files = set()
    for tiers, record in small.iter_records():
        assert tiers and set(tiers) <= set(TIERS)
        _check_record(record)
        files.add(record.file)
    assert files == set(model.FILES)


def test_vins_carry_a_valid_check_digit(small: Dataset) -> None:
    """Generated VINs (and the known one) have a correct North American check digit."""
    vins = [r.fields["vin"] for _, r in small.iter_records() if r.file == "registration"]
    assert len(vins) > SMALL // 2
    assert all(vin_check_digit(v) == v[8] for v in vins)
    assert vin_check_digit("1HGCM82633A004352") == "3"


def test_identifiers_are_unique(small: Dataset) -> None:
    """Licences, plates and VINs identify one person or vehicle; NICs are unique."""
    regs = [r.fields for _, r in small.iter_records() if r.file == "registration"]
    assert len({f["plate"] for f in regs}) == len(regs)
    assert len({f["vin"] for f in regs}) == len(regs)
    olns = [r.fields["oln"] for _, r in small.iter_records() if r.file == "driver"]
    assert len(set(olns)) == len(olns)
    nics = [
        (r.warrant.nic if r.warrant else r.fields.get("nic", "")) for _, r in small.iter_records()
    ]
    nics = [n for n in nics if n]
    seen: dict[str, int] = {}
    for n in nics:
        seen[n] = seen.get(n, 0) + 1
    assert max(seen.values()) == 1


# --------------------------------------------------------------------------- full size


def test_default_size_proportions(full: Dataset) -> None:
    """At the default 100,000 persons: ~3% wanted somewhere, every file populated at its
    tiers, some persons wanted at several tiers, the known subjects present."""
    wanted: dict[tuple[str, str], set[str]] = {}
    per_file: dict[str, int] = {}
    for tiers, record in full.iter_records():
        per_file[record.file] = per_file.get(record.file, 0) + 1
        if record.file == "wanted_person":
            key = (record.fields["name"], record.fields["dob"])
            wanted.setdefault(key, set()).update(tiers)
    assert 2_500 <= len(wanted) <= 4_000
    assert sum(len(t) > 1 for t in wanted.values()) > 100
    assert per_file["driver"] > 80_000 and per_file["registration"] > 70_000
    for file in ("stolen_vehicle", "stolen_gun", "stolen_article"):
        assert per_file[file] > 500
    assert per_file["protection_order"] > 200 and per_file["missing_person"] > 50
    assert len(full.lookup("national", "person", DOE)) == 1
    assert len(full.our_local_warrants(100)) == 100


# --------------------------------------------------------------------------- reply text

#: The record and text of the state vector ``reply_hit`` (shared/vectors/state.json), body
#: after the control-number and ORI lines; the ORI IS line is the agency directory's own.
VECTOR_RECORD = Record(
    file="wanted_person",
    fields={
        "name": "DOE, JOHN A",
        "sex": "M",
        "race": "W",
        "dob": "1980-01-01",
        "height": "511",
        "weight": "180",
    },
    caveats=("armed_and_dangerous",),
    warrant=Warrant(
        number="S26-0099",
        offense="ROBBERY",
        issued="2026-01-15",
        extradition="1 - FULL EXTRADITION",
        entering_ori="MO0950000",
        oca="26-000321",
        nic="W000000001",
    ),
)
VECTOR_TEXT = [
    "WARNING - DO NOT ARREST OR DETAIN ON THIS RECORD ALONE. CONFIRM WITH ORI.",
    "CAUTION - ARMED AND DANGEROUS",
    "MKE/WANTED PERSON",
    "CMC/00 - ARMED AND DANGEROUS",
    "EXL/1 - FULL EXTRADITION",
    "ORI/MO0950000 NAM/DOE, JOHN A SEX/M RAC/W DOB/19800101 HGT/511 WGT/180",
    "OFF/ROBBERY DOW/20260115 OCA/26-000321 WNO/S26-0099",
    "ORI IS EXAMPLE COUNTY SHERIFF MO 555 010-0000",
    "NIC/W000000001 DTE/20260116",
]


def test_render_reproduces_the_state_vector() -> None:
    """The vector's hit record renders line for line as in shared/vectors/state.json."""
    lines = render_text("state", "person", DOE, [VECTOR_RECORD]).split("\n")
    assert len(lines) == len(VECTOR_TEXT)
    for got, want in zip(lines, VECTOR_TEXT, strict=True):
        if want.startswith("ORI IS "):
            assert re.fullmatch(r"ORI IS [A-Z0-9 ]+ MO 555 \d{3}-\d{4}", got)
        else:
            assert got == want


def test_no_record_lines_echo_the_identifiers() -> None:
    """No record: one NO ... line per network echoing the inquiry's fields in wire form."""
    fields = {"name": "DOE, JOHN A", "dob": "1980-01-01", "sex": "M"}
    assert render_text("state", "person", fields, []) == (
        "NO STATE WANT NAM/DOE, JOHN A DOB/19800101 SEX/M"
    )
    assert render_text("national", "person", CLEAN, []) == (
        "NO NCIC WANT NAM/CLEAN, CARL DOB/19900101"
    )
    assert render_text("local", "gun", {"serial": "X1", "make": "COLT"}, []) == (
        "NO LOCAL RECORD SER/X1 MAK/COLT"
    )
    assert render_text("national", "driver", {"oln": "K1", "oln_state": "KS"}, []) == (
        "NO NLETS RECORD OLN/K1 OLS/KS"
    )
    hostile = render_text("local", "person", {"name": "A/B.C|\r\nD " * 30, "dob": ""}, [])
    assert hostile.startswith("NO LOCAL WANT NAM/A B C D")
    assert all(len(line) <= 80 and line.isprintable() for line in hostile.split("\n"))


def _parse_blocks(text: str) -> list[tuple[str, list[str], dict[str, str]]]:
    """A reader of the layout, as the state codec would write it: (MKE, CMC codes, items)."""
    blocks: list[tuple[str, list[str], dict[str, str]]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        assert lines[i] == WARNING_LINE, lines[i]
        i += 1
        while lines[i].startswith("CAUTION - "):
            i += 1
        assert lines[i].startswith("MKE/")
        mke = lines[i][4:]
        i += 1
        cmc: list[str] = []
        while lines[i].startswith("CMC/"):
            assert re.fullmatch(r"CMC/\d\d - [A-Z ]+", lines[i])
            cmc.append(lines[i][4:6])
            i += 1
        items: dict[str, str] = {}
        if lines[i].startswith("EXL/"):
            items["EXL"] = lines[i][4:]
            i += 1
        while i < len(lines) and not lines[i].startswith("ORI IS "):
            assert _ITEM.fullmatch(lines[i]), lines[i]
            for item in _ITEM_SPLIT.split(lines[i]):
                code, _, value = item.partition("/")
                assert code not in items and value
                items[code] = value
            i += 1
        assert lines[i].startswith("ORI IS ")
        i += 1
        if i < len(lines) and lines[i] != WARNING_LINE:
            for item in lines[i].split(" "):
                code, _, value = item.partition("/")
                if code == "NIC":
                    items[code] = value
                else:
                    assert code == "DTE" and re.fullmatch(r"\d{8}", value)
            i += 1
        blocks.append((mke, cmc, items))
    return blocks


_CMC_CODES = {"armed_and_dangerous": "00", "violent": "05", "escape_risk": "25"}
_CMC_CODES |= {"suicidal": "70", "medical": "80"}


def test_render_text_layout_carries_every_record_item(small: Dataset) -> None:
    """Every hit text: lines of at most 80 printable characters, one WARNING-led block per
    record, CMC codes for its caveats, and exactly the record's coded items, none split."""
    checked = 0
    for subject, count in (("person", 600), ("vehicle", 300), ("gun", 300), ("article", 300)):
        for fields in small.sample_fields(subject, count, seed=3):
            for tier in TIERS:
                records = small.lookup(tier, subject, fields)
                text = render_text(tier, subject, fields, records)
                assert text and all(
                    len(line) <= 80 and line.isprintable() and line.isascii()
                    for line in text.split("\n")
                )
                if not records:
                    assert text.startswith("NO ")
                    continue
                blocks = _parse_blocks(text)
                assert len(blocks) == len(records)
                for record, (mke, cmc, items) in zip(records, blocks, strict=True):
                    assert mke == record.file.replace("_", " ").upper()
                    assert cmc == [_CMC_CODES[c] for c in record.caveats]
                    expected = dict(record_to_codes(record))
                    if "EXL" not in items:
                        assert not expected.get("EXL")
                    assert items == {k: v for k, v in expected.items() if v}
                    checked += 1
    for tier in ("state", "national"):
        for subject in ("driver", "registration"):
            for fields in small.sample_fields(subject, 50, seed=4):
                records = small.lookup(tier, subject, fields)
                text = render_text(tier, subject, fields, records)
                if records:
                    ((_, _, items),) = _parse_blocks(text)
                    assert items == dict(record_to_codes(records[0]))
                    checked += 1
    assert checked > 200
