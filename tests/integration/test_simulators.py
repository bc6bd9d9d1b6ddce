"""The four simulated networks as a real ``switch-sim`` process, driven over loopback.

One simulator process serves the whole module (``--any-port``, a temporary ``var/`` made
with the functions ``switchctl init`` uses, 2,000 persons, no reply delay); every test
speaks a network's real wire format through the client side of its codec (national over
mutual TLS) and uses the control API over HTTP. Tests that change faults clear them
before they finish, so they do not leak into the next one.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import SSL4ClientEndpoint, TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

from switch import paths
from switch.formats.base import CodecError
from switch.formats.registry import codec_for
from switch.model import (
    Ack,
    AdminMessage,
    Inquiry,
    Logoff,
    Logon,
    LogonResult,
    Nak,
    Notice,
    Origin,
    Reply,
    WireMessage,
)
from switch.pki import client_tls_options, init_pki

NETWORKS = ("local", "regional", "state", "national")
STATION = "MO0380100"
ROOT = Path(__file__).resolve().parents[2]
SIM = ROOT / ".venv" / "bin" / "switch-sim"


def prepare_var(var: Path) -> dict[str, str]:
    """Secrets and PKI as ``switchctl init`` makes them (same functions); returns secrets."""
    out = {}
    for name in NETWORKS:
        secret = secrets.token_urlsafe(32)
        paths.write_private(paths.secret_file(name, var), (secret + "\n").encode())
        out[name] = secret
    init_pki(paths.pki_dir(var), paths.keys_dir(var), station=STATION)
    return out


@dataclass
class SimProcess:
    """A ``switch-sim`` subprocess and the ports it bound."""

    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    var: Path
    secrets: dict[str, str]
    log: Path

    @property
    def control(self) -> str:
        return f"http://127.0.0.1:{self.ports['control']}"

    def terminate(self, timeout: float = 10.0) -> tuple[int | None, float]:
        """SIGTERM; the exit code and how long it took (None if it did not exit)."""
        started = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            return None, time.monotonic() - started
        return rc, time.monotonic() - started


def start_sim(tmp: Path, *args: str, config: str | None = None, network: str = "all") -> SimProcess:
    """Start ``switch-sim`` on free ports with a temporary var/; wait for its ready file."""
    var = tmp / "var"
    sec = prepare_var(var)
    ready = tmp / "ready.json"
    cfg = tmp / "simulators.toml"
    cfg.write_text(config or "")
    log = tmp / "sim.log"
    cmd = [
        str(SIM) if SIM.exists() else sys.executable,
        *([] if SIM.exists() else ["-m", "simulators.cli"]),
        network,
        "--config",
        str(cfg),
        "--any-port",
        "--ready-file",
        str(ready),
        "--var",
        str(var),
        "--persons",
        "2000",
        "--delay-ms",
        "0",
        *args,
    ]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=tmp)
    deadline = time.monotonic() + 15
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"switch-sim did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return SimProcess(proc, json.loads(ready.read_text()), var, sec, log)


def http(sim: SimProcess, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    """One blocking HTTP call to the control API (the simulator is another process)."""
    req = urllib.request.Request(sim.control + path, data=body, method=method)
    if body is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post(sim: SimProcess, path: str, obj: Any) -> tuple[int, Any]:
    return http(sim, "POST", path, json.dumps(obj).encode())


class SimClient(Protocol):
    """The gateway end of one connection: encode/decode with the real client codec."""

    def __init__(self, fmt: str, reactor: Any) -> None:
        self.fmt = fmt
        self.reactor = reactor
        self.codec = codec_for(fmt, STATION, role="client")
        self.framer = self.codec.framer()
        self.inbox: list[WireMessage | CodecError] = []
        self._waiter: Deferred[None] | None = None
        self.closed: Deferred[None] = Deferred()
        self.is_closed = False

    def connectionLost(self, reason: Failure = Failure(ConnectionError())) -> None:  # noqa: B008
        self.is_closed = True
        self.closed.callback(None)
        self._wake()

    def dataReceived(self, data: bytes) -> None:
        while True:
            try:
                frames = self.framer.feed(data)
            except CodecError as err:
                self.inbox.append(err)
                if err.fatal:
                    break
                data = b""
                continue
            for frame in frames:
                try:
                    self.inbox.append(self.codec.decode(frame))
                except CodecError as err:
                    self.inbox.append(err)
            break
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.callback(None)

    def send(self, message: WireMessage) -> None:
        assert self.transport is not None
        self.transport.write(self.codec.encode(message))

    def write(self, raw: bytes) -> None:
        assert self.transport is not None
        self.transport.write(raw)

    async def recv(self, timeout: float = 5.0) -> WireMessage | CodecError:
        """The next frame, skipping heartbeats; TimeoutError if none arrives in time."""
        deadline = self.reactor.seconds() + timeout
        while True:
            while self.inbox:
                item = self.inbox.pop(0)
                if getattr(item, "kind", None) != "heartbeat":
                    return item
            if self.is_closed:
                raise ConnectionError("connection closed")
            left = deadline - self.reactor.seconds()
            if left <= 0:
                raise TimeoutError("no frame")
            waiter: Deferred[None] = Deferred()
            self._waiter = waiter
            call = self.reactor.callLater(left, self._wake)
            await waiter
            if call.active():
                call.cancel()

    async def quiet(self, seconds: float) -> list[WireMessage | CodecError]:
        """Everything (but heartbeats) that arrives within ``seconds``."""
        await sleep(self.reactor, seconds)
        out = [m for m in self.inbox if getattr(m, "kind", None) != "heartbeat"]
        self.inbox.clear()
        return out

    async def logon(self, secret: str) -> LogonResult:
        self.send(Logon(STATION, secret))
        result = await self.recv()
        assert isinstance(result, LogonResult), result
        return result

    def close(self) -> None:
        assert self.transport is not None
        self.transport.loseConnection()


async def sleep(reactor: Any, seconds: float) -> None:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    await d


async def connect(
    reactor: Any, sim: SimProcess, fmt: str, *, client_cert: bool = True
) -> SimClient:
    """Connect to ``fmt``'s listener (national: mutual TLS, verifying ``localhost``)."""
    port = sim.ports[fmt]
    if fmt == "national":
        pki = paths.pki_dir(sim.var)
        creator = client_tls_options(
            pki / paths.CA_CERT,
            pki / paths.CLIENT_CERT if client_cert else None,
            pki / paths.CLIENT_KEY if client_cert else None,
            "localhost",
        )
        endpoint: Any = SSL4ClientEndpoint(reactor, "127.0.0.1", port, creator, timeout=5)
    else:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port, timeout=5)
    client: SimClient = await connectProtocol(endpoint, SimClient(fmt, reactor))
    return client


