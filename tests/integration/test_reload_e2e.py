"""Live reload end to end: switchd and the four simulators on loopback (DESIGN §8).

A reload that changes one route and adds a terminal, under a steady stream of
inquiries, keeps every link connection (the simulators count sessions and connections)
and every inquiry completes with real answers; a broken file changes nothing, whether it
comes through the API (400 with the lines of ``switchctl config check``) or SIGHUP (the
daemon keeps running on its old config).
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gateway_harness import BIN, NETWORKS, ApiError, Gateway, start_gateway

pytestmark = pytest.mark.integration

NEW_TERMINAL = """
[terminals.NEW1]
ori = "MO0380100"
roles = ["dispatch"]
subjects = ["person", "vehicle", "gun"]
networks = ["local", "regional", "state", "national"]
rate_limit = 1000.0
"""


@pytest.fixture(scope="module")
def gw() -> Iterator[Gateway]:
    gateway = start_gateway(persons=500)
    try:
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def _stats(gw: Gateway) -> dict[str, tuple[int, int, int]]:
    out = {}
    for net in NETWORKS:
        s = gw.control("GET", f"/{net}/stats")
        out[net] = (s["sessions"], s["connections"], s.get("logons", 0))
    return out


def _since(gw: Gateway) -> dict[str, str]:
    return {row["name"]: row["since"] for row in gw.client().call("GET", "/v1/status")["links"]}


def _networks_asked(gw: Gateway, terminal: str, subject: str, fields: dict[str, str]) -> list[str]:
    body = {"subject": subject, "fields": fields}
    result = gw.client(terminal).call("POST", "/v1/inquiries?wait=20", body)
    assert result["status"] == "complete", result
    return sorted(r["network"] for r in result["replies"])


class Load(threading.Thread):
    """Inquiries back to back from DISPATCH1 until stopped; every result is kept."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__(daemon=True)
        self.gw = gw
        self.results: list[dict[str, Any]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client = self.gw.client("DISPATCH1")
        body = {"subject": "person", "fields": {"name": "CLEAN, CARL", "dob": "1990-01-01"}}
        while not self.stop.is_set():
            try:
                self.results.append(client.call("POST", "/v1/inquiries?wait=20", body))
            except Exception as exc:
                self.errors.append(repr(exc))


class TeletypeLoad(threading.Thread):
    """AM messages back to back from RECORDS1 to a local and a national agency; the id
    and text of every message that got its 202 are kept."""

    def __init__(self, gw: Gateway) -> None:
        super().__init__(daemon=True)
        self.gw = gw
        self.accepted: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.stop = threading.Event()

    def run(self) -> None:
        client = self.gw.client("RECORDS1")
        n = 0
        while not self.stop.is_set():
            n += 1
            text = f"RELOAD LOAD MESSAGE {n}"
            body = {"key": "AM", "to": ["MO0380200", "KS"], "text": text, "priority": "routine"}
            try:
                answer = client.call("POST", "/v1/messages", body)
            except Exception as exc:
                self.errors.append(repr(exc))
            else:
                self.accepted.append((answer["id"], text))
            time.sleep(0.02)


def _delivered_once(gw: Gateway, load: TeletypeLoad) -> None:
    """Every accepted message reaches both simulators exactly once."""
    client = gw.client("RECORDS1")

    def all_accepted() -> bool:
        for msg_id, _ in load.accepted:
            routes = client.call("GET", f"/v1/messages/{msg_id}")["routes"]
            if any(r["state"] != "accepted" for r in routes):
                return False
        return True

    _wait_for(all_accepted, 30, "every route accepted")
    for network in ("local", "national"):
        texts = [i["text"] for i in gw.control("GET", f"/{network}/received")["items"]]
        for _, text in load.accepted:
            assert texts.count(text) == 1, (network, text)


def test_reload_under_load_keeps_links_and_inquiries(gw: Gateway) -> None:
    """Changing the gun route and adding terminal NEW1 while inquiries and teletype flow:
    200 with what changed, no link reconnects (simulator counters and link ``since``
    unchanged), every inquiry complete with real answers from all four networks, every
    accepted message delivered exactly once, the new route and terminal in effect for the
    next request."""
    gw.client("DISPATCH1")
    assert _networks_asked(gw, "DISPATCH1", "gun", {"serial": "X1"}) == sorted(NETWORKS)
    before, since = _stats(gw), _since(gw)
    load = Load(gw)
    load.start()
    teletype = TeletypeLoad(gw)
    teletype.start()
    try:
        _wait_for(lambda: len(load.results) >= 5, 10, "load running")
        _wait_for(lambda: len(teletype.accepted) >= 3, 10, "teletype load running")
        routes = gw.root / "conf" / "routes.toml"
        text = routes.read_text()
        new = text.replace('gun = ["local", "regional", "state", "national"]', 'gun = ["national"]')
        assert new != text
        routes.write_text(new)
        terminals = gw.root / "conf" / "terminals.toml"
        terminals.write_text(terminals.read_text() + NEW_TERMINAL)
        answer = gw.client().call("POST", "/v1/reload")
        assert answer["result"] == "applied"
        assert answer["terminals_added"] == ["NEW1"] and answer["routes_changed"] is True
        assert answer["links_added"] == answer["links_removed"] == []
        assert answer["links_redialled"] == answer["links_secret_changed"] == []
        assert all(len(f["sha256"]) == 64 for f in answer["files"].values())
        count, sent = len(load.results), len(teletype.accepted)
        _wait_for(lambda: len(load.results) >= count + 5, 10, "load after reload")
        _wait_for(lambda: len(teletype.accepted) >= sent + 3, 10, "teletype after reload")
    finally:
        load.stop.set()
        teletype.stop.set()
        load.join(timeout=30)
        teletype.join(timeout=30)
    assert load.errors == [] and teletype.errors == []
    _delivered_once(gw, teletype)
    assert len(load.results) >= 10
    for result in load.results:
        assert result["status"] == "complete", result
        assert sorted(r["network"] for r in result["replies"]) == sorted(NETWORKS)
        assert {r["status"] for r in result["replies"]} == {"no_record"}, result
    assert _stats(gw) == before
    assert _since(gw) == since
    assert _networks_asked(gw, "DISPATCH1", "gun", {"serial": "X2"}) == ["national"]
    assert _networks_asked(gw, "NEW1", "person", {"name": "CLEAN, CARL", "dob": "1990-01-01"})


def test_broken_file_changes_nothing(gw: Gateway) -> None:
    """A routes.toml naming an unknown link: the API answers 400 with exactly the lines
    of ``switchctl config check``; SIGHUP with the same file leaves the daemon running;
    the old routes still apply; once fixed, SIGHUP applies the fix."""
    routes = gw.root / "conf" / "routes.toml"
    good = routes.read_text()
    broken = good.replace('gun = ["national"]', 'gun = ["national", "nowhere"]')
    assert broken != good
    routes.write_text(broken)
    try:
        check = subprocess.run(
            [str(BIN / "switchctl"), "config", "check", "--config", "conf/switch.toml"],
            cwd=gw.root,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert check.returncode == 1
        lines = [line for line in (check.stdout + check.stderr).splitlines() if "nowhere" in line]
        assert lines
        with pytest.raises(ApiError) as refused:
            gw.client().call("POST", "/v1/reload")
        assert refused.value.status == 400 and refused.value.code == "invalid_config"
        assert refused.value.message.splitlines() == lines
        assert _networks_asked(gw, "DISPATCH1", "gun", {"serial": "X3"}) == ["national"]

        assert gw.switchd is not None
        gw.switchd.send_signal(signal.SIGHUP)
        _wait_for(lambda: "config reload refused" in gw.log(), 10, "refusal logged")
        assert gw.switchd.poll() is None
        assert gw.client().call("GET", "/healthz") == {"status": "ok"}
        assert _networks_asked(gw, "DISPATCH1", "gun", {"serial": "X4"}) == ["national"]
    finally:
        routes.write_text(good.replace('gun = ["national"]', 'gun = ["state", "national"]'))
    gw.switchd.send_signal(signal.SIGHUP)
    _wait_for(
        lambda: _networks_asked(gw, "DISPATCH1", "gun", {"serial": "X5"}) == ["national", "state"],
        10,
        "SIGHUP reload applied",
    )
    assert gw.switchd.poll() is None


def test_switchctl_status_table_and_json(gw: Gateway) -> None:
    """``switchctl status`` prints every link with its state, since and queue, the audit
    health and who is logged on; ``--json`` is the raw /v1/status for scripts."""
    token = gw.root / "status.tok"
    common = ["--socket", str(gw.socket), "--token-file", str(token)]
    login = subprocess.run(
        [str(BIN / "switchctl"), "login", "--terminal", "ADMIN1", "--operator", "demo",
         "--password-stdin", *common],
        input="demo-only-change-me\n", capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert login.returncode == 0, login.stderr
    table = subprocess.run(
        [str(BIN / "switchctl"), "status", *common], capture_output=True, text=True, timeout=60
    )
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == [
        "LINK",
        "NETWORK",
        "STATE",
        "SINCE",
        "QUEUE",
        "OLDEST",
        "LAST",
        "ERROR",
    ]
    for net in NETWORKS:
        row = next(line for line in lines if line.startswith(net + " "))
        assert " up " in row and " ago)" in row
    assert "audit: healthy" in lines
    assert any(line.split()[:2] == ["ADMIN1", "demo"] for line in lines)
    assert any(line.startswith("hit confirmations overdue: ") for line in lines)
    raw = subprocess.run(
        [str(BIN / "switchctl"), "status", "--json", *common],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    data = json.loads(raw.stdout)
    assert {row["name"] for row in data["links"]} == set(NETWORKS)
    assert {"since", "last_error", "queue_depth", "queue_oldest_seconds"} <= set(data["links"][0])
    assert data["audit"] == {"healthy": True} and data["sessions"] >= 1


def _wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {timeout} s")
