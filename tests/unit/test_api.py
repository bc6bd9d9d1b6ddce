"""The client API over a real UNIX socket: routes, status codes, limits, shutdown.

Requests are made from threads (the sync switchctl client, or a raw socket for hostile
input) while the reactor serves them, so the daemon side is the real thing.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import os
import shutil
import socket
import stat
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
import structlog
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor as reactor_
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread

from switch import logs
from switch.audit.interface import MemoryAudit
from switch.cli import cmd_session
from switch.cli.client import Client, Reply, token_path
from switch.config import (
    ApiConfig,
    AuditConfig,
    Config,
    InquiryConfig,
    MetricsConfig,
    Operator,
    RoutesConfig,
    SessionConfig,
    StoreConfig,
    TeletypeConfig,
    Terminal,
)
from switch.locks import MemoryLockStore
from switch.protocols.api import ApiError, Call, Response, Route, too_many
from switch.service import SocketInUse, SwitchService, make_service
from switch.sessions import RateLimiter

ROOT = Path(__file__).resolve().parents[2]
ALL = frozenset({"local", "regional", "state", "national"})
SUBJECTS = frozenset({"person", "vehicle", "driver", "registration", "gun", "article"})


def cheap_hash(password: str) -> str:
    """The stored format with a tiny scrypt cost: fast tests, same code path."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=16, r=1, p=1, dklen=32)
    return f"scrypt$16$1$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


OPERATORS = {
    "demo": Operator(
        "demo", frozenset({"dispatch", "records", "supervisor", "admin"}), cheap_hash("demo-pw")
    ),
    "rec": Operator("rec", frozenset({"records"}), cheap_hash("rec-pw")),
}
TERMINALS = {
    "DISPATCH1": Terminal("DISPATCH1", "MO0380100", frozenset({"dispatch"}), SUBJECTS, ALL),
    "ADMIN1": Terminal("ADMIN1", "MO0380100", frozenset({"admin", "supervisor"}), SUBJECTS, ALL),
}


def make_config(var: Path, **api: Any) -> Config:
    return Config(
        source=var / "switch.toml",
        ori="MO0380100",
        var_dir=var,
        api=ApiConfig(socket=var / "run" / "switch.sock", **api),
        metrics=MetricsConfig(host="127.0.0.1", port=0),
        sessions=SessionConfig(),
        store=StoreConfig(path=var / "switch.db"),
        audit=AuditConfig(),
        inquiry=InquiryConfig(),
        teletype=TeletypeConfig(),
        links=(),
        routes=RoutesConfig(inquiries={}, out_of_state_link=None, destinations=()),
        terminals=TERMINALS,
        operators=OPERATORS,
    )