async def logged_on(reactor: Any, sim: SimProcess, fmt: str) -> SimClient:
    client = await connect(reactor, sim, fmt)
    result = await client.logon(sim.secrets[fmt])
    assert result.ok, result
    return client


_counter = [int(time.time()) % 100000 * 1000 + os.getpid() % 1000]


def new_id(prefix: str = "T") -> str:
    _counter[0] += 1
    return f"{prefix}{_counter[0]}"


def inquiry(subject: str, fields: dict[str, str], msg_id: str | None = None) -> Inquiry:
    """An inquiry from our agency; every one carries a state control number."""
    msg_id = msg_id or new_id()
    return Inquiry(
        id=msg_id,
        subject=subject,
        fields=fields,
        origin=Origin(STATION),
        control="S" + msg_id[-9:].upper().replace("-", "0"),
    )


# --------------------------------------------------------------------------- fixtures

pytestmark = pytest.mark.integration

#: Agencies answer teletype quickly here so that auto-replies are seen within a test.
SIM_CONFIG = """\
[local]
teletype_delay_ms = [100, 100]
[regional]
teletype_delay_ms = [100, 100]
[state]
teletype_delay_ms = [100, 100]
[national]
teletype_delay_ms = [100, 100]
teletype_no_answer = 0.0
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """One ``switch-sim all`` for the module; it must exit 0 on SIGTERM at the end."""
    process = start_sim(tmp_path_factory.mktemp("sim"), config=SIM_CONFIG)
    try:
        yield process
    finally:
        rc, took = process.terminate()
    assert rc == 0, process.log.read_text()[-3000:]
    assert took < 10


@pytest.fixture
def clear_faults(sim: SimProcess) -> Iterator[None]:
    """Whatever a test sets, every network's faults are cleared afterwards."""
    yield
    for name in NETWORKS:
        post(sim, f"/{name}/faults", {})


