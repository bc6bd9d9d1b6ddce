"""SIGTERM in the order of DESIGN §8, with switchd and the simulators as real processes.

Stop accepting, drain in-flight work (an inquiry whose answer is still on its way gets
it), log the links off, flush and audit, write the shutdown checkpoint last, exit 0
within drain + 5 s.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.gateway_harness import NETWORKS, Gateway, start_gateway

pytestmark = pytest.mark.integration

#: ``drain_timeout`` in the harness's switch.toml.
DRAIN = 2.0


@pytest.fixture
def gw() -> Iterator[Gateway]:
    gateway = start_gateway(persons=500)
    try:
        gateway.links_up()
        yield gateway
    finally:
        gateway.close()


def _events(log: str) -> list[dict[str, Any]]:
    out = []
    for line in log.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def test_sigterm_drains_logs_off_and_checkpoints_last(gw: Gateway) -> None:
    """An inquiry in flight at SIGTERM completes with the slow network's real answer;
    the links log off after it; exit 0 within drain + 5 s; the shutdown checkpoint is
    the last line of checkpoints.jsonl and covers the newest audit record."""
    person = {"subject": "person", "fields": {"name": "CLEAN, CARL", "dob": "1990-01-01"}}
    client = gw.client("DISPATCH1")
    for _ in range(3):
        assert client.call("POST", "/v1/inquiries?wait=20", person)["status"] == "complete"
    gw.control("POST", "/local/faults", {"delay_ms": 1200})
    answers: list[Any] = []

    def ask() -> None:
        try:
            answers.append(client.call("POST", "/v1/inquiries?wait=20", person))
        except Exception as exc:
            answers.append(exc)

    before = gw.control("GET", "/local/stats").get("inquiries_received", 0)
    asker = threading.Thread(target=ask, daemon=True)
    asker.start()
    # SIGTERM once the slow network holds the inquiry (it answers 1.2 s later), not
    # after a fixed sleep that a loaded machine can outrun.
    deadline = time.monotonic() + 10
    while gw.control("GET", "/local/stats").get("inquiries_received", 0) <= before:
        assert time.monotonic() < deadline, "the local network never got the inquiry"
        time.sleep(0.02)
    assert gw.switchd is not None
    started = time.monotonic()
    rc = gw.stop_switchd(signal.SIGTERM)
    elapsed = time.monotonic() - started
    asker.join(timeout=10)
    assert rc == 0
    assert elapsed < DRAIN + 5.0
    (answer,) = answers
    assert isinstance(answer, dict) and answer["status"] == "complete", answer
    statuses = {r["network"]: r["status"] for r in answer["replies"]}
    assert statuses == dict.fromkeys(NETWORKS, "no_record")

    events = _events(gw.log())
    names = [e.get("event") for e in events]
    stopping = names.index("stopping")
    logoffs = [
        i
        for i, e in enumerate(events)
        if e.get("event") == "link state" and e.get("cause") == "stopped"
    ]
    completes = [i for i, n in enumerate(names) if n == "inquiry.complete"]
    assert len(logoffs) == len(NETWORKS)
    assert stopping < completes[-1] < min(logoffs)
    assert max(logoffs) < names.index("stopped") < names.index("exiting")

    lines = (gw.root / "var" / "audit" / "checkpoints.jsonl").read_text().splitlines()
    last = json.loads(lines[-1])
    assert last["kind"] == "shutdown"
    db = sqlite3.connect(f"file:{gw.root / 'var' / 'switch.db'}?mode=ro", uri=True)
    try:
        (newest,) = db.execute("SELECT max(seq) FROM audit_log").fetchone()
        (ts,) = db.execute("SELECT ts FROM audit_log WHERE seq = ?", (newest,)).fetchone()
    finally:
        db.close()
    assert last["seq"] == newest
    assert last["ts"] >= ts
