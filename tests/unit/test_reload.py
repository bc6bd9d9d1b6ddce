"""Live reload: the pure decisions (links, terminals, sessions), LinkManager's apply on
in-memory links, and the Reloader's atomic swap and refusal (DESIGN §8)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock

from switch.audit.interface import AuditUnavailable, MemoryAudit
from switch.config import (
    ConfigError,
    ConfigInvalid,
    LinkConfig,
    MetricsConfig,
    Operator,
    Terminal,
)
from switch.locks import MemoryLockStore
from switch.metrics import Metrics
from switch.protocols.link import DOWN, UP, Link
from switch.protocols.link_service import LinkManager, LinkSetupError
from switch.reload import (
    LinkPlan,
    Reloader,
    plan_links,
    plan_reload,
    run_inline,
    session_changes,
)
from switch.service import SwitchService, make_service
from switch.sessions import Session
from tests.unit.test_api import ALL, OPERATORS, SUBJECTS, TERMINALS, make_config
from tests.unit.test_link_fakes import FakeCodec, Net, inquiry

# --------------------------------------------------------------------------- pure


def cfg(name: str, secret: str = "/s/x.secret", **kw: Any) -> LinkConfig:
    options: dict[str, Any] = {
        "name": name,
        "network": "local",
        "endpoint": f"tcp:127.0.0.1:{9000 + len(name)}",
        "station": "MO0380100",
        "secret_file": Path(secret),
    }
    options.update(kw)
    return LinkConfig(**options)


def test_plan_links_classifies_every_link() -> None:
    """Same config and secret: unchanged; only the secret (file or content): secret-only;
    any other field: changed; new names added, missing names removed, in config order."""
    old = [cfg("a"), cfg("b"), cfg("c"), cfg("d"), cfg("e")]
    new = [
        cfg("a"),
        cfg("b", heartbeat=5.0),
        cfg("c", secret="/s/other.secret"),
        cfg("d"),
        cfg("f", network="state"),
    ]
    old_secrets = {n: f"h-{n}" for n in "abcde"}
    new_secrets = {"a": "h-a", "b": "h-b", "c": "h-c", "d": "rotated", "f": "h-f"}
    plan = plan_links(old, new, old_secrets, new_secrets)
    assert plan == LinkPlan(
        unchanged=("a",),
        added=("f",),
        removed=("e",),
        changed=("b",),
        secret_only=("c", "d"),
    )
    assert plan.touched
    same = plan_links(old, old, old_secrets, old_secrets)
    assert same == LinkPlan(unchanged=("a", "b", "c", "d", "e")) and not same.touched


def test_plan_links_endpoint_and_secret_together_is_a_change() -> None:
    """A new endpoint with a new secret is a full change (drain, rebuild), not secret-only."""
    plan = plan_links(
        [cfg("a")], [cfg("a", endpoint="tcp:127.0.0.1:1", secret="/s/n")], {"a": "1"}, {"a": "2"}
    )
    assert plan.changed == ("a",) and plan.secret_only == ()


def test_plan_reload_reports_terminals_operators_routes_and_restart_keys(
    tmp_path: Path,
) -> None:
    """Terminals/operators added, removed and changed by name; keys a running daemon
    cannot take over (metrics port, ...) are listed as restart_required."""
    old = make_config(tmp_path)
    terminals = dict(old.terminals)
    del terminals["DISPATCH1"]
    terminals["NEW1"] = dataclasses.replace(TERMINALS["ADMIN1"], id="NEW1")
    terminals["ADMIN1"] = dataclasses.replace(TERMINALS["ADMIN1"], rate_limit=1.0)
    new = dataclasses.replace(
        old,
        terminals=terminals,
        operators={"demo": OPERATORS["demo"]},
        metrics=MetricsConfig(port=1234),
    )
    plan = plan_reload(old, new, {}, {})
    assert plan.terminals.json() == {
        "added": ["NEW1"],
        "removed": ["DISPATCH1"],
        "changed": ["ADMIN1"],
    }
    assert plan.operators.removed == ("rec",)
    assert plan.restart_required == ("metrics",)
    assert plan.routes_changed is False and plan.links == LinkPlan()


def _session(terminal: str, operator: str, roles: set[str]) -> Session:
    return Session("s-" + terminal, terminal, operator, "MO0380100", frozenset(roles), 0, 0,
                   False, b"x")  # fmt: skip


def test_session_changes_end_or_recompute_roles() -> None:
    """A session of a removed terminal or operator ends, one left with no role ends, the
    others get operator roles within the terminal's maximum."""
    terminals = {
        "ADMIN1": Terminal("ADMIN1", "MO0380100", frozenset({"admin"}), SUBJECTS, ALL),
        "REC1": Terminal("REC1", "MO0380100", frozenset({"records"}), SUBJECTS, ALL),
    }
    operators = {
        "demo": Operator("demo", frozenset({"admin", "dispatch"}), "h"),
        "rec": Operator("rec", frozenset({"dispatch"}), "h"),
    }
    sessions = [
        _session("ADMIN1", "demo", {"admin", "supervisor"}),
        _session("GONE1", "demo", {"admin"}),
        _session("ADMIN1", "nobody", {"admin"}),
        _session("REC1", "rec", {"records"}),
    ]
    out = [(s.terminal, s.operator, roles, why) for s, roles, why in session_changes(
        sessions, terminals, operators)]  # fmt: skip
    assert out == [
        ("ADMIN1", "demo", frozenset({"admin"}), "roles"),
        ("GONE1", "demo", None, "terminal_removed"),
        ("ADMIN1", "nobody", None, "operator_removed"),
        ("REC1", "rec", None, "no_roles"),
    ]


