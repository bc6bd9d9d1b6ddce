"""A whole switch on loopback for integration tests: `switch-sim all` and `switchd` as
real processes in a temporary directory, on free ports, with their own var/.

Nothing here uses the fixed addresses of DESIGN §9, so these tests run beside `make run`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from switch.cli.client import ApiError, Client, ClientError
from switch.paths import write_private
from switch.pki import init_pki

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NETWORKS = ("local", "regional", "state", "national")
DEMO = ("demo", "demo-only-change-me")


def _wait(predicate: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except Exception as exc:  # not ready yet
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.05)
    raise TimeoutError(f"{what} not ready within {timeout} s ({last})")


@dataclass
class Gateway:
    root: Path
    sim: subprocess.Popen[bytes]
    ports: dict[str, int]
    switchd: subprocess.Popen[bytes] | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def socket(self) -> Path:
        return self.root / "var" / "run" / "switch.sock"

    # ------------------------------------------------------------------ simulators

    def control(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.ports['control']}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    # ------------------------------------------------------------------ switchd

    def client(self, terminal: str = "ADMIN1") -> Client:
        if terminal not in self.tokens:
            anon = Client(self.socket)
            body = anon.call(
                "POST",
                "/v1/sessions",
                {"terminal": terminal, "operator": DEMO[0], "password": DEMO[1]},
            )
            self.tokens[terminal] = body["token"]
        return Client(self.socket, token=self.tokens[terminal])

    def start_switchd(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.switchd = subprocess.Popen(
            [str(BIN / "switchd"), "--config", "conf/switch.toml"],
            cwd=self.root,
            stdout=(self.root / "switchd.log").open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
        )
        self.tokens.clear()
        _wait(lambda: self.client().request("GET", "/healthz"), 20, "switchd")

    def links_up(self, timeout: float = 20.0, names: tuple[str, ...] = NETWORKS) -> None:
        def up() -> bool:
            links = self.client().call("GET", "/v1/status")["links"]
            states = {link["name"]: link["state"] for link in links}
            return all(states.get(n) == "up" for n in names)

        _wait(up, timeout, f"links {names} up")

    def stop_switchd(self, sig: int = signal.SIGTERM) -> int:
        assert self.switchd is not None
        self.switchd.send_signal(sig)
        rc = self.switchd.wait(timeout=15)
        self.switchd = None
        return rc

    def log(self) -> str:
        path = self.root / "switchd.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def metrics_port(self) -> int:
        """The metrics port switchd bound (the config asks for port 0): from its
        ``metrics listening`` log line, the last one (a restarted switchd binds anew)."""
        port = 0
        for line in self.log().splitlines():
            if '"metrics listening"' in line:
                try:
                    port = int(json.loads(line)["port"])
                except (ValueError, KeyError, TypeError):
                    continue
        if not port:
            raise LookupError("switchd has not logged its metrics port")
        return port

    def metric(self, name: str, **labels: str) -> float:
        """The sum of ``name``'s samples whose labels include ``labels`` (0 if none)."""
        from prometheus_client.parser import text_string_to_metric_families

        url = f"http://127.0.0.1:{self.metrics_port()}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            text = resp.read().decode()
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(
                    sample.labels.get(k) == v for k, v in labels.items()
                ):
                    total += sample.value
        return total

    def close(self) -> None:
        for proc in (self.switchd, self.sim):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def switch_toml(
    ports: dict[str, int],
    *,
    inquiry_timeout: float = 10.0,
    heartbeat: float = 5.0,
    ack_timeout: float = 5.0,
) -> str:
    links = []
    for name in NETWORKS:
        scheme = "tls" if name == "national" else "tcp"
        link = (
            f'[[links]]\nname = "{name}"\nnetwork = "{name}"\n'
            f'endpoint = "{scheme}:127.0.0.1:{ports[name]}"\nstation = "MO0380100"\n'
            f'secret_file = "var/secrets/{name}.secret"\n'
            f"heartbeat = {heartbeat}\nack_timeout = {ack_timeout}\n"
        )
        if name == "national":
            link += (
                'ca = "var/pki/ca.pem"\ncertificate = "var/pki/gateway-client.pem"\n'
                'private_key = "var/pki/gateway-client.key"\nserver_name = "localhost"\n'
            )
        links.append(link)
    return (
        'ori = "MO0380100"\nvar_dir = "var"\nroutes = "routes.toml"\n'
        'terminals = "terminals.toml"\ndrain_timeout = 2.0\n\n'
        '[api]\nsocket = "var/run/switch.sock"\nclient_timeout = 10.0\n\n'
        '[metrics]\nhost = "127.0.0.1"\nport = 0\n\n'
        f"[inquiry]\ntimeout = {inquiry_timeout}\n\n"
        "[audit]\ncheckpoint_every = 100\ncheckpoint_seconds = 5.0\n\n" + "\n".join(links)
    )


def start_gateway(
    *,
    persons: int = 2000,
    start_switchd: bool = True,
    inquiry_timeout: float = 10.0,
    heartbeat: float = 5.0,
    ack_timeout: float = 5.0,
) -> Gateway:
    """Simulators on free ports, then switchd configured to dial them (the timers are
    the links' and inquiries' config, shortened by tests that wait on them)."""
    root = Path(tempfile.mkdtemp(prefix="swe2e", dir="/tmp"))  # short: AF_UNIX path limit
    var = root / "var"
    for name in NETWORKS:
        write_private(
            var / "secrets" / f"{name}.secret", secrets.token_urlsafe(32).encode() + b"\n"
        )
    init_pki(var / "pki", var / "keys")
    ready = root / "ready.json"
    sim = subprocess.Popen(
        [
            str(BIN / "switch-sim"),
            "all",
            "--config",
            str(REPO / "conf" / "simulators.toml"),
            "--any-port",
            "--ready-file",
            str(ready),
            "--var",
            str(var),
            "--persons",
            str(persons),
            "--delay-ms",
            "0",
            # The networks heartbeat as often as the gateway expects: with their default
            # 15 s against the gateway's 3 x 5 s, an idle link was declared dead and redialled.
            "--heartbeat",
            str(heartbeat),
        ],
        cwd=root,
        stdout=(root / "sim.log").open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        ports = _wait(lambda: json.loads(ready.read_text()), 20, "simulators")
        conf = root / "conf"
        conf.mkdir()
        (conf / "switch.toml").write_text(
            switch_toml(
                ports,
                inquiry_timeout=inquiry_timeout,
                heartbeat=heartbeat,
                ack_timeout=ack_timeout,
            )
        )
        shutil.copy(REPO / "conf" / "routes.toml", conf / "routes.toml")
        # The demo terminals, with a rate limit that does not get in the tests' way.
        terminals = (REPO / "conf" / "terminals.toml").read_text()
        (conf / "terminals.toml").write_text(
            terminals.replace("rate_limit = 5.0", "rate_limit = 1000.0")
        )
        gateway = Gateway(root=root, sim=sim, ports=ports)
        if start_switchd:
            gateway.start_switchd()
    except BaseException:
        sim.kill()
        sim.wait()
        shutil.rmtree(root, ignore_errors=True)
        raise
    return gateway


__all__ = ["ApiError", "ClientError", "Gateway", "start_gateway"]
