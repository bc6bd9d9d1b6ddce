"""AuditLog: records, chain, checkpoints, shutdown checkpoint, retention, failure and recovery."""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import DeferredList
from twisted.internet.task import Clock

from switch.audit.chain import (
    GENESIS,
    AuditKeyError,
    canonical,
    chain_step,
    load_public_key,
    load_signing_key,
    verify_checkpoint,
)
from switch.audit.interface import AuditUnavailable, CompanionWrite
from switch.audit.log import AuditLog
from switch.audit.verify import verify
from switch.config import AuditConfig
from switch.mailbox import Mailbox
from switch.store import SQLiteStore
from switch.store.sqlite import connect_reader
from switch.utc import TS_FORMAT, format_ts

DAY = 86400.0


def make_keys(keys: Path) -> None:
    """Write an audit keypair the way `switchctl pki init` does (PKCS8 0600 + SPKI)."""
    keys.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    path = keys / "audit-signing.key"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(
        fd,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    os.close(fd)
    (keys / "audit-signing.pub").write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


@dataclass
class Env:
    tmp: Path
    store: SQLiteStore
    audit: AuditLog
    clock: Clock
    failures: list[int]

    @property
    def checkpoints(self) -> Path:
        return self.tmp / "audit" / "checkpoints.jsonl"

    def verify(self) -> Any:
        conn = connect_reader(self.store.path)
        try:
            lines = self.checkpoints.read_text().splitlines() if self.checkpoints.exists() else []
            return verify(conn, load_public_key(self.tmp / "keys" / "audit-signing.pub"), lines)
        finally:
            conn.close()


async def open_env(tmp: Path, reactor: Any, **kwargs: Any) -> Env:
    make_keys(tmp / "keys")
    clock = Clock()
    clock.advance(1_800_000_000.0)  # 2027-01-15
    store = SQLiteStore(reactor, tmp / "switch.db", connect=kwargs.pop("store_connect", None))
    await store.start()
    failures: list[int] = []
    config = AuditConfig(
        keys_dir=tmp / "keys",
        checkpoints=tmp / "audit" / "checkpoints.jsonl",
        checkpoint_every=kwargs.pop("checkpoint_every", 1000),
        checkpoint_seconds=kwargs.pop("checkpoint_seconds", 60.0),
        retention_days=kwargs.pop("retention_days", 365),
    )
    audit = AuditLog.from_config(
        config, store, reactor, clock=clock, on_failure=lambda: failures.append(1), **kwargs
    )
    await audit.start()
    return Env(tmp, store, audit, clock, failures)


async def close_env(env: Env) -> None:
    await env.audit.stop()
    await env.store.stop()


@pytest_twisted.async_yield_fixture
async def env(tmp_path: Path, reactor: Any) -> AsyncIterator[Env]:
    e = await open_env(tmp_path, reactor)
    yield e
    await close_env(e)


def rows(env: Env) -> list[tuple[int, str, str, bytes]]:
    conn = sqlite3.connect(env.store.path)
    try:
        return [
            (s, t, r, bytes(h))
            for s, t, r, h in conn.execute("SELECT seq, ts, record, hash FROM audit_log")
        ]
    finally:
        conn.close()


@pytest_twisted.ensureDeferred
async def test_record_fires_with_seq_and_chains(env: Env) -> None:
    """record() fires with consecutive seqs after commit; each row is the canonical JSON
    of {event, ts, fields} and hashes onto the previous one from 32 zero bytes."""
    env.clock.advance(0.125)
    s1 = await env.audit.record("session.logon", {"terminal": "DISPATCH1", "operator": "demo"})
    s2 = await env.audit.record(
        "inquiry", {"id": "Q1", "subject": "person", "fields": {"name": "DOE, JOHN"}}
    )
    assert (s1, s2) == (1, 2)
    got = rows(env)
    first = json.loads(got[0][2])
    assert first == {
        "event": "session.logon",
        "ts": "2027-01-15T08:00:00.125000Z",
        "terminal": "DISPATCH1",
        "operator": "demo",
    }
    assert got[0][1] == first["ts"]
    assert got[0][2] == canonical(first)
    h1 = chain_step(GENESIS, 1, got[0][2])
    assert got[0][3] == h1
    assert got[1][3] == chain_step(h1, 2, got[1][2])
    assert env.verify().ok


@pytest_twisted.ensureDeferred
async def test_companion_writes_commit_with_the_record_or_not_at_all(env: Env) -> None:
    """A record's companion writes (a reply's mailbox items) are committed in its
    transaction: both exist, and subscribers see the items, only after the commit; when
    the transaction fails, neither the record nor the items exist and nothing is pushed."""
    box = Mailbox(env.store, env.clock)
    pushed: list[tuple[int, str]] = []
    box.subscribe("DISPATCH1", lambda item: pushed.append((item.seq, item.kind)))
    writes = [
        box.prepare("DISPATCH1", "reply", {"n": 1}),
        box.prepare("DISPATCH1", "inquiry_complete", {"n": 2}),
    ]
    d = env.audit.record("reply", {"terminal": "DISPATCH1"}, writes)
    assert pushed == []
    assert await d == 1
    assert pushed == [(1, "reply"), (2, "inquiry_complete")]

    def breaks(_conn: Any) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    doomed = [box.prepare("DISPATCH1", "reply", {"n": 3}), CompanionWrite(breaks, print)]
    with pytest.raises(AuditUnavailable):
        await env.audit.record("reply", {"terminal": "DISPATCH1"}, doomed)
    assert len(rows(env)) == 1
    items = await box.since("DISPATCH1", 0, 10)
    assert [i.item for i in items] == [{"n": 1}, {"n": 2}]
    assert pushed == [(1, "reply"), (2, "inquiry_complete")]
    env.clock.advance(5)  # the probe records the outage; the chain is whole
    await env.store.flush()
    assert env.verify().ok


@pytest_twisted.ensureDeferred
async def test_non_ascii_kept_verbatim(env: Env) -> None:
    """Canonical JSON keeps non-ASCII text as UTF-8 (ensure_ascii=False) and verifies."""
    await env.audit.record("teletype.in", {"text": "café Ω"})
    assert "café Ω" in rows(env)[0][2]
    assert env.verify().ok


@settings(max_examples=3000, deadline=None)
@given(
    st.one_of(
        st.floats(min_value=-62135596800.0 + 86400, max_value=253402300799.0),
        # whole seconds plus microseconds, and halfway between two microseconds
        st.builds(
            lambda s, us, half: s + us / 1e6 + (5e-7 if half else 0.0),
            st.integers(0, 4 * 10**9),
            st.integers(0, 999_999),
            st.booleans(),
        ),
    )
)
def test_format_ts_is_strftime_text(seconds: float) -> None:
    """format_ts keeps the text of the current second: it must still give exactly
    strftime's text, rounding to the microsecond (and carrying into the next second)
    as datetime.fromtimestamp does."""
    import datetime as dt

    assert format_ts(seconds) == dt.datetime.fromtimestamp(seconds, dt.UTC).strftime(TS_FORMAT)


@pytest.mark.parametrize(
    "fields",
    [
        {"x": 1.5},
        {"x": [1, {"y": 2.0}]},
        {"x": ["a", 2.5]},
        {"x": ["a", b"raw"]},
        {"x": [None, ["a"]], "y": {"z": [1.5]}},
        {"event": "x"},
        {"ts": "x"},
        {"x": b"raw"},
        {"x": {1: 2}},
        {1: ["a"]},
    ],
)
@pytest_twisted.ensureDeferred
async def test_bad_fields_refused(env: Env, fields: dict[str, Any]) -> None:
    """Floats, reserved keys and non-JSON values are refused (a caller bug, not an
    outage): nothing is written and the log stays healthy."""
    with pytest.raises((TypeError, ValueError)):
        await env.audit.record("inquiry", fields)
    assert rows(env) == [] and env.audit.healthy


@pytest_twisted.ensureDeferred
async def test_group_commit_many_records_few_commits(env: Env) -> None:
    """Concurrent records share commits; seqs are exactly 1..N with a valid chain."""
    before = env.store.commits
    ds = [env.audit.record("delivery", {"id": f"M{i}"}) for i in range(300)]
    results = await DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    assert sorted(v for _, v in results) == list(range(1, 301))
    assert env.store.commits - before < 60
    assert env.verify().ok


@pytest_twisted.ensureDeferred
async def test_checkpoint_every_n_records(tmp_path: Path, reactor: Any) -> None:
    """Every N records a signed checkpoint of the newest link is appended."""
    env = await open_env(tmp_path, reactor, checkpoint_every=5)
    try:
        for i in range(12):
            await env.audit.record("delivery", {"id": f"M{i}"})
        await env.store.flush()
        await env.audit.checkpoint()  # barrier: checkpoint writes are FIFO
        key = load_public_key(tmp_path / "keys" / "audit-signing.pub")
        cps = [verify_checkpoint(key, line) for line in env.checkpoints.read_text().splitlines()]
        assert [c.seq for c in cps] == [5, 10, 12]
        assert cps[0].hash == rows(env)[4][3]
    finally:
        await close_env(env)


@pytest_twisted.ensureDeferred
async def test_checkpoint_every_t_seconds_and_at_shutdown(tmp_path: Path, reactor: Any) -> None:
    """A checkpoint is written after T seconds if there are new records, none when idle,
    and a shutdown checkpoint is the last line after a clean stop."""
    env = await open_env(tmp_path, reactor, checkpoint_seconds=10.0)
    await env.audit.record("session.logon", {"operator": "demo"})
    env.clock.advance(10)
    await env.audit.checkpoint()  # waits behind the timer's write
    env.clock.advance(10)  # idle: nothing new
    await env.audit.record("session.logoff", {"operator": "demo"})
    await close_env(env)
    lines = [json.loads(x) for x in env.checkpoints.read_text().splitlines()]
    assert [(c["seq"], c["kind"]) for c in lines] == [(1, "checkpoint"), (2, "shutdown")]
    result = env.verify()
    assert result.ok and result.last_checkpoint is not None
    assert result.last_checkpoint.kind == "shutdown"


@pytest_twisted.ensureDeferred
async def test_restart_continues_chain(tmp_path: Path, reactor: Any) -> None:
    """After a restart the chain continues from the stored head."""
    env = await open_env(tmp_path, reactor)
    await env.audit.record("session.logon", {"operator": "demo"})
    await close_env(env)
    store = SQLiteStore(reactor, tmp_path / "switch.db")
    await store.start()
    audit = AuditLog.from_config(
        AuditConfig(keys_dir=tmp_path / "keys", checkpoints=env.checkpoints), store, reactor
    )
    await audit.start()
    assert await audit.record("session.logoff", {"operator": "demo"}) == 2
    await audit.stop()
    await store.stop()
    assert env.verify().ok and env.verify().count == 2


def test_signing_key_must_be_private(tmp_path: Path) -> None:
    """A signing key readable by group or others is refused; a missing one too."""
    make_keys(tmp_path)
    assert load_signing_key(tmp_path) is not None
    os.chmod(tmp_path / "audit-signing.key", 0o640)
    with pytest.raises(AuditKeyError, match="chmod 600"):
        load_signing_key(tmp_path)
    with pytest.raises(AuditKeyError, match="not found"):
        load_signing_key(tmp_path / "nowhere")


@pytest_twisted.ensureDeferred
async def test_retention_purges_and_verify_passes(tmp_path: Path, reactor: Any) -> None:
    """Retention drops the whole old seq range, leaves a signed anchor, and verify
    still passes; new records chain on; a purge of everything still verifies."""
    env = await open_env(tmp_path, reactor, retention_days=10, retention_check_seconds=0)
    try:
        for i in range(5):
            await env.audit.record("delivery", {"id": f"OLD{i}"})
        env.clock.advance(11 * DAY)
        for i in range(3):
            await env.audit.record("delivery", {"id": f"NEW{i}"})
        assert await env.audit.purge() == 5
        assert [r[0] for r in rows(env)] == [6, 7, 8]
        result = env.verify()
        assert result.ok, result.describe()
        assert result.count == 3 and result.first_seq == 6
        assert await env.audit.record("delivery", {"id": "AFTER"}) == 9
        env.clock.advance(11 * DAY)
        assert await env.audit.purge() == 4
        assert rows(env) == []
        assert env.verify().ok
        assert await env.audit.record("delivery", {"id": "LATE"}) == 10
        assert env.verify().ok, env.verify().describe()
    finally:
        await close_env(env)


@pytest_twisted.ensureDeferred
async def test_disk_full_unhealthy_then_recovers(env: Env) -> None:
    """A failed audit write fails record() with AuditUnavailable, flips healthy off and
    counts the failure; once space is back the probe writes audit.resumed by itself."""
    await env.audit.record("session.logon", {"operator": "demo"})
    pages = await env.store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await env.store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    with pytest.raises(AuditUnavailable):
        for i in range(200):
            await env.audit.record("teletype.in", {"text": "x" * 4000, "n": i})
    assert not env.audit.healthy and env.failures
    await env.store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    env.clock.advance(5)
    await env.store.flush()
    assert env.audit.healthy
    events = [json.loads(r[2])["event"] for r in rows(env)]
    assert events[-1] == "audit.resumed"
    assert env.verify().ok


@pytest_twisted.ensureDeferred
async def test_readonly_database_fails_then_recovers(tmp_path: Path, reactor: Any) -> None:
    """A database that refuses writes (SQLITE_READONLY, as after a permission change)
    fails record() with AuditUnavailable; the switch resumes by itself once writes work."""
    broken = {"on": False}

    class Flaky(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if broken["on"] and sql.startswith("BEGIN"):
                raise sqlite3.OperationalError("attempt to write a readonly database")
            return super().execute(sql, *args)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(
            tmp_path / "switch.db", isolation_level=None, check_same_thread=False, factory=Flaky
        )
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    env = await open_env(tmp_path, reactor, store_connect=connect)
    try:
        broken["on"] = True
        with pytest.raises(AuditUnavailable):
            await env.audit.record("inquiry", {"id": "Q1"})
        env.clock.advance(5)  # the probe fails too
        await env.store.flush().addErrback(lambda _: None)
        assert not env.audit.healthy and len(env.failures) == 2
        broken["on"] = False
        env.clock.advance(5)
        await env.store.flush()
        assert env.audit.healthy
        events = [json.loads(r[2]) for r in rows(env)]
        assert [e["event"] for e in events] == ["audit.resumed"]
        assert events[0]["failures"] == 2
    finally:
        await close_env(env)


@pytest_twisted.ensureDeferred
async def test_stopped_log_refuses(env: Env) -> None:
    """After stop, record() fails with AuditUnavailable."""
    await env.audit.stop()
    with pytest.raises(AuditUnavailable):
        await env.audit.record("session.logon", {})