# --------------------------------------------------------------------------- links


class _Endpoint:
    def __init__(self, net: Net) -> None:
        self.net = net

    def connect(self, factory: Any) -> Deferred[Any]:
        return self.net.dial(factory)


class Links:
    """A LinkManager over one in-memory network per link name, on one clock."""

    def __init__(self, tmp_path: Path, names: list[str], metrics: Any = None) -> None:
        self.tmp = tmp_path
        self.clock = Clock()
        self.nets: dict[str, Net] = {}
        self.removed: list[str] = []
        self.manager = LinkManager(
            [self.config(n) for n in names],
            self.clock,
            lambda _name, _msg: succeed(None),
            jitter=lambda: 0.0,
            metrics=metrics,
            codecs=lambda _network, _station: FakeCodec(),
            endpoint_for=lambda _r, c: _Endpoint(self.net(c.name)),  # type: ignore[arg-type,return-value]
        )
        self.manager.on_removed.append(self.removed.append)

    def net(self, name: str) -> Net:
        if name not in self.nets:
            net = Net()
            net.clock = self.clock
            self.nets[name] = net
        return self.nets[name]

    def secret(self, name: str, value: str | None = None) -> Path:
        path = self.tmp / f"{name}.secret"
        if value is not None or not path.exists():
            path.write_text((value or f"secret-of-{name}") + "\n")
            path.chmod(0o600)
        return path

    def config(self, name: str, **kw: Any) -> LinkConfig:
        options: dict[str, Any] = {
            "name": name,
            "network": "local",
            "endpoint": "tcp:127.0.0.1:9",
            "station": "MO0380100",
            "secret_file": self.secret(name),
        }
        options.update(kw)
        return LinkConfig(**options)

    def up(self, *names: str) -> None:
        for name in names:
            self.net(name).logon()
            self.net(name).sent()


