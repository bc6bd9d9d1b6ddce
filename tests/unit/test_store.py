"""The SQLite store: durability settings, group commit, per-job failure, the tables' operations."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import DeferredList
from twisted.internet.task import deferLater

from switch.audit.chain import GENESIS, canonical, chain_step
from switch.store import (
    InquiryRecord,
    OperatorLock,
    SQLiteStore,
    StoreError,
    TeletypeItem,
)
from switch.store.interface import AUDIT_INDEX_COLUMNS, AuditAppend
from switch.store.schema import SCHEMA_VERSION
from switch.store.sqlite import (
    _MAILBOX_INSERT,
    _append_audit,
    _insert,
    connect_reader,
    connect_writer,
)


@pytest_twisted.async_yield_fixture
async def store(tmp_path: Path, reactor: Any) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(reactor, tmp_path / "var" / "switch.db")
    await s.start()
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_file_mode_wal_full_and_version(store: SQLiteStore) -> None:
    """The database is created 0600, in WAL mode, synchronous FULL, at the current schema."""
    assert stat.S_IMODE(os.stat(store.path).st_mode) == 0o600

    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA user_version").fetchone()[0],
        )

    mode, sync, version = await store.write(pragmas)
    assert (mode, sync, version) == ("wal", 2, SCHEMA_VERSION)


@pytest_twisted.ensureDeferred
async def test_existing_loose_file_is_tightened(tmp_path: Path, reactor: Any) -> None:
    """A database file readable by others is made 0600 at start."""
    path = tmp_path / "switch.db"
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    s = SQLiteStore(reactor, path)
    await s.start()
    await s.stop()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest_twisted.ensureDeferred
async def test_newer_schema_is_refused(tmp_path: Path, reactor: Any) -> None:
    """A database from a newer version of the software is refused, not downgraded."""
    path = tmp_path / "switch.db"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    s = SQLiteStore(reactor, path)
    with pytest.raises(StoreError, match="newer"):
        await s.start()
    with pytest.raises(StoreError):
        await s.remember_duplicates([("local", "X1")], 0.0)
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_reopen_keeps_data(tmp_path: Path, reactor: Any) -> None:
    """Data survives a stop and a restart; migrations do not run twice."""
    path = tmp_path / "switch.db"
    s = SQLiteStore(reactor, path)
    await s.start()
    seq = await s.mailbox_put("DISPATCH1", "reply", {"text": "hello"}, 10.0)
    await s.stop()
    s2 = SQLiteStore(reactor, path)
    await s2.start()
    items = await s2.mailbox_since("DISPATCH1", 0, 10)
    await s2.stop()
    assert [(i.seq, i.item) for i in items] == [(seq, {"text": "hello"})]


@pytest_twisted.ensureDeferred
async def test_group_commit_batches(store: SQLiteStore) -> None:
    """Many concurrent writes are committed in far fewer transactions than writes."""
    before = store.commits
    ds = [store.remember_duplicates([("local", f"ID{i}")], 1.0) for i in range(500)]
    results = await DeferredList(ds, fireOnOneErrback=True, consumeErrors=True)
    assert all(ok and value == 1 for ok, value in results)
    assert 1 <= store.commits - before < 100


@pytest_twisted.ensureDeferred
async def test_failed_job_fails_only_itself(store: SQLiteStore) -> None:
    """A job that raises is rolled back alone; its batch neighbours commit."""

    def bad(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO duplicates VALUES ('local', 'BAD', 1.0)")
        raise ValueError("boom")

    d1 = store.remember_duplicates([("local", "A")], 1.0)
    d2 = store.write(bad)
    d3 = store.remember_duplicates([("local", "B")], 1.0)
    assert await d1 == 1
    with pytest.raises(ValueError):
        await d2
    assert await d3 == 1
    rows = await store.read(
        lambda c: [r[0] for r in c.execute("SELECT id FROM duplicates ORDER BY id")]
    )
    assert rows == ["A", "B"]


@pytest_twisted.ensureDeferred
async def test_writes_of_one_reactor_turn_share_a_commit(store: SQLiteStore) -> None:
    """Jobs submitted in one turn reach the writer together: one commit for all, however
    fast the writer thread wakes up after the first."""
    for round_ in range(20):
        before = store.commits
        ds = [store.append_audit(_audit_entry(round_))]
        time.sleep(0.002)  # the rest of the turn's work, the GIL released meanwhile
        ds.append(store.mailbox_put("DISPATCH1", "reply", {"n": round_}, 1.0))
        ds.append(store.remember_duplicates([("local", f"R{round_}")], 1.0))
        await DeferredList(ds, fireOnOneErrback=True)
        assert store.commits - before == 1


@pytest_twisted.ensureDeferred
async def test_commit_interval_gathers_what_arrives_within_it(tmp_path: Path, reactor: Any) -> None:
    """Writes arriving within the commit interval of the last commit wait and share the
    next one; without an interval each would commit on its own."""
    for interval, commits in ((0.3, 1), (0.0, 2)):
        store = SQLiteStore(reactor, tmp_path / f"i{interval}.db", commit_interval=interval)
        await store.start()
        try:
            await store.remember_duplicates([("local", "A")], 1.0)
            before = store.commits
            first = store.remember_duplicates([("local", "B")], 1.0)
            await deferLater(reactor, 0.05, lambda: None)
            second = store.remember_duplicates([("local", "C")], 1.0)
            await DeferredList([first, second], fireOnOneErrback=True)
            assert store.commits - before == commits
        finally:
            await store.stop()


@pytest_twisted.ensureDeferred
async def test_commit_interval_gathers_after_a_quiet_spell_too(
    tmp_path: Path, reactor: Any
) -> None:
    """The first write after a quiet spell also waits out the interval (from its own
    arrival), so a second one arriving within it shares the commit; the interval is
    the longest a write waits for its commit to start."""
    store = SQLiteStore(reactor, tmp_path / "q.db", commit_interval=0.3)
    await store.start()
    try:
        await store.remember_duplicates([("local", "A")], 1.0)
        await deferLater(reactor, 0.4, lambda: None)  # quiet: longer than the interval
        before = store.commits
        started = reactor.seconds()
        first = store.remember_duplicates([("local", "B")], 1.0)
        await deferLater(reactor, 0.05, lambda: None)
        second = store.remember_duplicates([("local", "C")], 1.0)
        await DeferredList([first, second], fireOnOneErrback=True)
        assert store.commits - before == 1
        assert reactor.seconds() - started >= 0.3
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_write_that_does_not_gather_commits_at_once(tmp_path: Path, reactor: Any) -> None:
    """``gather=False`` (a lone write that something waits for): after a quiet spell
    its commit starts at once instead of waiting the commit interval for company; the
    interval after the last commit still holds."""
    store = SQLiteStore(reactor, tmp_path / "g.db", commit_interval=2.0)
    await store.start()
    try:
        await deferLater(reactor, 0.1, lambda: None)  # no commit has started yet
        started = reactor.seconds()
        assert await store.write(lambda c: 1, gather=False) == 1
        assert reactor.seconds() - started < 2.0  # did not wait the interval
        later = reactor.seconds()
        second = store.write(lambda c: 2, gather=False)  # within 2 s of the last commit
        assert await second == 2
        assert reactor.seconds() - later >= 1.5
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_write_that_does_not_gather_ends_the_wait(tmp_path: Path, reactor: Any) -> None:
    """A commit waiting out the interval for company starts as soon as a write arrives
    that nothing will join (an inquiry's last answer), and takes both writes."""
    store = SQLiteStore(reactor, tmp_path / "e.db", commit_interval=2.0)
    await store.start()
    try:
        await deferLater(reactor, 0.1, lambda: None)
        before = store.commits
        started = reactor.seconds()
        first = store.write(lambda c: 1)  # gathers: would wait 2 s
        await deferLater(reactor, 0.2, lambda: None)
        assert not first.called
        last = store.write(lambda c: 2, gather=False)
        assert await DeferredList([first, last], fireOnOneErrback=True) == [(True, 1), (True, 2)]
        assert store.commits - before == 1
        assert reactor.seconds() - started < 2.0
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_one_prompt_write_makes_its_turn_prompt(tmp_path: Path, reactor: Any) -> None:
    """Gathering only saves commits; a write that does not gather is waited for. So in
    one reactor turn, a gathering write and a prompt one commit together at once."""
    store = SQLiteStore(reactor, tmp_path / "t.db", commit_interval=2.0)
    await store.start()
    try:
        await deferLater(reactor, 0.1, lambda: None)
        started = reactor.seconds()
        ds = [store.write(lambda c: 1), store.write(lambda c: 2, gather=False)]
        assert await DeferredList(ds, fireOnOneErrback=True) == [(True, 1), (True, 2)]
        assert reactor.seconds() - started < 2.0
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_a_prompt_write_goes_to_the_writer_within_its_turn(
    tmp_path: Path, reactor: Any
) -> None:
    """A write that does not gather goes to the writer thread at once, with the turn's
    writes before it (submission order kept), not at the start of the next turn: on a
    busy reactor the rest of a turn can take milliseconds. Writes after it in the same
    turn go at the next turn, as usual."""
    store = SQLiteStore(reactor, tmp_path / "p.db", commit_interval=0.3)
    await store.start()
    try:
        await deferLater(reactor, 0.1, lambda: None)
        before = store.commits
        order: list[int] = []
        first = store.write(lambda c: order.append(1))
        prompt = store.write(lambda c: order.append(2), gather=False)
        after = store.write(lambda c: order.append(3))
        deadline = time.monotonic() + 10
        while store.commits == before and time.monotonic() < deadline:
            time.sleep(0.01)  # still the same turn: the reactor does not run meanwhile
        assert store.commits == before + 1
        assert order == [1, 2]
        await DeferredList([first, prompt, after], fireOnOneErrback=True)
        assert order == [1, 2, 3]
        assert store.commits == before + 2
    finally:
        await store.stop()


def _audit_entry(n: int) -> AuditAppend:
    record = canonical({"event": "test", "ts": "2026-11-29T00:00:00.000000Z", "n": n})
    index = dict.fromkeys(AUDIT_INDEX_COLUMNS)
    return AuditAppend("2026-11-29T00:00:00.000000Z", record, index, chain_step)


@pytest_twisted.ensureDeferred
async def test_audit_chain_survives_failing_jobs_in_its_batch(store: SQLiteStore) -> None:
    """The writer remembers the chain head within a transaction. A job that appended a
    record and then failed is rolled back, so the next record must link to the row
    before it, not to the undone one: the chain stays whole and gap-free."""

    def bad(conn: sqlite3.Connection) -> None:
        _append_audit(conn, _audit_entry(-1))
        raise ValueError("boom")

    ds = []
    for n in range(300):
        ds.append(store.append_audit(_audit_entry(n)))
        if n % 7 == 3:
            ds.append(store.write(bad))
    before = store.commits
    results = await DeferredList(ds, consumeErrors=True)
    assert store.commits - before < 150  # batches did hold several jobs
    assert sum(1 for ok, _ in results if not ok) == len(range(3, 300, 7))
    rows = await store.read(
        lambda c: list(c.execute("SELECT seq, record, hash FROM audit_log ORDER BY seq"))
    )
    assert [seq for seq, _, _ in rows] == list(range(1, 301))
    prev = GENESIS
    for seq, record, digest in rows:
        assert bytes(digest) == chain_step(prev, seq, record)
        prev = bytes(digest)
    assert sorted(json.loads(r)["n"] for _, r, _ in rows) == list(range(300))


def _traced_store(reactor: Any, path: Path, statements: list[str]) -> SQLiteStore:
    """A store whose writer connection records every statement it runs."""

    def connect() -> sqlite3.Connection:
        conn = connect_writer(path)
        conn.set_trace_callback(statements.append)
        return conn

    return SQLiteStore(reactor, path, connect=connect)


@pytest_twisted.ensureDeferred
async def test_a_batch_inserts_one_statement_per_table(tmp_path: Path, reactor: Any) -> None:
    """The writer holds back the single-row INSERTs of a batch and runs them as one
    multi-row statement per table (up to 500 rows each; 600 here): every statement costs the
    writer thread a wait for the GIL. What is written is what one row at a time wrote:
    mailbox seqs in AUTOINCREMENT order, a whole audit chain, the last inquiry state."""
    statements: list[str] = []
    store = _traced_store(reactor, tmp_path / "switch.db", statements)
    await store.start()
    try:
        await store.mailbox_put("T", "reply", {"n": -1}, 1.0)  # seq 1, an earlier commit
        statements.clear()
        before = store.commits
        ds: list[Any] = []
        for n in range(600):
            ds.append(store.append_audit(_audit_entry(n)))
            ds.append(store.mailbox_put("T", "reply", {"n": n}, 1.0))
            state = {"n": n}
            ds.append(store.save_inquiry(InquiryRecord(f"Q{n % 50}", "T", 1.0, state), 2.0))
        results = await DeferredList(ds, fireOnOneErrback=True)
        assert store.commits - before == 1
        inserts = [x.split(" (")[0] for x in statements if x.startswith("INSERT")]
        assert (
            sorted(inserts)
            == ["INSERT INTO audit_log"] * 2
            + ["INSERT INTO inquiries"] * 2
            + ["INSERT INTO mailbox"] * 2
        )
        assert [v for _, v in results[1::3]] == list(range(2, 602))  # mailbox seqs
        items = await store.mailbox_since("T", 1, 1000)
        assert [(i.seq, i.item["n"]) for i in items] == [(n + 2, n) for n in range(600)]
        assert await store.mailbox_put("T", "reply", {"n": 600}, 1.0) == 602
        rows = await store.read(
            lambda c: list(c.execute("SELECT seq, record, hash FROM audit_log ORDER BY seq"))
        )
        prev = GENESIS
        for seq, record, digest in rows:
            assert bytes(digest) == chain_step(prev, seq, record)
            prev = bytes(digest)
        assert len(rows) == 600
        saved = await store.load_inquiry("Q7")
        assert saved is not None and saved.state == {"n": 557}  # the batch's last write
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_jobs_read_rows_held_by_earlier_jobs(store: SQLiteStore) -> None:
    """A held row is written before any other statement runs, so a later job of the
    same batch sees it."""

    def count(conn: sqlite3.Connection) -> int:
        return int(conn.execute("SELECT count(*) FROM mailbox").fetchone()[0])

    ds = [store.mailbox_put("T", "reply", {"n": n}, 1.0) for n in range(3)]
    seen = store.write(count)
    await DeferredList(ds, fireOnOneErrback=True)
    assert await seen == 3


@pytest_twisted.ensureDeferred
async def test_a_bad_held_row_fails_only_its_job(store: SQLiteStore) -> None:
    """A held row that breaks a constraint fails when the batch flushes; the batch runs
    again job by job and only the job that held it fails. Mailbox seqs handed out in
    the failed attempt are handed out again, so none is skipped or doubled."""
    first = await store.mailbox_put("T", "reply", {"n": 0}, 1.0)

    def clash(conn: sqlite3.Connection) -> None:
        _insert(conn, _MAILBOX_INSERT, "", (first, "T", "reply", "{}", 1.0))

    ds = [store.mailbox_put("T", "reply", {"n": 1}, 1.0), store.write(clash)]
    ds.append(store.mailbox_put("T", "reply", {"n": 2}, 1.0))
    results = await DeferredList(ds, consumeErrors=True)
    assert [ok for ok, _ in results] == [True, False, True]
    assert results[1][1].check(StoreError)
    assert [results[0][1], results[2][1]] == [first + 1, first + 2]
    items = await store.mailbox_since("T", 0, 10)
    assert [(i.seq, i.item) for i in items] == [
        (first, {"n": 0}), (first + 1, {"n": 1}), (first + 2, {"n": 2})
    ]  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_many_duplicates_in_one_job(store: SQLiteStore) -> None:
    """More rows than one multi-row statement takes are written in chunks and counted."""
    entries = [("local", f"ID{i}") for i in range(1234)]
    assert await store.remember_duplicates(entries, 1.0) == 1234
    assert await store.remember_duplicates([*entries[:600], ("local", "NEW")], 1.0) == 1


@pytest_twisted.ensureDeferred
async def test_failed_commit_fails_the_batch(tmp_path: Path, reactor: Any) -> None:
    """When COMMIT fails, every job of the batch fails with StoreError and nothing is kept."""
    path = tmp_path / "switch.db"
    fail_commit = {"on": False}

    class Flaky(sqlite3.Connection):
        def execute(self, sql: str, *args: Any) -> sqlite3.Cursor:  # type: ignore[override]
            if fail_commit["on"] and sql == "COMMIT":
                raise sqlite3.OperationalError("disk I/O error")
            return super().execute(sql, *args)

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, factory=Flaky)
        conn.execute("PRAGMA journal_mode = WAL")
        return conn

    s = SQLiteStore(reactor, path, connect=connect)
    await s.start()
    fail_commit["on"] = True
    ds = [s.remember_duplicates([("local", f"X{i}")], 1.0) for i in range(5)]
    results = await DeferredList(ds, consumeErrors=True)
    assert all(not ok and r.check(StoreError) for ok, r in results)
    fail_commit["on"] = False
    assert await s.remember_duplicates([("local", "X0")], 1.0) == 1  # nothing was kept
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_disk_full_then_recovers(store: SQLiteStore) -> None:
    """A full disk (SQLITE_FULL via max_page_count) fails writes with StoreError;
    writes succeed again once space is back."""
    pages = await store.write(lambda c: c.execute("PRAGMA page_count").fetchone()[0])
    await store.write(lambda c: c.execute(f"PRAGMA max_page_count = {pages}"))
    big = "x" * 5000
    with pytest.raises(StoreError, match="full"):
        for i in range(50):
            await store.mailbox_put("T", "k", {"text": big, "i": i}, 1.0)
    await store.write(lambda c: c.execute("PRAGMA max_page_count = 1073741823"))
    assert await store.mailbox_put("T", "k", {"text": "ok"}, 1.0) > 0


