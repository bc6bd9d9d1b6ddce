"""One simulated network: its stations, sessions, records, teletype agencies and faults.

The network is the server side of DESIGN §4: it checks logons, ACKs before it answers,
remembers ids for duplicate suppression, answers inquiries from the synthetic data set
after a realistic delay, stands in for the agencies behind it for teletype, and
originates traffic to the gateway's longest-standing session. Sessions
(:mod:`simulators.session`) are thin adapters: every decision is here.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import structlog
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime

from switch.formats.base import Codec
from switch.formats.registry import codec_for
from switch.model import (
    STATE_CODES,
    AdminMessage,
    IdSource,
    Inquiry,
    Origin,
    Record,
    Reply,
    is_ori,
)

from .faults import Faults

if TYPE_CHECKING:
    from .session import NetworkSession

log = structlog.get_logger("simulators.network")

#: The networks' own ORIs (DESIGN §9): senders of ER/SM and of their own notices.
NETWORK_ORIS = {
    "local": "MO0380000",
    "regional": "MO0480000",
    "state": "MO0000000",
    "national": "NCIC",
}
#: The interstate switch: the national network's sender for teletype notices and
#: for traffic addressed to "all states" (``NL``).
NLETS_ORI = "NL0000000"
#: An agency behind each network that originates the scheduled demo traffic.
DEMO_SENDERS = {
    "local": "MO0380200",
    "regional": "MO0480100",
    "state": "MO0950000",
    "national": "TX2270000",
}

#: Default reply delays in ms (DESIGN §4): hot files, and driver/registration files.
DEFAULT_DELAYS: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "local": ((20, 100), (20, 100)),
    "regional": ((20, 100), (20, 100)),
    "state": ((100, 500), (1000, 10000)),
    "national": ((50, 300), (1000, 10000)),
}

DUPLICATE_MEMORY = 25 * 3600.0
HOME_STATE = "MO"
SLOW_SUBJECTS = ("driver", "registration")


class Data(Protocol):
    """What a network needs of the data set (``simulators.data.Dataset``)."""

    def ensure_built(self) -> None: ...

    def lookup(self, tier: str, subject: str, fields: Mapping[str, str]) -> list[Record]: ...


def serves(network: str, dest: str) -> bool:
    """Which destinations each network stands in for (the demo routes of DESIGN §9)."""
    if network == "local":
        return dest.startswith("MO038") and is_ori(dest)
    if network == "regional":
        return dest == "REG" or (dest.startswith("MO048") and is_ori(dest))
    if network == "state":
        return dest in ("STATE", HOME_STATE) or (
            dest.startswith(HOME_STATE) and is_ori(dest) and not dest.startswith(("MO038", "MO048"))
        )
    if network == "national":
        return (
            dest == "NL"
            or (dest in STATE_CODES and dest != HOME_STATE)
            or (is_ori(dest) and dest[:2] in STATE_CODES and dest[:2] != HOME_STATE)
        )
    return False


def agency_for(network: str, dest: str) -> str:
    """The ORI that answers for a destination: the ORI itself, else the control terminal
    of a state (national: ``TX`` -> ``TX0000000``), the interstate switch for ``NL``, or
    the network's own ORI for its broadcast codes (``REG``, ``STATE``)."""
    if is_ori(dest):
        return dest
    if network == "national":
        return f"{dest}0000000" if dest in STATE_CODES else NLETS_ORI
    return NETWORK_ORIS[network]


def iso_now(wall: Callable[[], float]) -> str:
    """UTC with hundredths, as the rest of the project writes times."""
    t = _dt.datetime.fromtimestamp(wall(), _dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 10000:02d}Z"


@dataclass
class TeletypePolicy:
    """How the simulated agencies answer teletype: an AM gets an acknowledging AM (when
    ``auto_am``), a YQ a YR, after ``delay_ms`` ([min, max]; None: never answer). A fraction
    ``no_answer`` of YQs is never answered and a fraction ``deny`` is answered "not
    confirmed", drawn from the network's seeded rng."""

    delay_ms: tuple[float, float] | None = (2000.0, 10000.0)
    no_answer: float = 0.0
    deny: float = 0.0
    auto_am: bool = True