def test_apply_touches_only_what_changed(tmp_path: Path) -> None:
    """Unchanged link: same object, same connection, nothing written. Removed: logs off,
    leaves, hook called. Changed: logs off, a new link dials. Secret-only: logs off and
    the same link dials at once with the new secret. Added: dialled."""
    links = Links(tmp_path, ["a", "b", "c", "d"])
    manager = links.manager
    manager.startService()
    links.up("a", "b", "c", "d")
    a, b, c = manager.links["a"], manager.links["b"], manager.links["c"]
    a_conn = links.nets["a"].proto
    links.secret("c", "rotated-secret")
    prepared = manager.prepare(
        [links.config("a"), links.config("b", heartbeat=5.0), links.config("c"), links.config("e")]
    )
    assert prepared.plan == LinkPlan(
        unchanged=("a",), added=("e",), removed=("d",), changed=("b",), secret_only=("c",)
    )
    done: list[object] = []
    manager.apply(prepared, drain_timeout=2.0).addCallback(done.append)
    assert "d" not in manager.links and manager.links["e"].state != DOWN
    links.clock.advance(0)
    links.clock.advance(0)
    assert done == [None]
    assert links.removed == ["d"]
    # a: untouched
    assert manager.links["a"] is a and a.state == UP and links.nets["a"].proto is a_conn
    assert links.nets["a"].sent() == [] and links.nets["a"].dials == []
    # d, b, c: logged off
    for name in ("b", "c", "d"):
        assert {"t": "logoff"} in links.nets[name].sent(), name
    # b: a new Link with the new config dials
    assert manager.links["b"] is not b and manager.links["b"].heartbeat == 5.0
    assert len(links.nets["b"].dials) == 1
    # c: the same Link redials at once with the new secret
    assert manager.links["c"] is c and len(links.nets["c"].dials) == 1
    links.nets["c"].accept()
    assert links.nets["c"].sent()[0]["secret"] == "rotated-secret"
    # e: dialled
    assert len(links.nets["e"].dials) == 1
    assert [row["name"] for row in manager.status()] == ["a", "b", "c", "e"]


def test_secret_change_on_a_down_link_redials_at_once(tmp_path: Path) -> None:
    """auth_failed waits 5 minutes before the next dial; a reload with a new secret dials
    now (no backoff) and nothing is logged off."""
    links = Links(tmp_path, ["a"])
    links.manager.startService()
    links.net("a").logon(ok=False)
    link = links.manager.links["a"]
    assert link.state == "auth_failed" and links.nets["a"].dials == []
    links.secret("a", "the-new-one")
    prepared = links.manager.prepare([links.config("a")])
    assert prepared.plan.secret_only == ("a",)
    links.manager.apply(prepared)
    assert len(links.nets["a"].dials) == 1
    links.nets["a"].accept()
    assert links.nets["a"].sent()[0]["secret"] == "the-new-one"


def test_changed_link_drains_before_logoff(tmp_path: Path) -> None:
    """A changed link keeps its session while a message awaits its ACK (and while the
    ``busy`` check says answers are outstanding), then logs off; bounded by the timeout."""
    links = Links(tmp_path, ["a"])
    links.manager.startService()
    links.up("a")
    acked: list[Any] = []
    links.manager.send("a", inquiry("Q1")).addCallback(acked.append)
    links.nets["a"].sent()
    outstanding = {"a": True}
    prepared = links.manager.prepare([links.config("a", window=8)])
    links.manager.apply(prepared, drain_timeout=10.0, busy=lambda n: outstanding[n])
    links.clock.advance(1.0)
    assert links.nets["a"].sent() == []  # still draining: no logoff
    links.nets["a"].feed({"t": "ack", "id": "Q1"})
    assert acked
    links.clock.advance(1.0)
    assert links.nets["a"].sent() == []  # the inquiry engine still waits for its answer
    outstanding["a"] = False
    links.clock.advance(0.1)
    assert links.nets["a"].sent() == [{"t": "logoff"}]
    links.clock.advance(0)
    assert links.manager.links["a"].window == 8 and len(links.nets["a"].dials) == 1


