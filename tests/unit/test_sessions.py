"""Sessions, roles, idle expiry and the CJIS lockout, with task.Clock and no sockets."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest
from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure

from switch.audit.interface import AuditUnavailable, MemoryAudit
from switch.config import Operator, SessionConfig, Terminal
from switch.locks import MemoryLockStore, StoreLocks, read_legacy_locks
from switch.passwords import hash_password, verify_password
from switch.sessions import (
    LogonForbidden,
    LogonRefused,
    OperatorLocked,
    RateLimiter,
    SessionInvalid,
    SessionManager,
    TokenBucket,
)
from switch.store.interface import OperatorLock

T = TypeVar("T")
ALL = frozenset({"local", "regional", "state", "national"})
SUBJECTS = frozenset({"person", "vehicle", "driver", "registration", "gun", "article"})


def cheap_hash(password: str) -> str:
    """A hash in the stored format with a tiny scrypt cost, to keep the tests fast."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=16, r=1, p=1, dklen=32)
    return f"scrypt$16$1$1${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


@pytest.fixture(scope="module")
def operators() -> dict[str, Operator]:
    return {
        "demo": Operator(
            "demo",
            frozenset({"dispatch", "records", "supervisor", "admin"}),
            hash_password("demo-pw"),  # the real cost once: proves the format agrees
        ),
        "rec": Operator("rec", frozenset({"records"}), cheap_hash("rec-pw")),
        "disp": Operator("disp", frozenset({"dispatch"}), cheap_hash("disp-pw")),
    }


TERMINALS = {
    "DISPATCH1": Terminal("DISPATCH1", "MO0380100", frozenset({"dispatch"}), SUBJECTS, ALL),
    "ADMIN1": Terminal("ADMIN1", "MO0380100", frozenset({"admin", "supervisor"}), SUBJECTS, ALL),
    "RECORDS1": Terminal("RECORDS1", "MO0380100", frozenset({"records"}), SUBJECTS, ALL),
    "CAD1": Terminal("CAD1", "MO0380100", frozenset({"dispatch"}), SUBJECTS, ALL, idle_exempt=True),
}


def verify_now(password: str, stored: str) -> Deferred[bool]:
    return succeed(verify_password(password, stored))


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine whose awaits all fire synchronously; raise what it raised."""
    results: list[Any] = []
    Deferred.fromCoroutine(coro).addBoth(results.append)
    assert results, "coroutine did not finish synchronously"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]  # type: ignore[no-any-return]


class Env:
    def __init__(self, operators: dict[str, Operator], store: Any = None, **cfg: Any) -> None:
        self.clock = Clock()
        self.clock.advance(1_800_000_000)
        self.audit = MemoryAudit()
        self.store = store if store is not None else MemoryLockStore()
        self.operators = operators
        self.cfg = SessionConfig(**cfg)
        self.mgr = self.new_manager()

    def new_manager(self) -> SessionManager:
        return SessionManager(
            config=self.cfg,
            terminals=TERMINALS,
            operators=self.operators,
            audit=self.audit,
            clock=self.clock,
            verify=verify_now,
            locks=self.store,
        )

    def logon(self, terminal: str, operator: str, password: str) -> Any:
        return run(self.mgr.logon(terminal, operator, password))


def test_roles_are_operator_roles_within_terminal_maximum(operators: dict[str, Operator]) -> None:
    """A session holds the operator's roles intersected with the terminal's maximum."""
    env = Env(operators)
    assert env.logon("DISPATCH1", "demo", "demo-pw").session.roles == {"dispatch"}
    assert env.logon("ADMIN1", "demo", "demo-pw").session.roles == {"admin", "supervisor"}
    assert env.mgr.count == 2
    assert [e for e, _ in env.audit.events] == ["session.logon", "session.logon"]
    logon = env.audit.of("session.logon")[1]
    assert logon["terminal"] == "ADMIN1" and logon["roles"] == ["admin", "supervisor"]
    assert "password" not in json.dumps(env.audit.events)


def test_empty_role_intersection_and_unknown_terminal_are_forbidden(
    operators: dict[str, Operator],
) -> None:
    """No common role, or an unknown terminal, refuses the logon (403) and audits it."""
    env = Env(operators)
    with pytest.raises(LogonForbidden):
        env.logon("ADMIN1", "rec", "rec-pw")
    with pytest.raises(LogonForbidden):
        env.logon("NOSUCH", "demo", "demo-pw")
    assert env.mgr.count == 0
    reasons = [f["reason"] for f in env.audit.of("session.logon_refused")]
    assert reasons == ["no_roles", "unknown_terminal"]


def test_token_authenticates_and_logoff_kills_it(operators: dict[str, Operator]) -> None:
    """The token finds its session until logoff; logoff is audited; tokens are distinct."""
    env = Env(operators)
    a = env.logon("DISPATCH1", "demo", "demo-pw")
    b = env.logon("ADMIN1", "demo", "demo-pw")
    assert a.token != b.token and len(a.token) >= 40
    assert env.mgr.authenticate(a.token) is a.session
    run(env.mgr.logoff(a.session))
    with pytest.raises(SessionInvalid):
        env.mgr.authenticate(a.token)
    with pytest.raises(SessionInvalid):
        env.mgr.authenticate(None)
    assert env.mgr.authenticate(b.token) is b.session
    assert env.audit.of("session.logoff") == [
        {"session": a.session.id, "terminal": "DISPATCH1", "operator": "demo", "reason": "logout"}
    ]


def test_idle_expiry_with_injected_clock(operators: dict[str, Operator]) -> None:
    """Each use restarts the idle timer; past idle_expiry unused the token is dead."""
    env = Env(operators, idle_expiry=1800.0)
    logon = env.logon("DISPATCH1", "disp", "disp-pw")
    assert logon.expires == env.clock.seconds() + 1800
    env.clock.advance(1799)
    env.mgr.authenticate(logon.token)
    env.clock.advance(1799)
    env.mgr.authenticate(logon.token)
    env.clock.advance(1800)
    with pytest.raises(SessionInvalid):
        env.mgr.authenticate(logon.token)
    assert env.mgr.count == 0
    assert env.audit.of("session.logoff")[0]["reason"] == "idle"


def test_sweeper_ends_idle_sessions_but_not_exempt_terminals(
    operators: dict[str, Operator],
) -> None:
    """The periodic sweep ends idle sessions; an idle-exempt terminal's session stays."""
    env = Env(operators, idle_expiry=600.0)
    env.mgr.start(interval=60)
    idle = env.logon("DISPATCH1", "disp", "disp-pw")
    exempt = env.logon("CAD1", "disp", "disp-pw")
    assert exempt.expires is None
    env.clock.pump([60] * 11)
    assert env.mgr.count == 1
    env.clock.advance(10 * 86400)
    assert env.mgr.authenticate(exempt.token) is exempt.session
    with pytest.raises(SessionInvalid):
        env.mgr.authenticate(idle.token)
    env.mgr.stop()
    assert not env.clock.getDelayedCalls()


