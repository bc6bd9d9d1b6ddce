"""The simulators' deterministic synthetic data set: one seed, four networks' files.

``Dataset(seed, persons)`` is cheap; ``ensure_built()`` draws the whole population from
one ``random.Random(seed)`` in a fixed order and builds dict indexes, so that a lookup
is a few dict reads, never a scan (DESIGN §8, §9: the simulators listen within 10 s and
answer at thousands of inquiries a second).

What the four tiers hold (details and proportions in ``docs/test-subjects.md``):

- ``local`` (city RMS, MO038): municipal warrants, and the hot-file records (stolen
  vehicles, guns, articles, missing persons) that city agencies entered.
- ``regional`` (county and neighbouring cities, MO048): county warrants and the
  records MO048 agencies entered (protection orders from the county court, ...).
- ``state`` (Missouri switch): warrants of other Missouri counties, county warrants
  entered in the state file, every hot-file record a Missouri agency entered, Missouri
  driver licences and registrations.
- ``national`` (NCIC + Nlets): warrants entered by agencies of any state with an NCIC
  number, every NCIC hot-file record, and other states' licences and registrations.

Memory is kept small by storing the population in columns (one list per attribute)
and materialising ``Record`` objects only for hot-file records; driver licence and
registration records are made on demand from the columns.
"""

from __future__ import annotations

import datetime as _dt
import random
import threading
from array import array
from collections.abc import Iterator, Mapping
from typing import Final

from switch.model import Record, Warrant

from . import known, names

TIERS: Final = ("local", "regional", "state", "national")
#: Our agency (DESIGN §9): the ORI whose records incoming YQs ask about.
OUR_ORI: Final = "MO0380100"
HOME_STATE: Final = "MO"
#: The data set's "today": fixed, so that a seed always means the same records.
REF_DATE: Final = _dt.date(2026, 3, 1)

_PERSON_FILES: Final = ("wanted_person", "protection_order", "missing_person")
_VIN_ALPHABET: Final = "ABCDEFGHJKLMNPRSTUVWXYZ0123456789"
_VIN_VALUES: Final = {
    **{str(d): d for d in range(10)},
    **dict(zip("ABCDEFGH", range(1, 9), strict=True)),
    **dict(zip("JKLMN", range(1, 6), strict=True)),
    "P": 7,
    "R": 9,
    **dict(zip("STUVWXYZ", range(2, 10), strict=True)),
}
_VIN_WEIGHTS: Final = (8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2)
_VIN_YEAR: Final = "Y123456789ABCDEFGHJKLMNPRST"  # 2000 .. 2026 (VIN position 10)
_LETTERS: Final = "ABCDEFGHJKLMNPRSTUVWXYZ"
_DIGITS: Final = "0123456789"
_CAVEAT_DRAW: Final = (
    # (caveat, probability if the offense is violent, probability otherwise)
    ("armed_and_dangerous", 0.25, 0.01),
    ("violent", 0.30, 0.03),
    ("escape_risk", 0.04, 0.02),
    ("suicidal", 0.01, 0.01),
    ("medical", 0.02, 0.02),
)


def vin_check_digit(vin: str) -> str:
    """The North American VIN check digit (position 9) of a 17-character VIN."""
    total = sum(_VIN_VALUES[ch] * w for ch, w in zip(vin, _VIN_WEIGHTS, strict=True))
    rest = total % 11
    return "X" if rest == 10 else str(rest)


def _iso(days_before_ref: int) -> str:
    return (REF_DATE - _dt.timedelta(days=days_before_ref)).isoformat()


def _anniversary(dob: str, year: int) -> str:
    """The birthday in ``year`` (licences expire on one); 29 February becomes the 28th."""
    month_day = dob[5:]
    return f"{year:04d}-{'02-28' if month_day == '02-29' else month_day}"


