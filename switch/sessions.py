"""Operator sessions, roles, idle expiry and the CJIS AC-7 lockout (DESIGN §5).

Transport-free: the API maps the exceptions below to HTTP statuses. Time comes from an
injected clock (``IReactorTime.seconds``) so expiry and lockout are tested with
``task.Clock``; password checks go through an injected ``verify`` callable that returns
a Deferred, so the ~50 ms scrypt runs on a thread and never blocks the reactor.

Security choices, on purpose:

- Tokens are ``secrets.token_urlsafe(32)``; only their SHA-256 is kept, and sessions
  are looked up by that digest, so neither memory dumps nor lookup timing reveal a
  token. Logs and the audit name a session by a separate short ``session`` id.
- An unknown operator costs one scrypt like a known one (a dummy hash), answers 401
  like a wrong password, and is counted and locked like a known name, so neither the
  answer, the timing nor the lockout tells an attacker which names exist.
- The failure that reaches the limit still answers 401; only later attempts see 423.
- A correct password resets the failure count (the failures must be consecutive).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final, Protocol

import structlog
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from switch.audit.interface import AuditSink
from switch.config import Operator, SessionConfig, Terminal
from switch.locks import LockStore, MemoryLockStore

_log = structlog.get_logger("switch.sessions")

#: A well-formed scrypt hash (the cost of ``switch.passwords``) that no password
#: matches: unknown operators are checked against it so that they take as long as
#: known ones.
DUMMY_HASH: Final = (
    "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
)

#: Failure histories kept at most (unknown names included): bounded memory whatever
#: an attacker sends.
MAX_TRACKED: Final = 10_000

Verifier = Callable[[str, str], "Deferred[bool]"]


class Clock(Protocol):
    """The part of ``IReactorTime`` sessions need."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, f: Callable[..., object], /, *a: object) -> IDelayedCall: ...


class Metrics(Protocol):
    """What sessions report (implemented by ``switch.metrics.Metrics``)."""

    def set_sessions(self, count: int) -> None: ...

    def logon_failed(self) -> None: ...


# --------------------------------------------------------------------------- errors


class SessionError(Exception):
    """Base of every refusal; ``code`` is the API ``error.code``."""

    code = "session_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class LogonRefused(SessionError):
    """Wrong password or unknown operator (HTTP 401); deliberately says which of neither."""

    code = "invalid_credentials"


class OperatorLocked(SessionError):
    """The operator is locked out (HTTP 423); ``retry_after`` whole seconds remain."""

    code = "operator_locked"

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LogonForbidden(SessionError):
    """Right password, but this terminal gives the operator nothing (HTTP 403)."""

    code = "forbidden"


class SessionInvalid(SessionError):
    """Missing, unknown or expired token (HTTP 401)."""

    code = "unauthorized"


# --------------------------------------------------------------------------- sessions


@dataclass
class Session:
    """One logged-on operator at one terminal."""

    id: str  # for logs and the audit; never the token
    terminal: str
    operator: str
    ori: str
    roles: frozenset[str]
    created: float
    last_used: float
    idle_exempt: bool
    digest: bytes = field(repr=False)

    def expires_at(self, idle_expiry: float) -> float | None:
        """When this session lapses if unused, or None for an idle-exempt terminal."""
        return None if self.idle_exempt else self.last_used + idle_expiry

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


@dataclass(frozen=True)
class Logon:
    """What a successful logon hands back once: the token is not kept anywhere."""

    token: str
    session: Session
    expires: float | None


