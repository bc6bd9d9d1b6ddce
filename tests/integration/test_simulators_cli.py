"""``switch-sim`` as a command: one network alone, CLI fault flags, scheduled origination,
heartbeats, start-up errors, and SIGTERM -> exit 0 within 10 s with sessions open."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from switch.model import AdminMessage, Heartbeat
from tests.integration.test_simulators import (
    SIM,
    STATION,
    http,
    logged_on,
    prepare_var,
    sleep,
    start_sim,
)

pytestmark = pytest.mark.integration


@pytest_twisted.ensureDeferred
async def test_one_network_flags_schedule_heartbeat_and_sigterm(
    reactor: Any, tmp_path: Path
) -> None:
    """``switch-sim local`` serves only /local on its control port, applies CLI fault
    flags, originates an AM then a YQ about one of our local warrants on its schedule
    (to the oldest session), heartbeats an idle session, and exits 0 within 10 s of
    SIGTERM while sessions are open."""
    sim = start_sim(
        tmp_path,
        "--originate-every",
        "0.3",
        "--heartbeat",
        "1",
        "--drop-after",
        "1000",
        network="local",
    )
    try:
        assert http(sim, "GET", "/local/faults") == (200, {"drop_after": 1000})
        assert http(sim, "GET", "/state/stats")[0] == 404
        assert set(sim.ports) == {"local", "control"}
        oldest = await logged_on(reactor, sim, "local")
        idle = await logged_on(reactor, sim, "local")
        am = await oldest.recv(timeout=3)
        yq = await oldest.recv(timeout=3)
        assert isinstance(am, AdminMessage) and am.key == "AM" and am.to == (STATION,)
        assert isinstance(yq, AdminMessage) and yq.key == "YQ" and yq.to == (STATION,)
        assert yq.fields.get("name") and yq.fields.get("request_type") == "WANTED PERSON"
        await sleep(reactor, 1.3)
        assert any(isinstance(m, Heartbeat) for m in idle.inbox)
        assert not any(isinstance(m, AdminMessage) for m in idle.inbox)
    finally:
        rc, took = sim.terminate()
    assert rc == 0, sim.log.read_text()[-2000:]
    assert took < 10
    await oldest.closed
    await idle.closed


def _run(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SIM), *args], cwd=tmp, capture_output=True, text=True, timeout=30, check=False
    )


def test_start_up_errors(tmp_path: Path) -> None:
    """A bad config file exits 2 and a missing secret exits 1, each with one line on
    stderr and no traceback."""
    bad = tmp_path / "bad.toml"
    bad.write_text("[local]\ndelay_ms = 'soon'\n")
    result = _run(tmp_path, "local", "--config", str(bad), "--any-port")
    assert result.returncode == 2 and "delay_ms" in result.stderr
    assert "Traceback" not in result.stderr
    empty = tmp_path / "var"
    result = _run(tmp_path, "local", "--var", str(empty), "--any-port")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "secret" in result.stderr


def test_bad_fault_flag(tmp_path: Path) -> None:
    """A fault flag with a bad value is refused at start (exit 2), not ignored."""
    prepare_var(tmp_path / "var")
    result = _run(
        tmp_path, "local", "--var", str(tmp_path / "var"), "--any-port", "--drop-after", "-3"
    )
    assert result.returncode == 2 and "drop_after" in result.stderr
