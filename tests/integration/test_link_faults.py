"""Every fault of DESIGN §9 against the real simulators, with switchd on loopback (issue 4).

One gateway for the module (``switch-sim all`` + ``switchd`` as processes); each test sets
a fault through the simulators' control API, watches the link through ``/v1/status``,
switchd's ``link state`` log lines and its Prometheus metrics, and clears the faults
(``{}``) afterwards. What every test demands: the link recovers by itself (or, after a
refused logon, at once on ``POST /v1/links/{name}/retry``), an inquiry never hangs (an
answer from a network whose connection died is ``unavailable`` or ``timeout``), and
inquiries sent after recovery answer in full.

The links run with short timers (ACK timeout 2 s, inquiry timeout 4 s, heartbeat 5 s on
both sides) so that the waits stay short; the backoff is the production one (1 s doubling).
"""

from __future__ import annotations

import datetime
import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gateway_harness import NETWORKS, Gateway, _wait, start_gateway

pytestmark = pytest.mark.integration

INQUIRY_TIMEOUT = 4.0
ACK_TIMEOUT = 2.0
#: DOE, JOHN A is wanted at all four tiers (docs/test-subjects.md).
DOE = {"name": "DOE, JOHN A", "dob": "1980-01-01"}
RECONNECTS = "switch_link_reconnects_total"
REJECTED = "switch_frames_rejected_total"
HEARTBEAT = 5.0


@pytest.fixture(scope="module")
def started() -> Iterator[tuple[Gateway, float]]:
    """The module's gateway, and how long after the simulators listened all four links
    were up (switchd's own start-up included)."""
    gateway = start_gateway(
        start_switchd=False,
        inquiry_timeout=INQUIRY_TIMEOUT,
        ack_timeout=ACK_TIMEOUT,
        heartbeat=HEARTBEAT,
    )
    try:
        listening = time.monotonic()  # start_gateway returns once the simulators listen
        gateway.start_switchd()
        gateway.links_up(timeout=30)
        yield gateway, time.monotonic() - listening
    finally:
        gateway.close()


@pytest.fixture
def gw(started: tuple[Gateway, float]) -> Iterator[Gateway]:
    """The module's gateway; every fault cleared and every link up again after the test."""
    gateway = started[0]
    try:
        yield gateway
    finally:
        for name in NETWORKS:
            gateway.control("POST", f"/{name}/faults", {})
        gateway.links_up(timeout=20)


# --------------------------------------------------------------------------- helpers


def _states(gw: Gateway) -> dict[str, dict[str, Any]]:
    return {link["name"]: link for link in gw.client().call("GET", "/v1/status")["links"]}


def _transitions(gw: Gateway, link: str, offset: int) -> list[str]:
    """The states ``link`` entered since ``offset`` in switchd's log, in order."""
    out = []
    for line in gw.log()[offset:].splitlines():
        if '"link state"' not in line:
            continue
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("link") == link:
            out.append(str(event["new"]))
    return out


def _went_down_and_up(gw: Gateway, link: str, offset: int) -> bool:
    states = _transitions(gw, link, offset)
    return "down" in states and "up" in states[states.index("down") :]


def _ask(gw: Gateway, network: str, *, wait: float = 15.0) -> tuple[dict[str, Any], float]:
    """A person inquiry to one network; the reply and the seconds it took."""
    body = {"subject": "person", "fields": DOE, "networks": [network]}
    began = time.monotonic()
    result = gw.client("DISPATCH1").call("POST", f"/v1/inquiries?wait={wait:g}", body)
    elapsed = time.monotonic() - began
    assert result["status"] == "complete", result  # never hangs
    (reply,) = result["replies"]
    assert reply["network"] == network and reply["text"]
    return reply, elapsed


def _answers_fully(gw: Gateway, network: str) -> None:
    reply, _ = _ask(gw, network)
    assert reply["status"] == "hit", reply
    assert reply["records"], reply


def _fault(gw: Gateway, network: str, faults: dict[str, Any]) -> None:
    gw.control("POST", f"/{network}/faults", faults)


# --------------------------------------------------------------------------- tests