def iso_utc(seconds: float) -> str:
    """POSIX seconds -> ``2026-11-29T16:22:10Z`` (the API's and the audit's time format)."""
    moment = _dt.datetime.fromtimestamp(seconds, _dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 10000:02d}Z"


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class SessionManager:
    """Creates, checks and ends sessions; counts failures and keeps locks."""

    def __init__(
        self,
        *,
        config: SessionConfig,
        terminals: Mapping[str, Terminal],
        operators: Mapping[str, Operator],
        audit: AuditSink,
        clock: Clock,
        verify: Verifier,
        locks: LockStore | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config
        self.terminals = terminals
        self.operators = operators
        self.audit = audit
        self.clock = clock
        self._verify = verify
        self._store: LockStore = locks if locks is not None else MemoryLockStore()
        self._metrics = metrics
        self._sessions: dict[bytes, Session] = {}
        self._failures: dict[str, list[float]] = {}
        self._locks: dict[str, float] = {
            name: until for name, until in self._store.load().items() if until > clock.seconds()
        }
        self._sweeper: LoopingCall | None = None

    # ---------------------------------------------------------------- queries

    @property
    def count(self) -> int:
        return len(self._sessions)

    def sessions(self) -> list[Session]:
        return list(self._sessions.values())

    def locked_until(self, operator: str) -> float | None:
        """When ``operator``'s lock ends, or None if not locked now."""
        until = self._locks.get(operator)
        if until is None:
            return None
        if until <= self.clock.seconds():
            del self._locks[operator]
            # Not waited for: an expired lock left in the table is ignored at start.
            self._save_locks().addErrback(_log_lock_write_failure)
            return None
        return until

    # ---------------------------------------------------------------- logon

    async def logon(self, terminal: str, operator: str, password: str) -> Logon:
        """Check the password off the reactor, apply the lockout, open a session.

        Raises LogonRefused, OperatorLocked, LogonForbidden, or AuditUnavailable when
        the audit cannot record the outcome (nothing is granted then).
        """
        self._check_locked(terminal, operator)
        known = self.operators.get(operator)
        stored = known.password_hash if known is not None else DUMMY_HASH
        ok = await self._verify(password, stored)
        # Another attempt may have locked the operator while scrypt ran.
        until = self.locked_until(operator)
        if until is not None:
            await self._refuse_locked(terminal, operator, until)
        if not ok or known is None:
            await self._failed(terminal, operator)
            raise LogonRefused("invalid operator or password")
        self._failures.pop(operator, None)

        term = self.terminals.get(terminal)
        if term is None:
            await self.audit.record(
                "session.logon_refused",
                {"terminal": terminal, "operator": operator, "reason": "unknown_terminal"},
            )
            raise LogonForbidden("terminal not allowed")
        roles = known.roles & term.roles
        if not roles:
            await self.audit.record(
                "session.logon_refused",
                {"terminal": terminal, "operator": operator, "reason": "no_roles"},
            )
            raise LogonForbidden("operator holds no role allowed on this terminal")

        now = self.clock.seconds()
        token = secrets.token_urlsafe(32)
        session = Session(
            id=secrets.token_hex(8),
            terminal=terminal,
            operator=operator,
            ori=term.ori,
            roles=roles,
            created=now,
            last_used=now,
            idle_exempt=term.idle_exempt,
            digest=_digest(token),
        )
        await self.audit.record(
            "session.logon",
            {
                "session": session.id,
                "terminal": terminal,
                "operator": operator,
                "ori": term.ori,
                "roles": sorted(roles),
            },
        )
        self._sessions[session.digest] = session
        self._report()
        _log.info("logon", session=session.id, terminal=terminal, operator=operator)
        return Logon(token, session, session.expires_at(self.config.idle_expiry))

    def _check_locked(self, terminal: str, operator: str) -> None:
        until = self.locked_until(operator)
        if until is not None:
            retry = max(1, math.ceil(until - self.clock.seconds()))
            # Refusals of a locked operator are audited without waiting: the caller
            # gets 423 whatever the audit says, and a failure is logged, not lost.
            d = self.audit.record(
                "session.logon_refused",
                {"terminal": terminal, "operator": operator, "reason": "locked"},
            )
            d.addErrback(_log_audit_failure, "session.logon_refused")
            raise OperatorLocked("operator locked", retry)

    async def _refuse_locked(self, terminal: str, operator: str, until: float) -> None:
        retry = max(1, math.ceil(until - self.clock.seconds()))
        await self.audit.record(
            "session.logon_refused",
            {"terminal": terminal, "operator": operator, "reason": "locked"},
        )
        raise OperatorLocked("operator locked", retry)

    async def _failed(self, terminal: str, operator: str) -> None:
        now = self.clock.seconds()
        window = self.config.lockout_window
        history = [t for t in self._failures.pop(operator, []) if now - t < window]
        history.append(now)
        self._failures[operator] = history  # re-inserted: newest last, for eviction
        self._bound_failures(now)
        if self._metrics is not None:
            self._metrics.logon_failed()
        locked = len(history) >= self.config.lockout_failures
        if locked:
            until = now + self.config.lockout_duration
            self._locks[operator] = until
            self._failures.pop(operator, None)
            await self._save_locks()
            _log.warning("operator locked", operator=operator, terminal=terminal)
        await self.audit.record(
            "session.logon_failed",
            {
                "terminal": terminal,
                "operator": operator,
                "reason": "invalid_credentials",
                "failures": len(history),
            },
        )
        if locked:
            await self.audit.record(
                "operator.locked",
                {
                    "operator": operator,
                    "terminal": terminal,
                    "failures": len(history),
                    "until": iso_utc(self._locks[operator]),
                },
            )

    def _bound_failures(self, now: float) -> None:
        if len(self._failures) <= MAX_TRACKED:
            return
        window = self.config.lockout_window
        for name in [n for n, h in self._failures.items() if now - h[-1] >= window]:
            del self._failures[name]
        while len(self._failures) > MAX_TRACKED:
            del self._failures[next(iter(self._failures))]

    def _save_locks(self) -> Deferred[None]:
        now = self.clock.seconds()
        for name in [n for n, until in self._locks.items() if until <= now]:
            del self._locks[name]
        return self._store.save(self._locks)

    # ---------------------------------------------------------------- use

    def authenticate(self, token: str | None) -> Session:
        """The live session for ``token`` (its idle timer restarts), or SessionInvalid."""
        if not token:
            raise SessionInvalid("missing bearer token")
        session = self._sessions.get(_digest(token))
        if session is None:
            raise SessionInvalid("invalid or expired token")
        now = self.clock.seconds()
        expires = session.expires_at(self.config.idle_expiry)
        if expires is not None and now >= expires:
            self._end(session, "idle")
            raise SessionInvalid("invalid or expired token")
        session.last_used = now
        return session

    async def logoff(self, session: Session) -> None:
        """End ``session`` now. The token dies first; the audit record follows.

        A failing audit does not keep a session alive: ending access is never refused.
        """
        if self._sessions.pop(session.digest, None) is None:
            return
        self._report()
        _log.info("logoff", session=session.id, terminal=session.terminal)
        await self.audit.record("session.logoff", _session_fields(session, "logout"))

    def _end(self, session: Session, reason: str) -> None:
        if self._sessions.pop(session.digest, None) is None:
            return
        self._report()
        _log.info("session ended", session=session.id, terminal=session.terminal, reason=reason)
        d = self.audit.record("session.logoff", _session_fields(session, reason))
        d.addErrback(_log_audit_failure, "session.logoff")

    def end(self, session: Session, reason: str) -> None:
        """End ``session`` now for ``reason`` (audited; a reload removed its terminal,
        its operator or every role it held)."""
        self._end(session, reason)

    def expire_idle(self) -> int:
        """End every session idle past the limit; returns how many ended."""
        now = self.clock.seconds()
        stale = [
            s
            for s in self._sessions.values()
            if (e := s.expires_at(self.config.idle_expiry)) is not None and now >= e
        ]
        for session in stale:
            self._end(session, "idle")
        return len(stale)

    def end_all(self, reason: str = "shutdown") -> None:
        """End every session (clean shutdown), each audited."""
        for session in list(self._sessions.values()):
            self._end(session, reason)

    # ---------------------------------------------------------------- admin

    async def unlock(self, operator: str, by: Session) -> bool:
        """Lift ``operator``'s lock and forget its failures; True if it was locked."""
        was_locked = self.locked_until(operator) is not None
        self._failures.pop(operator, None)
        if was_locked:
            del self._locks[operator]
            await self._save_locks()
        await self.audit.record(
            "operator.unlocked",
            {
                "operator": operator,
                "by_operator": by.operator,
                "by_session": by.id,
                "terminal": by.terminal,
                "was_locked": was_locked,
            },
        )
        _log.info("operator unlocked", operator=operator, session=by.id)
        return was_locked

    def knows(self, operator: str) -> bool:
        """True for a configured operator or any name currently locked."""
        return operator in self.operators or self.locked_until(operator) is not None

    # ---------------------------------------------------------------- sweeping

    def start(self, interval: float | None = None) -> None:
        """Sweep idle sessions periodically (they are also checked on every use)."""
        if self._sweeper is not None:
            return
        every = interval if interval is not None else min(60.0, self.config.idle_expiry / 4)
        sweeper = LoopingCall(self.expire_idle)
        sweeper.clock = self.clock  # type: ignore[assignment]
        self._sweeper = sweeper
        d = sweeper.start(max(every, 0.01), now=False)
        d.addErrback(_log_failure, "session sweeper failed")

    def stop(self) -> None:
        if self._sweeper is not None and self._sweeper.running:
            self._sweeper.stop()
        self._sweeper = None

    def _report(self) -> None:
        if self._metrics is not None:
            self._metrics.set_sessions(len(self._sessions))


def _session_fields(session: Session, reason: str) -> dict[str, object]:
    return {
        "session": session.id,
        "terminal": session.terminal,
        "operator": session.operator,
        "reason": reason,
    }


def _log_audit_failure(failure: Failure, event: str) -> None:
    _log.error("audit record failed", audit_event=event, error=failure.getErrorMessage())


def _log_failure(failure: Failure, message: str) -> None:
    _log.error(message, error=failure.getErrorMessage())


# --------------------------------------------------------------------------- rate limits


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` banked; time from an injected clock."""

    def __init__(self, rate: float, burst: float, clock: Clock) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._last = clock.seconds()

    def take(self, cost: float = 1.0) -> float:
        """Spend ``cost`` tokens: 0.0 when allowed, else seconds until it would be."""
        now = self._clock.seconds()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= cost:
            self._tokens -= cost
            return 0.0
        if self.rate <= 0:
            return math.inf
        return (cost - self._tokens) / self.rate


class RateLimiter:
    """One token bucket per key (a terminal): its rate limit, burst of the same size."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}

    def check(self, key: str, rate: float) -> float:
        """0.0 if ``key`` may go ahead now, else the seconds to wait (HTTP 429)."""
        bucket = self._buckets.get(key)
        if bucket is None or bucket.rate != rate:
            bucket = TokenBucket(rate, max(rate, 1.0), self._clock)
            self._buckets[key] = bucket
        return bucket.take()


def _log_lock_write_failure(failure: Failure) -> None:
    _log.error("operator lock write failed", error=failure.type.__name__ if failure.type else "?")