@pytest_twisted.ensureDeferred
async def test_stopped_store_refuses(tmp_path: Path, reactor: Any) -> None:
    """After stop, reads and writes fail with StoreError instead of hanging."""
    s = SQLiteStore(reactor, tmp_path / "switch.db")
    await s.start()
    await s.stop()
    with pytest.raises(StoreError):
        await s.remember_duplicates([("local", "A")], 1.0)
    with pytest.raises(StoreError):
        await s.load_locks()


@pytest_twisted.ensureDeferred
async def test_teletype_order_states_and_expiry(store: SQLiteStore) -> None:
    """Per link: urgent before routine, then FIFO; only due items; sent ones requeue;
    expired ones are marked and returned."""

    def item(i: str, prio: str, link: str = "state", expires: float = 1000.0) -> TeletypeItem:
        return TeletypeItem(id=i, link=link, priority=prio, message={"t": i}, expires=expires)  # type: ignore[arg-type]

    for it in (
        item("M1-1", "routine"),
        item("M2-1", "urgent"),
        item("M3-1", "routine"),
        item("M4-1", "urgent", link="local"),
        item("M5-1", "routine", expires=50.0),
    ):
        await store.enqueue_teletype(it, now=10.0)
    got = await store.next_teletype("state", 10, now=20.0)
    assert [t.id for t in got] == ["M2-1", "M1-1", "M3-1", "M5-1"]
    assert got[0].message == {"t": "M2-1"} and got[0].created == 10.0
    assert await store.mark_teletype("M2-1", "sent", 21.0, attempts=1) is True
    assert await store.mark_teletype("NOPE", "sent", 21.0) is False
    assert await store.mark_teletype("M1-1", "queued", 21.0, next_attempt=500.0)
    assert [t.id for t in await store.next_teletype("state", 10, now=30.0)] == ["M3-1", "M5-1"]
    assert await store.requeue_sent("state", 40.0) == 1
    sent_again = await store.get_teletype("M2-1")
    assert sent_again is not None and sent_again.state == "queued" and sent_again.attempts == 1
    stats = await store.queue_stats()
    assert stats == {"state": (4, 10.0), "local": (1, 10.0)}
    expired = await store.expire_teletype(now=60.0)
    assert [t.id for t in expired] == ["M5-1"]
    assert (await store.get_teletype("M5-1")).state == "expired"  # type: ignore[union-attr]
    assert await store.get_teletype("NOPE") is None