def test_lockout_fifth_failure_401_then_423_with_retry_after(
    operators: dict[str, Operator],
) -> None:
    """5 failures lock: the 5th still answers 401, later ones 423 even with the right
    password, with Retry-After counting down; after 10 minutes logon works again."""
    env = Env(operators)
    for _ in range(5):
        with pytest.raises(LogonRefused):
            env.logon("DISPATCH1", "disp", "wrong")
    with pytest.raises(OperatorLocked) as locked:
        env.logon("DISPATCH1", "disp", "disp-pw")
    assert locked.value.retry_after == 600
    env.clock.advance(599.5)
    with pytest.raises(OperatorLocked) as locked:
        env.logon("DISPATCH1", "disp", "disp-pw")
    assert locked.value.retry_after == 1
    env.clock.advance(0.5)
    assert env.logon("DISPATCH1", "disp", "disp-pw").session.operator == "disp"
    failed = env.audit.of("session.logon_failed")
    assert [f["failures"] for f in failed] == [1, 2, 3, 4, 5]
    assert len(env.audit.of("operator.locked")) == 1
    assert [f["reason"] for f in env.audit.of("session.logon_refused")] == ["locked", "locked"]


def test_failures_must_be_consecutive_and_within_window(operators: dict[str, Operator]) -> None:
    """A success resets the count; failures older than the window do not count."""
    env = Env(operators)
    for _ in range(4):
        with pytest.raises(LogonRefused):
            env.logon("DISPATCH1", "disp", "wrong")
    env.logon("DISPATCH1", "disp", "disp-pw")
    for _ in range(4):
        with pytest.raises(LogonRefused):
            env.logon("DISPATCH1", "disp", "wrong")
    env.clock.advance(901)
    with pytest.raises(LogonRefused):
        env.logon("DISPATCH1", "disp", "wrong")
    env.logon("DISPATCH1", "disp", "disp-pw")
    assert env.audit.of("operator.locked") == []


def test_unknown_operator_answers_like_wrong_password_and_locks_too(
    operators: dict[str, Operator],
) -> None:
    """An unknown name gets LogonRefused, is counted and locked like a real one
    (no user enumeration through the answer or the lockout)."""
    env = Env(operators)
    for _ in range(5):
        with pytest.raises(LogonRefused):
            env.logon("DISPATCH1", "ghost", "whatever")
    with pytest.raises(OperatorLocked):
        env.logon("DISPATCH1", "ghost", "whatever")