def stats(sim: SimProcess, network: str) -> dict[str, Any]:
    status, body = http(sim, "GET", f"/{network}/stats")
    assert status == 200
    return dict(body)


DOE = {"name": "DOE, JOHN A", "dob": "1980-01-01"}
#: docs/test-subjects.md: (subject, fields) -> {network: [(file, warrant number or "")]}
KNOWN: list[tuple[str, dict[str, str], dict[str, list[tuple[str, str]]]]] = [
    (
        "person",
        DOE,
        {
            "local": [("wanted_person", "M26-1187")],
            "regional": [("wanted_person", "C26-0042")],
            "state": [("wanted_person", "S26-0099")],
            "national": [("wanted_person", "F26-7781")],
        },
    ),
    ("driver", {"oln": "D100200300", "oln_state": "MO"}, {"state": [("driver", "")]}),
    ("driver", {"oln": "R100200300", "oln_state": "MO"}, {"state": [("driver", "")]}),
    ("person", {"name": "ROE, JANE", "dob": "1975-05-05"}, {}),
    ("vehicle", {"plate": "ABC1234", "plate_state": "MO"}, {"national": [("stolen_vehicle", "")]}),
    ("vehicle", {"vin": "1HGCM82633A004352"}, {"national": [("stolen_vehicle", "")]}),
    ("registration", {"plate": "ABC1234", "plate_state": "MO"}, {"state": [("registration", "")]}),
    ("gun", {"serial": "G1234567"}, {"national": [("stolen_gun", "")]}),
    (
        "article",
        {"serial": "LT0000042", "article_type": "LAPTOP"},
        {n: [("stolen_article", "")] for n in ("local", "state", "national")},
    ),
    ("person", {"name": "CLEAN, CARL", "dob": "1990-01-01"}, {}),
    ("driver", {"oln": "C100200300", "oln_state": "MO"}, {}),
]


def _key(message: Any) -> str | None:
    """What correlates a reply with its inquiry: the id, or the state control number."""
    return getattr(message, "in_reply_to", None) or getattr(message, "control", None)


def teletype(
    to: tuple[str, ...], text: str = "ATTN WATCH COMMANDER", key: str = "AM"
) -> AdminMessage:
    return AdminMessage(id=new_id("M"), key=key, from_ori=STATION, to=to, text=text)


#: A destination each network serves, and one it does not (DESIGN §9 demo routes).
SERVED = {
    "local": "MO0380200",
    "regional": "MO0480100",
    "state": "MO0950000",
    "national": "TX2270000",
}
NOT_SERVED = {
    "local": "MO0950000",
    "regional": "MO0380200",
    "state": "TX2270000",
    "national": "MO0950000",
}