@pytest_twisted.ensureDeferred
async def test_mailbox_put_since_ack(store: SQLiteStore) -> None:
    """Mailbox seqs increase; since() resumes after a seq; ack only for the owning terminal."""
    a = await store.mailbox_put("T1", "reply", {"n": 1}, 1.0)
    b = await store.mailbox_put("T2", "reply", {"n": 2}, 1.0)
    c = await store.mailbox_put("T1", "teletype", {"n": 3}, 2.0)
    assert a < b < c
    assert [i.seq for i in await store.mailbox_since("T1", 0, 10)] == [a, c]
    assert [i.item for i in await store.mailbox_since("T1", a, 10)] == [{"n": 3}]
    assert await store.mailbox_ack("T2", a, 5.0) is False
    assert await store.mailbox_ack("T1", a, 5.0) is True
    assert [i.seq for i in await store.mailbox_since("T1", 0, 10, unacked_only=True)] == [c]


@pytest_twisted.ensureDeferred
async def test_duplicates_and_purges(tmp_path: Path, reactor: Any) -> None:
    """remember_duplicates counts new (link, id) pairs, not repeats; purge drops old
    duplicates (25 h), inquiries (24 h) and acked mailbox items (30 days) and keeps the rest."""
    s = SQLiteStore(reactor, tmp_path / "switch.db")
    await s.start()
    try:
        h = 3600.0
        assert await s.remember_duplicates([("local", "A")], 0.0) == 1
        assert await s.remember_duplicates([("local", "A"), ("local", "B2")], 1.0) == 1
        assert await s.remember_duplicates([("state", "A")], 1.0) == 1
        assert await s.duplicate_known("local", "A", 25 * h - 1) is True
        assert await s.duplicate_known("local", "A", 25 * h + 1) is False
        assert await s.duplicate_known("local", "B", 1.0) is False
        await s.save_inquiry(InquiryRecord("Q1", "T1", 0.0, {"replies": []}), 0.0)
        await s.save_inquiry(InquiryRecord("Q2", "T1", 20 * h, {"replies": [1]}), 20 * h)
        old = await s.mailbox_put("T1", "k", {}, 0.0)
        await s.mailbox_ack("T1", old, 0.0)
        unacked = await s.mailbox_put("T1", "k", {}, 0.0)
        counts = await s.purge(now=30 * 24 * h + 1)
        assert (counts.duplicates, counts.inquiries, counts.mailbox) == (3, 2, 1)
        assert [i.seq for i in await s.mailbox_since("T1", 0, 10)] == [unacked]
        await s.save_inquiry(InquiryRecord("Q3", "T1", 0.0, {"a": 1}), 0.0)
        await s.save_inquiry(InquiryRecord("Q3", "T1", 0.0, {"a": 2}), 1.0)
        loaded = await s.load_inquiry("Q3")
        assert loaded is not None and loaded.state == {"a": 2}
        assert (await s.purge(now=23 * h)).inquiries == 0
        assert (await s.purge(now=24 * h + 1)).inquiries == 1
        assert await s.load_inquiry("Q3") is None
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_locks_roundtrip(store: SQLiteStore) -> None:
    """Operator locks are upserted, listed and deleted."""
    await store.save_lock(OperatorLock("demo", 3, 100.0, None))
    await store.save_lock(OperatorLock("demo", 5, 100.0, 700.0))
    await store.save_lock(OperatorLock("alice", 1, 5.0, None))
    assert await store.load_locks() == [
        OperatorLock("alice", 1, 5.0, None),
        OperatorLock("demo", 5, 100.0, 700.0),
    ]
    await store.delete_lock("demo")
    assert [lk.operator for lk in await store.load_locks()] == ["alice"]


@pytest_twisted.ensureDeferred
async def test_clean_stop_leaves_one_file(tmp_path: Path, reactor: Any) -> None:
    """A clean stop folds the WAL into the database: one self-contained file remains,
    and the read-only connection of `switchctl audit` opens it."""
    s = SQLiteStore(reactor, tmp_path / "switch.db")
    await s.start()
    await s.mailbox_put("T1", "reply", {"n": 1}, 1.0)
    await s.load_locks()  # opens a reader connection too
    await s.stop()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["switch.db"]
    conn = connect_reader(tmp_path / "switch.db")
    assert conn.execute("SELECT COUNT(*) FROM mailbox").fetchone()[0] == 1
    conn.close()
