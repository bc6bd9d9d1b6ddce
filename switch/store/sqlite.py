"""The SQLite store: one writer thread with group commit, a small pool of readers.

Why this shape (DESIGN §7): a commit in WAL mode with ``synchronous=FULL`` costs one
fsync, which is milliseconds on real disks. Doing it on the reactor would stall every
connection; doing one per record would cap the switch at a few hundred records a second.
So every write is a *job* (a function of the connection) put on a queue; the writer
thread takes all pending jobs, runs them in one transaction (if one fails, the batch runs
again with a SAVEPOINT per job, so that the failing job rolls back alone and fails only
its own Deferred), commits once, and only then fires the callers' Deferreds on the
reactor with ``callFromThread``. If the commit fails, every
job of the batch fails: nothing was durable. Reads go to a ``ThreadPool`` of read-only
connections so a slow search never delays a commit.
"""

from __future__ import annotations

import json
import os
import queue
import sqlite3
import stat
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar, cast

from twisted.internet.defer import Deferred, fail
from twisted.internet.interfaces import (
    IDelayedCall,
    IReactorCore,
    IReactorFromThreads,
    IReactorTime,
)
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from switch.jsontext import canonical

from .interface import (
    AUDIT_INDEX_COLUMNS,
    AuditAppend,
    AuditHead,
    AuditQuery,
    AuditRow,
    InquiryRecord,
    MailboxItem,
    OperatorLock,
    PurgeCounts,
    Store,
    StoreError,
    StoreJob,
    TeletypeItem,
    TeletypeState,
)
from .schema import MIGRATIONS, SCHEMA_VERSION
from .teletype import ConfirmationRecord, InterceptRecord, MessageRecord, RouteRecord

T = TypeVar("T")

_PRIORITY: Final = {"urgent": 0, "routine": 1}
_PRIORITY_NAME: Final = {0: "urgent", 1: "routine"}
_MAX_BATCH: Final = 2000
_BUSY_TIMEOUT_MS: Final = 10_000
_GENESIS: Final = bytes(32)


