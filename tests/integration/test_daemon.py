"""``switchd`` as a real process: start, serve on its socket, stop on SIGTERM, refuse bad
config. Each test writes a minimal config into a fresh temporary directory (its own
``var/``, metrics on port 0), so it runs beside ``make run``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from switch.cli.client import Client, ClientError
from switch.passwords import DEMO_PASSWORD, hash_password
from switch.pki import init_pki

pytestmark = pytest.mark.integration

SWITCH_TOML = """\
ori = "MO0380100"
var_dir = "var"
routes = "routes.toml"
terminals = "terminals.toml"

[api]
socket = "var/run/switch.sock"
client_timeout = 5.0

[metrics]
host = "127.0.0.1"
port = 0
"""

ROUTES_TOML = "[inquiries]\n"

TERMINALS_TOML = """\
[terminals.ADMIN1]
ori = "MO0380100"
roles = ["admin", "supervisor"]
subjects = ["person"]
networks = []

[operators.alice]
roles = ["admin"]
password_hash = "{alice}"

[operators.demo]
roles = ["dispatch", "admin"]
password_hash = "{demo}"
"""


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {"alice": hash_password("alice-pw"), "demo": hash_password(DEMO_PASSWORD)}


@pytest.fixture
def workdir(hashes: dict[str, str]) -> Iterator[Path]:
    # Short path: the socket path must fit AF_UNIX's ~107 bytes.
    d = Path(tempfile.mkdtemp(prefix="swd", dir="/tmp"))
    conf = d / "conf"
    conf.mkdir()
    (conf / "switch.toml").write_text(SWITCH_TOML)
    (conf / "routes.toml").write_text(ROUTES_TOML)
    (conf / "terminals.toml").write_text(TERMINALS_TOML.format(**hashes))
    init_pki(d / "var" / "pki", d / "var" / "keys")  # the audit signing key switchd needs
    yield d
    shutil.rmtree(d, ignore_errors=True)


def require_loader(config: Path) -> None:
    from switch.config import ConfigInvalid, load_config

    try:
        load_config(config)
    except NotImplementedError:
        pytest.skip("switch.config.load_config is not implemented yet")
    except ConfigInvalid as exc:
        pytest.fail(f"test config rejected by the loader: {exc}")


def start(workdir: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "switch.cli.switchd", "--config", "conf/switch.toml"],
        cwd=workdir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_socket(proc: subprocess.Popen[str], sock: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"switchd exited {proc.returncode}:\n{err}\n{out}")
        if sock.exists():
            try:
                if Client(sock, timeout=2).request("GET", "/healthz").status == 200:
                    return
            except ClientError:
                pass
        time.sleep(0.05)
    proc.kill()
    pytest.fail("switchd did not answer on its socket in time")


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    if proc.poll() is None:
        proc.kill()
    return proc.communicate(timeout=10)


def test_daemon_serves_and_stops_cleanly_on_sigterm(workdir: Path) -> None:
    """switchd listens on its socket, writes its pid file, warns about the demo password,
    serves healthz/login/status, and on SIGTERM exits 0 within 5 s removing pid file and
    socket; its stdout is JSON lines."""
    require_loader(workdir / "conf" / "switch.toml")
    proc = start(workdir)
    try:
        sock = workdir / "var" / "run" / "switch.sock"
        wait_for_socket(proc, sock)
        pid_file = workdir / "var" / "run" / "switchd.pid"
        assert pid_file.read_text().strip() == str(proc.pid)
        assert oct(sock.stat().st_mode & 0o777) == oct(0o660)

        client = Client(sock)
        assert client.call("GET", "/healthz") == {"status": "ok"}
        session = client.call(
            "POST",
            "/v1/sessions",
            {"terminal": "ADMIN1", "operator": "alice", "password": "alice-pw"},
        )
        client.token = session["token"]
        status = client.call("GET", "/v1/status")
        assert status["sessions"] == 1 and status["audit"] == {"healthy": True}

        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)
        elapsed = time.monotonic() - started
    finally:
        out, err = stop(proc)
    assert proc.returncode == 0, err
    assert elapsed < 5.0
    assert not pid_file.exists() and not sock.exists()
    events = [json.loads(line) for line in out.splitlines() if line.strip()]
    names = [e["event"] for e in events]
    assert any("DEMO PASSWORDS" in n for n in names)
    assert "started" in names and "exiting" in names
    assert "alice-pw" not in out and session["token"] not in out
    assert "Traceback" not in err


def test_second_daemon_does_not_steal_the_socket(workdir: Path) -> None:
    """A second switchd on the same socket exits 1; the first keeps serving."""
    require_loader(workdir / "conf" / "switch.toml")
    first = start(workdir)
    try:
        sock = workdir / "var" / "run" / "switch.sock"
        wait_for_socket(first, sock)
        second = start(workdir)
        _, err = second.communicate(timeout=20)
        assert second.returncode == 1
        assert "Traceback" not in err
        assert Client(sock).call("GET", "/healthz") == {"status": "ok"}
        first.send_signal(signal.SIGINT)
        first.wait(timeout=10)
        assert first.returncode == 0
    finally:
        stop(first)


def test_broken_config_exits_2_with_one_line_per_error(workdir: Path) -> None:
    """A config with several errors: exit 2, each error one line naming file and key,
    no traceback, nothing started."""
    require_loader(workdir / "conf" / "switch.toml")
    (workdir / "conf" / "switch.toml").write_text(
        SWITCH_TOML.replace('ori = "MO0380100"', "ori = 5").replace(
            "client_timeout = 5.0", 'client_timeout = "soon"'
        )
    )
    proc = start(workdir)
    _out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) >= 2
    assert any("switch.toml" in line and "ori" in line for line in lines)
    assert any("client_timeout" in line for line in lines)
    assert "Traceback" not in err
    assert not (workdir / "var" / "run" / "switch.sock").exists()
    assert not os.path.exists(workdir / "var" / "run" / "switchd.pid")