# --------------------------------------------------------------------------- logon


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_logon_ok_and_refused(reactor: Any, sim: SimProcess, network: str) -> None:
    """The station secret of var/secrets logs on; a wrong one gets a logon failure and
    the connection is closed."""
    bad = await connect(reactor, sim, network)
    result = await bad.logon("not-the-secret")
    assert not result.ok and result.reason
    await bad.closed
    good = await logged_on(reactor, sim, network)
    good.send(Logoff())
    await good.closed


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_nak_30_before_logon(reactor: Any, sim: SimProcess, network: str) -> None:
    """An inquiry before logon is refused with NAK 30 naming its id; the connection
    stays usable and a logon afterwards works."""
    client = await connect(reactor, sim, network)
    ask = inquiry("person", DOE)
    client.send(ask)
    nak = await client.recv()
    assert isinstance(nak, Nak) and nak.code == 30 and nak.id == ask.id
    assert (await client.logon(sim.secrets[network])).ok
    client.close()


@pytest_twisted.ensureDeferred
async def test_national_requires_a_client_certificate(reactor: Any, sim: SimProcess) -> None:
    """Without a client certificate from our CA the national listener never answers a
    logon: the TLS handshake is refused and the connection closed."""
    try:
        client = await connect(reactor, sim, "national", client_cert=False)
    except Exception:
        return  # refused during the handshake: fine
    client.send(Logon(STATION, sim.secrets["national"]))
    with pytest.raises((ConnectionError, TimeoutError)):
        await client.recv(timeout=3)
    assert client.is_closed


# --------------------------------------------------------------------------- inquiries


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_known_subjects_hit_at_the_right_tiers(
    reactor: Any, sim: SimProcess, network: str
) -> None:
    """Every known test subject gets the documented records on this network (and
    no_record where none is documented); each inquiry's ACK arrives before its reply."""
    client = await logged_on(reactor, sim, network)
    asked = {}
    for subject, fields, expected in KNOWN:
        ask = inquiry(subject, fields)
        asked[ask.id] = (ask, expected.get(network, []))
        client.send(ask)
    acked: set[str] = set()
    replies: dict[str, Reply] = {}
    by_control = {a.control: i for i, (a, _) in asked.items()}
    while len(replies) < len(asked):
        frame = await client.recv()
        if isinstance(frame, Ack):
            acked.add(frame.id)
            continue
        assert isinstance(frame, Reply), frame
        key = _key(frame)
        msg_id = key if key in asked else by_control.get(key)
        assert msg_id is not None, frame
        assert msg_id in acked, "reply before its ACK"
        replies[msg_id] = frame
    for msg_id, (ask, expected) in asked.items():
        reply = replies[msg_id]
        label = f"{network} {ask.subject} {dict(ask.fields)}"
        assert reply.text, label
        if not expected:
            assert reply.status == "no_record", label
            continue
        assert reply.status == "hit", label
        got = [(r.file, r.warrant.number if r.warrant else "") for r in reply.records]
        assert [f for f, _ in got] == [f for f, _ in expected], label
        for (_, want_wno), (_, got_wno) in zip(expected, got, strict=True):
            if want_wno:
                assert got_wno == want_wno, label
    client.close()


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_duplicate_ids_acked_again_answered_once(
    reactor: Any, sim: SimProcess, network: str
) -> None:
    """A repeated inquiry id is ACKed each time but answered once, even on another
    session of the same station; stats count the duplicates."""
    before = stats(sim, network).get("duplicates", 0)
    first = await logged_on(reactor, sim, network)
    second = await logged_on(reactor, sim, network)
    ask = inquiry("person", DOE)
    first.send(ask)
    first.send(ask)
    frames = await first.quiet(0.5)
    second.send(ask)
    frames2 = await second.quiet(0.3)
    assert [type(f).__name__ for f in frames] == ["Ack", "Reply", "Ack"]
    assert [type(f).__name__ for f in frames2] == ["Ack"]
    assert stats(sim, network)["duplicates"] == before + 2
    first.close()
    second.close()