def test_all_four_links_up_within_5_s_of_the_simulators_listening(
    started: tuple[Gateway, float],
) -> None:
    """From the simulators listening, through switchd's start-up, to all four links
    ``up`` in /v1/status (and ``switch_link_up`` 1) takes under 5 s."""
    gw, elapsed = started
    assert elapsed < 5.0, f"links up {elapsed:.2f} s after the simulators listened"
    for name in NETWORKS:
        assert gw.metric("switch_link_up", link=name) == 1.0


@pytest.mark.parametrize("network", NETWORKS)
def test_close_now_link_goes_down_and_comes_back(gw: Gateway, network: str) -> None:
    """``close_now``: the link goes ``down``, redials by itself and is ``up`` again within
    a few seconds, counted in ``switch_link_reconnects_total``; inquiries then answer."""
    before = gw.metric(RECONNECTS, link=network)
    offset = len(gw.log())
    began = time.monotonic()
    _fault(gw, network, {"close_now": True})
    _wait(lambda: _went_down_and_up(gw, network, offset), 10, f"{network} down then up")
    recovered = time.monotonic() - began
    assert recovered < 5.0, f"{network} back up only after {recovered:.2f} s"
    assert _states(gw)[network]["state"] == "up"
    assert gw.metric(RECONNECTS, link=network) >= before + 1
    assert gw.metric("switch_link_up", link=network) == 1.0
    _answers_fully(gw, network)


def test_inquiry_in_flight_when_the_connection_closes_answers_timeout(gw: Gateway) -> None:
    """An inquiry the network ACKed but had not answered when its connection closed
    completes with ``timeout`` after the inquiry timeout, never hangs; the link is back
    and the next inquiry answers in full."""
    _fault(gw, "local", {"delay_ms": 30_000})
    client = gw.client("DISPATCH1")
    body = {"subject": "person", "fields": DOE, "networks": ["local"]}
    accepted = client.request("POST", "/v1/inquiries", body)
    assert accepted.status == 202
    _wait(lambda: _states(gw)["local"]["queue_depth"] == 0, 5, "the inquiry's ACK")
    offset = len(gw.log())
    began = time.monotonic()
    _fault(gw, "local", {"close_now": True, "delay_ms": None})
    result = client.call("GET", f"/v1/inquiries/{accepted.data['id']}?wait=15")
    elapsed = time.monotonic() - began
    assert result["status"] == "complete"
    assert result["replies"][0]["status"] == "timeout", result
    assert elapsed < INQUIRY_TIMEOUT + 2
    _wait(lambda: _went_down_and_up(gw, "local", offset), 10, "local down then up")
    _answers_fully(gw, "local")


def test_refuse_connections_for_a_while_then_cleared(gw: Gateway) -> None:
    """``refuse_connections`` (and the live connection closed): the link is ``down``, an
    inquiry answers ``unavailable`` at once, redials are refused and the link stays
    down; once cleared it comes back ``up`` by itself, every redial counted."""
    before = gw.metric(RECONNECTS, link="state")
    offset = len(gw.log())
    _fault(gw, "state", {"refuse_connections": True, "close_now": True})
    _wait(lambda: _states(gw)["state"]["state"] != "up", 5, "state link not up")
    reply, elapsed = _ask(gw, "state")
    assert reply["status"] == "unavailable", reply
    assert elapsed < 1.0
    # A redial refused (the backoff doubles) before the fault clears.
    _wait(lambda: "connect failed" in (_states(gw)["state"]["last_error"] or ""), 10, "redial")
    assert _states(gw)["state"]["state"] != "up"
    _fault(gw, "state", {"refuse_connections": False})
    gw.links_up(timeout=20, names=("state",))
    # one for the refused redial, one for the redial that succeeded
    assert gw.metric(RECONNECTS, link="state") >= before + 2
    assert "up" not in _transitions(gw, "state", offset)[:-1]  # up only at the end
    _answers_fully(gw, "state")