def test_drain_is_bounded(tmp_path: Path) -> None:
    """A link that never drains is logged off after drain_timeout anyway."""
    links = Links(tmp_path, ["a"])
    links.manager.startService()
    links.up("a")
    links.manager.send("a", inquiry("Q1")).addErrback(lambda _f: None)
    links.nets["a"].sent()
    links.manager.apply(links.manager.prepare([links.config("a", window=8)]), drain_timeout=3.0)
    links.clock.advance(2.9)
    assert links.nets["a"].sent() == []
    links.clock.pump([0.1] * 5)
    assert {"t": "logoff"} in links.nets["a"].sent()


def test_prepare_refuses_a_bad_secret_and_changes_nothing(tmp_path: Path) -> None:
    """A new link whose secret others can read refuses the reload before any change."""
    links = Links(tmp_path, ["a"])
    links.manager.startService()
    links.up("a")
    bad = links.secret("b")
    bad.chmod(0o644)
    with pytest.raises(LinkSetupError, match="link b"):
        links.manager.prepare([links.config("a"), links.config("b")])
    assert list(links.manager.links) == ["a"] and links.manager.links["a"].state == UP


def test_added_link_gets_existing_listeners(tmp_path: Path) -> None:
    """A state listener registered before a reload also watches the links it adds."""
    links = Links(tmp_path, ["a"])
    seen: list[tuple[str, str]] = []
    links.manager.add_listener(lambda link, _old, new: seen.append((link.name, new)))
    links.manager.startService()
    links.manager.apply(links.manager.prepare([links.config("a"), links.config("b")]))
    links.up("b")
    assert ("b", UP) in seen


# --------------------------------------------------------------------------- reloader


def write_files(tmp_path: Path) -> dict[str, Path]:
    files = {}
    for role in ("switch", "routes", "terminals"):
        files[role] = tmp_path / f"{role}.toml"
        files[role].write_text(f"# {role}\n")
    return files


class Daemon:
    """make_service (not started) with a reloader whose loader returns ``self.next``."""

    def __init__(self, tmp_path: Path) -> None:
        self.files = write_files(tmp_path)
        self.audit = MemoryAudit()
        self.clock = Clock()
        base = make_config(tmp_path)
        self.config = dataclasses.replace(
            base,
            source=self.files["switch"],
            routes_file=self.files["routes"],
            terminals_file=self.files["terminals"],
        )
        self.root: SwitchService = make_service(
            self.config,
            self.clock,
            self.audit,
            locks=MemoryLockStore(),
            verify=lambda pw, _stored: succeed(pw == "ok"),
        )
        self.next: Any = self.config
        self.reloader = Reloader(
            self.root, self.clock, self.audit, path=self.files["switch"], load=self.load,
            run=run_inline,
        )  # fmt: skip
        self.root.reloader = self.reloader

    def load(self, path: Path) -> Any:
        assert path == self.files["switch"]
        if isinstance(self.next, Exception):
            raise self.next
        return self.next

    async def logon(self, terminal: str, operator: str = "demo") -> Session:
        logon = await self.root.sessions.logon(terminal, operator, "ok")
        return logon.session