# --------------------------------------------------------------------------- teletype


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_teletype_received_once_and_invalid_destination(
    reactor: Any, sim: SimProcess, network: str
) -> None:
    """An AM to an agency the network serves is ACKed, logged once in /received with the
    text exactly as sent (a resend with the same id is ACKed, not logged again), and
    answered by an auto-reply AM; one to an agency it does not serve gets NAK 19 (state:
    ACK and an ER .19. from the state switch) and is not logged."""
    client = await logged_on(reactor, sim, network)
    text = f"ATTN RECORDS {network.upper()} TEST 1"
    am = teletype((SERVED[network],), text)
    client.send(am)
    client.send(am)
    first = await client.recv()
    second = await client.recv()
    assert isinstance(first, Ack) and first.id == am.id
    assert isinstance(second, Ack) and second.id == am.id
    status, body = http(sim, "GET", f"/{network}/received")
    assert status == 200
    mine = [item for item in body["items"] if item["id"] == am.id]
    assert len(mine) == 1
    assert mine[0]["text"] == text and mine[0]["key"] == "AM"
    assert mine[0]["from"] == STATION and mine[0]["to"] == [SERVED[network]]
    assert set(mine[0]) >= {"id", "key", "from", "to", "text", "time"}
    reply = await client.recv(timeout=3)
    assert isinstance(reply, AdminMessage) and reply.key == "AM", reply
    assert STATION in reply.to and reply.from_ori == SERVED[network]
    client.send(Ack(reply.id))

    bad = teletype((NOT_SERVED[network],))
    client.send(bad)
    answer = await client.recv()
    if network == "state":
        assert isinstance(answer, Ack) and answer.id == bad.id
        er = await client.recv()
        assert isinstance(er, Notice) and er.key == "ER" and er.code == 19, er
        assert er.from_ori == "MO0000000"
    else:
        assert isinstance(answer, Nak) and answer.code == 19 and answer.id == bad.id
    _, body = http(sim, "GET", f"/{network}/received")
    assert all(item["id"] != bad.id for item in body["items"])
    client.close()


@pytest_twisted.ensureDeferred
async def test_yq_answered_with_yr(reactor: Any, sim: SimProcess) -> None:
    """A YQ to an out-of-state agency is ACKed and answered with a YR from that agency
    naming the YQ in its fields (confirmed Y) after the configured delay."""
    client = await logged_on(reactor, sim, "national")
    yq = AdminMessage(
        id=new_id("Y"),
        key="YQ",
        from_ori=STATION,
        to=("TX2270000",),
        text="PLEASE CONFIRM",
        fields={
            "request_type": "WANTED PERSON",
            "request_number": "1",
            "urgency": "U",
            "name": "DOE, JOHN A",
            "nic": "W000000777",
        },
    )
    client.send(yq)
    assert isinstance(await client.recv(), Ack)
    yr = await client.recv(timeout=3)
    assert isinstance(yr, AdminMessage) and yr.key == "YR", yr
    assert yr.from_ori == "TX2270000" and yr.fields.get("confirmed") == "Y"
    assert yr.fields.get("nic") == "W000000777"
    client.send(Ack(yr.id))
    client.close()


# --------------------------------------------------------------------------- originate


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_originate_goes_to_oldest_session_and_is_resent(
    reactor: Any, sim: SimProcess, network: str
) -> None:
    """POST /originate sends to the longest-standing session; when that session is lost
    before ACKing, the same id is sent again on the next one; once ACKed it is not."""
    old = await logged_on(reactor, sim, network)
    young = await logged_on(reactor, sim, network)
    sender = SERVED[network]
    status, body = post(
        sim,
        f"/{network}/originate",
        {"key": "AM", "from": sender, "to": [STATION], "text": "HELLO"},
    )
    assert status == 202, body
    got = await old.recv()
    assert isinstance(got, AdminMessage) and got.id == body["id"] and got.text == "HELLO"
    assert got.from_ori == sender
    assert await young.quiet(0.2) == []
    old.transport.abortConnection()  # type: ignore[union-attr]
    again = await young.recv()
    assert isinstance(again, AdminMessage) and again.id == body["id"]
    young.send(Ack(again.id))
    await sleep(reactor, 0.2)
    assert stats(sim, network).get("teletype_originated_acked", 0) >= 1
    young.close()
    await young.closed
    newest = await logged_on(reactor, sim, network)
    assert await newest.quiet(0.3) == []
    newest.close()


