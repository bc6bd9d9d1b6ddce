"""Persistence of operator lockouts (CJIS AC-7, DESIGN §5): locks survive a restart.

A lock is just ``operator -> until`` (POSIX seconds). The store is a seam
(:class:`LockStore`) so the durable SQLite store can take over later without touching
:mod:`switch.sessions`; until then :class:`JsonLockStore` keeps one small JSON file under
``var/`` written atomically (temporary file, fsync, rename, fsync of the directory), so a
crash mid-write leaves either the old or the new set of locks, never a torn file.

Writes happen only when a lock is set or lifted, at most once per five failed scrypt
checks, so the synchronous write on the reactor thread is bounded and rare.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import structlog

_log = structlog.get_logger("switch.locks")


class LockStore(Protocol):
    """Where operator locks live between restarts."""

    def load(self) -> dict[str, float]:
        """Every stored lock, ``operator -> until`` (expired ones may be included)."""
        ...

    def save(self, locks: Mapping[str, float]) -> None:
        """Replace the stored set of locks with ``locks``; durable when it returns."""
        ...


class MemoryLockStore:
    """A store for tests: "persists" across SessionManagers sharing the instance."""

    def __init__(self) -> None:
        self.locks: dict[str, float] = {}
        self.saves = 0

    def load(self) -> dict[str, float]:
        return dict(self.locks)

    def save(self, locks: Mapping[str, float]) -> None:
        self.locks = dict(locks)
        self.saves += 1


class JsonLockStore:
    """Locks in one JSON file (mode 0600): ``{"version": 1, "locks": {name: until}}``.

    A missing file means no locks. A file that cannot be read back is logged loudly and
    treated as empty rather than stopping the daemon: a dispatch center must keep
    working, and the audit trail still holds every lock event.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, float]:
        try:
            raw = self.path.read_bytes()
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

    def save(self, locks: Mapping[str, float]) -> None:
        data = json.dumps(
            {"version": 1, "locks": {k: math.ceil(v) for k, v in sorted(locks.items())}},
            sort_keys=True,
        ).encode("utf-8")
        directory = self.path.parent
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = directory / f".{self.path.name}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