class _TierIndex:
    """One network's files, keyed the way its inquiries identify subjects."""

    __slots__ = ("article", "gun", "person_dob", "person_oln", "plate", "vin")

    def __init__(self) -> None:
        self.person_dob: dict[tuple[str, str], list[Record]] = {}
        self.person_oln: dict[tuple[str, str], list[Record]] = {}
        self.plate: dict[tuple[str, str], list[Record]] = {}
        self.vin: dict[str, list[Record]] = {}
        self.gun: dict[str, list[Record]] = {}
        self.article: dict[tuple[str, str], list[Record]] = {}

    def add(self, record: Record) -> None:
        f = record.fields
        if record.file in _PERSON_FILES:
            self.person_dob.setdefault((f["name"], f["dob"]), []).append(record)
            if "oln" in f:
                self.person_oln.setdefault((f["name"], f["oln"]), []).append(record)
        elif record.file == "stolen_vehicle":
            if "plate" in f:
                self.plate.setdefault((f["plate"], f["plate_state"]), []).append(record)
            if "vin" in f:
                self.vin.setdefault(f["vin"], []).append(record)
        elif record.file == "stolen_gun":
            self.gun.setdefault(f["serial"], []).append(record)
        elif record.file == "stolen_article":
            self.article.setdefault((f["serial"], f["article_type"]), []).append(record)
        else:  # pragma: no cover - driver/registration records are never materialised
            raise ValueError(record.file)


class _Built:
    """Everything ``ensure_built`` makes; immutable once published, so reads need no lock."""

    def __init__(self) -> None:
        # person columns
        self.name: list[str] = []
        self.dob: list[str] = []
        self.sex: list[str] = []
        self.race: list[str] = []
        self.height: list[str] = []
        self.weight: list[str] = []
        self.oln: list[str] = []
        self.oln_state: list[str] = []
        self.licence: list[str] = []
        # vehicle columns
        self.plate: list[str] = []
        self.plate_state: list[str] = []
        self.vin: list[str] = []
        self.make: list[str] = []
        self.model: list[str] = []
        self.year: list[str] = []
        self.color: list[str] = []
        self.owner: array[int] = array("l")
        self.reg_expires: list[str] = []
        # identifier indexes (also the uniqueness checks of the generator)
        # keyed by the column's own string (no tuple per entry): OLNs and plates are
        # unique across states here, and the lookup checks the state
        self.by_oln: dict[str, int] = {}
        self.by_plate: dict[str, int] = {}
        self.by_vin: dict[str, int] = {}
        self.tiers: dict[str, _TierIndex] = {t: _TierIndex() for t in TIERS}
        #: every hot-file record with the tiers holding it, in generation order
        self.records: list[tuple[tuple[str, ...], Record]] = []