@pytest_twisted.ensureDeferred
async def test_originate_waits_for_a_session(reactor: Any, sim: SimProcess) -> None:
    """Traffic originated while no session is logged on goes out on the next logon."""
    status, body = post(sim, "/regional/originate", {"text": "STORED FOR YOU"})
    assert status == 202
    client = await logged_on(reactor, sim, "regional")
    got = await client.recv()
    assert isinstance(got, AdminMessage) and got.id == body["id"]
    assert got.from_ori == "MO0480000" and got.to == (STATION,)
    client.send(Ack(got.id))
    client.close()


def test_originate_bad_requests(sim: SimProcess) -> None:
    """Originate requests the wire cannot carry are 400s with a JSON error."""
    for body in (
        {"text": ""},
        {"key": "ZZ", "text": "X"},
        {"text": "X", "to": []},
        {"text": "X", "from": "nobody"},
        {"text": "X", "fields": {"no_such_field": "1"}, "key": "YQ"},
        {"text": "X", "extra": 1},
    ):
        status, answer = post(sim, "/state/originate", body)
        assert status == 400, body
        assert answer["error"]["code"] == 400 and answer["error"]["message"]


# --------------------------------------------------------------------------- control API


def test_control_api_errors(sim: SimProcess) -> None:
    """Bad JSON and bad fault values are 400, unknown paths and networks 404, another
    method 405: all JSON, never a traceback."""
    status, body = http(sim, "POST", "/local/faults", b"{not json")
    assert status == 400 and body["error"]["message"] == "malformed JSON"
    assert post(sim, "/local/faults", [1, 2])[0] == 400
    assert post(sim, "/local/faults", {"nonsense": True})[0] == 400
    assert post(sim, "/local/faults", {"delay_ms": "slow"})[0] == 400
    assert post(sim, "/local/faults", {"drop_after": 0})[0] == 400
    assert post(sim, "/local/faults", {"refuse_logon": "yes"})[0] == 400
    for path in ("/nowhere/stats", "/local/nothing", "/", "/local/stats/more"):
        status, body = http(sim, "GET", path)
        assert status == 404 and body["error"]["code"] == 404, path
    status, body = http(sim, "DELETE", "/local/faults")
    assert status == 405 and body["error"]["code"] == 405
    assert http(sim, "GET", "/local/faults") == (200, {})


def test_faults_merge_and_clear(sim: SimProcess, clear_faults: None) -> None:
    """POST /faults merges keys and returns the current set; close_now is not kept;
    ``{}`` clears everything."""
    assert post(sim, "/state/faults", {"delay_ms": [10, 20]}) == (200, {"delay_ms": [10, 20]})
    status, body = post(sim, "/state/faults", {"no_ack": True, "close_now": True})
    assert status == 200 and body == {"delay_ms": [10, 20], "no_ack": True}
    assert post(sim, "/state/faults", {"no_ack": False}) == (200, {"delay_ms": [10, 20]})
    assert post(sim, "/state/faults", {}) == (200, {})
    assert http(sim, "GET", "/state/faults") == (200, {})


def test_stats_shape(sim: SimProcess) -> None:
    """GET /stats answers the counters of DESIGN §9 for each network."""
    for network in NETWORKS:
        body = stats(sim, network)
        assert body["network"] == network
        assert isinstance(body["sessions"], int) and body["ready"] is True
    local = stats(sim, "local")
    for key in ("frames_in", "frames_out", "inquiries", "hits", "acks_out", "logons"):
        assert local.get(key, 0) > 0, key
    assert local["naks_out"].get("30", 0) >= 1
    assert local["rejected"].get("invalid_destination", 0) >= 1
    assert local.get("teletype_received", 0) >= 1
    assert local.get("teletype_originated", 0) >= 1