def raw_exchange(path: str, data: bytes, shut: bool = False, timeout: float = 5.0) -> bytes:
    """Send ``data`` on a fresh connection and read until the server closes (or timeout)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    try:
        if data:
            sock.sendall(data)
        if shut:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        sock.close()


def parse_response(raw: bytes) -> tuple[int, dict[str, str], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, json.loads(body) if body else None


class Daemon:
    def __init__(self, var: Path, reactor: Any, **api: Any) -> None:
        self.config = make_config(var, **api)
        self.audit = MemoryAudit()
        self.locks = MemoryLockStore()
        self.service: SwitchService = make_service(
            self.config, reactor, self.audit, locks=self.locks
        )
        self.service.startService()
        self.service.ready()
        self.socket = os.fspath(self.config.api.socket)

    @property
    def metrics_port(self) -> int:
        return int(self.service.listeners[1].ready().getHost().port)

    async def call(
        self, method: str, path: str, body: Any = None, token: str | None = None
    ) -> Reply:
        client = Client(self.socket, token=token, timeout=10)
        reply: Reply = await deferToThread(client.request, method, path, body)
        return reply

    async def raw(
        self, data: bytes, shut: bool = False, timeout: float = 5.0
    ) -> tuple[int, dict[str, str], Any]:
        raw = await deferToThread(raw_exchange, self.socket, data, shut, timeout)
        return parse_response(raw)

    async def login(
        self, terminal: str = "ADMIN1", operator: str = "demo", password: str = "demo-pw"
    ) -> str:
        reply = await self.call(
            "POST",
            "/v1/sessions",
            {"terminal": terminal, "operator": operator, "password": password},
        )
        assert reply.status == 201, reply.data
        return str(reply.data["token"])


@pytest.fixture
def short_dir() -> Iterator[Path]:
    # AF_UNIX paths are limited to ~107 bytes: pytest's tmp_path can be longer.
    d = Path(tempfile.mkdtemp(prefix="swapi", dir="/tmp"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def start(reactor: Any, short_dir: Path) -> Iterator[Any]:
    made: list[Daemon] = []

    def start(sub: str = "var", **api: Any) -> Daemon:
        daemon = Daemon(short_dir / sub, reactor, **api)
        made.append(daemon)
        return daemon

    yield start
    for daemon in made:
        pytest_twisted.blockon(daemon.service.stopService())


@pytest.fixture
def daemon(start: Any) -> Daemon:
    return start()  # type: ignore[no-any-return]


def assert_error(reply: Reply, status: int, code: str | None = None) -> dict[str, Any]:
    assert reply.status == status, (reply.status, reply.data)
    error = reply.data["error"]
    assert isinstance(error["message"], str) and isinstance(error["code"], str)
    assert set(error) <= {"code", "message", "field"}
    if code is not None:
        assert error["code"] == code
    return error  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- basics


@pytest_twisted.ensureDeferred
async def test_healthz_needs_no_token(daemon: Daemon) -> None:
    """GET /healthz answers 200 without a token; the socket has mode 0660."""
    reply = await daemon.call("GET", "/healthz")
    assert reply.status == 200 and reply.data == {"status": "ok"}
    assert reply.headers["content-type"] == "application/json"
    assert stat.S_IMODE(os.stat(daemon.socket).st_mode) == 0o660


@pytest_twisted.ensureDeferred
async def test_openapi_served_and_identical_to_docs(daemon: Daemon) -> None:
    """GET /v1/openapi.json serves the packaged document, identical to docs/openapi.json."""
    packaged = (ROOT / "switch" / "protocols" / "openapi.json").read_bytes()
    assert (ROOT / "docs" / "openapi.json").read_bytes() == packaged
    reply = await daemon.call("GET", "/v1/openapi.json")
    assert reply.status == 200 and reply.data == json.loads(packaged)


def test_route_table_and_openapi_agree(daemon: Daemon) -> None:
    """Every route of the bare API is documented (the document also covers the gateway's
    routes: the next test checks that it matches a full daemon's table exactly)."""
    doc = json.loads((ROOT / "switch" / "protocols" / "openapi.json").read_bytes())
    assert doc["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    served = {(r.method, r.template) for r in daemon.service.api.router.routes}
    assert served <= documented
    for route in daemon.service.api.router.routes:
        op = doc["paths"][route.template][route.method.lower()]
        assert (op.get("security") == []) == (not route.auth), route.template


def test_full_gateway_route_table_and_openapi_agree(reactor: Any, short_dir: Path) -> None:
    """With the gateway attached (inquiries, mailbox, events, teletype, intercept, hit
    confirmations, links) every served route is documented and every documented
    operation is served; admin-only routes say so in their summary or are admin-gated."""
    from switch.service import add_gateway
    from switch.store import SQLiteStore

    config = make_config(short_dir / "var")
    audit = MemoryAudit()
    service = make_service(config, reactor, audit, locks=MemoryLockStore())
    add_gateway(service, config, reactor, SQLiteStore(reactor, short_dir / "var" / "x.db"), audit)
    doc = json.loads((ROOT / "switch" / "protocols" / "openapi.json").read_bytes())
    documented = {
        (method.upper(), path)
        for path, item in doc["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }
    served = {(r.method, r.template) for r in service.api.router.routes}
    assert served == documented
    assert ("POST", "/v1/messages") in served and ("PATCH", "/v1/intercept/{id}") in served
    for route in service.api.router.routes:
        op = doc["paths"][route.template][route.method.lower()]
        assert (op.get("security") == []) == (not route.auth), route.template
        if route.roles == frozenset({"admin"}):
            assert "admin" in op["summary"], route.template


@pytest_twisted.ensureDeferred
async def test_login_status_logout_flow(daemon: Daemon) -> None:
    """201 {token, expires}; admin status shows the session; 204 logoff; token dead."""
    reply = await daemon.call(
        "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": "demo", "password": "demo-pw"}
    )
    assert reply.status == 201
    assert {"token", "expires"} <= set(reply.data)
    assert reply.data["expires"].endswith("Z") and reply.data["roles"] == ["admin", "supervisor"]
    token = reply.data["token"]
    status = await daemon.call("GET", "/v1/status", token=token)
    assert status.status == 200
    core = {k: status.data[k] for k in ("links", "audit", "sessions")}
    assert core == {"links": [], "audit": {"healthy": True}, "sessions": 1}
    assert [s["operator"] for s in status.data["session_list"]] == ["demo"]
    assert token not in json.dumps(status.data)
    bye = await daemon.call("DELETE", "/v1/sessions/current", token=token)
    assert bye.status == 204 and bye.data is None
    again = await daemon.call("GET", "/v1/status", token=token)
    assert_error(again, 401, "unauthorized")
    assert again.headers["www-authenticate"] == "Bearer"
    assert [e for e, _ in daemon.audit.events] == ["session.logon", "session.logoff"]


@pytest_twisted.ensureDeferred
async def test_401_missing_or_bad_token_and_wrong_password(daemon: Daemon) -> None:
    """No token, a garbage token, or a wrong password (or unknown operator) answer 401."""
    assert_error(await daemon.call("GET", "/v1/status"), 401)
    assert_error(await daemon.call("GET", "/v1/status", token="nope"), 401)
    for operator in ("demo", "nobody"):
        reply = await daemon.call(
            "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": operator, "password": "x"}
        )
        assert_error(reply, 401, "invalid_credentials")


@pytest_twisted.ensureDeferred
async def test_403_role_and_terminal(daemon: Daemon) -> None:
    """A dispatch session may not read status; an operator with no role allowed on the
    terminal cannot log on there."""
    token = await daemon.login("DISPATCH1")
    assert_error(await daemon.call("GET", "/v1/status", token=token), 403, "forbidden")
    reply = await daemon.call(
        "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": "rec", "password": "rec-pw"}
    )
    assert_error(reply, 403)


@pytest_twisted.ensureDeferred
async def test_404_and_405(daemon: Daemon) -> None:
    """Unknown path: 404; known path, wrong method: 405 with Allow."""
    assert_error(await daemon.call("GET", "/v1/nothing"), 404, "not_found")
    assert_error(await daemon.call("GET", "/healthz/"), 404)
    reply = await daemon.call("POST", "/healthz", {})
    assert_error(reply, 405, "method_not_allowed")
    assert reply.headers["allow"] == "GET"


@pytest_twisted.ensureDeferred
async def test_400_malformed_json_and_invalid_fields(daemon: Daemon) -> None:
    """Malformed JSON, a non-object, NaN, missing or mistyped fields: 400, field named."""
    for body in (
        b"{",
        b"[1]",
        b'{"terminal": NaN}',
        b'{"terminal": -Infinity}',
        b'{"terminal": "\\ud800"}',  # an escaped lone surrogate
        b'{"terminal": "A"} {}',  # two documents
        b"\xff\xfe",
        b"[" * 5000 + b"]" * 5000,
    ):
        status, _, data = await daemon.raw(
            b"POST /v1/sessions HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        assert status == 400 and data["error"]["code"] == "malformed_json", body[:10]
    missing = await daemon.call("POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": "d"})
    assert assert_error(missing, 400, "invalid_field")["field"] == "password"
    typed = await daemon.call(
        "POST", "/v1/sessions", {"terminal": 5, "operator": "demo", "password": "p"}
    )
    assert assert_error(typed, 400)["field"] == "terminal"


@pytest_twisted.ensureDeferred
async def test_415_without_json_content_type(daemon: Daemon) -> None:
    """A POST body that is not declared application/json answers 415."""
    body = b'{"terminal": "ADMIN1", "operator": "demo", "password": "demo-pw"}'
    status, _, data = await daemon.raw(
        b"POST /v1/sessions HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n"
        b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    assert status == 415 and data["error"]["code"] == "unsupported_media_type"


@pytest_twisted.ensureDeferred
async def test_413_from_content_length_before_body_is_read(daemon: Daemon) -> None:
    """Content-Length over 64 KiB is refused at once: the client sends headers only and
    still gets 413 and a closed connection (the body was never awaited)."""
    started = time.monotonic()
    status, headers, data = await daemon.raw(
        b"POST /v1/sessions HTTP/1.1\r\nHost: switch\r\nContent-Type: application/json\r\n"
        b"Content-Length: 65537\r\n\r\n",
        timeout=5,
    )
    assert status == 413 and data["error"]["code"] == "too_large"
    assert headers["connection"] == "close"
    assert time.monotonic() - started < 2
    ok = b"{" + b" " * (64 * 1024 - 2) + b"}"
    status, _, data = await daemon.raw(
        b"POST /v1/sessions HTTP/1.1\r\nHost: switch\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(ok), ok)
    )
    assert status == 400 and data["error"]["field"] == "terminal"


@pytest_twisted.ensureDeferred
async def test_413_chunked_body_capped(daemon: Daemon) -> None:
    """A chunked body is capped while it arrives: 413 once it passes 64 KiB."""
    chunk = b"%x\r\n%s\r\n" % (16384, b" " * 16384)
    status, _, data = await daemon.raw(
        b"POST /v1/sessions HTTP/1.1\r\nHost: switch\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 5
    )
    assert status == 413 and data["error"]["code"] == "too_large"


@pytest_twisted.ensureDeferred
async def test_423_lockout_then_admin_unlock(daemon: Daemon) -> None:
    """4 failures 401, the 5th 401, then 423 with Retry-After even with the right
    password; an admin unlock (audited) lets the operator back in."""
    admin = await daemon.login("ADMIN1")
    bad = {"terminal": "DISPATCH1", "operator": "demo", "password": "wrong"}
    for _ in range(5):
        assert_error(await daemon.call("POST", "/v1/sessions", bad), 401)
    good = dict(bad, password="demo-pw")
    locked = await daemon.call("POST", "/v1/sessions", good)
    assert_error(locked, 423, "operator_locked")
    assert 590 <= int(locked.headers["retry-after"]) <= 600
    assert daemon.locks.locks.keys() == {"demo"}

    reply = await daemon.call("POST", "/v1/operators/demo/unlock", token=admin)
    assert reply.status == 200 and reply.data == {"operator": "demo", "was_locked": True}
    assert (await daemon.call("POST", "/v1/sessions", good)).status == 201
    assert len(daemon.audit.of("operator.locked")) == 1
    assert daemon.audit.of("operator.unlocked")[0]["by_operator"] == "demo"
    gone = await daemon.call("POST", "/v1/operators/nobody/unlock", token=admin)
    assert_error(gone, 404)


@pytest_twisted.ensureDeferred
async def test_429_and_500_through_added_routes(daemon: Daemon) -> None:
    """Routes added to the table get the same treatment: a rate limit raises 429 with
    Retry-After, a crashing handler a JSON 500 without traceback."""
    limiter = RateLimiter(daemon.service.api.clock)

    async def limited(call: Call) -> Response:
        session = call.require_session()
        wait = limiter.check(session.terminal, 1.0)
        if wait:
            raise too_many(wait)
        return Response(202, {"ok": True})

    async def broken(call: Call) -> Response:
        raise RuntimeError("secret frame content")

    api = daemon.service.api
    api.router.add(Route("POST", "/v1/test-limited", limited))
    api.router.add(Route("GET", "/v1/test-broken", broken, auth=False))
    token = await daemon.login("DISPATCH1")
    assert (await daemon.call("POST", "/v1/test-limited", token=token)).status == 202
    reply = await daemon.call("POST", "/v1/test-limited", token=token)
    assert_error(reply, 429, "rate_limited")
    assert int(reply.headers["retry-after"]) >= 1
    crash = await daemon.call("GET", "/v1/test-broken")
    assert_error(crash, 500, "internal")
    assert "secret" not in json.dumps(crash.data) and "Traceback" not in json.dumps(crash.data)
    with pytest.raises(ValueError):
        api.router.add(Route("GET", "/v1/test-broken", broken))
    with pytest.raises(ApiError):
        api.router.match("GET", "/v1/test-limited")


@pytest_twisted.ensureDeferred
async def test_503_audit_failing_and_draining(daemon: Daemon) -> None:
    """A failing audit refuses logons (503); draining refuses everything but liveness."""
    token = await daemon.login("ADMIN1")
    daemon.audit.fail = True
    reply = await daemon.call(
        "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": "demo", "password": "demo-pw"}
    )
    assert_error(reply, 503, "audit_unavailable")
    status = await daemon.call("GET", "/v1/status", token=token)
    assert status.data["audit"] == {"healthy": False}
    daemon.audit.fail = False
    daemon.service.api.draining = True
    assert_error(await daemon.call("GET", "/v1/status", token=token), 503, "draining")
    assert (await daemon.call("GET", "/healthz")).status == 200


@pytest_twisted.ensureDeferred
async def test_shutdown_answers_requests_already_accepted(daemon: Daemon) -> None:
    """A request being handled when shutdown starts gets its answer (the drain waits for
    it); one arriving after gets nothing but the closed socket."""
    release: Deferred[None] = Deferred()
    entered: Deferred[None] = Deferred()

    async def slow(call: Call) -> Response:
        entered.callback(None)
        await release
        return Response(200, {"done": True})

    api = daemon.service.api
    api.router.add(Route("GET", "/v1/test-slow", slow, auth=False))
    pending = Deferred.fromCoroutine(daemon.call("GET", "/v1/test-slow"))
    await entered
    assert api.in_flight == 1
    stopping = daemon.service.stopService()
    await deferLater(reactor_, 0.2, lambda: None)
    assert not stopping.called, "shutdown must wait for the request in flight"
    release.callback(None)
    reply = await pending
    assert reply.status == 200 and reply.data == {"done": True}
    await stopping
    assert api.in_flight == 0


@pytest_twisted.ensureDeferred
async def test_malformed_http_gets_json_400(daemon: Daemon) -> None:
    """Garbage instead of HTTP gets a JSON 400 and a closed connection, no traceback."""
    for garbage in (
        b"\x00\x01garbage\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
        b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\n\r\n",
    ):
        status, _, data = await daemon.raw(garbage)
        assert status == 400 and data["error"]["code"] == "bad_request"


@pytest_twisted.ensureDeferred
async def test_slow_and_idle_clients_are_timed_out(start: Any) -> None:
    """A request dribbling in (or never sent) past client_timeout gets 408 and a close."""
    daemon = start(client_timeout=0.5)
    started = time.monotonic()
    status, _, data = await daemon.raw(b"GET /healthz HTTP/1.1\r\nHost: sw", timeout=5)
    assert status == 408 and data["error"]["code"] == "timeout"
    status, _, _ = await daemon.raw(b"", timeout=5)
    assert status == 408
    assert time.monotonic() - started < 4


@pytest_twisted.ensureDeferred
async def test_metrics_endpoint_on_tcp(daemon: Daemon) -> None:
    """/metrics on the configured host and port shows sessions and logon failures."""
    await daemon.login("ADMIN1")
    await daemon.call(
        "POST", "/v1/sessions", {"terminal": "ADMIN1", "operator": "demo", "password": "no"}
    )
    url = f"http://127.0.0.1:{daemon.metrics_port}/metrics"

    def fetch() -> str:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return str(resp.read().decode())

    text = await deferToThread(fetch)
    samples = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert samples["switch_sessions"] == 1
    assert samples["switch_logon_failures_total"] == 1


# --------------------------------------------------------------------------- socket life


@pytest_twisted.ensureDeferred
async def test_stale_socket_replaced_live_socket_not_stolen(start: Any, short_dir: Path) -> None:
    """A socket file nobody listens on is replaced; one a live daemon holds is not."""
    run = short_dir / "var" / "run"
    run.mkdir(parents=True)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(os.fspath(run / "switch.sock"))
    stale.close()  # the file stays: what a crashed daemon leaves behind
    first = start()
    assert (await first.call("GET", "/healthz")).status == 200
    with pytest.raises(SocketInUse):
        start()
    assert (await first.call("GET", "/healthz")).status == 200


@pytest_twisted.ensureDeferred
async def test_stop_closes_listener_then_connections(reactor: Any, short_dir: Path) -> None:
    """stopService closes the socket (file removed, connects refused) and drops open
    keep-alive connections, and ends sessions with an audited logoff."""
    daemon = Daemon(short_dir / "v2", reactor)
    await daemon.login("ADMIN1")
    keep = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    keep.settimeout(5)
    await deferToThread(keep.connect, daemon.socket)
    await deferToThread(keep.sendall, b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n")
    first = await deferToThread(keep.recv, 4096)
    assert b" 200 " in first
    await daemon.service.stopService()
    assert not os.path.exists(daemon.socket)
    assert await deferToThread(keep.recv, 4096) == b""
    keep.close()
    with pytest.raises((ConnectionRefusedError, FileNotFoundError)):
        socket.socket(socket.AF_UNIX).connect(daemon.socket)
    assert daemon.audit.of("session.logoff")[0]["reason"] == "shutdown"


# --------------------------------------------------------------------------- switchctl


def run_cli(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="switchctl")
    parser.add_argument("--socket")
    cmd_session.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    out, err = io.StringIO(), io.StringIO()
    import contextlib
    import sys

    old_stdin = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = args.func(args)
    finally:
        sys.stdin = old_stdin
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def quiet_logs() -> Iterator[None]:
    # The CLI runs in a thread under redirect_stdout (process-wide): keep the daemon's
    # log lines, written from the reactor thread meanwhile, out of what it captures.
    logs.configure(stream=io.StringIO())
    yield
    structlog.reset_defaults()


@pytest_twisted.ensureDeferred
async def test_switchctl_login_status_unlock_logout(
    daemon: Daemon, short_dir: Path, quiet_logs: None
) -> None:
    """switchctl login stores a 0600 token; status prints a table or JSON; unlock and
    logout work; a wrong password exits 1 with the daemon's message."""
    tok = os.fspath(short_dir / "tok")
    common = ["--socket", daemon.socket]

    def cli(*argv: str, stdin: str = "") -> Any:
        return deferToThread(run_cli, [*argv, *common, "--token-file", tok], stdin)

    code, out, _ = await cli(
        "login", "--terminal", "ADMIN1", "--operator", "demo", "--password-stdin", stdin="demo-pw\n"
    )
    assert code == 0 and "logged on" in out
    assert stat.S_IMODE(os.stat(tok).st_mode) == 0o600
    code, out, _ = await cli("status")
    assert code == 0 and "audit: healthy" in out and "sessions: 1" in out
    code, out, _ = await cli("status", "--json")
    assert json.loads(out)["sessions"] == 1
    code, out, _ = await cli("unlock", "rec")
    assert code == 0 and "was not locked" in out
    code, out, _ = await cli("logout")
    assert code == 0 and not os.path.exists(tok)
    code, _, err = await cli(
        "login", "--terminal", "ADMIN1", "--operator", "demo", "--password-stdin", stdin="bad\n"
    )
    assert code == 1 and "HTTP 401" in err
    code, _, err = await cli("status")
    assert code == 1


def test_token_path_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Token file: explicit path, else $XDG_RUNTIME_DIR, else beside the socket."""
    assert token_path("s.sock", "/x/t") == Path("/x/t")
    monkeypatch.setenv("XDG_RUNTIME_DIR", os.fspath(tmp_path))
    assert token_path("var/run/switch.sock").parent == tmp_path
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    path = token_path("var/run/switch.sock")
    assert path.parent == Path(os.path.abspath("var/run"))
    assert path.name.startswith(f"switchctl-{os.getuid()}-")


@pytest_twisted.ensureDeferred
async def test_pipelined_requests_and_client_gone_mid_request(daemon: Daemon) -> None:
    """Two pipelined requests get two answers in order; a client that hangs up while its
    logon is being checked leaves no error behind and the daemon keeps serving."""
    one = b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n"
    two = b"GET /v1/nothing HTTP/1.1\r\nHost: s\r\nConnection: close\r\n\r\n"
    raw = await deferToThread(raw_exchange, daemon.socket, one + two)
    assert raw.count(b"HTTP/1.1 ") == 2
    assert raw.index(b" 200 OK") < raw.index(b" 404 Not Found")
    body = b'{"terminal": "ADMIN1", "operator": "demo", "password": "demo-pw"}'
    login = (
        b"POST /v1/sessions HTTP/1.1\r\nHost: s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
    )
    await deferToThread(raw_exchange, daemon.socket, login, False, 0.001)
    assert (await daemon.call("GET", "/healthz")).status == 200
