"""The known test subjects: fixed records present in every data set, whatever the seed.

Documented, with the expected hits per tier, in ``docs/test-subjects.md``; acceptance
checks, demos and the integration tests rely on them, so change both together.
Each entry is ``(tiers, record)``; driver licences and registrations are not listed
here because they are answered from the person and vehicle tables (``KNOWN_PERSONS``,
``KNOWN_VEHICLES``) like every other one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from switch.model import Record, Warrant

#: Known persons who hold a driver licence: name, dob, sex, race, height, weight, oln,
#: oln_state, licence status.
KNOWN_PERSONS: Final[tuple[Mapping[str, str], ...]] = (
    {
        "name": "DOE, JOHN A",
        "sex": "M",
        "race": "W",
        "dob": "1980-01-01",
        "height": "511",
        "weight": "180",
        "oln": "D100200300",
        "oln_state": "MO",
        "status": "VALID",
    },
    {
        "name": "ROE, JANE",
        "sex": "F",
        "race": "W",
        "dob": "1975-05-05",
        "height": "506",
        "weight": "135",
        "oln": "R100200300",
        "oln_state": "MO",
        "status": "SUSPENDED",
    },
)

#: ``CLEAN, CARL`` has no licence and no record anywhere; the generator never makes a
#: person with one of these (name, dob) pairs.
CLEAN_PERSONS: Final = (("CLEAN, CARL", "1990-01-01"),)

#: Known vehicles (registered; ``owner`` is an index into KNOWN_PERSONS).
KNOWN_VEHICLES: Final[tuple[Mapping[str, str], ...]] = (
    {
        "plate": "ABC1234",
        "plate_state": "MO",
        "vin": "1HGCM82633A004352",
        "make": "HOND",
        "vehicle_model": "ACCORD",
        "vehicle_year": "2003",
        "vehicle_color": "SIL",
        "owner": "1",
    },
)

_DOE: Final = {
    "name": "DOE, JOHN A",
    "sex": "M",
    "race": "W",
    "dob": "1980-01-01",
    "height": "511",
    "weight": "180",
    "oln": "D100200300",
    "oln_state": "MO",
}

KNOWN_RECORDS: Final[tuple[tuple[tuple[str, ...], Record], ...]] = (
    (
        ("local",),
        Record(
            file="wanted_person",
            fields=dict(_DOE),
            warrant=Warrant(
                number="M26-1187",
                offense="FAILURE TO APPEAR",
                issued="2026-02-03",
                court="MUNICIPAL COURT",
                entering_ori="MO0380100",
                oca="26-001187",
            ),
        ),
    ),
    (
        ("regional",),
        Record(
            file="wanted_person",
            fields=dict(_DOE),
            caveats=("violent",),
            warrant=Warrant(
                number="C26-0042",
                offense="BURGLARY",
                issued="2026-01-10",
                court="BIRCH COUNTY CIRCUIT COURT",
                entering_ori="MO0480100",
                oca="26-000042",
            ),
        ),
    ),
    (
        ("state",),
        Record(
            file="wanted_person",
            fields=dict(_DOE),
            caveats=("escape_risk",),
            warrant=Warrant(
                number="S26-0099",
                offense="ROBBERY",
                issued="2026-01-15",
                court="CIRCUIT COURT",
                entering_ori="MO0950000",
                oca="26-000321",
            ),
        ),
    ),
    (
        ("national",),
        Record(
            file="wanted_person",
            fields={**_DOE, "misc": "TATTOO RIGHT FOREARM"},
            caveats=("armed_and_dangerous",),
            warrant=Warrant(
                number="F26-7781",
                offense="ARMED ROBBERY",
                issued="2026-01-20",
                court="DISTRICT COURT",
                extradition="1 - FULL EXTRADITION",
                entering_ori="TX2270000",
                oca="26-007781",
                nic="W000000777",
            ),
        ),
    ),
    (
        ("national",),
        Record(
            file="stolen_vehicle",
            fields={
                "plate": "ABC1234",
                "plate_state": "MO",
                "plate_year": "2026",
                "vin": "1HGCM82633A004352",
                "vehicle_year": "2003",
                "make": "HOND",
                "vehicle_model": "ACCORD",
                "vehicle_color": "SIL",
                "date_of_theft": "2026-02-14",
                "ori": "KS0460100",
                "oca": "26-004352",
                "nic": "V000004352",
            },
        ),
    ),
    (
        ("national",),
        Record(
            file="stolen_gun",
            fields={
                "serial": "G1234567",
                "make": "GLOCK",
                "caliber": "9MM",
                "misc": "PISTOL",
                "date_of_theft": "2025-11-20",
                "ori": "IL0160100",
                "oca": "25-117733",
                "nic": "G000001234",
            },
        ),
    ),
    (
        ("local", "state", "national"),
        Record(
            file="stolen_article",
            fields={
                "serial": "LT0000042",
                "article_type": "LAPTOP",
                "brand": "DELL",
                "misc": "BLACK 15 INCH",
                "date_of_theft": "2026-01-05",
                "ori": "MO0380100",
                "oca": "26-000042",
                "nic": "A000000042",
            },
        ),
    ),
)

#: Identifiers the generator must never reuse (it would add hits to known subjects).
RESERVED_OLNS: Final = frozenset({p["oln"] for p in KNOWN_PERSONS} | {"C100200300"})
RESERVED_PLATES: Final = frozenset(v["plate"] for v in KNOWN_VEHICLES)
RESERVED_VINS: Final = frozenset(v["vin"] for v in KNOWN_VEHICLES)
RESERVED_SERIALS: Final = frozenset({"G1234567", "LT0000042"})
RESERVED_PERSONS: Final = frozenset(
    {(p["name"], p["dob"]) for p in KNOWN_PERSONS} | set(CLEAN_PERSONS)
)
