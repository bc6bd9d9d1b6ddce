"""Network-level decisions of the simulators without sockets: fault merging, config
loading, who answers teletype, originated traffic across sessions, the schedule."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from simulators.config import SimConfigError, load
from simulators.faults import FaultError, Faults
from simulators.network import Network, TeletypePolicy, agency_for, serves
from simulators.session import NetworkSession
from switch.model import AdminMessage, Record, Warrant

from .test_sim_session import SECRET, FakeData


def _net(**policy: object) -> tuple[Network, Clock]:
    clock = Clock()
    net = Network(
        "local",
        clock,
        FakeData(),
        {"MO0380100": SECRET},
        policy=TeletypePolicy(**policy),  # type: ignore[arg-type]
        delays=((0, 0), (0, 0)),
    )
    net.mark_ready()
    return net, clock


def _logged_on(net: Network) -> tuple[NetworkSession, StringTransport]:
    session = NetworkSession(net)
    transport = StringTransport()
    session.makeConnection(transport)
    session.dataReceived(
        json.dumps({"t": "logon", "station": "MO0380100", "secret": SECRET}).encode() + b"\n"
    )
    transport.clear()
    return session, transport


def _ids(transport: StringTransport) -> list[str]:
    out = [json.loads(x).get("id", "") for x in transport.value().splitlines()]
    transport.clear()
    return out


def _am(msg_id: str) -> AdminMessage:
    return AdminMessage(id=msg_id, key="AM", from_ori="MO0380200", to=("MO0380100",), text="HI")


def test_faults_validate_before_changing_anything() -> None:
    """A request with one bad key changes nothing; ``{}`` clears; actions are not kept."""
    faults = Faults()
    faults.merge({"delay_ms": [5, 10], "no_ack": True})
    with pytest.raises(FaultError):
        faults.merge({"garble": True, "drop_after": -1})
    assert faults.as_json() == {"delay_ms": [5.0, 10.0], "no_ack": True}
    assert faults.merge({"close_now": True}) == ["close_now"]
    assert "close_now" not in faults.as_json()
    for bad in ({"delay_ms": [10, 5]}, {"delay_ms": True}, {"refuse_logon": 1}, {"x": 1}):
        with pytest.raises(FaultError):
            faults.merge(bad)
    faults.merge({})
    assert faults.as_json() == {}


def test_fault_delay_replaces_default() -> None:
    """delay_ms (a number or [min, max]) replaces the network's default reply delay."""
    faults = Faults()
    rng = random.Random(1)
    assert 0.02 <= faults.delay(rng, (20, 100)) <= 0.1
    faults.merge({"delay_ms": 250})
    assert faults.delay(rng, (20, 100)) == 0.25


def test_config_teletype_never_and_bad_values(tmp_path: Path) -> None:
    """``teletype_delay_ms = false`` means the agencies never answer; bad values are one
    SimConfigError naming the key."""
    path = tmp_path / "s.toml"
    path.write_text("[national]\nteletype_delay_ms = false\noriginate_every_s = 30\n")
    config = load(path)
    assert config.networks["national"].teletype_delay_ms is None
    assert config.networks["national"].originate_every_s == 30.0
    assert config.networks["local"].teletype_delay_ms == (2000.0, 10000.0)
    for text, key in (
        ("[state]\nteletype_deny = 2\n", "teletype_deny"),
        ("[local]\nport = 'x'\n", "bad value"),
        ("[local]\ndelay_ms = [9, 1]\n", "delay_ms"),
    ):
        path.write_text(text)
        with pytest.raises(SimConfigError, match=key):
            load(path)


def test_who_answers_teletype() -> None:
    """Auto-replies come from the ORI addressed, a state's control terminal, the
    interstate switch for NL, or the network's own ORI for its broadcast codes."""
    assert agency_for("national", "TX2270000") == "TX2270000"
    assert agency_for("national", "KS") == "KS0000000"
    assert agency_for("national", "NL") == "NL0000000"
    assert agency_for("regional", "REG") == "MO0480000"
    assert agency_for("state", "STATE") == "MO0000000"
    assert serves("national", "NL") and not serves("national", "MO")
    assert not serves("state", "MO0380200") and not serves("local", "REG")


def test_new_session_does_not_duplicate_what_the_oldest_holds() -> None:
    """A second logon does not resend what the oldest session still has in flight; the
    oldest session's loss hands it over once; a NAKed message is never resent."""
    net, _ = _net(delay_ms=None)
    s1, t1 = _logged_on(net)
    net.originate(_am("O1"))
    net.originate(_am("O2"))
    assert _ids(t1) == ["O1", "O2"]
    s2, t2 = _logged_on(net)
    assert _ids(t2) == []
    s2.dataReceived(b'{"t": "nak", "id": "O2", "code": 19, "text": "NO"}\n')
    s1.connectionLost()
    assert _ids(t2) == ["O1"]
    assert net.outbound == ["O1"]
    _s3, t3 = _logged_on(net)
    assert _ids(t3) == []


def test_teletype_auto_reply_and_yq_policies() -> None:
    """An AM is answered by an AM after the policy delay; with no_answer 1 a YQ is never
    answered; with deny 1 it is answered "not confirmed"."""
    net, clock = _net(delay_ms=(1000.0, 1000.0))
    session, transport = _logged_on(net)
    net.take_teletype(
        AdminMessage(id="A1", key="AM", from_ori="MO0380100", to=("MO0380200",), text="X")
    )
    clock.advance(0.9)
    assert transport.value() == b""
    clock.advance(0.2)
    frame = json.loads(transport.value())
    assert frame["key"] == "AM" and frame["from"] == "MO0380200" and frame["to"] == ["MO0380100"]
    transport.clear()
    yq = AdminMessage(
        id="Y1",
        key="YQ",
        from_ori="MO0380100",
        to=("MO0380200",),
        text="CONFIRM",
        fields={"request_type": "WANTED PERSON", "request_number": "1", "urgency": "U"},
    )
    net.policy.no_answer = 1.0
    net.take_teletype(yq)
    clock.advance(2)
    assert transport.value() == b""
    net.policy.no_answer, net.policy.deny = 0.0, 1.0
    net.take_teletype(yq)
    clock.advance(2)
    frame = json.loads(transport.value())
    assert frame["key"] == "YR" and frame["fields"]["confirmed"] == "N"
    assert net.state.stats["yq_never_answered"] == 1
    session.connectionLost()


def test_schedule_alternates_am_and_yq() -> None:
    """Scheduled traffic alternates an AM to the gateway and a YQ about one of our
    warrants, cycling through them."""
    net, _ = _net()
    warrants = [
        Record(
            "wanted_person",
            {"name": f"DOE, JOHN {c}", "dob": "1980-01-01", "sex": "M"},
            warrant=Warrant(number=f"W{c}", oca=f"26-{c}", entering_ori="MO0380100"),
        )
        for c in "AB"
    ]
    messages = [net.scheduled(warrants) for _ in range(6)]
    assert [m.key for m in messages] == ["AM", "YQ"] * 3
    assert [m.fields["name"] for m in messages if m.key == "YQ"] == [
        "DOE, JOHN A",
        "DOE, JOHN B",
        "DOE, JOHN A",
    ]
    assert all(m.to == ("MO0380100",) and m.from_ori == "MO0380200" for m in messages)
    assert net.scheduled([]).key == "AM"
