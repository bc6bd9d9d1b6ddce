"""Wants/warrants inquiries end to end: switchd and the four real simulators on loopback.

The known test subjects of docs/test-subjects.md give their hits at the expected tiers;
a network refusing connections answers ``unavailable`` while the others answer fully.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gateway_harness import BIN, ApiError, Gateway, start_gateway

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    gateway = start_gateway()
    try:
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def _ask(gw: Gateway, subject: str, fields: dict[str, str], **extra: Any) -> dict[str, Any]:
    body = {"subject": subject, "fields": fields, **extra}
    result: dict[str, Any] = gw.client("DISPATCH1").call("POST", "/v1/inquiries?wait=20", body)
    assert result["status"] == "complete", result
    return result


def _by_network(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["network"]: r for r in result["replies"]}


def test_doe_is_wanted_at_all_four_tiers(gw: Gateway) -> None:
    """DOE, JOHN A: a hit at each network, the national one armed and dangerous, urgent
    and listed first."""
    result = _ask(gw, "person", {"name": "Doe, John A", "dob": "1980-01-01"})
    replies = _by_network(result)
    assert set(replies) == {"local", "regional", "state", "national"}
    assert all(r["status"] == "hit" for r in replies.values())
    national = replies["national"]
    assert "armed_and_dangerous" in national["records"][0]["caveats"]
    assert national["records"][0]["warrant"]["extradition"].startswith("1")
    assert result["summary"]["urgent"] is True
    assert result["replies"][0]["urgent"] is True
    assert all(r["text"] for r in result["replies"])


def test_clean_carl_has_no_record(gw: Gateway) -> None:
    """CLEAN, CARL: every network answers no record, with its own no-record text."""
    result = _ask(gw, "person", {"name": "CLEAN, CARL", "dob": "1990-01-01"})
    assert {r["status"] for r in result["replies"]} == {"no_record"}
    assert result["summary"] == {"hits": [], "caveats": [], "urgent": False}
    assert all("NO" in r["text"] for r in result["replies"])


def test_audit_search_by_inquiry_id_finds_its_replies(gw: Gateway) -> None:
    """`switchctl audit search --id` with an inquiry's id, run beside the live daemon,
    lists the inquiry record and each network's reply record (they name it in
    ``in_reply_to``, an indexed copy); the search itself joins the daemon's chain as an
    ``audit.search`` record, and the daemon's own records chain on after it."""
    result = _ask(gw, "person", {"name": "CLEAN, CARL", "dob": "1990-01-01"})
    inquiry = result["id"]
    found = subprocess.run(
        [str(BIN / "switchctl"), "audit", "search", "--id", inquiry],
        capture_output=True, text=True, timeout=30, cwd=gw.root, check=False,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    rows = [json.loads(line)["record"] for line in found.stdout.splitlines()]
    assert [r["event"] for r in rows] == ["inquiry"] + ["reply"] * 4
    assert {r["network"] for r in rows[1:]} == {"local", "regional", "state", "national"}
    assert all(r["in_reply_to"] == inquiry and r["id"] for r in rows[1:])
    _ask(gw, "gun", {"serial": "G1234567"})  # the daemon writes after the CLI did
    exported = subprocess.run(
        [str(BIN / "switchctl"), "audit", "export", "--since", rows[0]["ts"]],
        capture_output=True, text=True, timeout=30, cwd=gw.root, check=False,
    )  # fmt: skip
    events = [json.loads(line)["record"]["event"] for line in exported.stdout.splitlines()]
    assert events.count("audit.search") == 1 and events[-1] == "audit.export"
    assert events.index("audit.search") < events.index("inquiry", 1)
    verified = subprocess.run(
        [str(BIN / "switchctl"), "audit", "verify"],
        capture_output=True, text=True, timeout=30, cwd=gw.root, check=False,
    )  # fmt: skip
    assert verified.returncode == 0 and verified.stdout.startswith("OK:"), verified.stdout


def test_vehicle_driver_and_gun(gw: Gateway) -> None:
    """Plate ABC1234 MO is stolen (national); ROE's licence is at state; G1234567 stolen."""
    plate = _by_network(_ask(gw, "vehicle", {"plate": "ABC1234", "plate_state": "MO"}))
    assert plate["national"]["status"] == "hit"
    assert plate["national"]["records"][0]["file"] == "stolen_vehicle"
    driver = _ask(gw, "driver", {"oln": "R100200300", "oln_state": "MO"})
    assert [r["network"] for r in driver["replies"]] == ["state"]
    record = driver["replies"][0]["records"][0]
    assert record["file"] == "driver" and "SUSP" in record["fields"].get("status", "")
    gun = _by_network(_ask(gw, "gun", {"serial": "G1234567"}))
    assert gun["national"]["records"][0]["file"] == "stolen_gun"


def test_pending_then_get_and_other_terminal(gw: Gateway) -> None:
    """Without wait the answer is 202 pending; GET with wait completes it; another
    terminal's inquiry is not found (404)."""
    client = gw.client("DISPATCH1")
    reply = client.request(
        "POST", "/v1/inquiries", {"subject": "gun", "fields": {"serial": "G1234567"}}
    )
    assert reply.status == 202 and reply.data["status"] == "pending"
    inquiry_id = reply.data["id"]
    done = client.call("GET", f"/v1/inquiries/{inquiry_id}?wait=20")
    assert done["status"] == "complete"
    again = client.call("GET", f"/v1/inquiries/{inquiry_id}")  # finished: from the store
    assert again == done
    with pytest.raises(ApiError) as err:
        gw.client("RECORDS1").call("GET", f"/v1/inquiries/{inquiry_id}")
    assert err.value.status == 404


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"subject": "person", "fields": {"name": "DOE, JOHN"}}, 400, "dob"),
        ({"subject": "boat", "fields": {}}, 400, "subject"),
        ({"subject": "person", "fields": {"name": "DOE, J", "dob": "1980-13-01"}}, 400, "dob"),
        (
            {
                "subject": "person",
                "fields": {"name": "DOE, J", "dob": "1980-01-01"},
                "networks": ["nowhere"],
            },
            400,
            "networks",
        ),
    ],
)
def test_bad_inquiries_are_refused_with_the_field(
    gw: Gateway, body: dict[str, Any], status: int, field: str
) -> None:
    """Missing identifiers, unknown subjects and bad dates are 400 naming the field."""
    with pytest.raises(ApiError) as err:
        gw.client("DISPATCH1").call("POST", "/v1/inquiries", body)
    assert (err.value.status, err.value.field) == (status, field)