class Dataset:
    """The deterministic data set of seed ``seed`` with ``persons`` generated persons.

    Construction does nothing heavy; ``ensure_built`` (thread-safe, idempotent, ~2 s for
    100,000 persons) builds everything, and ``lookup`` calls it first, so a server may
    build in a thread after it starts listening.
    """

    def __init__(self, seed: int = 1, persons: int = 100_000) -> None:
        if persons < 0:
            raise ValueError("persons must be >= 0")
        self.seed = seed
        self.persons = persons
        self._lock = threading.Lock()
        self._built: _Built | None = None

    @property
    def built(self) -> bool:
        return self._built is not None

    def ensure_built(self) -> None:
        if self._built is not None:
            return
        with self._lock:
            if self._built is None:
                self._built = _Generator(self.seed, self.persons).build()

    def _data(self) -> _Built:
        self.ensure_built()
        assert self._built is not None
        return self._built

    # ----------------------------------------------------------------------- lookups

    def lookup(self, tier: str, subject: str, fields: Mapping[str, str]) -> list[Record]:
        """The records ``tier`` holds for one inquiry (canonical, validated ``fields``).

        person -> wanted_person, protection_order, missing_person (by name + dob and/or
        name + oln; ``oln_state`` narrows an OLN match); vehicle -> stolen_vehicle;
        gun -> stolen_gun; article -> stolen_article; driver and registration ->
        the state tier for Missouri, the national tier for every other state. Other
        optional fields (sex, make, ...) do not narrow the search, as in NCIC.
        """
        if tier not in TIERS:
            raise ValueError(f"unknown tier {tier!r}")
        data = self._data()
        index = data.tiers[tier]
        get = fields.get
        if subject == "person":
            name = get("name", "")
            out: list[Record] = []
            if "dob" in fields:
                out.extend(index.person_dob.get((name, fields["dob"]), ()))
            if "oln" in fields:
                state = get("oln_state")
                for rec in index.person_oln.get((name, fields["oln"]), ()):
                    if state is None or rec.fields.get("oln_state") == state:
                        out.append(rec)
            return _unique(out)
        if subject == "vehicle":
            out = []
            if "plate" in fields:
                out.extend(index.plate.get((fields["plate"], get("plate_state", "")), ()))
            if "vin" in fields:
                out.extend(index.vin.get(fields["vin"], ()))
            return _unique(out)
        if subject == "gun":
            return list(index.gun.get(get("serial", ""), ()))
        if subject == "article":
            return list(index.article.get((get("serial", ""), get("article_type", "")), ()))
        if subject == "driver":
            i = data.by_oln.get(get("oln", ""))
            if (
                i is None
                or data.oln_state[i] != get("oln_state")
                or not _answers_state(tier, data.oln_state[i])
            ):
                return []
            return [self._driver(data, i)]
        if subject == "registration":
            j: int | None = None
            if "plate" in fields:
                j = data.by_plate.get(fields["plate"])
                if j is not None and data.plate_state[j] != get("plate_state"):
                    j = None
            if j is None and "vin" in fields:
                j = data.by_vin.get(fields["vin"])
            if j is None or not _answers_state(tier, data.plate_state[j]):
                return []
            return [self._registration(data, j)]
        return []

    def our_local_warrants(self, limit: int) -> list[Record]:
        """Warrants our agency (``MO0380100``) entered on the local network, oldest first
        in generation order: the subjects of simulated incoming YQ (hit confirmation)."""
        out: list[Record] = []
        for tiers, rec in self._data().records:
            if len(out) >= limit:
                break
            if "local" in tiers and rec.warrant is not None and rec.warrant.entering_ori == OUR_ORI:
                out.append(rec)
        return out

    def iter_records(self) -> Iterator[tuple[tuple[str, ...], Record]]:
        """Every record with the tiers that hold it: hot files, then every driver licence
        and registration (made on demand). For tests, exports and benchmarks."""
        data = self._data()
        yield from data.records
        for i in range(len(data.name)):
            if data.oln[i]:
                yield (_licence_tiers(data.oln_state[i]), self._driver(data, i))
        for j in range(len(data.plate)):
            yield (_licence_tiers(data.plate_state[j]), self._registration(data, j))

    def sample_fields(self, subject: str, count: int, seed: int = 0) -> list[dict[str, str]]:
        """``count`` inquiry field sets of ``subject`` that exist in the data set (a mix of
        hits somewhere and misses), for load generators; deterministic in ``seed``."""
        data = self._data()
        rng = random.Random(seed)
        out: list[dict[str, str]] = []
        persons = len(data.name)
        vehicles = len(data.plate)
        hot = [rec for _, rec in data.records]
        for _ in range(count):
            if subject == "person" and persons:
                i = rng.randrange(persons)
                out.append({"name": data.name[i], "dob": data.dob[i]})
            elif subject in ("vehicle", "registration") and vehicles:
                j = rng.randrange(vehicles)
                out.append({"plate": data.plate[j], "plate_state": data.plate_state[j]})
            elif subject == "driver" and persons:
                i = rng.randrange(persons)
                if data.oln[i]:
                    out.append({"oln": data.oln[i], "oln_state": data.oln_state[i]})
            elif subject in ("gun", "article") and hot:
                rec = rng.choice(hot)
                want = "stolen_gun" if subject == "gun" else "stolen_article"
                if rec.file == want:
                    keys = ("serial",) if subject == "gun" else ("serial", "article_type")
                    out.append({k: rec.fields[k] for k in keys})
        return out

    @staticmethod
    def _driver(data: _Built, i: int) -> Record:
        state = data.oln_state[i]
        status = data.licence[i]
        dob = data.dob[i]
        offset = -1 - i % 2 if status == "EXPIRED" else 1 + i % 6
        return Record(
            file="driver",
            fields={
                "name": data.name[i],
                "sex": data.sex[i],
                "race": data.race[i],
                "dob": dob,
                "height": data.height[i],
                "weight": data.weight[i],
                "oln": data.oln[i],
                "oln_state": state,
                "status": status,
                "expires": _anniversary(dob, REF_DATE.year + offset),
                "ori": f"{state}DOR0000",
            },
        )

    @staticmethod
    def _registration(data: _Built, j: int) -> Record:
        state = data.plate_state[j]
        expires = data.reg_expires[j]
        return Record(
            file="registration",
            fields={
                "plate": data.plate[j],
                "plate_state": state,
                "plate_year": expires[:4],
                "vin": data.vin[j],
                "vehicle_year": data.year[j],
                "make": data.make[j],
                "vehicle_model": data.model[j],
                "vehicle_color": data.color[j],
                "owner": data.name[data.owner[j]],
                "status": "VALID" if expires >= REF_DATE.isoformat() else "EXPIRED",
                "expires": expires,
                "ori": f"{state}DOR0000",
            },
        )


