"""Vocabularies of the synthetic data set and the directory of simulated agencies.

Names come from Faker's en_US person data, read once as weighted lists, so that the
generator draws them with one ``random.Random`` instead of 100,000 Faker calls (Faker
proxies cost ~20 us a call; a weighted bulk draw costs well under 1 us). The bulk of a
data set therefore depends on the installed Faker version as well as on the seed; the
known test subjects (``simulators.known``) do not.

Every value here is printable upper-case ASCII without ``.``, ``/`` or ``|`` so that it
survives the NCIC fixed-text wire unchanged (DESIGN §4.3).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Final

from faker.providers.person.en_US import Provider as _PersonProvider

from switch.model import STATE_CODES

_NAME_PART: Final = re.compile(r"[A-Z][A-Z' -]*")


def _weighted(source: Mapping[str, float]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """Upper-case names valid for NAM, with cumulative weights for ``Random.choices``."""
    names: list[str] = []
    cum: list[float] = []
    total = 0.0
    for name, weight in source.items():
        upper = name.upper()
        if not _NAME_PART.fullmatch(upper) or len(upper) > 14:
            continue
        total += float(weight)
        names.append(upper)
        cum.append(total)
    return tuple(names), tuple(cum)


LAST_NAMES, LAST_CUM = _weighted(_PersonProvider.last_names)
MALE_FIRST, MALE_CUM = _weighted(_PersonProvider.first_names_male)
FEMALE_FIRST, FEMALE_CUM = _weighted(_PersonProvider.first_names_female)

#: RAC codes with rough regional proportions (W, B, A, I, U).
RACES: Final = ("W", "B", "A", "I", "U")
RACE_WEIGHTS: Final = (60, 28, 4, 1, 7)

#: States whose people, plates and agencies show up here, neighbours first and heavier.
OTHER_STATES: Final = ("KS", "IL", "AR", "OK", "IA", "NE", "TN", "KY", "TX", "CA", "FL", "CO")
OTHER_STATE_WEIGHTS: Final = (30, 25, 10, 8, 8, 4, 5, 4, 3, 1, 1, 1)
assert all(s in STATE_CODES for s in OTHER_STATES)

#: NCIC vehicle make code -> (VIN world manufacturer identifier, models, weight).
VEHICLES: Final[Mapping[str, tuple[str, tuple[str, ...], int]]] = {
    "FORD": ("1FA", ("F150", "ESCAPE", "FUSION", "EXPLORER", "FOCUS"), 14),
    "CHEV": ("1G1", ("MALIBU", "SILVERADO", "EQUINOX", "IMPALA", "CRUZE"), 14),
    "TOYT": ("4T1", ("CAMRY", "COROLLA", "RAV4", "TACOMA", "HIGHLANDER"), 13),
    "HOND": ("1HG", ("ACCORD", "CIVIC", "CRV", "PILOT", "ODYSSEY"), 10),
    "NISS": ("1N4", ("ALTIMA", "SENTRA", "ROGUE", "MAXIMA"), 8),
    "DODG": ("2C3", ("CHARGER", "RAM", "DURANGO", "CARAVAN"), 7),
    "JEEP": ("1C4", ("CHEROKEE", "WRANGLER", "COMPASS"), 6),
    "HYUN": ("5NP", ("ELANTRA", "SONATA", "TUCSON"), 6),
    "KIA": ("KNA", ("OPTIMA", "SORENTO", "SOUL", "FORTE"), 6),
    "SUBA": ("JF1", ("OUTBACK", "FORESTER", "IMPREZA"), 4),
    "VOLK": ("3VW", ("JETTA", "PASSAT", "TIGUAN"), 4),
    "GMC": ("1GT", ("SIERRA", "ACADIA", "YUKON"), 4),
    "BMW": ("WBA", ("328I", "X3", "X5"), 2),
    "TESL": ("5YJ", ("MODEL3", "MODELY"), 2),
}
VEHICLE_COLORS: Final = ("BLK", "WHI", "SIL", "GRY", "BLU", "RED", "GRN", "TAN", "MAR", "BRO")
VEHICLE_COLOR_WEIGHTS: Final = (20, 22, 16, 14, 10, 9, 3, 2, 2, 2)

#: Guns: make -> (serial prefix letters, calibers, kind).
GUNS: Final[Mapping[str, tuple[str, tuple[str, ...], str]]] = {
    "GLOCK": ("B", ("9MM", "40", "45", "10MM"), "PISTOL"),
    "SMITH AND WESSON": ("F", ("9MM", "40", "357", "38"), "PISTOL"),
    "RUGER": ("R", ("22", "9MM", "380", "357"), "PISTOL"),
    "SIG SAUER": ("S", ("9MM", "40", "45"), "PISTOL"),
    "TAURUS": ("T", ("9MM", "38", "380"), "REVOLVER"),
    "HI-POINT": ("P", ("9MM", "45", "380"), "PISTOL"),
    "MOSSBERG": ("V", ("12GA", "20GA"), "SHOTGUN"),
    "REMINGTON": ("C", ("12GA", "308", "3006"), "RIFLE"),
    "SAVAGE": ("H", ("22", "308", "243"), "RIFLE"),
    "COLT": ("K", ("45", "38", "556"), "PISTOL"),
}

#: Articles: NCIC-style type code (at most 7 characters) -> brands.
ARTICLES: Final[Mapping[str, tuple[str, ...]]] = {
    "LAPTOP": ("DELL", "LENOVO", "APPLE", "HP", "ACER"),
    "PHONE": ("APPLE", "SAMSUNG", "GOOGLE", "MOTOROLA"),
    "TABLET": ("APPLE", "SAMSUNG", "AMAZON"),
    "BICYCLE": ("TREK", "SPECIALIZED", "GIANT", "SCHWINN"),
    "TVSET": ("SAMSUNG", "LG", "SONY", "VIZIO"),
    "CAMERA": ("CANON", "NIKON", "SONY", "GOPRO"),
    "TOOL": ("DEWALT", "MILWAUKEE", "MAKITA", "RYOBI"),
    "JEWELRY": ("ROLEX", "CARTIER", "UNKNOWN"),
}

OFFENSES_LOCAL: Final = (
    "FAILURE TO APPEAR",
    "FAILURE TO PAY FINE",
    "DRIVING WHILE SUSPENDED",
    "NO PROOF OF INSURANCE",
    "PEACE DISTURBANCE",
    "TRESPASS",
    "SHOPLIFTING",
    "PROPERTY DAMAGE",
)
OFFENSES_FELONY: Final = (
    "BURGLARY",
    "ROBBERY",
    "ASSAULT",
    "DOMESTIC ASSAULT",
    "PROBATION VIOLATION",
    "PAROLE VIOLATION",
    "POSSESSION OF CONTROLLED SUBSTANCE",
    "STEALING A MOTOR VEHICLE",
    "DWI",
    "RECEIVING STOLEN PROPERTY",
    "UNLAWFUL USE OF A WEAPON",
    "FRAUD",
    "NONSUPPORT",
)
#: Offenses that make officer-safety caveats likely.
VIOLENT_OFFENSES: Final = frozenset(
    {"ROBBERY", "ASSAULT", "DOMESTIC ASSAULT", "UNLAWFUL USE OF A WEAPON"}
)

#: NCIC extradition codes of national warrants.
EXTRADITIONS: Final = (
    "1 - FULL EXTRADITION",
    "2 - LIMITED EXTRADITION SEE MIS",
    "3 - EXTRADITION SURROUNDING STATES ONLY",
    "4 - NO EXTRADITION",
    "6 - PENDING EXTRADITION DETERMINATION",
)
EXTRADITION_WEIGHTS: Final = (55, 15, 15, 5, 10)

MARKS: Final = (
    "TATTOO RIGHT FOREARM",
    "TATTOO LEFT HAND",
    "SCAR ON FACE",
    "SCAR LEFT ARM",
    "GLASSES",
    "PIERCED EARS",
    "GOLD TOOTH",
)

MISSING_CATEGORIES: Final = ("ENDANGERED", "JUVENILE", "DISABILITY", "INVOLUNTARY")

# --------------------------------------------------------------------------- agencies

#: The simulated city (local network, MO038) and county (regional network, MO048).
CITY: Final = "RIVER CITY"
COUNTY: Final = "BIRCH COUNTY"

#: ORIs with a fixed agency name; every other valid ORI gets a derived one.
_KNOWN_AGENCIES: Final[Mapping[str, str]] = {
    "MO0380000": f"{CITY} RECORDS SYSTEM",
    "MO0380100": f"{CITY} POLICE DEPT",
    "MO0380200": f"{CITY} PARK POLICE",
    "MO0380300": f"{CITY} MARSHAL",
    "MO038015J": f"{CITY} MUNICIPAL COURT",
    "MO0480000": f"{COUNTY} REGIONAL NETWORK",
    "MO0480100": f"{COUNTY} SHERIFF",
    "MO048013J": f"{COUNTY} CIRCUIT COURT",
    "MO0000000": "MISSOURI STATE SWITCH",
    "MOMHP0000": "MISSOURI STATE HIGHWAY PATROL",
    "MODOR0000": "MISSOURI DEPT OF REVENUE",
}

LOCAL_ORIS: Final = ("MO0380100", "MO0380200", "MO0380300", "MO038015J")
LOCAL_ORI_WEIGHTS: Final = (70, 10, 5, 15)
REGIONAL_ORIS: Final = (
    "MO0480100",
    "MO0480200",
    "MO0480300",
    "MO0480400",
    "MO0480500",
    "MO0480600",
    "MO048013J",
)
REGIONAL_ORI_WEIGHTS: Final = (45, 10, 10, 8, 6, 6, 15)
#: Other Missouri counties (the state network's own agencies).
MO_COUNTIES: Final = tuple(c for c in range(1, 116) if c not in (38, 48))


def state_ori(rng_value: int, state: str) -> str:
    """A sheriff (``xxx0000``), police (``xxx0100``..) or court (``xxx001J``) ORI of a state."""
    county = (rng_value % 115) + 1 if state != "MO" else MO_COUNTIES[rng_value % len(MO_COUNTIES)]
    kind = (rng_value // 115) % 10
    if state == "MO" and kind == 9:
        return "MOMHP0000"
    suffix = "0000" if kind < 5 else ("001J" if kind == 8 else f"0{kind - 4}00")
    return f"{state}{county:03d}{suffix}"


_TOWN_ENDINGS: Final = ("VILLE", "TON", " CITY", " SPRINGS", "BURG", " GROVE")


def _town(key: int) -> str:
    base = LAST_NAMES[key % len(LAST_NAMES)]
    return (base + _TOWN_ENDINGS[(key >> 10) % len(_TOWN_ENDINGS)])[:20]


@lru_cache(maxsize=4096)
def agency(ori: str) -> tuple[str, str]:
    """``(agency name, phone)`` of an ORI, derived from the ORI alone (no seed).

    The reply text's ``ORI IS`` line needs it, and ``render_text`` sees only records, so
    the directory must be a pure function of the ORI. Phones are 555 fiction numbers.
    """
    key = zlib.crc32(ori.encode("ascii", "replace"))
    phone = f"555 0{key % 100:02d}-{(key >> 7) % 10000:04d}"
    known = _KNOWN_AGENCIES.get(ori)
    if known is not None:
        return known, phone
    state = ori[:2]
    if ori[2:9].startswith("DOR"):
        return f"{state} DEPT OF REVENUE", phone
    if ori.startswith("MO048"):
        return f"{_town(key)} POLICE DEPT", phone
    if ori.startswith("MO038"):
        return f"{CITY} POLICE DEPT", phone
    county = LAST_NAMES[(key >> 3) % len(LAST_NAMES)]
    if ori.endswith("0000"):
        return f"{county} COUNTY SHERIFF", phone
    if ori.endswith("J"):
        return f"{county} COUNTY CIRCUIT COURT", phone
    return f"{_town(key)} POLICE DEPT", phone


def court_of(ori: str, tier: str) -> str:
    """The court that issued a warrant entered by ``ori`` at ``tier``."""
    if tier == "local":
        return "MUNICIPAL COURT"
    if tier == "regional":
        return f"{COUNTY} CIRCUIT COURT"
    name = agency(ori[:5] + "0000")[0].removesuffix(" SHERIFF")
    if ori.startswith("MOMHP"):
        name = "COLE COUNTY"
    return f"{name} CIRCUIT COURT"[:40]


def pick(seq: Sequence[str], value: int) -> str:
    """Deterministic choice by an integer already drawn from the data set's generator."""
    return seq[value % len(seq)]