def test_drop_after_n_frames(gw: Gateway) -> None:
    """``drop_after`` 2: the frame after the logon ends the connection; the inquiry it
    carried completes (``unavailable``/``timeout`` when its answer died with it), the
    link redials by itself, and once cleared inquiries answer in full."""
    before = gw.metric(RECONNECTS, link="regional")
    dropped = gw.control("GET", "/regional/stats").get("dropped_after", 0)
    offset = len(gw.log())
    _fault(gw, "regional", {"drop_after": 2})
    reply, elapsed = _ask(gw, "regional")
    assert reply["status"] in ("hit", "unavailable", "timeout"), reply
    assert elapsed < INQUIRY_TIMEOUT + 2
    _wait(lambda: _went_down_and_up(gw, "regional", offset), 10, "regional down then up")
    assert gw.control("GET", "/regional/stats")["dropped_after"] > dropped
    assert gw.metric(RECONNECTS, link="regional") >= before + 1
    _fault(gw, "regional", {})
    gw.links_up(timeout=10, names=("regional",))
    _answers_fully(gw, "regional")


def test_refuse_logon_auth_failed_then_retry(gw: Gateway) -> None:
    """``refuse_logon``: the link goes ``auth_failed`` and stays there (the 5-minute
    timer, not the 1 s backoff) even after the fault clears; inquiries answer
    ``unavailable``; ``POST /v1/links/local/retry`` brings it ``up`` at once."""
    _fault(gw, "local", {"refuse_logon": True, "close_now": True})
    _wait(lambda: _states(gw)["local"]["state"] == "auth_failed", 10, "local auth_failed")
    assert "logon refused" in (_states(gw)["local"]["last_error"] or "")
    assert gw.metric("switch_link_up", link="local") == 0.0
    reply, _ = _ask(gw, "local")
    assert reply["status"] == "unavailable", reply
    _fault(gw, "local", {})
    time.sleep(2.5)  # past any backoff redial: a refused logon waits for its timer
    assert _states(gw)["local"]["state"] == "auth_failed"
    retried = gw.client().call("POST", "/v1/links/local/retry")
    assert retried["name"] == "local" and retried["redialing"] is True
    gw.links_up(timeout=5, names=("local",))
    _answers_fully(gw, "local")


def test_no_ack_does_not_wedge_the_link(gw: Gateway) -> None:
    """``no_ack``: the network answers but never ACKs; inquiries still complete, each
    un-ACKed one gives up its window slot after the ACK timeout (queue depth back to
    0), the link stays ``up`` throughout, and once cleared everything is normal."""
    offset = len(gw.log())
    _fault(gw, "national", {"no_ack": True})
    client = gw.client("DISPATCH1")
    body = {"subject": "person", "fields": DOE, "networks": ["national"]}
    ids = [client.call("POST", "/v1/inquiries", body)["id"] for _ in range(5)]
    for inquiry_id in ids:
        result = client.call("GET", f"/v1/inquiries/{inquiry_id}?wait=15")
        assert result["status"] == "complete"
        assert result["replies"][0]["status"] in ("hit", "timeout"), result
    _wait(lambda: _states(gw)["national"]["queue_depth"] == 0, ACK_TIMEOUT + 3, "ACK timeouts")
    assert gw.control("GET", "/national/stats")["acks_withheld"] >= 5
    assert _states(gw)["national"]["state"] == "up"
    assert "down" not in _transitions(gw, "national", offset)
    _fault(gw, "national", {})
    _answers_fully(gw, "national")
    assert _states(gw)["national"]["queue_depth"] == 0