@pytest_twisted.ensureDeferred
async def test_reload_applies_everything_in_one_step(tmp_path: Path) -> None:
    """Root, API and sessions see the new config at once; a session of a removed
    terminal ends, a changed operator's session gets its new roles; keys that need a
    restart keep their value; config.reload is audited with each file's SHA-256."""
    d = Daemon(tmp_path)
    admin = await d.logon("ADMIN1")
    dispatch = await d.logon("DISPATCH1")
    terminals = {"ADMIN1": dataclasses.replace(TERMINALS["ADMIN1"], rate_limit=2.0)}
    operators = {
        "demo": dataclasses.replace(OPERATORS["demo"], roles=frozenset({"admin"})),
        "rec": OPERATORS["rec"],
    }
    d.next = dataclasses.replace(
        d.config,
        terminals=terminals,
        operators=operators,
        metrics=MetricsConfig(port=4321),
        drain_timeout=1.0,
    )
    result = await d.reloader.reload("sighup")
    assert result.applied and result.sessions_ended == 1
    for cfg_now in (d.root.config, d.root.api.config):
        assert cfg_now.terminals == terminals and cfg_now.drain_timeout == 1.0
        assert cfg_now.metrics == d.config.metrics  # restart required: kept
    assert d.root.sessions.terminals == terminals and d.root.sessions.operators == operators
    assert result.summary()["restart_required"] == ["metrics"]
    assert [s.id for s in d.root.sessions.sessions()] == [admin.id]
    assert admin.roles == frozenset({"admin"})
    ended = d.audit.of("session.logoff")
    assert ended == [
        {
            "session": dispatch.id,
            "terminal": "DISPATCH1",
            "operator": "demo",
            "reason": "config_terminal_removed",
        }
    ]
    (record,) = d.audit.of("config.reload")
    assert record["result"] == "applied" and record["trigger"] == "sighup"
    for role, path in d.files.items():
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert record["files"][role] == {"path": str(path), "sha256": digest}  # type: ignore[index]
    assert record["terminals"] == {"added": [], "removed": ["DISPATCH1"], "changed": ["ADMIN1"]}


@pytest_twisted.ensureDeferred
async def test_refused_reload_keeps_the_old_config(tmp_path: Path) -> None:
    """ConfigInvalid: nothing changes, the result carries the config-check lines, and
    the audit names file and key only (never the message, which may quote values)."""
    d = Daemon(tmp_path)
    session = await d.logon("ADMIN1")
    d.next = ConfigInvalid(
        [
            ConfigError("conf/routes.toml", "inquiries.person[0]", "unknown link 'nowhere'"),
            ConfigError("conf/terminals.toml", "terminals.X.ori", "'SECRETVALUE' is not an ORI"),
        ]
    )
    before = d.root.config
    result = await d.reloader.reload("api", session)
    assert not result.applied
    assert result.errors == [
        "conf/routes.toml: inquiries.person[0]: unknown link 'nowhere'",
        "conf/terminals.toml: terminals.X.ori: 'SECRETVALUE' is not an ORI",
    ]
    assert d.root.config is before and d.root.api.config is before
    assert d.root.sessions.count == 1
    (record,) = d.audit.of("config.reload")
    assert record["result"] == "refused" and record["operator"] == "demo"
    assert record["errors"] == [
        {"file": "conf/routes.toml", "key": "inquiries.person[0]"},
        {"file": "conf/terminals.toml", "key": "terminals.X.ori"},
    ]
    assert "SECRETVALUE" not in json.dumps(record)


@pytest_twisted.ensureDeferred
async def test_unreadable_config_is_refused_as_one_line(tmp_path: Path) -> None:
    """Any other load failure is one error line naming the file, and refused."""
    d = Daemon(tmp_path)
    d.next = OSError("permission denied")
    result = await d.reloader.reload("sighup")
    assert not result.applied
    assert result.errors == [f"{d.files['switch']}: -: cannot load config: permission denied"]


@pytest_twisted.ensureDeferred
async def test_reload_not_audited_is_not_applied(tmp_path: Path) -> None:
    """With the audit failing, the reload fails with AuditUnavailable and nothing changes."""
    d = Daemon(tmp_path)
    d.next = dataclasses.replace(d.config, drain_timeout=1.0)
    d.audit.fail = True
    with pytest.raises(AuditUnavailable):
        await d.reloader.reload("sighup")
    assert d.root.config.drain_timeout == d.config.drain_timeout


