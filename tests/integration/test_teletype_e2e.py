"""Teletype end to end: switchd and the four real simulators on loopback.

One gateway for the module (its routes.toml adds an unroutable state, WY, before the
catch-all rule). Every check reads the simulators' own ``received`` logs: a message is
delivered when the network says it took it, and exactly once when its text is there once.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from switch.cli.client import Client
from tests.integration.gateway_harness import (
    BIN,
    DEMO,
    ApiError,
    ClientError,
    Gateway,
    _wait,
    start_gateway,
)

pytestmark = pytest.mark.integration

UNROUTABLE = '[[destinations]]\npattern = "WY"\n\n[[destinations]]\npattern = "WY*"\n\n'


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    gateway = start_gateway(persons=200, start_switchd=False)
    try:
        routes = gateway.root / "conf" / "routes.toml"
        text = routes.read_text()
        at = text.rindex("[[destinations]]", 0, text.index('pattern = "*"'))
        routes.write_text(text[:at] + UNROUTABLE + text[at:])
        gateway.start_switchd()
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def _tag() -> str:
    return uuid.uuid4().hex[:10].upper()


def _received(gw: Gateway, network: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = gw.control("GET", f"/{network}/received")["items"]
    return items


def _texts(gw: Gateway, network: str) -> Counter[str]:
    return Counter(i["text"] for i in _received(gw, network))


def _send(gw: Gateway, to: list[str], text: str, terminal: str = "DISPATCH1", **extra: Any) -> Any:
    reply = gw.client(terminal).request(
        "POST", "/v1/messages", {"key": "AM", "to": to, "text": text, **extra}
    )
    assert reply.status == 202, reply.data
    return reply.data


def _settled(gw: Gateway, message_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """The message once every route is accepted (fails the test on timeout)."""

    last: list[Any] = []

    def check() -> dict[str, Any] | None:
        m: dict[str, Any] = gw.client("ADMIN1").call("GET", f"/v1/messages/{message_id}")
        last[:] = [m["routes"]]
        return m if all(r["state"] == "accepted" for r in m["routes"]) else None

    try:
        result: dict[str, Any] = _wait(check, timeout, f"message {message_id} accepted")
    except TimeoutError as exc:
        raise AssertionError(f"{exc}; routes {last}; switchd log:\n{gw.log()[-4000:]}") from None
    return result


def test_each_kind_of_destination_reaches_its_network_once(gw: Gateway) -> None:
    """Exact/prefix ORIs, broadcast and state codes each reach the simulator the demo
    routes name, exactly once, and no other simulator; the sender gets delivery events."""
    cases = {
        "MO0380200": "local",
        "MO0480100": "regional",
        "REG": "regional",
        "MO0990000": "state",
        "STATE": "state",
        "MO": "state",
        "TX1234567": "national",
        "KS": "national",
    }
    tag = _tag()
    sent = {}
    for dest in cases:
        data = _send(gw, [dest], f"ROUTE TEST {tag} {dest}")
        assert data["routes"] == [{"dest": dest, "network": cases[dest], "state": "queued"}]
        sent[dest] = data["id"]
    for message_id in sent.values():
        _settled(gw, message_id)
    for network in ("local", "regional", "state", "national"):
        texts = _texts(gw, network)
        for dest, expected in cases.items():
            count = texts[f"ROUTE TEST {tag} {dest}"]
            assert count == (1 if expected == network else 0), (dest, network, count)
    received = {i["id"]: i for i in _received(gw, "national")}
    assert received[f"{sent['KS']}-1"]["to"] == ["KS"]
    events = gw.client("DISPATCH1").call("GET", "/v1/mailbox?limit=1000")["items"]
    delivered = {e["id"] for e in events if e["kind"] == "delivery" and e["state"] == "accepted"}
    assert set(sent.values()) <= delivered
    explained = gw.client("DISPATCH1").call("GET", "/v1/routes/explain?dest=MO0480100")
    assert (explained["rule"], explained["network"]) == ("MO048*", "regional")


def test_held_while_refused_then_urgent_first_then_fifo(gw: Gateway) -> None:
    """With national refusing connections, messages queue (gauge and status show them);
    when it returns they are delivered urgent first, then in submission order."""
    gw.control("POST", "/national/faults", {"refuse_connections": True, "close_now": True})
    admin = gw.client("ADMIN1")
    try:

        def national_down() -> bool:
            links = admin.call("GET", "/v1/status")["links"]
            return any(x["name"] == "national" and x["state"] != "up" for x in links)

        _wait(national_down, 20, "national link down")
        tag = _tag()
        order = [("A", "routine"), ("B", "routine"), ("C", "urgent"), ("D", "routine")]
        ids = {}
        for name, priority in order:
            ids[name] = _send(gw, ["KS"], f"QUEUE {tag} {name}", priority=priority)["id"]
        time.sleep(0.5)
        for message_id in ids.values():
            state = admin.call("GET", f"/v1/messages/{message_id}")["routes"][0]["state"]
            assert state == "queued"

        def depth() -> int:
            links = admin.call("GET", "/v1/status")["links"]
            return int(next(x["queue_depth"] for x in links if x["name"] == "national"))

        assert _wait(lambda: depth() >= 4, 10, "queue depth shown")
        assert not [t for t in _texts(gw, "national") if tag in t]
    finally:
        gw.control("POST", "/national/faults", {"refuse_connections": False})
    admin.call("POST", "/v1/links/national/retry")
    gw.links_up(timeout=40)
    for message_id in ids.values():
        _settled(gw, message_id, timeout=30)
    got = [i["text"] for i in _received(gw, "national") if tag in i["text"]]
    assert got == [f"QUEUE {tag} {n}" for n in ("C", "A", "B", "D")]


def test_unroutable_goes_to_intercept_and_is_rerouted_and_delivered(gw: Gateway) -> None:
    """A destination no rule routes is intercepted (network null); an admin locks it
    (another session gets 409), reroutes it to national, resends it; it is delivered."""
    tag = _tag()
    data = _send(gw, ["WY1234567"], f"UNROUTABLE {tag}")
    assert data["routes"] == [{"dest": "WY1234567", "network": None, "state": "intercepted"}]
    admin = gw.client("ADMIN1")
    items = [
        i for i in admin.call("GET", "/v1/intercept")["items"] if i["message"]["id"] == data["id"]
    ]
    assert len(items) == 1 and items[0]["reason"] == "unroutable"
    item_id = items[0]["id"]
    with pytest.raises(ApiError) as err:
        gw.client("DISPATCH1").call("GET", "/v1/intercept")
    assert err.value.status == 403
    with pytest.raises(ApiError) as err:
        admin.call("PATCH", f"/v1/intercept/{item_id}", {"network": "national"})
    assert err.value.status == 409
    locked = admin.call("POST", f"/v1/intercept/{item_id}/lock")
    assert locked["locked_by"] == DEMO[0] and locked["expires"]
    other = Client(gw.socket)
    token = other.call(
        "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": DEMO[0], "password": DEMO[1]}
    )["token"]
    with pytest.raises(ApiError) as err:
        Client(gw.socket, token=token).call("POST", f"/v1/intercept/{item_id}/lock")
    assert err.value.status == 409
    edited = admin.call("PATCH", f"/v1/intercept/{item_id}", {"network": "national"})
    assert edited["route"]["network"] == "national"
    resent = admin.call("POST", f"/v1/intercept/{item_id}/resend")
    assert resent["routes"][0]["network"] == "national"
    _settled(gw, data["id"])
    assert _texts(gw, "national")[f"UNROUTABLE {tag}"] == 1
    assert item_id not in {i["id"] for i in admin.call("GET", "/v1/intercept")["items"]}


def test_incoming_teletype_from_every_network_reaches_the_mailboxes(gw: Gateway) -> None:
    """An AM each network originates to our ORI is ACKed and lands in every terminal of
    that ORI; a YQ goes to the records terminal as a tracked hit confirmation, which the
    records operator answers with a YR that reaches the asking network."""
    tag = _tag()
    senders = {
        "local": "MO0380200",
        "regional": "MO0480100",
        "state": "MO0950000",
        "national": "TX2270000",
    }
    for network, sender in senders.items():
        gw.control(
            "POST",
            f"/{network}/originate",
            {"key": "AM", "from": sender, "to": ["MO0380100"], "text": f"INBOUND {tag} {network}"},
        )
    gw.control(
        "POST",
        "/state/originate",
        {
            "key": "YQ",
            "from": "MO0950000",
            "to": ["MO0380100"],
            "text": f"CONFIRM {tag}",
            "fields": {
                "request_type": "WANTED PERSON",
                "request_number": "1",
                "urgency": "U",
                "nic": "W" + tag[:9],
                "oca": "OCA" + tag[:6],
            },
        },
    )

    def inbound(terminal: str) -> list[dict[str, Any]]:
        items = gw.client(terminal).call("GET", "/v1/mailbox?limit=1000")["items"]
        return [i for i in items if i.get("kind") == "teletype" and tag in i.get("text", "")]

    dispatch = _wait(lambda: (x := inbound("DISPATCH1")) and len(x) >= 4 and x, 20, "AMs")
    assert sorted(i["network"] for i in dispatch) == sorted(senders)
    assert not [i for i in dispatch if i["key"] == "YQ"]  # a YQ is for records only
    records = _wait(lambda: (x := inbound("RECORDS1")) and len(x) >= 5 and x, 20, "YQ")
    yq = next(i for i in records if i["key"] == "YQ")
    assert yq["confirmation"] and yq["fields"]["urgency"] == "U"
    for network in senders:
        assert gw.control("GET", f"/{network}/stats").get("teletype_originated_acked", 0) >= 1
    rec = gw.client("RECORDS1")
    open_items = rec.call("GET", "/v1/hit-confirmations")["items"]
    mine = next(i for i in open_items if i["id"] == yq["confirmation"])
    assert (mine["direction"], mine["outcome"], mine["overdue"]) == ("incoming", "pending", False)
    answered = rec.call("POST", f"/v1/hit-confirmations/{mine['id']}/reply", {"confirmed": "Y"})
    assert answered["outcome"] == "confirmed"

    def yr_at_state() -> bool:
        return any(
            i["key"] == "YR"
            and i["to"] == ["MO0950000"]
            and i["fields"].get("nic") == "W" + tag[:9]
            for i in _received(gw, "state")
        )

    _wait(yr_at_state, 20, "YR at the state network")


def test_hit_confirmation_request_sends_a_yq_to_the_entering_ori(gw: Gateway) -> None:
    """POST /v1/hit-confirmations sends a YQ (RNO/1, PRI/U) to the entering ORI and
    tracks a 10-minute deadline; GET lists it for the requesting terminal."""
    nic = "W" + _tag()[:9]
    client = gw.client("DISPATCH1")
    reply = client.request(
        "POST", "/v1/hit-confirmations", {"entering_ori": "MO0480100", "nic": nic, "urgency": "U"}
    )
    assert reply.status == 202, reply.data
    assert reply.data["direction"] == "outgoing" and reply.data["request_number"] == 1

    def yq_at_regional() -> bool:
        return any(
            i["key"] == "YQ" and i["fields"].get("nic") == nic and i["fields"].get("urgency") == "U"
            for i in _received(gw, "regional")
        )

    _wait(yq_at_regional, 20, "YQ at the regional network")
    listed = {i["id"] for i in client.call("GET", "/v1/hit-confirmations?all=1")["items"]}
    assert reply.data["id"] in listed


def test_sigkill_under_load_every_accepted_message_is_delivered_once(gw: Gateway) -> None:
    """switchd is SIGKILLed while terminals post a steady stream; after a restart every
    message that got a 202 is delivered exactly once, and no text twice."""
    tag = _tag()
    accepted: list[tuple[str, str, str]] = []
    stop = threading.Event()
    client = gw.client("DISPATCH1")
    targets = [("MO0380200", "local"), ("TX1234567", "national"), ("MO0990000", "state")]

    def load() -> None:
        n = 0
        while not stop.is_set():
            dest, network = targets[n % len(targets)]
            text = f"LOAD {tag} {n}"
            n += 1
            try:
                reply = client.request(
                    "POST", "/v1/messages", {"key": "AM", "to": [dest], "text": text}
                )
            except (ClientError, OSError):
                time.sleep(0.01)
                continue
            if reply.status == 202:
                accepted.append((reply.data["id"], text, network))

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    try:
        _wait(lambda: len(accepted) >= 60, 30, "load")
        assert gw.switchd is not None
        gw.switchd.send_signal(signal.SIGKILL)
        gw.switchd.wait(timeout=10)
        gw.switchd = None
        time.sleep(0.3)
    finally:
        stop.set()
        worker.join(timeout=15)
    try:
        gw.start_switchd()
        gw.links_up()
    except TimeoutError as exc:  # say why: the daemon's own last words
        raise AssertionError(f"{exc}; switchd log:\n{gw.log()[-4000:]}") from None
    deadline = time.monotonic() + 40
    for message_id, _, _ in accepted:
        _settled(gw, message_id, timeout=max(1.0, deadline - time.monotonic()))
    for network in ("local", "state", "national"):
        texts = _texts(gw, network)
        mine = {t: c for t, c in texts.items() if f"LOAD {tag} " in t}
        twice = [t for t, c in mine.items() if c > 1]
        assert not twice, twice
        for _, text, target in accepted:
            if target == network:
                assert mine.get(text) == 1, text


def _switchctl(gw: Gateway, terminal: str, *args: str) -> subprocess.CompletedProcess[str]:
    gw.client(terminal)
    token = gw.root / f"{terminal}.token"
    token.write_text(gw.tokens[terminal] + "\n")
    token.chmod(0o600)
    command, rest = args[0], args[1:]
    if command in ("confirm", "intercept", "route", "link"):
        command, rest = f"{args[0]} {args[1]}", args[2:]
    return subprocess.run(
        [str(BIN / "switchctl"), *command.split(), "--socket", str(gw.socket),
         "--token-file", str(token), *rest],
        capture_output=True, text=True, timeout=30, cwd=gw.root,
    )  # fmt: skip


def test_switchctl_send_route_explain_intercept_and_confirm_list(gw: Gateway) -> None:
    """The operator commands work against the live daemon: send prints the routes,
    route explain names the rule (exit 1 when unroutable), intercept list and confirm
    list answer."""
    tag = _tag()
    sent = _switchctl(gw, "DISPATCH1", "send", "--to", "MO0380200", "--text", f"CLI {tag}")
    assert sent.returncode == 0, sent.stderr
    assert "accepted" in sent.stdout and "local" in sent.stdout
    ok = _switchctl(gw, "DISPATCH1", "route", "explain", "MO0480100")
    assert ok.returncode == 0 and "MO048*" in ok.stdout and "regional" in ok.stdout
    bad = _switchctl(gw, "DISPATCH1", "route", "explain", "WY1234567")
    assert bad.returncode == 1 and "unroutable" in bad.stdout
    listed = _switchctl(gw, "ADMIN1", "intercept", "list")
    assert listed.returncode == 0, listed.stderr
    confirms = _switchctl(gw, "ADMIN1", "confirm", "list")
    assert confirms.returncode == 0, confirms.stderr
    _wait(lambda: _texts(gw, "local")[f"CLI {tag}"] == 1, 20, "CLI message at local")