def test_unacked_teletype_is_resent_after_reconnect_and_taken_once(gw: Gateway) -> None:
    """Teletype the network took but never ACKed (``no_ack``) when its connection closed
    is resent with the same id on the next session: the network ACKs the duplicate, the
    route ends ``accepted`` and the network's received log holds the message once."""
    _fault(gw, "local", {"no_ack": True})
    text = f"LINK FAULT RESEND CHECK {uuid.uuid4().hex[:10].upper()}"
    sent = gw.client("DISPATCH1").call(
        "POST", "/v1/messages", {"key": "AM", "to": ["MO0380200"], "text": text}
    )

    def received() -> list[str]:
        return [item["text"] for item in gw.control("GET", "/local/received")["items"]]

    _wait(lambda: text in received(), ACK_TIMEOUT, "taken, not ACKed")
    offset = len(gw.log())
    _fault(gw, "local", {"no_ack": False, "close_now": True})

    def accepted() -> bool:
        routes = gw.client().call("GET", f"/v1/messages/{sent['id']}")["routes"]
        return [r["state"] for r in routes] == ["accepted"]

    _wait(accepted, 15, "route accepted")
    assert received().count(text) == 1
    resent = [line for line in gw.log()[offset:].splitlines() if "resending after" in line]
    assert [json.loads(line)["msg_id"] for line in resent] == [f"{sent['id']}-1"]


@pytest.mark.parametrize("network", NETWORKS)
def test_garbled_frame_is_rejected_and_the_link_survives(gw: Gateway, network: str) -> None:
    """``garble``: the network's next frame arrives corrupt; the gateway NAKs it and
    counts it in ``switch_frames_rejected_total``, the inquiry still completes, the link
    survives (or recovers) and the next inquiry answers in full."""
    before = gw.metric(REJECTED, link=network)
    _fault(gw, network, {"garble": True})
    reply, _ = _ask(gw, network)
    assert reply["status"] in ("hit", "timeout"), reply
    _wait(lambda: gw.metric(REJECTED, link=network) > before, 5, "the rejected frame counted")
    stats = gw.control("GET", f"/{network}/stats")
    assert stats["garbled"] >= 1
    assert sum(stats.get("naks_in", {}).values()) >= 1  # the gateway NAKed it
    gw.links_up(timeout=10, names=(network,))
    # a garbled ACK leaves its message un-ACKed only until the ACK timeout: no wedge
    _wait(lambda: _states(gw)[network]["queue_depth"] == 0, ACK_TIMEOUT + 3, "window free")
    _answers_fully(gw, network)


def test_garbled_reply_is_nacked_and_its_inquiry_times_out(gw: Gateway) -> None:
    """``garble`` hitting a reply (set after the inquiry's ACK, before its delayed
    answer): the gateway NAKs the corrupt frame, the inquiry completes ``timeout`` after
    the inquiry timeout instead of hanging, and the link stays ``up``."""
    offset = len(gw.log())
    before = gw.metric(REJECTED, link="state")
    _fault(gw, "state", {"delay_ms": 500})
    client = gw.client("DISPATCH1")
    body = {"subject": "person", "fields": DOE, "networks": ["state"]}
    accepted = client.request("POST", "/v1/inquiries", body)
    _wait(lambda: _states(gw)["state"]["queue_depth"] == 0, 1, "the inquiry's ACK")
    _fault(gw, "state", {"garble": True})
    result = client.call("GET", f"/v1/inquiries/{accepted.data['id']}?wait=15")
    assert result["status"] == "complete"
    assert result["replies"][0]["status"] == "timeout", result
    assert gw.metric(REJECTED, link="state") == before + 1
    assert gw.control("GET", "/state/faults") == {"delay_ms": 500}  # garble was used up
    assert "down" not in _transitions(gw, "state", offset)
    _fault(gw, "state", {})
    _answers_fully(gw, "state")


def test_idle_links_are_never_declared_dead(started: tuple[Gateway, float]) -> None:
    """Links that sat idle for more than 3 x heartbeat during this module were kept
    alive by heartbeats both ways: no link went ``down`` for silence (regression: the
    harness ran the simulators with their 15 s default against the gateway's 5 s, so
    every idle link was declared dead after 15 s and redialled)."""
    gw = started[0]
    first = next(line for line in gw.log().splitlines() if '"link state"' in line)
    began = datetime.datetime.fromisoformat(json.loads(first)["timestamp"])
    age = (datetime.datetime.now(datetime.UTC) - began).total_seconds()
    time.sleep(max(0.0, 3 * HEARTBEAT + 2 - age))  # run alone, it waits out 3 heartbeats
    dead = [line for line in gw.log().splitlines() if '"cause": "dead"' in line]
    assert dead == []