@pytest_twisted.ensureDeferred
async def test_reload_sets_inquiry_timeout_and_runs_hooks(tmp_path: Path) -> None:
    """The inquiry engine's timeout and on_applied hooks get the new values."""
    d = Daemon(tmp_path)

    class Engine:
        timeout = 30.0

    engine = Engine()
    applied: list[Any] = []
    d.reloader.attach(inquiries=engine)
    d.reloader.on_applied.append(applied.append)
    d.next = dataclasses.replace(
        d.config, inquiry=dataclasses.replace(d.config.inquiry, timeout=7.0)
    )
    await d.reloader.reload("sighup")
    assert engine.timeout == 7.0 and applied == [d.root.config]


@pytest_twisted.ensureDeferred
async def test_reload_with_links_refuses_a_link_that_cannot_be_built(tmp_path: Path) -> None:
    """A link setup error (here a shared secret file) refuses the reload with a line
    naming the links key; the running links are untouched."""
    d = Daemon(tmp_path)
    links = Links(tmp_path, ["a"])
    links.manager.startService()
    links.up("a")
    d.reloader.attach(links=links.manager)
    bad = links.config("b")
    bad.secret_file.chmod(0o644)
    d.next = dataclasses.replace(d.config, links=(links.config("a"), bad))
    result = await d.reloader.reload("sighup")
    assert not result.applied and result.errors[0].startswith(f"{d.files['switch']}: links:")
    assert list(links.manager.links) == ["a"]
    assert isinstance(links.manager.links["a"], Link)


# --------------------------------------------------------------------------- status table


def test_status_table_shows_errors_ages_and_a_failing_audit() -> None:
    """The link table gives since (with age), queue depth and oldest age and the last
    error with control characters neutralised; a failing audit says FAILING; overdue hit
    confirmations are pointed out."""
    from switch.cli.cmd_session import format_status

    data = {
        "links": [
            {
                "name": "state",
                "network": "state",
                "state": "auth_failed",
                "since": "1970-01-01T00:00:00+00:00",
                "last_error": "logon refused: bad\x1b[2Jsecret",
                "queue_depth": 3,
                "queue_oldest_seconds": 400.0,
            }
        ],
        "audit": {"healthy": False},
        "sessions": 0,
        "session_list": [],
        "hit_confirmations": {"overdue": 2},
    }
    text = format_status(data, now=3700.0)
    row = text.splitlines()[1].split()
    assert row[:4] == ["state", "state", "auth_failed", "00:00:00Z"]
    assert "(1h01m ago)" in text and " 3 " in text and "6m40s" in text
    assert "\x1b" not in text and "bad?[2Jsecret" in text
    assert "audit: FAILING" in text
    assert "hit confirmations overdue: 2" in text


def test_new_tls_files_in_place_rebuild_the_link() -> None:
    """Same paths, new certificate content: the link is rebuilt (changed), since its TLS
    context was made from the old files."""
    plan = plan_links([cfg("n")], [cfg("n")], {"n": "s"}, {"n": "s"}, {"n": "old"}, {"n": "new"})
    assert plan.changed == ("n",) and plan.unchanged == ()


def test_metrics_follow_added_and_removed_links(tmp_path: Path) -> None:
    """An added link's series exist from the reload on (link down = 0); a removed link's
    series go away, so no alert fires for a link that no longer exists; status rows carry
    the teletype queue gauges."""
    metrics = Metrics()
    links = Links(tmp_path, ["a", "b"], metrics=metrics)
    links.manager.startService()
    links.up("a", "b")
    metrics.queue_oldest_seconds.labels(link="a").set(12.34)
    links.manager.apply(links.manager.prepare([links.config("a"), links.config("c")]))
    links.clock.advance(0)
    value = metrics.registry.get_sample_value
    assert value("switch_link_up", {"link": "a"}) == 1.0
    assert value("switch_link_up", {"link": "b"}) is None
    assert value("switch_queue_depth", {"link": "b"}) is None
    assert value("switch_link_up", {"link": "c"}) == 0.0
    row = links.manager.status()[0]
    assert row["name"] == "a" and row["queue_oldest_seconds"] == 12.3