class FakeLockTable:
    """The store's operator_locks table, in memory; writes fire at once."""

    def __init__(self) -> None:
        self.rows: dict[str, OperatorLock] = {}
        self.writes = 0

    def load_locks(self) -> Deferred[list[OperatorLock]]:
        return succeed(sorted(self.rows.values(), key=lambda r: r.operator))

    def save_lock(self, lock: OperatorLock) -> Deferred[None]:
        self.rows[lock.operator] = lock
        self.writes += 1
        return succeed(None)

    def delete_lock(self, operator: str) -> Deferred[None]:
        self.rows.pop(operator, None)
        self.writes += 1
        return succeed(None)


def test_locks_persist_across_restart_in_the_store(operators: dict[str, Operator]) -> None:
    """A lock set by one SessionManager is a row of the store's table and holds for a
    new one (a restarted daemon) reading the table; expired locks are dropped; each
    save writes only what changed."""
    table = FakeLockTable()
    env = Env(operators, store=run(StoreLocks.open(table)))
    for _ in range(5):
        with pytest.raises(LogonRefused):
            env.logon("DISPATCH1", "disp", "wrong")
    assert set(table.rows) == {"disp"} and table.writes == 1
    assert table.rows["disp"].locked_until == env.clock.seconds() + 600

    env.store = run(StoreLocks.open(table))
    env.mgr = env.new_manager()
    with pytest.raises(OperatorLocked):
        env.logon("DISPATCH1", "disp", "disp-pw")
    env.clock.advance(601)
    env.store = run(StoreLocks.open(table))
    env.mgr = env.new_manager()
    assert env.logon("DISPATCH1", "disp", "disp-pw").session.terminal == "DISPATCH1"


def test_admin_unlock_lifts_lock_and_is_audited(operators: dict[str, Operator]) -> None:
    """unlock() ends a lock at once, persists that, and records who did it."""
    env = Env(operators)
    admin = env.logon("ADMIN1", "demo", "demo-pw")
    for _ in range(5):
        with pytest.raises(LogonRefused):
            env.logon("RECORDS1", "rec", "wrong")
    assert env.store.locks.keys() == {"rec"}
    assert run(env.mgr.unlock("rec", admin.session)) is True
    assert env.store.locks == {}
    env.mgr = env.new_manager()
    env.logon("RECORDS1", "rec", "rec-pw")
    unlocked = env.audit.of("operator.unlocked")
    assert unlocked == [
        {
            "operator": "rec",
            "by_operator": "demo",
            "by_session": admin.session.id,
            "terminal": "ADMIN1",
            "was_locked": True,
        }
    ]
    assert run(env.mgr.unlock("rec", admin.session)) is False


def test_failing_audit_grants_nothing(operators: dict[str, Operator]) -> None:
    """If the logon cannot be audited, no session is created (AuditUnavailable)."""
    env = Env(operators)
    env.audit.fail = True
    with pytest.raises(AuditUnavailable):
        env.logon("DISPATCH1", "demo", "demo-pw")
    assert env.mgr.count == 0


def test_corrupt_legacy_lock_file_reads_as_empty(tmp_path: Path) -> None:
    """An old lock file that cannot be parsed is treated as no locks (and logged)."""
    path = tmp_path / "locks.json"
    for content in (b"{not json", b'{"locks": []}', b'{"locks": {"a": "x"}}', b"[]"):
        path.write_bytes(content)
        assert read_legacy_locks(path) == {}
    assert read_legacy_locks(tmp_path / "missing.json") == {}


def test_legacy_lock_file_is_imported_once(tmp_path: Path) -> None:
    """Locks of an older version's locks.json go into the table, newer ones win, and
    the file is renamed so that it is read once."""
    table = FakeLockTable()
    table.rows["a"] = OperatorLock("a", 0, None, 2_000_000_000.0)
    path = tmp_path / "locks.json"
    path.write_text(json.dumps({"version": 1, "locks": {"a": 1_900_000_000, "b": 1_950_000_000}}))
    locks = run(StoreLocks.open(table, legacy=path))
    assert locks.load() == {"a": 2_000_000_000.0, "b": 1_950_000_000.0}
    assert table.rows["b"].locked_until == 1_950_000_000.0
    assert not path.exists() and (tmp_path / "locks.json.imported").exists()
    assert run(StoreLocks.open(table, legacy=path)).load() == locks.load()


def test_token_bucket_rate_and_burst() -> None:
    """A bucket allows its burst at once, then refills at its rate; the answer when
    refused is the wait in seconds."""
    clock = Clock()
    bucket = TokenBucket(rate=2.0, burst=2.0, clock=clock)
    assert bucket.take() == 0.0 and bucket.take() == 0.0
    assert bucket.take() == pytest.approx(0.5)
    clock.advance(0.5)
    assert bucket.take() == 0.0
    limiter = RateLimiter(clock)
    assert [limiter.check("T1", 1.0) for _ in range(2)] == [0.0, pytest.approx(1.0)]
    assert limiter.check("T2", 1.0) == 0.0