def _create_private(path: Path) -> None:
    """Create the database file 0600 before SQLite does (SQLite would honour the umask),
    and tighten an existing one: it holds criminal-justice data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) & 0o077:
            os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


class _Unknown:
    """The audit head has not been read in this transaction."""


_UNKNOWN: Final = _Unknown()


#: Rows per multi-row INSERT, and SQLite's limit on ? parameters per statement.
_MAX_ROWS_PER_INSERT: Final = 500
_MAX_PARAMETERS: Final = 32766


class WriterConnection(sqlite3.Connection):
    """The write connection. Within the open transaction it remembers the audit chain's
    head and the next mailbox seq (a batch reads each once, not once per row), and it
    holds back the single-row INSERTs of the hot path (:func:`_insert`) to run them as
    one multi-row statement per table. Python's sqlite3 releases and re-takes the GIL
    around every statement, and while the reactor thread is busy every re-take waits for
    it: at 700 inquiries/s fifteen one-row statements per inquiry kept this thread
    waiting for most of its wall time and the commits queued behind it.

    Any other statement flushes the held rows first, so a job reads what earlier jobs
    wrote; ``ROLLBACK`` and ``ROLLBACK TO`` discard them with the work they belonged to.
    The writer forgets everything whenever a job or a transaction is rolled back, so
    what is remembered always describes this transaction. Only the audit head is
    forgotten at every BEGIN, as ``switchctl audit search`` appends from another
    process; the mailbox seq carries over from a commit, as only this connection
    writes the mailbox."""

    audit_head: AuditHead | _Unknown = _UNKNOWN
    mailbox_next: int | None = None
    _mailbox_committed: int | None = None
    _held: dict[tuple[str, str, int], list[Sequence[object]]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held = {}

    def began(self) -> None:
        """A transaction starts: what the last commit left is still true."""
        self.audit_head = _UNKNOWN
        self.mailbox_next = self._mailbox_committed
        self._held = {}

    def committed(self) -> None:
        self._mailbox_committed = self.mailbox_next

    def hold(self, head: str, tail: str, row: Sequence[object]) -> None:
        """Insert ``row`` with ``head VALUES (?, ...) tail`` at the next flush."""
        key = (head, tail, len(row))
        rows = self._held.get(key)
        if rows is None:
            self._held[key] = [row]
        else:
            rows.append(row)

    def flush(self) -> None:
        """Run the held rows, in order within each statement. On failure the rows not
        yet run are dropped too: the caller rolls the transaction (or job) back."""
        if not self._held:
            return
        held, self._held = self._held, {}
        for (head, tail, width), rows in held.items():
            one = _placeholders(width)
            per = max(1, min(_MAX_ROWS_PER_INSERT, _MAX_PARAMETERS // width))
            for start in range(0, len(rows), per):
                chunk = rows[start : start + per]
                values = one if len(chunk) == 1 else ", ".join([one] * len(chunk))
                super().execute(f"{head} VALUES {values}{tail}", [v for r in chunk for v in r])

    def forget(self) -> None:
        """After a rollback: drop everything remembered and the rows held back."""
        self.audit_head = _UNKNOWN
        self.mailbox_next = self._mailbox_committed = None
        self._held = {}

    def execute(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        if self._held:
            if sql.startswith("ROLLBACK"):
                self._held = {}
            else:
                self.flush()
        return super().execute(sql, parameters)

    def peek(self, sql: str, parameters: Any = (), /) -> sqlite3.Cursor:
        """A read that the rows held now cannot change: run without flushing them."""
        return super().execute(sql, parameters)

    def executemany(self, sql: str, parameters: Any, /) -> sqlite3.Cursor:
        self.flush()
        return super().executemany(sql, parameters)


def _forget(conn: sqlite3.Connection) -> None:
    if isinstance(conn, WriterConnection):
        conn.forget()


def _flush(conn: sqlite3.Connection) -> None:
    if isinstance(conn, WriterConnection):
        conn.flush()


def _insert(conn: sqlite3.Connection, head: str, tail: str, row: Sequence[object]) -> None:
    """``head VALUES (row) tail``: held back on the writer connection, else run now."""
    if isinstance(conn, WriterConnection):
        conn.hold(head, tail, row)
    else:
        conn.execute(f"{head} VALUES {_placeholders(len(row))}{tail}", row)


def _placeholders(width: int) -> str:
    """``(?, ?, ...)`` for one row of ``width`` values."""
    return "(" + ", ".join("?" * width) + ")"


def connect_writer(path: Path) -> sqlite3.Connection:
    """The one read-write connection: WAL, synchronous=FULL, explicit transactions."""
    _create_private(path)
    conn = sqlite3.connect(
        path,
        isolation_level=None,
        check_same_thread=False,
        factory=WriterConnection,
        cached_statements=512,  # multi-row INSERTs: one statement per row count
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise StoreError(f"cannot put the database in WAL mode (got {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def connect_reader(path: Path) -> sqlite3.Connection:
    """A read-only connection (the CLI's tools and the daemon's read pool)."""
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA query_only = ON")
    return conn


def migrate(conn: sqlite3.Connection) -> int:
    """Apply the missing migrations, each atomically with its version bump."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"database schema version {version} is newer than this software ({SCHEMA_VERSION})"
        )
    for number in range(version + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in MIGRATIONS[number - 1]:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return SCHEMA_VERSION


# --------------------------------------------------------------------------- writer


@dataclass
class _Job(Generic[T]):
    fn: Callable[[sqlite3.Connection], T]
    deferred: Deferred[T]


_STOP: Final = object()
#: What the reactor hands the writer in one go: (the monotonic time before which its
#: commit should not start, the jobs of one turn).
_Batch = tuple[float, list[_Job[Any]]]


class _Writer:
    """The writer thread and its queue. Only this thread touches the write connection."""

    def __init__(
        self,
        reactor: IReactorFromThreads,
        connect: Callable[[], sqlite3.Connection],
        on_commit: Callable[[float, int], None] | None = None,
        commit_interval: float = 0.0,
    ) -> None:
        self._reactor = reactor
        self._connect = connect
        self._on_commit = on_commit
        self._commit_interval = commit_interval
        self._last_commit = -commit_interval
        self._clock = cast(IReactorTime, reactor)
        # (not before, jobs): lists handed over whole (see submit), or the stop marker.
        self._queue: queue.SimpleQueue[_Batch | object] = queue.SimpleQueue()
        self._pending: list[_Job[Any]] = []
        self._prompt = False  # a pending job does not gather: commit it soon
        self._handover: IDelayedCall | None = None
        self._thread: threading.Thread | None = None
        self.commits = 0  # batches committed (tests, the benchmark)
        self.jobs = 0  # jobs committed

    def start(self) -> Deferred[None]:
        started: Deferred[None] = Deferred()
        self._thread = threading.Thread(
            target=self._run, args=(started,), name="store-writer", daemon=True
        )
        self._thread.start()
        return started

    def submit(self, fn: Callable[[sqlite3.Connection], T], gather: bool = True) -> Deferred[T]:
        """Queue a job. Jobs submitted in one turn of the reactor go to the thread
        together at the start of the next, so that they share a commit: handed over one
        by one, the first would wake the thread and often commit alone (a reply's audit
        record and its mailbox item in two fsyncs), and every commit costs the reactor
        another wake-up. Nothing waits on a timer: the hand-over is the next turn.
        ``gather``: the commit may wait the commit interval for what arrives meanwhile.
        A job that does not gather (something waits for it, and nothing will join it)
        goes to the thread at once, with the turn's jobs before it, to be committed as
        soon as the thread can: waiting for the next turn cost it the rest of this
        one, at 700 inquiries/s up to 4 ms (p99) before the thread even saw it."""
        d: Deferred[T] = Deferred()
        self._pending.append(_Job(fn, d))
        if not gather:
            if self._handover is not None:
                self._handover.cancel()
            self._prompt = True
            self._hand_over()
        elif self._handover is None:
            self._handover = self._clock.callLater(0, self._hand_over)
        return d

    def _hand_over(self) -> None:
        self._handover = None
        jobs, self._pending = self._pending, []
        prompt, self._prompt = self._prompt, False
        if jobs:
            wait = 0.0 if prompt else self._commit_interval
            self._queue.put((time.monotonic() + wait, jobs))

    def stop(self) -> Deferred[None]:
        """Queue the stop marker after every pending job; fires when the thread is done."""
        if self._handover is not None:
            self._handover.cancel()
        self._hand_over()
        done: Deferred[None] = Deferred()
        self._queue.put(_STOP)
        self._queue.put(done)
        return done

    # -- thread side

    def _fire(self, d: Deferred[Any], ok: bool, value: Any) -> None:
        if ok:
            self._reactor.callFromThread(d.callback, value)
        else:
            self._reactor.callFromThread(d.errback, value)

    def _run(self, started: Deferred[None]) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            migrate(conn)
        except Exception as exc:
            if conn is not None:
                conn.close()
            self._fire(started, False, _store_error(exc))
            self._drain_failed()
            return
        self._fire(started, True, None)
        done: Deferred[None] | None = None
        try:
            done = self._loop(conn)
        finally:
            # Close before reporting "stopped": the process may exit right after, and
            # as the last connection this one folds the WAL back into the database.
            try:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error:
                pass  # another process still reads (switchctl): SQLite catches up later
            conn.close()
            if done is not None:
                self._fire(done, True, None)

    def _drain_failed(self) -> None:
        """After a failed open: fail every job until stop, so no caller hangs."""
        while True:
            item = self._queue.get()
            if item is _STOP:
                done = self._queue.get()
                self._fire(cast(Deferred[None], done), True, None)
                return
            for job in cast(_Batch, item)[1]:
                self._fire(job.deferred, False, StoreError("store is not open"))

    def _loop(self, conn: sqlite3.Connection) -> Deferred[None]:
        """Commit batches until the stop marker; returns the Deferred to fire once the
        connection is closed."""
        stopping = False
        taken: deque[_Batch | object] = deque()  # off the queue, not yet committed
        while not stopping:
            if not taken:
                taken.append(self._queue.get())
            # A commit starts no sooner than the interval after its first write arrived,
            # nor within the interval after the last commit started: it gathers what
            # arrives meanwhile (an inquiry's answers from four networks then share one
            # fsync and one reactor wake-up). A write that nothing will join (gather
            # off: the inquiry record, an inquiry's last answer) ends the wait. Under
            # load the first write has usually waited out the interval during the
            # previous commit, so nothing sleeps.
            if taken[0] is not _STOP:
                start = self._start(cast(_Batch, taken[0]))
                while taken[-1] is not _STOP:
                    wait = start - time.monotonic()
                    if wait <= 0:
                        break
                    try:
                        taken.append(self._queue.get(timeout=wait))
                    except queue.Empty:
                        break
                    if taken[-1] is not _STOP:
                        start = min(start, self._start(cast(_Batch, taken[-1])))
            batch: list[_Job[Any]] = []
            while len(batch) < _MAX_BATCH:
                if not taken:
                    try:
                        taken.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                item = taken.popleft()
                if item is _STOP:
                    stopping = True
                    break
                batch.extend(cast(_Batch, item)[1])
            if batch:
                self._commit(conn, batch)
        done = cast(Deferred[None], self._queue.get())
        # Anything submitted after stop() fails instead of hanging.
        while True:
            try:
                late = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(late, tuple):
                for job in late[1]:
                    self._fire(job.deferred, False, StoreError("store is stopped"))
        return done

    def _start(self, item: _Batch) -> float:
        """When the commit of ``item`` may start: its own wish, and the interval after
        the last commit started."""
        return max(item[0], self._last_commit + self._commit_interval)

    def _commit(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> None:
        started = self._last_commit = time.monotonic()
        if not self._begin(conn, batch):
            return
        results = self._run_all(conn, batch)
        if results is None:
            # A job failed and the transaction is undone: run the batch again with a
            # savepoint per job, so that only the failing job fails. Jobs touch nothing
            # but the database, so running one twice is safe.
            if not self._begin(conn, batch):
                return
            results = self._run_isolated(conn, batch)
            if results is None:
                return
        try:
            conn.execute("COMMIT")
        except Exception as exc:
            err = _store_error(exc)
            _forget(conn)
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # already rolled back by SQLite
            for job, _, _ in results:
                self._fire(job.deferred, False, err)
            return
        if isinstance(conn, WriterConnection):
            conn.committed()
        self.commits += 1
        self.jobs += sum(1 for _, ok, _ in results if ok)
        if self._on_commit is not None:
            self._on_commit(time.monotonic() - started, len(batch))
        # One hop to the reactor for the whole batch, not one per job: under load a
        # batch holds dozens of jobs and each hop costs the reactor a wake-up.
        self._reactor.callFromThread(_fire_all, results)

    def _begin(self, conn: sqlite3.Connection, batch: list[_Job[Any]]) -> bool:
        if isinstance(conn, WriterConnection):
            conn.began()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except Exception as exc:
            _forget(conn)
            err = _store_error(exc)
            for job in batch:
                self._fire(job.deferred, False, err)
            return False
        return True

    @staticmethod
    def _run_all(
        conn: sqlite3.Connection, batch: list[_Job[Any]]
    ) -> list[tuple[_Job[Any], bool, Any]] | None:
        """Every job in the open transaction without savepoints (the usual case: none
        fails, and each savepoint costs two statements), then the rows they held back;
        None, with the transaction rolled back, as soon as anything fails."""
        results: list[tuple[_Job[Any], bool, Any]] = []
        try:
            for job in batch:
                results.append((job, True, job.fn(conn)))
            _flush(conn)
        except Exception:
            _forget(conn)
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # already rolled back by SQLite
            return None
        return results

    def _run_isolated(
        self, conn: sqlite3.Connection, batch: list[_Job[Any]]
    ) -> list[tuple[_Job[Any], bool, Any]] | None:
        """Every job under its own savepoint: a failing job fails alone. None when the
        engine rolled the whole transaction back (every job has then been failed)."""
        results: list[tuple[_Job[Any], bool, Any]] = []
        for job in batch:
            try:
                conn.execute("SAVEPOINT job")
                try:
                    value = job.fn(conn)
                    _flush(conn)  # inside its savepoint: a bad held row fails its job
                except BaseException:
                    _forget(conn)
                    if conn.in_transaction:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                    raise
                conn.execute("RELEASE job")
            except Exception as exc:
                if not conn.in_transaction:
                    # SQLite rolled the whole transaction back (SQLITE_FULL, IOERR...):
                    # the jobs before this one are lost too, and running the rest now
                    # would autocommit them one by one. The whole batch fails.
                    err = _store_error(exc)
                    for failed in batch:
                        self._fire(failed.deferred, False, err)
                    return None
                results.append((job, False, _store_error(exc)))
            else:
                results.append((job, True, value))
        return results


def _fire_all(results: list[tuple[_Job[Any], bool, Any]]) -> None:
    for job, ok, value in results:
        if ok:
            job.deferred.callback(value)
        else:
            job.deferred.errback(value)


def _store_error(exc: BaseException) -> BaseException:
    """Callers see StoreError for engine failures (a PostgreSQL backend raises the same);
    other exceptions (a caller's bug) pass through unchanged."""
    if isinstance(exc, sqlite3.Error | OSError):
        return StoreError(f"{type(exc).__name__}: {exc}")
    return exc


# --------------------------------------------------------------------------- SQL helpers


def _teletype(row: Sequence[Any]) -> TeletypeItem:
    return TeletypeItem(
        id=row[0],
        link=row[1],
        priority=cast(Any, _PRIORITY_NAME[row[2]]),
        state=row[3],
        attempts=row[4],
        next_attempt=row[5],
        expires=row[6],
        created=row[7],
        updated=row[8],
        message=json.loads(row[9]),
    )


_TELETYPE_COLS: Final = (
    "id, link, priority, state, attempts, next_attempt, expires, created, updated, message"
)


_ROUTE_COLS: Final = "message_id, number, dest, link, state, wire_id, text, attempts, updated"
_INTERCEPT_COLS: Final = (
    "id, message_id, number, reason, detail, created, locked_by, lock_session, lock_expires"
)
_CONFIRMATION_COLS: Final = (
    "id, direction, urgency, request_number, sent_at, outcome, terminals, counterpart,"
    " message_ids, fields, warned, overdue_noted, reply, created, updated"
)


def _route_row(route: RouteRecord) -> tuple[Any, ...]:
    return (
        route.message_id,
        route.number,
        route.dest,
        route.link,
        route.state,
        route.wire_id,
        route.text,
        route.attempts,
        route.updated,
    )


def _route(row: Sequence[Any]) -> RouteRecord:
    return RouteRecord(
        message_id=row[0],
        number=row[1],
        dest=row[2],
        link=row[3],
        state=row[4],
        wire_id=row[5],
        text=row[6],
        attempts=row[7],
        updated=row[8],
    )


def _confirmation(row: Sequence[Any]) -> ConfirmationRecord:
    return ConfirmationRecord(
        id=row[0],
        direction=row[1],
        urgency=row[2],
        request_number=row[3],
        sent_at=row[4],
        outcome=row[5],
        terminals=tuple(json.loads(row[6])),
        counterpart=row[7],
        message_ids=tuple(json.loads(row[8])),
        fields=json.loads(row[9]),
        warned=row[10],
        overdue_noted=row[11],
        reply=None if row[12] is None else json.loads(row[12]),
        created=row[13],
        updated=row[14],
    )


def audit_head(conn: sqlite3.Connection) -> AuditHead | None:
    """The newest chain link: the last row, else the retention anchor, else None."""
    # On the writer, only read while no audit row is held (the head is then unknown),
    # so held rows of other tables need not be flushed first.
    run = conn.peek if isinstance(conn, WriterConnection) else conn.execute
    row = run("SELECT seq, hash, ts FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is not None:
        return AuditHead(row[0], bytes(row[1]), row[2])
    anchor = run("SELECT line FROM audit_anchor WHERE id = 1").fetchone()
    if anchor is None:
        return None
    data = json.loads(anchor[0])
    return AuditHead(int(data["seq"]), bytes.fromhex(data["hash"]), str(data["ts"]))


_AUDIT_INSERT: Final = (
    f"INSERT INTO audit_log (seq, ts, record, hash, {', '.join(AUDIT_INDEX_COLUMNS)})"
)


def _append_audit(conn: sqlite3.Connection, entry: AuditAppend) -> AuditHead:
    known = getattr(conn, "audit_head", _UNKNOWN)
    head = audit_head(conn) if isinstance(known, _Unknown) else known
    prev, seq = (head.hash, head.seq + 1) if head is not None else (_GENESIS, 1)
    digest = entry.chain(prev, seq, entry.record)
    index = entry.index
    _insert(
        conn,
        _AUDIT_INSERT,
        "",
        (seq, entry.ts, entry.record, digest, *[index.get(c) for c in AUDIT_INDEX_COLUMNS]),
    )
    new = AuditHead(seq, digest, entry.ts)
    if isinstance(conn, WriterConnection):
        conn.audit_head = new
    return new


def append_audit_now(path: Path, entry: AuditAppend) -> AuditHead:
    """Append one record from another process (``switchctl audit search``), waiting for
    the daemon's writer if it holds the write lock. Safe beside a running daemon: SQLite
    serializes the two writers and each reads the chain head inside its own transaction.
    Never creates the database; StoreError when it cannot be written."""
    if not path.exists():
        raise StoreError(f"{path}: no such database")
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=rw", uri=True, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot open for writing ({exc})") from None
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = _append_audit(conn, entry)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return head
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot write ({exc})") from None
    finally:
        conn.close()


_NOTHING: Final = " ON CONFLICT DO NOTHING"
_MAILBOX_INSERT: Final = "INSERT INTO mailbox (seq, terminal, kind, item, created)"


def _next_mailbox_seq(conn: sqlite3.Connection) -> int:
    """The seq AUTOINCREMENT would give the next mailbox row, counting rows held back:
    the item's seq is its SSE event id, needed before the row is written."""
    seq = getattr(conn, "mailbox_next", None)
    if seq is None:  # no mailbox row is held: what is held cannot change the answer
        run = conn.peek if isinstance(conn, WriterConnection) else conn.execute
        row = run("SELECT seq FROM sqlite_sequence WHERE name = 'mailbox'").fetchone()
        seq = (int(row[0]) if row is not None else 0) + 1
    if isinstance(conn, WriterConnection):
        conn.mailbox_next = seq + 1
    return int(seq)


def search_audit_rows(
    conn: sqlite3.Connection, query: AuditQuery, limit: int | None = None
) -> Iterator[AuditRow]:
    """Rows matching every filter, in seq order. Every filter is an indexed column;
    ``name`` is a prefix match written as a range so that the index serves it."""
    where: list[str] = []
    args: list[object] = []
    if query.since is not None:
        where.append("ts >= ?")
        args.append(query.since)
    if query.until is not None:
        where.append("ts < ?")
        args.append(query.until)
    for column in ("terminal", "operator", "ori", "plate", "vin"):
        value = getattr(query, column)
        if value is not None:
            where.append(f"{column} = ?")
            args.append(value)
    if query.name is not None:
        where.append("name >= ? AND name < ?")
        args.extend((query.name, query.name + "\U0010ffff"))
    table = "audit_log"
    only_time = all(
        getattr(query, c) is None
        for c in ("terminal", "operator", "ori", "name", "plate", "vin", "id")
    )
    if only_time and (query.since is not None or query.until is not None):
        # Without statistics SQLite prefers a rowid scan (it avoids the sort for ORDER
        # BY seq); a time window is usually narrow, so the ts index wins by far.
        table = "audit_log INDEXED BY audit_ts"
    sql = f"SELECT seq, ts, record, hash FROM {table}"  # noqa: S608
    if query.id is not None:
        # An OR over two indexed columns: written as a UNION so both indexes serve it.
        base = " AND ".join(where) if where else "1"
        sql = (
            f"SELECT seq, ts, record, hash FROM audit_log WHERE msg_id = ? AND {base} "  # noqa: S608
            f"UNION SELECT seq, ts, record, hash FROM audit_log WHERE ref_id = ? AND {base}"
        )
        args = [query.id, *args, query.id, *args]
    elif where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY seq"
    if limit is not None:
        sql += " LIMIT ?"
        args.append(int(limit))
    for seq, ts, record, digest in conn.execute(sql, args):
        yield AuditRow(seq, ts, record, bytes(digest))


# --------------------------------------------------------------------------- the store


class SQLiteStore:
    """:class:`~switch.store.interface.Store` on SQLite (DESIGN §7)."""

    def __init__(
        self,
        reactor: IReactorFromThreads,
        path: Path,
        *,
        readers: int = 3,
        inquiry_retention: float = 24 * 3600.0,
        mailbox_retention: float = 30 * 86400.0,
        duplicate_retention: float = 25 * 3600.0,
        teletype_retention: float = 30 * 86400.0,
        on_commit: Callable[[float, int], None] | None = None,
        connect: Callable[[], sqlite3.Connection] | None = None,
        commit_interval: float = 0.0,
    ) -> None:
        """``connect`` replaces the writer's connection factory (tests inject failing
        connections); ``on_commit(seconds, jobs)`` observes every committed batch;
        ``commit_interval`` (seconds) is how long a commit gathers: it starts no sooner
        than that after its first write arrived, nor after the last commit started."""
        self._reactor = reactor
        self.path = Path(path)
        self._inquiry_retention = inquiry_retention
        self._mailbox_retention = mailbox_retention
        self._duplicate_retention = duplicate_retention
        self._teletype_retention = teletype_retention
        self._writer = _Writer(
            reactor,
            connect or (lambda: connect_writer(self.path)),
            on_commit,
            commit_interval,
        )
        self._pool = ThreadPool(minthreads=0, maxthreads=readers, name="store-read")
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._running = False
        self._shutdown: object = None

    @property
    def commits(self) -> int:
        """Transactions committed so far (each one fsync): group commit makes it small."""
        return self._writer.commits

    # -- life cycle

    def start(self) -> Deferred[None]:
        self._running = True
        d = self._writer.start()

        def opened(_: None) -> None:
            self._pool.start()
            self._shutdown = stop_pool_at_shutdown(self._reactor, self._pool)

        d.addCallback(opened)
        return d

    def stop(self) -> Deferred[None]:
        if not self._running:
            return Deferred.fromCoroutine(_noop())
        self._running = False
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        # Pending writes first, then the readers, then the writer last: as the last
        # connection it checkpoints the WAL into the database and removes it, so a
        # stopped switch leaves one self-contained file.
        try:
            await self._writer.submit(lambda conn: None)
        except StoreError:
            pass  # the store never opened: nothing to flush
        cancel_shutdown_trigger(self._reactor, self._shutdown)
        self._pool.stop()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        await self._writer.stop()

    def flush(self) -> Deferred[None]:
        return self.write(lambda conn: None)

    # -- generic access (SQLite specific: the store's own methods and tests use these)

    def write(self, fn: Callable[[sqlite3.Connection], T], *, gather: bool = True) -> Deferred[T]:
        """Run ``fn`` in the writer thread inside the next group commit. ``gather=False``:
        its commit need not wait the commit interval for more writes (a lone write that
        something waits for, such as an inquiry's record before its fan-out); it still
        shares the commit with whatever is pending."""
        if not self._running:
            return fail(StoreError("store is not running"))
        return self._writer.submit(fn, gather)

    def read(self, fn: Callable[[sqlite3.Connection], T]) -> Deferred[T]:
        """Run ``fn`` on a read-only connection in the read pool."""
        if not self._running:
            return fail(StoreError("store is not running"))

        def run() -> T:
            try:
                return fn(self._reader())
            except sqlite3.Error as exc:
                raise StoreError(f"{type(exc).__name__}: {exc}") from None

        return deferToThreadPool(self._reactor, self._pool, run)

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_reader(self.path)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return cast(sqlite3.Connection, conn)

    # -- teletype queue

    def enqueue_teletype(self, item: TeletypeItem, now: float) -> Deferred[None]:
        return self.write(self.enqueue_teletype_job(item, now))

    def enqueue_teletype_job(
        self, item: TeletypeItem, now: float
    ) -> Callable[[sqlite3.Connection], None]:
        message = canonical(item.message)

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO teletype_queue (id, link, priority, state, attempts, next_attempt,"
                " expires, created, updated, message) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    item.id,
                    item.link,
                    _PRIORITY[item.priority],
                    item.state,
                    item.attempts,
                    item.next_attempt,
                    item.expires,
                    item.created or now,
                    now,
                    message,
                ),
            )

        return job

    def next_teletype(self, link: str, limit: int, now: float) -> Deferred[list[TeletypeItem]]:
        def query(conn: sqlite3.Connection) -> list[TeletypeItem]:
            rows = conn.execute(
                f"SELECT {_TELETYPE_COLS} FROM teletype_queue"  # noqa: S608
                " WHERE link = ? AND state = 'queued' AND next_attempt <= ? AND expires > ?"
                " ORDER BY priority, qseq LIMIT ?",
                (link, now, now, limit),
            )
            return [_teletype(r) for r in rows]

        return self.read(query)

    def mark_teletype(
        self,
        id: str,
        state: TeletypeState,
        now: float,
        *,
        attempts: int | None = None,
        next_attempt: float | None = None,
    ) -> Deferred[bool]:
        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE teletype_queue SET state = ?, updated = ?,"
                " attempts = COALESCE(?, attempts), next_attempt = COALESCE(?, next_attempt)"
                " WHERE id = ?",
                (state, now, attempts, next_attempt, id),
            )
            return cur.rowcount > 0

        return self.write(job)

    def get_teletype(self, id: str) -> Deferred[TeletypeItem | None]:
        def query(conn: sqlite3.Connection) -> TeletypeItem | None:
            row = conn.execute(
                f"SELECT {_TELETYPE_COLS} FROM teletype_queue WHERE id = ?",  # noqa: S608
                (id,),
            ).fetchone()
            return None if row is None else _teletype(row)

        return self.read(query)

    def requeue_sent(self, link: str, now: float) -> Deferred[int]:
        def job(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE teletype_queue SET state = 'queued', updated = ?, next_attempt = ?"
                " WHERE link = ? AND state = 'sent'",
                (now, now, link),
            )
            return cur.rowcount

        return self.write(job)

    def expire_teletype(self, now: float) -> Deferred[list[TeletypeItem]]:
        def job(conn: sqlite3.Connection) -> list[TeletypeItem]:
            rows = conn.execute(
                f"UPDATE teletype_queue SET state = 'expired', updated = ?"  # noqa: S608
                " WHERE state IN ('queued', 'sent') AND expires <= ?"
                f" RETURNING {_TELETYPE_COLS}",
                (now, now),
            ).fetchall()
            return sorted((_teletype(r) for r in rows), key=lambda t: t.id)

        return self.write(job)

    def queue_stats(self) -> Deferred[dict[str, tuple[int, float | None]]]:
        def query(conn: sqlite3.Connection) -> dict[str, tuple[int, float | None]]:
            rows = conn.execute(
                "SELECT link, COUNT(*), MIN(created) FROM teletype_queue"
                " WHERE state IN ('queued', 'sent') GROUP BY link"
            )
            return {link: (count, oldest) for link, count, oldest in rows}

        return self.read(query)

    # -- teletype messages, routes, intercept queue, hit confirmations
    # (switch.teletype_store.TeletypeStore, schema migration 2)

    def save_message(self, message: MessageRecord, routes: list[RouteRecord]) -> Deferred[None]:
        return self.write(self.save_message_job(message, routes))

    def save_message_job(
        self, message: MessageRecord, routes: list[RouteRecord]
    ) -> Callable[[sqlite3.Connection], None]:
        row = (
            message.id,
            message.terminal,
            message.operator,
            message.key,
            message.from_ori,
            json.dumps(list(message.to)),
            message.text,
            message.priority,
            canonical(message.fields),
            message.in_reply_to,
            message.created,
        )
        route_rows = [_route_row(r) for r in routes]

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO tt_message (id, terminal, operator, key, from_ori, dests, text,"
                " priority, fields, in_reply_to, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            conn.executemany(
                f"INSERT INTO tt_route ({_ROUTE_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
                route_rows,
            )

        return job

    def get_message(self, id: str) -> Deferred[tuple[MessageRecord, list[RouteRecord]] | None]:
        def query(conn: sqlite3.Connection) -> tuple[MessageRecord, list[RouteRecord]] | None:
            row = conn.execute(
                "SELECT id, terminal, operator, key, from_ori, dests, text, priority, fields,"
                " in_reply_to, created FROM tt_message WHERE id = ?",
                (id,),
            ).fetchone()
            if row is None:
                return None
            routes = conn.execute(
                f"SELECT {_ROUTE_COLS} FROM tt_route WHERE message_id = ? ORDER BY number",  # noqa: S608
                (id,),
            ).fetchall()
            message = MessageRecord(
                id=row[0],
                terminal=row[1],
                operator=row[2],
                key=row[3],
                from_ori=row[4],
                to=tuple(json.loads(row[5])),
                text=row[6],
                priority=row[7],
                fields=json.loads(row[8]),
                in_reply_to=row[9],
                created=row[10],
            )
            return message, [_route(r) for r in routes]

        return self.read(query)

    def update_route(self, route: RouteRecord) -> Deferred[None]:
        row = _route_row(route)

        def job(conn: sqlite3.Connection) -> None:
            cur = conn.execute(
                "UPDATE tt_route SET dest = ?, link = ?, state = ?, wire_id = ?, text = ?,"
                " attempts = ?, updated = ? WHERE message_id = ? AND number = ?",
                (*row[2:], row[0], row[1]),
            )
            if cur.rowcount == 0:
                raise KeyError(route.wire_id)

        return self.write(job)

    def route_by_wire(self, wire_id: str) -> Deferred[RouteRecord | None]:
        def query(conn: sqlite3.Connection) -> RouteRecord | None:
            row = conn.execute(
                f"SELECT {_ROUTE_COLS} FROM tt_route WHERE wire_id = ?",  # noqa: S608
                (wire_id,),
            ).fetchone()
            return None if row is None else _route(row)

        return self.read(query)

    def open_routes(self) -> Deferred[list[RouteRecord]]:
        def query(conn: sqlite3.Connection) -> list[RouteRecord]:
            rows = conn.execute(
                f"SELECT {_ROUTE_COLS} FROM tt_route"  # noqa: S608
                " WHERE state IN ('queued', 'sent') ORDER BY message_id, number"
            )
            return [_route(r) for r in rows]

        return self.read(query)

    def put_intercept(self, item: InterceptRecord) -> Deferred[None]:
        row = (
            item.id,
            item.message_id,
            item.number,
            item.reason,
            item.detail,
            item.created,
            item.locked_by,
            item.lock_session,
            item.lock_expires,
        )

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO tt_intercept ({_INTERCEPT_COLS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        return self.write(job)

    def get_intercept(self, id: str) -> Deferred[InterceptRecord | None]:
        def query(conn: sqlite3.Connection) -> InterceptRecord | None:
            row = conn.execute(
                f"SELECT {_INTERCEPT_COLS} FROM tt_intercept WHERE id = ?",  # noqa: S608
                (id,),
            ).fetchone()
            return None if row is None else InterceptRecord(*row)

        return self.read(query)

    def list_intercepts(self) -> Deferred[list[InterceptRecord]]:
        def query(conn: sqlite3.Connection) -> list[InterceptRecord]:
            rows = conn.execute(
                f"SELECT {_INTERCEPT_COLS} FROM tt_intercept ORDER BY created, id"  # noqa: S608
            )
            return [InterceptRecord(*r) for r in rows]

        return self.read(query)

    def delete_intercept(self, id: str) -> Deferred[bool]:
        def job(conn: sqlite3.Connection) -> bool:
            return conn.execute("DELETE FROM tt_intercept WHERE id = ?", (id,)).rowcount > 0

        return self.write(job)

    def save_confirmation(self, record: ConfirmationRecord) -> Deferred[None]:
        row = (
            record.id,
            record.direction,
            record.urgency,
            record.request_number,
            record.sent_at,
            record.outcome,
            json.dumps(list(record.terminals)),
            record.counterpart,
            json.dumps(list(record.message_ids)),
            canonical(record.fields),
            record.warned,
            record.overdue_noted,
            None if record.reply is None else canonical(record.reply),
            record.created,
            record.updated,
        )

        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                f"INSERT OR REPLACE INTO hit_confirmation ({_CONFIRMATION_COLS})"  # noqa: S608
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

        return self.write(job)

    def get_confirmation(self, id: str) -> Deferred[ConfirmationRecord | None]:
        def query(conn: sqlite3.Connection) -> ConfirmationRecord | None:
            row = conn.execute(
                f"SELECT {_CONFIRMATION_COLS} FROM hit_confirmation WHERE id = ?",  # noqa: S608
                (id,),
            ).fetchone()
            return None if row is None else _confirmation(row)

        return self.read(query)

    def list_confirmations(self, *, open_only: bool = False) -> Deferred[list[ConfirmationRecord]]:
        where = " WHERE outcome IN ('pending', 'in_progress')" if open_only else ""

        def query(conn: sqlite3.Connection) -> list[ConfirmationRecord]:
            rows = conn.execute(
                f"SELECT {_CONFIRMATION_COLS} FROM hit_confirmation{where}"  # noqa: S608
                " ORDER BY created, id"
            )
            return [_confirmation(r) for r in rows]

        return self.read(query)

    # -- mailboxes

    def mailbox_put(
        self, terminal: str, kind: str, item: Mapping[str, object], now: float
    ) -> Deferred[int]:
        return self.write(self.mailbox_job(terminal, kind, item, now))

    def mailbox_job(
        self, terminal: str, kind: str, item: Mapping[str, object], now: float
    ) -> Callable[[sqlite3.Connection], int]:
        text = canonical(item)

        def job(conn: sqlite3.Connection) -> int:
            seq = _next_mailbox_seq(conn)
            _insert(conn, _MAILBOX_INSERT, "", (seq, terminal, kind, text, now))
            return seq

        return job

    def mailbox_since(
        self, terminal: str, after_seq: int, limit: int, *, unacked_only: bool = False
    ) -> Deferred[list[MailboxItem]]:
        def query(conn: sqlite3.Connection) -> list[MailboxItem]:
            sql = (
                "SELECT seq, terminal, kind, item, created, acked FROM mailbox"
                " WHERE terminal = ? AND seq > ?"
            )
            if unacked_only:
                sql += " AND acked IS NULL"
            rows = conn.execute(sql + " ORDER BY seq LIMIT ?", (terminal, after_seq, limit))
            return [MailboxItem(r[0], r[1], r[2], json.loads(r[3]), r[4], r[5]) for r in rows]

        return self.read(query)

    def mailbox_ack(self, terminal: str, seq: int, now: float) -> Deferred[bool]:
        def job(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE mailbox SET acked = COALESCE(acked, ?) WHERE seq = ? AND terminal = ?",
                (now, seq, terminal),
            )
            return cur.rowcount > 0

        return self.write(job)

    # -- inquiries

    def save_inquiry(self, inquiry: InquiryRecord, now: float) -> Deferred[None]:
        return self.write(self.save_inquiry_job(inquiry, now))

    def save_inquiry_job(
        self, inquiry: InquiryRecord, now: float
    ) -> Callable[[sqlite3.Connection], None]:
        state = canonical(inquiry.state)

        def job(conn: sqlite3.Connection) -> None:
            _insert(
                conn,
                "INSERT INTO inquiries (id, terminal, created, updated, state)",
                " ON CONFLICT (id) DO UPDATE SET"
                " state = excluded.state, updated = excluded.updated",
                (inquiry.id, inquiry.terminal, inquiry.created, now, state),
            )

        return job

    def load_inquiry(self, id: str) -> Deferred[InquiryRecord | None]:
        def query(conn: sqlite3.Connection) -> InquiryRecord | None:
            row = conn.execute(
                "SELECT id, terminal, created, state FROM inquiries WHERE id = ?", (id,)
            ).fetchone()
            return (
                None if row is None else InquiryRecord(row[0], row[1], row[2], json.loads(row[3]))
            )

        return self.read(query)

    # -- duplicates

    def remember_duplicates(self, entries: Sequence[tuple[str, str]], now: float) -> Deferred[int]:
        rows = [(link, id, now) for link, id in entries]

        def job(conn: sqlite3.Connection) -> int:
            _flush(conn)
            before = conn.total_changes
            for row in rows:
                _insert(conn, "INSERT INTO duplicates (link, id, first_seen)", _NOTHING, row)
            _flush(conn)  # now, to count what was new
            return conn.total_changes - before

        return self.write(job)

    def duplicate_known(self, link: str, id: str, now: float) -> Deferred[bool]:
        cutoff = now - self._duplicate_retention

        def query(conn: sqlite3.Connection) -> bool:
            row = conn.execute(
                "SELECT 1 FROM duplicates WHERE link = ? AND id = ? AND first_seen >= ?",
                (link, id, cutoff),
            ).fetchone()
            return row is not None

        return self.read(query)

    def recent_duplicates(self, since: float, limit: int) -> Deferred[list[tuple[str, str, float]]]:
        def query(conn: sqlite3.Connection) -> list[tuple[str, str, float]]:
            rows = conn.execute(
                "SELECT link, id, first_seen FROM duplicates WHERE first_seen >= ?"
                " ORDER BY first_seen LIMIT ?",
                (since, limit),
            ).fetchall()
            return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

        return self.read(query)

    # -- operator locks

    def save_lock(self, lock: OperatorLock) -> Deferred[None]:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO operator_locks (operator, failures, first_failure, locked_until)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (operator) DO UPDATE SET"
                " failures = excluded.failures, first_failure = excluded.first_failure,"
                " locked_until = excluded.locked_until",
                (lock.operator, lock.failures, lock.first_failure, lock.locked_until),
            )

        return self.write(job)

    def delete_lock(self, operator: str) -> Deferred[None]:
        def job(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM operator_locks WHERE operator = ?", (operator,))

        return self.write(job)

    def load_locks(self) -> Deferred[list[OperatorLock]]:
        def query(conn: sqlite3.Connection) -> list[OperatorLock]:
            rows = conn.execute(
                "SELECT operator, failures, first_failure, locked_until FROM operator_locks"
                " ORDER BY operator"
            )
            return [OperatorLock(*r) for r in rows]

        return self.read(query)

    # -- retention

    def purge(self, now: float) -> Deferred[PurgeCounts]:
        def job(conn: sqlite3.Connection) -> PurgeCounts:
            def delete(sql: str, cutoff: float) -> int:
                return conn.execute(sql, (cutoff,)).rowcount

            finished = now - self._teletype_retention
            # A message goes once every route is final and nothing of it waits in the
            # intercept queue; its routes follow (ON DELETE CASCADE).
            messages = delete(
                "DELETE FROM tt_message WHERE created < ?"
                " AND NOT EXISTS (SELECT 1 FROM tt_route r WHERE r.message_id = tt_message.id"
                " AND r.state IN ('queued', 'sent'))"
                " AND NOT EXISTS (SELECT 1 FROM tt_intercept i"
                " WHERE i.message_id = tt_message.id)",
                finished,
            )
            confirmations = delete(
                "DELETE FROM hit_confirmation WHERE outcome NOT IN ('pending', 'in_progress')"
                " AND updated < ?",
                finished,
            )
            return PurgeCounts(
                extra={"messages": messages, "confirmations": confirmations},
                inquiries=delete(
                    "DELETE FROM inquiries WHERE created < ?", now - self._inquiry_retention
                ),
                mailbox=delete(
                    "DELETE FROM mailbox WHERE acked IS NOT NULL AND acked < ?",
                    now - self._mailbox_retention,
                ),
                duplicates=delete(
                    "DELETE FROM duplicates WHERE first_seen < ?",
                    now - self._duplicate_retention,
                ),
                teletype=delete(
                    "DELETE FROM teletype_queue WHERE state = 'accepted' AND updated < ?",
                    now - self._teletype_retention,
                ),
            )

        return self.write(job)

    # -- audit

    def append_audit(
        self, entry: AuditAppend, with_jobs: Sequence[StoreJob] = (), *, gather: bool = True
    ) -> Deferred[tuple[AuditHead, list[Any]]]:
        def job(conn: sqlite3.Connection) -> tuple[AuditHead, list[Any]]:
            return _append_audit(conn, entry), [j(conn) for j in with_jobs]

        return self.write(job, gather=gather)

    def audit_head(self) -> Deferred[AuditHead | None]:
        return self.read(audit_head)

    def audit_row(self, seq: int) -> Deferred[AuditRow | None]:
        def query(conn: sqlite3.Connection) -> AuditRow | None:
            row = conn.execute(
                "SELECT seq, ts, record, hash FROM audit_log WHERE seq = ?", (seq,)
            ).fetchone()
            return None if row is None else AuditRow(row[0], row[1], row[2], bytes(row[3]))

        return self.read(query)

    def audit_last_before(self, ts: str) -> Deferred[AuditHead | None]:
        def query(conn: sqlite3.Connection) -> AuditHead | None:
            row = conn.execute("SELECT MAX(seq) FROM audit_log WHERE ts < ?", (ts,)).fetchone()
            if row is None or row[0] is None:
                return None
            seq, digest, row_ts = conn.execute(
                "SELECT seq, hash, ts FROM audit_log WHERE seq = ?", (row[0],)
            ).fetchone()
            return AuditHead(seq, bytes(digest), row_ts)

        return self.read(query)

    def purge_audit(self, through_seq: int, anchor: str) -> Deferred[int]:
        def job(conn: sqlite3.Connection) -> int:
            conn.execute(
                "INSERT INTO audit_anchor (id, seq, line) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, line = excluded.line"
                " WHERE excluded.seq > audit_anchor.seq",
                (through_seq, anchor),
            )
            return conn.execute("DELETE FROM audit_log WHERE seq <= ?", (through_seq,)).rowcount

        return self.write(job)

    def search_audit(self, query: AuditQuery, limit: int | None) -> Deferred[list[AuditRow]]:
        return self.read(lambda conn: list(search_audit_rows(conn, query, limit)))


def stop_pool_at_shutdown(reactor: object, pool: ThreadPool) -> object:
    """Stop ``pool`` when the reactor shuts down even if nobody called stop(): its
    threads are not daemons and would keep the process alive."""
    core = IReactorCore(reactor, None)
    if core is None:
        return None
    return core.addSystemEventTrigger("during", "shutdown", pool.stop)


def cancel_shutdown_trigger(reactor: object, trigger: object) -> None:
    core = IReactorCore(reactor, None)
    if core is not None and trigger is not None:
        core.removeSystemEventTrigger(trigger)


async def _noop() -> None:
    return None


if TYPE_CHECKING:  # mypy proves SQLiteStore satisfies the Store Protocol
    from switch.teletype_store import TeletypeStore

    def _conforms(store: SQLiteStore) -> Store:
        return store

    def _conforms_teletype(store: SQLiteStore) -> TeletypeStore:
        return store