@dataclass
class NetworkState:
    """What the control API shows: the received log and the counters."""

    received: list[dict[str, Any]] = field(default_factory=list)
    stats: Counter[str] = field(default_factory=Counter)


#: Bound on the received log (oldest dropped): the simulators run for days in a demo.
MAX_RECEIVED = 10_000


class Network:
    """The shared state and behaviour of one simulated network."""

    def __init__(
        self,
        name: str,
        clock: IReactorTime,
        dataset: Data,
        secrets: dict[str, str],
        *,
        heartbeat: float = 15.0,
        policy: TeletypePolicy | None = None,
        delays: tuple[tuple[float, float], tuple[float, float]] | None = None,
        seed: int = 1,
        wall: Callable[[], float] = time.time,
        station: str = "MO0380100",
    ) -> None:
        self.name = name
        self.ori = NETWORK_ORIS[name]
        self.clock = clock
        self.dataset = dataset
        self.secrets = secrets  # station -> secret
        self.station = station  # the gateway's ORI: where originated traffic goes
        self.heartbeat = heartbeat
        self.policy = policy or TeletypePolicy()
        self.delays = delays or DEFAULT_DELAYS[name]
        self.faults = Faults()
        self.state = NetworkState()
        self.ids = IdSource()
        self.rng = random.Random(f"{seed}-{name}")
        self.wall = wall
        self.sessions: list[NetworkSession] = []  # logged-on, oldest first
        self.connections: set[NetworkSession] = set()
        self._seen: dict[tuple[str, str], float] = {}
        self._outbound: dict[str, AdminMessage] = {}  # originated, not yet ACKed
        self._timers: list[IDelayedCall] = []
        self._ready = False
        self._waiters: list[Deferred[None]] = []
        self._scheduled = 0
        self.on_refuse_connections: Callable[[bool], None] | None = None

    # ------------------------------------------------------------------ plumbing

    def codec(self) -> Codec:
        return codec_for(self.name, self.ori, role="server")

    def count(self, key: str, n: int = 1) -> None:
        self.state.stats[key] += n

    def stats_json(self) -> dict[str, Any]:
        """Counters for ``GET /<network>/stats``; ``a.b`` keys become nested objects
        (``naks_out`` by code, ``rejected`` by reason)."""
        out: dict[str, Any] = {
            "network": self.name,
            "sessions": len(self.sessions),
            "connections": len(self.connections),
            "ready": self._ready,
        }
        for key, value in sorted(self.state.stats.items()):
            group, dot, sub = key.partition(".")
            if dot:
                out.setdefault(group, {})[sub] = value
            else:
                out[key] = value
        return out

    def when_ready(self) -> Deferred[None]:
        """Fires once the data set is built (the service builds it in a thread, after
        listening, so that the listeners answer within seconds of start)."""
        if self._ready:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiters.append(d)
        return d

    def mark_ready(self) -> None:
        self._ready = True
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            d.callback(None)

    def later(self, delay: float, fn: Callable[..., object], *args: object) -> None:
        """A network-level timer (teletype answers), cancelled by :meth:`stop`."""
        self._timers = [t for t in self._timers if t.active()]
        self._timers.append(self.clock.callLater(delay, fn, *args))

    def stop(self) -> None:
        for timer in self._timers:
            if timer.active():
                timer.cancel()
        self._timers.clear()
        self.close_now(count=False)

    # ------------------------------------------------------------------ sessions

    def check_logon(self, station: str, secret: str) -> str | None:
        """None if the logon is good, else the reason given to the client."""
        if self.faults.refuse_logon:
            return "LOGON REFUSED"
        expected = self.secrets.get(station)
        if expected is None or not hmac.compare_digest(expected.encode(), secret.encode()):
            return "INVALID STATION OR SECRET"
        return None

    def logged_on(self, session: NetworkSession) -> None:
        self.sessions.append(session)
        self.count("logons")
        log.info("simulator.logon", network=self.name, count=len(self.sessions))
        if self.sessions[0] is session:  # the first live session takes what is waiting
            for message in list(self._outbound.values()):
                session.send_originated(message)

    def lost(self, session: NetworkSession) -> None:
        self.connections.discard(session)
        if session not in self.sessions:
            return
        was_oldest = self.sessions[0] is session
        self.sessions.remove(session)
        if was_oldest and self.sessions:
            heir = self.sessions[0]
            for message in list(self._outbound.values()):
                if message.id not in heir.unacked_out:
                    self.count("teletype_resent")
                    heir.send_originated(message)

    def close_now(self, count: bool = True) -> None:
        for session in list(self.connections):
            session.close()
        if count:
            self.count("close_now")

    def apply_faults(self, request: dict[str, Any]) -> dict[str, Any]:
        was_refusing = self.faults.refuse_connections
        actions = self.faults.merge(request)
        log.info("simulator.faults", network=self.name, count=len(request))
        if "close_now" in actions:
            self.close_now()
        if self.faults.refuse_connections != was_refusing and self.on_refuse_connections:
            self.on_refuse_connections(self.faults.refuse_connections)
        return self.faults.as_json()

    # ------------------------------------------------------------------ duplicates

    def first_time(self, station: str, msg_id: str) -> bool:
        """Record (station, id); False if seen within the duplicate memory (25 h)."""
        now = self.clock.seconds()
        if len(self._seen) > 100_000:
            horizon = now - DUPLICATE_MEMORY
            self._seen = {k: t for k, t in self._seen.items() if t >= horizon}
        key = (station, msg_id)
        seen = self._seen.get(key)
        if seen is not None and now - seen < DUPLICATE_MEMORY:
            self.count("duplicates")
            return False
        self._seen[key] = now
        return True

    # ------------------------------------------------------------------ inquiries

    def answer_delay(self, subject: str) -> float:
        hot, slow = self.delays
        return self.faults.delay(self.rng, slow if subject in SLOW_SUBJECTS else hot)

    def answer(self, inquiry: Inquiry) -> Reply:
        """Look the subject up in this tier's records; the text is the network's own."""
        from .text import render_text

        records = self.dataset.lookup(self.name, inquiry.subject, inquiry.fields)
        self.count("inquiries")
        if records:
            self.count("hits")
        origin = None
        if self.name == "national" and inquiry.subject in SLOW_SUBJECTS:
            # DR/RR come from the state asked, not from the FBI files (DESIGN §4.4)
            state = inquiry.fields.get(
                "oln_state" if inquiry.subject == "driver" else "plate_state", ""
            )
            origin = Origin(agency_for("national", state or "NL"))
        return Reply(
            id=self.ids(),
            network=self.name,
            status="hit" if records else "no_record",
            text=render_text(self.name, inquiry.subject, inquiry.fields, records),
            records=tuple(records),
            in_reply_to=inquiry.id,
            control=inquiry.control,
            subject=inquiry.subject,
            origin=origin,
        )

    # ------------------------------------------------------------------ teletype

    def bad_destinations(self, message: AdminMessage) -> list[str]:
        return [d for d in message.to if not serves(self.name, d)]

    def take_teletype(self, message: AdminMessage) -> None:
        """Record an accepted AM/YQ/YR (once per id) and schedule the agencies' answer."""
        received = self.state.received
        received.append(
            {
                "id": message.id,
                "key": message.key,
                "from": message.from_ori,
                "to": list(message.to),
                "text": message.text,
                "fields": dict(message.fields),
                "time": iso_now(self.wall),
            }
        )
        if len(received) > MAX_RECEIVED:
            del received[: len(received) - MAX_RECEIVED]
        self.count("teletype_received")
        self.count(f"teletype_received_by_key.{message.key}")
        policy = self.policy
        if policy.delay_ms is None:
            return
        after = self.rng.uniform(*policy.delay_ms) / 1000.0
        if message.key == "AM" and policy.auto_am:
            self.later(after, self._auto_am, message)
        elif message.key == "YQ":
            if self.rng.random() < policy.no_answer:
                self.count("yq_never_answered")
                return
            confirmed = "N" if self.rng.random() < policy.deny else "Y"
            self.later(after, self._auto_yr, message, confirmed)

    def _auto_am(self, message: AdminMessage) -> None:
        self.originate(
            AdminMessage(
                id=self.ids(),
                key="AM",
                from_ori=agency_for(self.name, message.to[0]),
                to=(message.from_ori,),
                text=f"ACKNOWLEDGE RECEIPT OF YOUR MESSAGE {message.id}",
            )
        )

    def _auto_yr(self, message: AdminMessage, confirmed: str) -> None:
        keep = ("request_type", "request_number", "oca", "nic", "name", "dob", "sex")
        fields = {k: v for k, v in message.fields.items() if k in keep}
        fields["confirmed"] = confirmed
        fields["remarks"] = "WARRANT CONFIRMED" if confirmed == "Y" else "RECORD NOT CONFIRMED"
        self.originate(
            AdminMessage(
                id=self.ids(),
                key="YR",
                from_ori=agency_for(self.name, message.to[0]),
                to=(message.from_ori,),
                text=f"HIT CONFIRMATION RESPONSE TO {message.id}",
                fields=fields,
                in_reply_to=message.id,
            )
        )

    def scheduled(self, warrants: list[Record]) -> AdminMessage:
        """The next scheduled demo message: alternately an AM to the gateway's ORI and a
        YQ about one of our agency's local warrants (``warrants``, round robin)."""
        self._scheduled += 1
        sender = DEMO_SENDERS[self.name]
        n = self._scheduled
        if n % 2 == 1 or not warrants:
            return AdminMessage(
                id=self.ids(),
                key="AM",
                from_ori=sender,
                to=(self.station,),
                text=f"SCHEDULED TEST MESSAGE {n} FROM THE {self.name.upper()} NETWORK",
            )
        record = warrants[(n // 2 - 1) % len(warrants)]
        fields = {
            "request_type": "WANTED PERSON",
            "request_number": "1",
            "urgency": "R",
            "requester_name": "DEMO DISPATCHER",
            "requester_agency": "DEMO AGENCY",
            "phone": "5555550100",
        }
        for name in ("name", "dob", "sex"):
            if record.fields.get(name):
                fields[name] = record.fields[name]
        if record.warrant is not None:
            if record.warrant.oca:
                fields["oca"] = record.warrant.oca
            if record.warrant.nic:
                fields["nic"] = record.warrant.nic
        return AdminMessage(
            id=self.ids(),
            key="YQ",
            from_ori=sender,
            to=(self.station,),
            text="PLEASE CONFIRM WARRANT AND ADVISE",
            fields=fields,
        )

    def originate(self, message: AdminMessage) -> None:
        """Send to the longest-standing session; kept until ACKed, resent on the next."""
        self._outbound[message.id] = message
        self.count("teletype_originated")
        if self.sessions:
            self.sessions[0].send_originated(message)

    def acked(self, msg_id: str) -> None:
        if self._outbound.pop(msg_id, None) is not None:
            self.count("teletype_originated_acked")

    def naked(self, msg_id: str) -> None:
        """The gateway refused an originated message: it is not sent again."""
        if self._outbound.pop(msg_id, None) is not None:
            self.count("teletype_originated_naked")

    @property
    def outbound(self) -> list[str]:
        """Ids of originated messages not yet ACKed (tests, stats)."""
        return list(self._outbound)

    def received_items(self) -> list[dict[str, Any]]:
        return list(self.state.received)