# --------------------------------------------------------------------------- faults


@pytest_twisted.ensureDeferred
async def test_fault_delay_ms(reactor: Any, sim: SimProcess, clear_faults: None) -> None:
    """delay_ms replaces the reply delay: the ACK comes at once, the reply after it."""
    client = await logged_on(reactor, sim, "local")
    post(sim, "/local/faults", {"delay_ms": 400})
    ask = inquiry("person", DOE)
    started = reactor.seconds()
    client.send(ask)
    assert isinstance(await client.recv(), Ack)
    acked = reactor.seconds() - started
    reply = await client.recv()
    answered = reactor.seconds() - started
    assert isinstance(reply, Reply)
    assert acked < 0.3 and answered >= 0.38
    post(sim, "/local/faults", {})
    client.send(inquiry("person", DOE))
    await client.recv()
    started = reactor.seconds()
    assert isinstance(await client.recv(), Reply)
    assert reactor.seconds() - started < 0.3
    client.close()


@pytest_twisted.ensureDeferred
async def test_fault_drop_after(reactor: Any, sim: SimProcess, clear_faults: None) -> None:
    """drop_after N closes each connection once it has received N frames."""
    post(sim, "/regional/faults", {"drop_after": 2})
    client = await logged_on(reactor, sim, "regional")  # frame 1
    client.send(inquiry("person", DOE))  # frame 2
    await client.closed
    post(sim, "/regional/faults", {})
    client = await logged_on(reactor, sim, "regional")
    client.send(inquiry("person", DOE))
    assert isinstance(await client.recv(), Ack)
    client.close()


@pytest.mark.parametrize("network", ["local", "national"])
@pytest_twisted.ensureDeferred
async def test_fault_refuse_logon(
    reactor: Any, sim: SimProcess, network: str, clear_faults: None
) -> None:
    """refuse_logon answers every logon with a failure until cleared."""
    post(sim, f"/{network}/faults", {"refuse_logon": True})
    client = await connect(reactor, sim, network)
    assert not (await client.logon(sim.secrets[network])).ok
    await client.closed
    post(sim, f"/{network}/faults", {})
    client = await logged_on(reactor, sim, network)
    client.close()


@pytest_twisted.ensureDeferred
async def test_fault_no_ack(reactor: Any, sim: SimProcess, clear_faults: None) -> None:
    """no_ack withholds ACKs: the inquiry is still answered, but no ACK is written."""
    client = await logged_on(reactor, sim, "state")
    post(sim, "/state/faults", {"no_ack": True})
    client.send(inquiry("person", DOE))
    frames = await client.quiet(0.5)
    assert [type(f).__name__ for f in frames] == ["Reply"]
    client.close()


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_fault_garble(
    reactor: Any, sim: SimProcess, network: str, clear_faults: None
) -> None:
    """garble corrupts the next frame sent (the client's codec rejects it) and only that
    one: the following frames are clean."""
    client = await logged_on(reactor, sim, network)
    assert post(sim, f"/{network}/faults", {"garble": True})[1] == {"garble": True}
    client.send(inquiry("person", DOE))
    first = await client.recv()
    assert isinstance(first, CodecError), first
    assert isinstance(await client.recv(), Reply)
    assert http(sim, "GET", f"/{network}/faults")[1] == {}
    client.close()


@pytest_twisted.ensureDeferred
async def test_fault_close_now(reactor: Any, sim: SimProcess, clear_faults: None) -> None:
    """close_now closes the current connections once; new ones are accepted."""
    one = await logged_on(reactor, sim, "national")
    two = await logged_on(reactor, sim, "national")
    status, body = post(sim, "/national/faults", {"close_now": True})
    assert status == 200 and body == {}
    await one.closed
    await two.closed
    three = await logged_on(reactor, sim, "national")
    three.close()


