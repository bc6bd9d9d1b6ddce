"""Persistence of operator lockouts (CJIS AC-7, DESIGN §5): locks survive a restart.

A lock is just ``operator -> until`` (POSIX seconds). :class:`SessionManager` keeps the
locks in memory and hands every change to a :class:`LockStore`; the daemon's is
:class:`StoreLocks`, the store's ``operator_locks`` table, read once at start. Writes
happen only when a lock is set or lifted, at most once per five failed password checks,
and the logon answer waits until the write is committed.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import structlog
from twisted.internet.defer import Deferred, succeed

from switch.deferreds import all_of
from switch.store.interface import OperatorLock

_log = structlog.get_logger("switch.locks")


class LockStore(Protocol):
    """Where operator locks live between restarts."""

    def load(self) -> dict[str, float]:
        """Every stored lock, ``operator -> until`` (expired ones may be included)."""
        ...

    def save(self, locks: Mapping[str, float]) -> Deferred[None]:
        """Replace the stored set of locks with ``locks``; fires once durable."""
        ...


class LockTable(Protocol):
    """The part of :class:`switch.store.interface.Store` that holds the locks."""

    def load_locks(self) -> Deferred[list[OperatorLock]]: ...

    def save_lock(self, lock: OperatorLock) -> Deferred[None]: ...

    def delete_lock(self, operator: str) -> Deferred[None]: ...


class MemoryLockStore:
    """A store for tests: "persists" across SessionManagers sharing the instance."""

    def __init__(self) -> None:
        self.locks: dict[str, float] = {}
        self.saves = 0

    def load(self) -> dict[str, float]:
        return dict(self.locks)

    def save(self, locks: Mapping[str, float]) -> Deferred[None]:
        self.locks = dict(locks)
        self.saves += 1
        return succeed(None)


class StoreLocks:
    """Locks in the store's ``operator_locks`` table; :meth:`open` reads them once, so
    that :meth:`load` answers from memory and each :meth:`save` writes only what
    changed (one row per operator: ``locked_until``; the failure count that led to
    the lock is in the audit trail)."""

    def __init__(self, table: LockTable, locks: Mapping[str, float]) -> None:
        self._table = table
        self._saved = dict(locks)

    @classmethod
    async def open(cls, table: LockTable, legacy: Path | None = None) -> StoreLocks:
        """Read the table; locks found in a ``legacy`` ``locks.json`` (written by
        earlier versions) are carried over into it, and the file is renamed
        ``*.imported`` so that it is read once."""
        rows = await table.load_locks()
        locks = {r.operator: r.locked_until for r in rows if r.locked_until is not None}
        if legacy is not None and legacy.exists():
            old = read_legacy_locks(legacy)
            new = {name: until for name, until in old.items() if until > locks.get(name, 0.0)}
            await all_of([table.save_lock(OperatorLock(n, 0, None, u)) for n, u in new.items()])
            locks.update(new)
            os.replace(legacy, legacy.with_name(legacy.name + ".imported"))
            _log.warning("operator locks imported from the old lock file", count=len(new))
        return cls(table, locks)

    def load(self) -> dict[str, float]:
        return dict(self._saved)

    def save(self, locks: Mapping[str, float]) -> Deferred[None]:
        wanted = dict(locks)
        writes = [self._table.delete_lock(name) for name in self._saved if name not in wanted]
        writes += [
            self._table.save_lock(OperatorLock(name, 0, None, until))
            for name, until in wanted.items()
            if self._saved.get(name) != until
        ]
        self._saved = wanted
        return all_of(writes)


def read_legacy_locks(path: Path) -> dict[str, float]:
    """The locks of a ``locks.json`` of earlier versions: ``{"version": 1, "locks":
    {name: until}}``. Missing means none; a file that cannot be read is logged loudly
    and treated as none rather than stopping the daemon (the audit trail holds every
    lock event).
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        _log.error("lock file unreadable, starting without locks", error=exc.strerror)
        return {}
    try:
        doc = json.loads(raw)
        locks = doc["locks"]
        if not isinstance(locks, dict):
            raise TypeError("locks is not an object")
        result: dict[str, float] = {}
        for name, until in locks.items():
            value = float(until)
            if isinstance(name, str) and math.isfinite(value):
                result[name] = value
        return result
    except (ValueError, TypeError, KeyError, AttributeError):
        _log.error("lock file malformed, starting without locks")
        return {}
