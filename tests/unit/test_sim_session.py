"""The simulated network's session protocol over an in-memory transport (local format)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from simulators.network import Network, TeletypePolicy, serves
from simulators.session import NetworkSession
from switch.model import Record, Warrant

SECRET = "s3cret-for-tests"


class FakeData:
    def lookup(self, tier: str, subject: str, fields: Mapping[str, str]) -> list[Record]:
        if fields.get("name") == "DOE, JOHN A":
            return [Record("wanted_person", {"name": "DOE, JOHN A"}, (), Warrant(number="W1"))]
        return []

    def ensure_built(self) -> None:
        pass


def _session(**policy: object) -> tuple[Network, NetworkSession, StringTransport, Clock]:
    clock = Clock()
    net = Network(
        "local",
        clock,
        FakeData(),  # type: ignore[arg-type]
        {"MO0380100": SECRET},
        heartbeat=15.0,
        policy=TeletypePolicy(**policy),  # type: ignore[arg-type]
        delays=((0, 0), (0, 0)),
    )
    net.mark_ready()
    session = NetworkSession(net)
    transport = StringTransport()
    session.makeConnection(transport)
    return net, session, transport, clock


def _frames(transport: StringTransport) -> list[dict[str, object]]:
    out = [json.loads(line) for line in transport.value().splitlines() if line.strip()]
    transport.clear()
    return out


def _send(session: NetworkSession, obj: dict[str, object]) -> None:
    session.dataReceived(json.dumps(obj).encode() + b"\n")


def _logon(session: NetworkSession, transport: StringTransport) -> None:
    _send(session, {"t": "logon", "station": "MO0380100", "secret": SECRET})
    assert _frames(transport) == [{"t": "logon_ok"}]


QUERY = {
    "t": "query",
    "id": "Q1",
    "ori": "MO0380100",
    "subject": "person",
    "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01"},
}


def test_logon_refused_with_wrong_secret() -> None:
    """A wrong secret gets logon_fail and the connection is closed."""
    _net, session, transport, _ = _session()
    _send(session, {"t": "logon", "station": "MO0380100", "secret": "nope"})
    frames = _frames(transport)
    assert frames[0]["t"] == "logon_fail"
    assert transport.disconnecting


def test_nak_30_before_logon() -> None:
    """An application message before logon is refused with NAK 30."""
    _net, session, transport, _ = _session()
    _send(session, QUERY)
    assert _frames(transport) == [{"t": "nak", "id": "Q1", "code": 30, "text": "NOT LOGGED ON"}]


def test_ack_before_reply_and_duplicates_answered_once() -> None:
    """ACK comes first, then the reply; a repeated id is ACKed again but not answered."""
    net, session, transport, clock = _session()
    _logon(session, transport)
    _send(session, QUERY)
    clock.advance(0)
    frames = _frames(transport)
    assert [f["t"] for f in frames] == ["ack", "reply"]
    assert frames[1]["re"] == "Q1" and frames[1]["hit"] is True
    _send(session, QUERY)
    clock.advance(1)
    assert [f["t"] for f in _frames(transport)] == ["ack"]
    assert net.state.stats["duplicates"] == 1


def test_malformed_frames_are_naked_and_session_survives() -> None:
    """Garbage lines get NAK 10 / 12 and the session keeps working."""
    _net, session, transport, clock = _session()
    _logon(session, transport)
    session.dataReceived(b"not json\n")
    session.dataReceived(b'{"t": "bogus", "id": "X1"}\n')
    codes = [f["code"] for f in _frames(transport)]
    assert codes == [10, 12]
    _send(session, QUERY)
    clock.advance(0)
    assert [f["t"] for f in _frames(transport)] == ["ack", "reply"]


def test_teletype_recorded_once_and_bad_destination_refused() -> None:
    """AM to an agency behind the network is ACKed and logged once; others get NAK 19."""
    net, session, transport, _clock = _session(delay_ms=None)
    _logon(session, transport)
    msg = {
        "t": "msg",
        "id": "M1-1",
        "key": "AM",
        "from": "MO0380100",
        "to": ["MO0380200"],
        "priority": "routine",
        "text": "ATTN WATCH COMMANDER",
    }
    _send(session, msg)
    _send(session, msg)
    assert [f["t"] for f in _frames(transport)] == ["ack", "ack"]
    assert [r["id"] for r in net.received_items()] == ["M1-1"]
    assert net.received_items()[0]["text"] == "ATTN WATCH COMMANDER"
    _send(session, {**msg, "id": "M2-1", "to": ["TX2270000"]})
    assert _frames(transport)[0]["code"] == 19


def test_heartbeat_and_dead_session() -> None:
    """A heartbeat goes out after 15 s idle; 45 s of silence closes the session."""
    _net, session, transport, clock = _session()
    _logon(session, transport)
    clock.advance(16)
    assert {"t": "hb"} in _frames(transport)
    clock.advance(30)
    assert transport.disconnected or transport.disconnecting


def test_originated_message_resent_on_next_session() -> None:
    """Traffic the network originates goes to the oldest session, again on the next if
    the first is lost before ACKing it."""
    net, s1, t1, _clock = _session()
    _logon(s1, t1)
    from switch.model import AdminMessage

    net.originate(
        AdminMessage(id="O1", key="AM", from_ori="MO0380200", to=("MO0380100",), text="HELLO")
    )
    assert _frames(t1)[0]["id"] == "O1"
    s2 = NetworkSession(net)
    t2 = StringTransport()
    s2.makeConnection(t2)
    _logon(s2, t2)
    s1.connectionLost()
    assert [f["id"] for f in _frames(t2)] == ["O1"]
    _send(s2, {"t": "ack", "id": "O1"})
    assert net.state.stats["teletype_originated_acked"] == 1


def test_faults_garble_no_ack_drop_after() -> None:
    """garble corrupts the next frame once; no_ack withholds ACKs; drop_after closes."""
    net, session, transport, clock = _session()
    _logon(session, transport)
    net.apply_faults({"garble": True, "no_ack": True})
    _send(session, QUERY)
    clock.advance(0)
    raw = transport.value()
    assert b"GARBLED" in raw and b'"ack"' not in raw
    assert net.faults.as_json() == {"no_ack": True}
    net.apply_faults({"drop_after": 1})
    _send(session, {"t": "hb"})
    assert transport.disconnecting or transport.disconnected


def test_demo_destinations() -> None:
    """Each network stands in for the agencies of the demo routes."""
    assert serves("local", "MO0380200") and not serves("local", "MO0480100")
    assert serves("regional", "REG") and serves("regional", "MO0480100")
    assert serves("state", "MO0950000") and serves("state", "STATE")
    assert serves("national", "TX2270000") and serves("national", "KS")
    assert not serves("national", "MO0950000")


def test_replies_respect_the_window() -> None:
    """With 64 replies un-ACKed by the gateway, further replies wait for an ACK."""
    import simulators.session as session_module

    net, session, transport, clock = _session()
    _logon(session, transport)
    for i in range(session_module.WINDOW + 2):
        _send(session, {**QUERY, "id": f"Q{i}"})
    clock.advance(1)
    replies = [f for f in _frames(transport) if f["t"] == "reply"]
    assert len(replies) == session_module.WINDOW
    _send(session, {"t": "ack", "id": replies[0]["id"]})
    assert [f["t"] for f in _frames(transport)] == ["reply"]
    assert net.state.stats["window_waits"] == 2