@pytest.mark.parametrize("network", ["local", "national"])
@pytest_twisted.ensureDeferred
async def test_fault_refuse_connections(
    reactor: Any, sim: SimProcess, network: str, clear_faults: None
) -> None:
    """refuse_connections stops listening (connection refused) until cleared; then the
    same port listens again."""
    from twisted.internet.error import ConnectionRefusedError

    post(sim, f"/{network}/faults", {"refuse_connections": True})
    await sleep(reactor, 0.1)
    with pytest.raises(ConnectionRefusedError):
        await connect(reactor, sim, network)
    post(sim, f"/{network}/faults", {})
    await sleep(reactor, 0.1)
    client = await logged_on(reactor, sim, network)
    client.close()


# --------------------------------------------------------------------------- hostile input

#: Per format: raw bytes and what the simulator answers (NAK codes; "ER n": ACK + ER n;
#: "closed" where framing is lost and the connection is dropped after its NAK).
GARBAGE: dict[str, list[tuple[bytes, list[str]]]] = {
    "local": [
        (b"not json at all\n", ["NAK 10"]),
        (b'{"t": "query", "id": 5}\n', ["NAK 22"]),
        (b"x" * 70000 + b"\n", ["NAK 11"]),
        (b'{"t": "bogus", "id": "B1"}\n', ["NAK 12"]),
    ],
    "regional": [
        (b"\x64\x03\x01\x02\x03", ["NAK 12"]),
        (b"\xa2\x84\xff\xff\xff\xff", ["NAK 11"]),
    ],
    "state": [
        (b"junk\x02MSG 1\r\n\x00\x03", ["NAK 10", "NAK 10"]),
        (b"\x02BOGUS\r\n\x03", ["NAK 12"]),
        (b"\x02MSG X1\r\nNONSENSE\x03", ["ACK", "ER 22"]),
    ],
    "national": [
        (b"\x00\x00\x00\x05<a/>x", ["NAK 10"]),
        (b"\x00\x00\x00\x20<!DOCTYPE x [<!ENTITY a 'b'>]><x/>", ["NAK 10"]),
        (b"\xff\xff\xff\xff", ["NAK 11", "closed"]),
    ],
}


def _describe(frame: Any) -> str:
    if isinstance(frame, Nak):
        return f"NAK {frame.code}"
    if isinstance(frame, Notice):
        return f"{frame.key} {frame.code}"
    return type(frame).__name__.upper()


@pytest.mark.parametrize("network", NETWORKS)
@pytest_twisted.ensureDeferred
async def test_malformed_input_never_hurts_others(
    reactor: Any, sim: SimProcess, network: str
) -> None:
    """Garbage on one connection is NAKed (or that connection dropped where framing is
    lost, or ER on the state wire); a second session of the same station keeps working
    and the simulator stays up."""
    bystander = await logged_on(reactor, sim, network)
    for chunk, expected in GARBAGE[network]:
        attacker = await logged_on(reactor, sim, network)
        attacker.write(chunk)
        frames = await attacker.quiet(0.3)
        got = [_describe(f) for f in frames] + (["closed"] if attacker.is_closed else [])
        assert got == expected, chunk[:40]
        if not attacker.is_closed:
            attacker.close()
    ask = inquiry("person", DOE)
    bystander.send(ask)
    assert isinstance(await bystander.recv(), Ack)
    assert isinstance(await bystander.recv(), Reply)
    assert sim.proc.poll() is None
    assert sum(stats(sim, network).get("rejected", {}).values()) > 0
    bystander.close()


def test_talk_drives_a_network_by_hand(sim: SimProcess) -> None:
    """``python -m simulators.talk`` (the documented manual driver) logs on over mutual
    TLS, asks, and prints the decoded ACK and reply."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "simulators.talk",
            "national",
            "gun",
            "serial=G1234567",
            "--port",
            str(sim.ports["national"]),
            "--var",
            str(sim.var),
            "--wait",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "LogonResult(ok=True" in result.stdout
    assert "status='hit'" in result.stdout and "stolen_gun" in result.stdout