def _answers_state(tier: str, state: str) -> bool:
    """Driver and registration files: the state network for ours, national for others."""
    return tier == ("state" if state == HOME_STATE else "national")


def _licence_tiers(state: str) -> tuple[str, ...]:
    return ("state",) if state == HOME_STATE else ("national",)


def _unique(records: list[Record]) -> list[Record]:
    """Drop repeats (a record found by both dob and oln), keeping the first order."""
    if len(records) < 2:
        return records
    seen: set[int] = set()
    out = []
    for rec in records:
        if id(rec) not in seen:
            seen.add(id(rec))
            out.append(rec)
    return out


class _Generator:
    """Draws one data set. Every random draw happens in a fixed order from one Random,
    and nothing iterates a set or a hash-ordered structure, so a seed means one data set."""

    def __init__(self, seed: int, persons: int) -> None:
        self.rng = random.Random(seed)
        self.n = persons
        self.d = _Built()
        self.nic_next: dict[str, int] = {}
        self.wno_next: dict[str, int] = {}

    # ----------------------------------------------------------------------- helpers

    def nic(self, letter: str) -> str:
        """Unique NCIC numbers: a seeded start and random gaps, never a known subject's."""
        n = self.nic_next.get(letter)
        if n is None:
            n = 100_000_000 + self.rng.randrange(100_000_000)
        n += self.rng.randrange(1, 40)
        self.nic_next[letter] = n
        return f"{letter}{n:09d}"

    def wno(self, prefix: str, issued: str) -> str:
        key = prefix + issued[2:4]
        n = self.wno_next.get(key, 1000) + self.rng.randrange(1, 7)
        self.wno_next[key] = n
        return f"{key}-{n:05d}"

    def oca(self, when: str) -> str:
        return f"{when[2:4]}-{self.rng.randrange(1, 1_000_000):06d}"

    def ori(self, kind: str, state: str = HOME_STATE) -> str:
        """An entering agency: ``local`` MO038, ``regional`` MO048, ``state`` another
        Missouri county, ``national`` an agency of ``state`` (not Missouri by default)."""
        rng = self.rng
        if kind == "local":
            return rng.choices(names.LOCAL_ORIS, names.LOCAL_ORI_WEIGHTS)[0]
        if kind == "regional":
            return rng.choices(names.REGIONAL_ORIS, names.REGIONAL_ORI_WEIGHTS)[0]
        if kind == "state":
            return names.state_ori(rng.randrange(1 << 30), HOME_STATE)
        if state == HOME_STATE:
            state = rng.choices(names.OTHER_STATES, names.OTHER_STATE_WEIGHTS)[0]
        return names.state_ori(rng.randrange(1 << 30), state)

    def tiers_of(self, ori: str) -> tuple[str, ...]:
        """Hot-file records: NCIC holds them all, the state file every Missouri entry,
        the city and county networks what their own agencies entered."""
        if ori.startswith("MO038"):
            return ("local", "state", "national")
        if ori.startswith("MO048"):
            return ("regional", "state", "national")
        if ori.startswith(HOME_STATE):
            return ("state", "national")
        return ("national",)

    def add(self, tiers: tuple[str, ...], record: Record) -> None:
        self.d.records.append((tiers, record))
        for tier in tiers:
            self.d.tiers[tier].add(record)

    def person_fields(self, i: int) -> dict[str, str]:
        d = self.d
        out = {
            "name": d.name[i],
            "sex": d.sex[i],
            "race": d.race[i],
            "dob": d.dob[i],
            "height": d.height[i],
            "weight": d.weight[i],
        }
        if d.oln[i]:
            out["oln"] = d.oln[i]
            out["oln_state"] = d.oln_state[i]
        return out

    def caveats(self, violent: bool) -> tuple[str, ...]:
        rnd = self.rng.random
        return tuple(c for c, pv, po in _CAVEAT_DRAW if rnd() < (pv if violent else po))

    # ----------------------------------------------------------------------- build

    def build(self) -> _Built:
        self.people()
        self.vehicles()
        self.warrants()
        self.protection_orders()
        self.missing_persons()
        self.stolen_vehicles()
        self.stolen_property()
        for tiers, record in known.KNOWN_RECORDS:
            self.add(tiers, record)
        return self.d

    def people(self) -> None:
        rng, n, d = self.rng, self.n, self.d
        sexes = rng.choices("MF", k=n)
        lasts = rng.choices(names.LAST_NAMES, cum_weights=names.LAST_CUM, k=n)
        males = rng.choices(names.MALE_FIRST, cum_weights=names.MALE_CUM, k=n)
        females = rng.choices(names.FEMALE_FIRST, cum_weights=names.FEMALE_CUM, k=n)
        middles = rng.choices(_LETTERS + " " * 15, k=n)
        races = rng.choices(names.RACES, names.RACE_WEIGHTS, k=n)
        ages = rng.choices(range(16 * 365, 86 * 365), k=n)
        inches = [rng.gauss(0.0, 1.0) for _ in range(n)]
        bmi = rng.choices(range(19, 36), k=n)
        homes = rng.choices((HOME_STATE, "OUT"), (92, 8), k=n)
        others = rng.choices(names.OTHER_STATES, names.OTHER_STATE_WEIGHTS, k=n)
        licensed = rng.choices((True, False), (90, 10), k=n)
        statuses = rng.choices(("VALID", "SUSPENDED", "REVOKED", "EXPIRED"), (88, 6, 2, 4), k=n)
        ref = REF_DATE.toordinal()
        reserved_people = known.RESERVED_PERSONS
        # one string object per distinct value: saves ~15 MB at 100,000 persons
        dobs: dict[int, str] = {}
        shared: dict[str, str] = {}

        def share(value: str) -> str:
            return shared.setdefault(value, value)

        for i in range(n):
            male = sexes[i] == "M"
            first = males[i] if male else females[i]
            name = f"{lasts[i]}, {first}"
            if middles[i] != " ":
                name += " " + middles[i]
            name = name[:30].rstrip(" -'")
            age = ages[i]
            dob = dobs.get(age)
            if dob is None:
                dob = dobs[age] = _dt.date.fromordinal(ref - age).isoformat()
            if (name, dob) in reserved_people:
                dob = _dt.date.fromordinal(ref - age - 1).isoformat()
            h = round((70.0 if male else 64.5) + 3.0 * inches[i])
            h = min(max(h, 58), 80)
            w = bmi[i] * h * h // 703
            state = HOME_STATE if homes[i] == HOME_STATE else others[i]
            oln = self.new_oln(lasts[i][0], state) if licensed[i] else ""
            d.name.append(name)
            d.dob.append(dob)
            d.sex.append(sexes[i])
            d.race.append(races[i])
            d.height.append(share(f"{h // 12}{h % 12:02d}"))
            d.weight.append(share(str(w)))
            d.oln.append(oln)
            d.oln_state.append(state)
            d.licence.append(statuses[i])
            if oln:
                d.by_oln[oln] = i
        for person in known.KNOWN_PERSONS:
            i = len(d.name)
            d.name.append(person["name"])
            d.dob.append(person["dob"])
            d.sex.append(person["sex"])
            d.race.append(person["race"])
            d.height.append(person["height"])
            d.weight.append(person["weight"])
            d.oln.append(person["oln"])
            d.oln_state.append(person["oln_state"])
            d.licence.append(person["status"])
            d.by_oln[person["oln"]] = i

    def new_oln(self, initial: str, state: str) -> str:
        """Missouri style: the surname's initial and 9 digits; other states 8-9 digits."""
        rng = self.rng
        while True:
            if state == HOME_STATE:
                oln = f"{initial}{rng.randrange(10**9):09d}"
            elif state in ("IL", "KS"):
                oln = f"{initial}{rng.randrange(10**8):08d}"
            else:
                oln = f"{rng.randrange(10**8, 10**9)}"
            if oln not in self.d.by_oln and oln not in known.RESERVED_OLNS:
                return oln

    def new_plate(self, state: str) -> str:
        rng = self.rng
        while True:
            if state == HOME_STATE:  # Missouri: AB1C2D
                letters = rng.choices(_LETTERS, k=4)
                digits = rng.choices(_DIGITS, k=2)
                plate = letters[0] + letters[1] + digits[0] + letters[2] + digits[1] + letters[3]
            else:
                plate = "".join(rng.choices(_LETTERS, k=3)) + f"{rng.randrange(10000):04d}"
            if plate not in self.d.by_plate and plate not in known.RESERVED_PLATES:
                return plate

    def new_vin(self, wmi: str, year: int) -> str:
        rng = self.rng
        while True:
            vds = "".join(rng.choices(_VIN_ALPHABET, k=5))
            plant = rng.choice(_VIN_ALPHABET[:22])
            draft = f"{wmi}{vds}0{_VIN_YEAR[year - 2000]}{plant}{rng.randrange(10**6):06d}"
            vin = draft[:8] + vin_check_digit(draft) + draft[9:]
            if vin not in self.d.by_vin and vin not in known.RESERVED_VINS:
                return vin

    def vehicles(self) -> None:
        rng, d = self.rng, self.d
        people = len(d.name) - len(known.KNOWN_PERSONS)
        count = people * 3 // 4 if people else 0
        makes = list(names.VEHICLES)
        chosen = rng.choices(makes, [names.VEHICLES[m][2] for m in makes], k=count)
        years = rng.choices(range(2000, REF_DATE.year + 1), k=count)
        colors = rng.choices(names.VEHICLE_COLORS, names.VEHICLE_COLOR_WEIGHTS, k=count)
        owners = rng.choices(range(people), k=count) if people else []
        expiries = rng.choices(range(-60, 365), k=count)
        year_text = {y: str(y) for y in range(2000, REF_DATE.year + 1)}
        expiry_text = {e: _iso(-e) for e in range(-60, 365)}
        for k in range(count):
            make = chosen[k]
            wmi, models, _ = names.VEHICLES[make]
            owner = owners[k]
            state = d.oln_state[owner]
            plate = self.new_plate(state)
            vin = self.new_vin(wmi, years[k])
            self.add_vehicle(
                plate,
                state,
                vin,
                make,
                names.pick(models, rng.randrange(1 << 16)),
                year_text[years[k]],
                colors[k],
                owner,
                expiry_text[expiries[k]],
            )
        for v in known.KNOWN_VEHICLES:
            owner = len(d.name) - len(known.KNOWN_PERSONS) + int(v["owner"])
            self.add_vehicle(
                v["plate"],
                v["plate_state"],
                v["vin"],
                v["make"],
                v["vehicle_model"],
                v["vehicle_year"],
                v["vehicle_color"],
                owner,
                "2026-05-31",
            )

    def add_vehicle(
        self,
        plate: str,
        state: str,
        vin: str,
        make: str,
        model: str,
        year: str,
        color: str,
        owner: int,
        expires: str,
    ) -> None:
        d = self.d
        j = len(d.plate)
        d.plate.append(plate)
        d.plate_state.append(state)
        d.vin.append(vin)
        d.make.append(make)
        d.model.append(model)
        d.year.append(year)
        d.color.append(color)
        d.owner.append(owner)
        d.reg_expires.append(expires)
        d.by_plate[plate] = j
        d.by_vin[vin] = j

    def warrants(self) -> None:
        """~3% of persons wanted somewhere; 1-3 warrants each, each from one agency class.

        County warrants are sometimes entered in the state file and, with an extradition
        code, in NCIC; state warrants likewise. Then the same record (same NIC) answers
        at every tier that holds it.
        """
        rng = self.rng
        people = len(self.d.name) - len(known.KNOWN_PERSONS)
        wanted = rng.sample(range(people), round(people * 0.03))
        counts = rng.choices((1, 2, 3), (80, 15, 5), k=len(wanted))
        for i, count in zip(wanted, counts, strict=True):
            base = self.person_fields(i)
            for kind in rng.choices(
                ("local", "regional", "state", "national"), (40, 25, 20, 15), k=count
            ):
                self.warrant(i, base, kind)

    def warrant(self, i: int, base: dict[str, str], kind: str) -> None:
        rng = self.rng
        ori = self.ori(kind)
        tiers: tuple[str, ...] = (kind,)
        if kind == "local":
            offense = rng.choice(names.OFFENSES_LOCAL)
        else:
            offense = rng.choice(names.OFFENSES_FELONY)
        if kind == "regional" and rng.random() < 0.3:
            tiers = ("regional", "state")
        if tiers[-1] == "state" and rng.random() < 0.4:
            tiers = (*tiers, "national")
        issued = _iso(min(int(rng.expovariate(1 / 500)), 3650))
        ncic = "national" in tiers
        extradition = rng.choices(names.EXTRADITIONS, names.EXTRADITION_WEIGHTS)[0] if ncic else ""
        fields = dict(base)
        if rng.random() < 0.15:
            fields["misc"] = rng.choice(names.MARKS)
        prefix = {"local": "M", "regional": "C", "state": "S", "national": "F"}[kind]
        record = Record(
            file="wanted_person",
            fields=fields,
            caveats=self.caveats(offense in names.VIOLENT_OFFENSES),
            warrant=Warrant(
                number=self.wno(prefix, issued),
                offense=offense,
                issued=issued,
                court=names.court_of(ori, kind),
                extradition=extradition,
                entering_ori=ori,
                oca=self.oca(issued),
                nic=self.nic("W") if ncic else "",
            ),
        )
        self.add(tiers, record)

    def protection_orders(self) -> None:
        rng = self.rng
        people = len(self.d.name) - len(known.KNOWN_PERSONS)
        for i in rng.sample(range(people), round(people * 0.004)):
            kind = rng.choices(("regional", "state", "national"), (50, 40, 10))[0]
            ori = self.ori(kind)
            if kind == "regional":
                ori = "MO048013J"
            fields = self.person_fields(i)
            fields["expires"] = _iso(-rng.randrange(30, 730))
            fields["misc"] = "NO CONTACT WITH PROTECTED PERSON"
            fields["ori"] = ori
            fields["oca"] = self.oca(_iso(rng.randrange(0, 300)))
            fields["nic"] = self.nic("H")
            caveats = ("violent",) if rng.random() < 0.2 else ()
            self.add(self.tiers_of(ori), Record("protection_order", fields, caveats))

    def missing_persons(self) -> None:
        rng = self.rng
        d = self.d
        people = len(d.name) - len(known.KNOWN_PERSONS)
        adult = (REF_DATE.replace(year=REF_DATE.year - 18)).isoformat()
        for i in rng.sample(range(people), round(people * 0.001)):
            kind = rng.choices(("local", "regional", "state", "national"), (40, 30, 20, 10))[0]
            ori = self.ori(kind)
            since = _iso(rng.randrange(1, 2000))
            if d.dob[i] > adult:
                category = "JUVENILE"
            else:
                category = rng.choice(names.MISSING_CATEGORIES[:1] + names.MISSING_CATEGORIES[2:])
            fields = self.person_fields(i)
            fields["misc"] = f"{category} MISSING SINCE {since.replace('-', '')}"
            fields["ori"] = ori
            fields["oca"] = self.oca(since)
            fields["nic"] = self.nic("M")
            draw = rng.random()
            caveats: tuple[str, ...] = (
                ("medical",) if draw < 0.15 else ("suicidal",) if draw < 0.22 else ()
            )
            self.add(self.tiers_of(ori), Record("missing_person", fields, caveats))

    def stolen_vehicles(self) -> None:
        rng, d = self.rng, self.d
        vehicles = len(d.plate) - len(known.KNOWN_VEHICLES)
        for j in rng.sample(range(vehicles), round(vehicles * 0.008)):
            state = d.plate_state[j]
            if state == HOME_STATE:
                kind = rng.choices(("local", "regional", "state", "national"), (40, 25, 25, 10))[0]
                ori = self.ori(kind)
            else:
                ori = self.ori("national", state) if rng.random() < 0.8 else self.ori("state")
            stolen = _iso(rng.randrange(1, 1100))
            fields = {
                "plate": d.plate[j],
                "plate_state": state,
                "plate_year": d.reg_expires[j][:4],
                "vin": d.vin[j],
                "vehicle_year": d.year[j],
                "make": d.make[j],
                "vehicle_model": d.model[j],
                "vehicle_color": d.color[j],
                "date_of_theft": stolen,
                "ori": ori,
                "oca": self.oca(stolen),
                "nic": self.nic("V"),
            }
            self.add(self.tiers_of(ori), Record("stolen_vehicle", fields))

    def stolen_property(self) -> None:
        """Stolen guns and articles: ~2% of the population each, entered anywhere."""
        rng = self.rng
        people = len(self.d.name) - len(known.KNOWN_PERSONS)
        kinds = ("local", "regional", "state", "national")
        seen: set[tuple[str, str]] = set()
        gun_makes = list(names.GUNS)
        for _ in range(round(people * 0.02)):
            make = rng.choice(gun_makes)
            letters, calibers, kind_of_gun = names.GUNS[make]
            while True:
                serial = (
                    letters + "".join(rng.choices(_LETTERS, k=2)) + (f"{rng.randrange(10**5):05d}")
                )
                if ("G", serial) not in seen and serial not in known.RESERVED_SERIALS:
                    break
            seen.add(("G", serial))
            ori = self.ori(rng.choices(kinds, (35, 25, 25, 15))[0])
            stolen = _iso(rng.randrange(1, 3000))
            fields = {
                "serial": serial,
                "make": make,
                "caliber": rng.choice(calibers),
                "misc": kind_of_gun,
                "date_of_theft": stolen,
                "ori": ori,
                "oca": self.oca(stolen),
                "nic": self.nic("G"),
            }
            self.add(self.tiers_of(ori), Record("stolen_gun", fields))
        types = list(names.ARTICLES)
        for _ in range(round(people * 0.02)):
            article_type = rng.choice(types)
            while True:
                serial = "".join(rng.choices(_LETTERS + _DIGITS, k=rng.randrange(8, 13)))
                if (article_type, serial) not in seen and serial not in known.RESERVED_SERIALS:
                    break
            seen.add((article_type, serial))
            ori = self.ori(rng.choices(kinds, (35, 25, 25, 15))[0])
            stolen = _iso(rng.randrange(1, 1500))
            fields = {
                "serial": serial,
                "article_type": article_type,
                "brand": rng.choice(names.ARTICLES[article_type]),
                "date_of_theft": stolen,
                "ori": ori,
                "oca": self.oca(stolen),
                "nic": self.nic("A"),
            }
            self.add(self.tiers_of(ori), Record("stolen_article", fields))