def test_refused_network_answers_unavailable(gw: Gateway) -> None:
    """With national refusing connections (and its link dropped), national answers
    'unavailable' at once and the other three answer in full; it comes back by itself."""
    gw.control("POST", "/national/faults", {"refuse_connections": True, "close_now": True})
    try:

        def national_down() -> bool:
            links = gw.client().call("GET", "/v1/status")["links"]
            return any(x["name"] == "national" and x["state"] != "up" for x in links)

        from tests.integration.gateway_harness import _wait

        _wait(national_down, 20, "national link down")
        replies = _by_network(_ask(gw, "person", {"name": "DOE, JOHN A", "dob": "1980-01-01"}))
        assert replies["national"]["status"] == "unavailable"
        assert all(replies[n]["status"] == "hit" for n in ("local", "regional", "state"))
    finally:
        gw.control("POST", "/national/faults", {"refuse_connections": False})
    gw.links_up(timeout=40)


def test_results_outlive_a_restart(gw: Gateway) -> None:
    """A finished inquiry's result is kept by the store (24 h): after switchd restarts,
    GET still answers it, to its own terminal only. (Last in this module: it restarts
    the daemon the other tests share.)"""
    result = _ask(gw, "person", {"name": "DOE, JOHN A", "dob": "1980-01-01"})
    gw.stop_switchd()
    gw.start_switchd()
    gw.links_up()
    again = gw.client("DISPATCH1").call("GET", f"/v1/inquiries/{result['id']}")
    assert again == result
    with pytest.raises(ApiError) as err:
        gw.client("RECORDS1").call("GET", f"/v1/inquiries/{result['id']}")
    assert err.value.status == 404
