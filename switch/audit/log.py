"""The durable audit trail: the daemon's :class:`~switch.audit.interface.AuditSink`.

Records go through the store's writer, so many of them share one fsync (group commit);
the store links each into the chain inside the commit's transaction (it reads the head
there), so a failed or rolled-back write can never leave a gap or a fork. This class
adds what the chain alone cannot give: signed checkpoints (every N records, every T
seconds, and last at a clean shutdown), retention with a signed anchor, and the health
state that makes the switch refuse new work while the trail cannot be written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from switch.config import AuditConfig
from switch.store.interface import AuditAppend, AuditHead, Store
from switch.store.sqlite import cancel_shutdown_trigger, stop_pool_at_shutdown

from .chain import (
    Checkpoint,
    CheckpointKind,
    build_record,
    canonical,
    chain_step,
    format_ts,
    index_copies,
    load_signing_key,
    sign_checkpoint,
)
from .interface import AuditSink, AuditUnavailable, CompanionWrite

log = Logger()

DAY = 86400.0


def audit_entry(event: str, ts: str, fields: Mapping[str, object]) -> AuditAppend:
    """The record as the store appends it; TypeError/ValueError for a caller's bug."""
    record = build_record(event, ts, fields)
    return AuditAppend(ts, canonical(record), index_copies(record), chain_step)


def append_line(path: Path, line: str) -> None:
    """Append one line and fsync it (and the directory when the file is new)."""
    new = not path.exists()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
    try:
        os.write(fd, (line + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    if new:
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


def last_checkpoint_seq(path: Path) -> int:
    """The seq of the last line of the checkpoints file (0 if none); trusts nothing else."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 4096))
            lines = f.read().splitlines()
    except FileNotFoundError:
        return 0
    for raw in reversed(lines):
        try:
            return int(json.loads(raw)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
    return 0


class AuditLog:
    """Hash-chained audit log on a :class:`~switch.store.interface.Store` (DESIGN §7)."""

    def __init__(
        self,
        store: Store,
        reactor: Any,
        signing_key: Ed25519PrivateKey,
        checkpoints: Path,
        *,
        clock: IReactorTime | None = None,
        checkpoint_every: int = 1000,
        checkpoint_seconds: float = 60.0,
        retention_days: float = 365,
        retention_check_seconds: float = 3600.0,
        probe_seconds: float = 5.0,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """``reactor`` runs the checkpoint file writes in a thread; ``clock`` (default
        the reactor) gives timestamps and timers; ``on_failure`` is called once per
        failed audit write (the ``switch_audit_failures_total`` counter)."""
        self._store = store
        self._reactor = reactor
        self._clock: IReactorTime = clock if clock is not None else reactor
        self._key = signing_key
        self.checkpoints = Path(checkpoints)
        self._every = checkpoint_every
        self._retention = retention_days * DAY
        self._on_failure = on_failure
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name="audit-checkpoints")
        self._timer = LoopingCall(self._tick)
        self._timer.clock = self._clock
        self._timer_interval = checkpoint_seconds
        self._retention_timer = LoopingCall(self._retention_tick)
        self._retention_timer.clock = self._clock
        self._retention_interval = retention_check_seconds
        self._probe = LoopingCall(self._probe_tick)
        self._probe.clock = self._clock
        self._probe_interval = probe_seconds
        self._head: AuditHead | None = None
        self._checkpointed = 0
        self._since_checkpoint = 0
        self._healthy = True
        self._outage_failures = 0
        self._outage_since: str | None = None
        self._resuming = False
        self._running = False
        self.failures = 0
        self._shutdown: object = None

    @classmethod
    def from_config(
        cls, config: AuditConfig, store: Store, reactor: Any, **kwargs: Any
    ) -> AuditLog:
        """Load the signing key (AuditKeyError if missing or not mode 0600)."""
        return cls(
            store,
            reactor,
            load_signing_key(config.keys_dir),
            config.checkpoints,
            checkpoint_every=config.checkpoint_every,
            checkpoint_seconds=config.checkpoint_seconds,
            retention_days=config.retention_days,
            **kwargs,
        )

    # -- AuditSink

    @property
    def healthy(self) -> bool:
        return self._healthy

    @property
    def head(self) -> AuditHead | None:
        """The newest committed link known to this process."""
        return self._head

    def record(
        self,
        event: str,
        fields: Mapping[str, object],
        with_writes: Sequence[CompanionWrite] = (),
        *,
        gather: bool = True,
    ) -> Deferred[int]:
        if not self._running:
            return fail(AuditUnavailable("audit log is not running"))
        return self._append(event, fields, with_writes, gather=gather)

    def _append(
        self,
        event: str,
        fields: Mapping[str, object],
        with_writes: Sequence[CompanionWrite] = (),
        *,
        resume: bool = False,
        gather: bool = True,
    ) -> Deferred[int]:
        try:
            entry = audit_entry(event, format_ts(self._clock.seconds()), fields)
        except (TypeError, ValueError) as exc:
            return fail(exc)  # a caller's bug, not an outage
        d = self._store.append_audit(entry, [w.job for w in with_writes], gather=gather)
        return d.addCallbacks(self._committed, self._failed, callbackArgs=(resume, with_writes))

    def _committed(
        self,
        result: tuple[AuditHead, list[Any]],
        resume: bool,
        with_writes: Sequence[CompanionWrite],
    ) -> int:
        head, companions = result
        if self._head is None or head.seq > self._head.seq:
            self._head = head
        self._since_checkpoint += 1
        if not self._healthy:
            self._recovered(resume)
        if self._since_checkpoint >= self._every:
            self._background(self.checkpoint())
        for write, value in zip(with_writes, companions, strict=True):
            write.committed(value)
        return head.seq

    def _failed(self, failure: Failure) -> NoReturn:
        self.failures += 1
        if self._on_failure is not None:
            self._on_failure()
        if self._healthy:
            self._healthy = False
            self._outage_since = format_ts(self._clock.seconds())
            self._outage_failures = 0
            log.error("audit write failed; refusing new work until it recovers")
            if self._running and not self._probe.running:
                self._background(self._probe.start(self._probe_interval, now=False))
        self._outage_failures += 1
        raise AuditUnavailable("audit write failed")

    def _recovered(self, resume: bool) -> None:
        """The first successful write after an outage: healthy again, and the outage
        itself goes into the trail (unless that write was already the probe's record)."""
        self._healthy = True
        if self._probe.running:
            self._probe.stop()
        log.info("audit writes succeed again")
        if not resume:
            self._background(self._append("audit.resumed", self._outage(), resume=True))

    def _outage(self) -> dict[str, object]:
        return {"since": self._outage_since, "failures": self._outage_failures}

    def _probe_tick(self) -> None:
        """While unhealthy nobody sends work (503), so test the disk ourselves: the probe
        is a real write of ``audit.resumed``, which records the outage when it works."""
        if self._healthy or self._resuming:
            return
        self._resuming = True

        def done(_: object) -> None:
            self._resuming = False

        d = self._append("audit.resumed", self._outage(), resume=True)
        d.addErrback(lambda _: None)
        d.addBoth(done)

    # -- checkpoints

    def checkpoint(self, kind: CheckpointKind = "checkpoint") -> Deferred[Checkpoint | None]:
        """Sign the newest committed link and append it to the checkpoints file."""
        head = self._head
        if head is None or (head.seq <= self._checkpointed and kind != "shutdown"):
            return succeed(None)
        cp = Checkpoint(head.seq, head.hash, format_ts(self._clock.seconds()), kind)
        line = sign_checkpoint(self._key, cp)
        previous, self._checkpointed = self._checkpointed, max(self._checkpointed, head.seq)
        self._since_checkpoint = 0
        d = deferToThreadPool(self._reactor, self._pool, append_line, self.checkpoints, line)

        def written(_: None) -> Checkpoint:
            return cp

        def failed(failure: Failure) -> Failure:
            self._checkpointed = previous
            self.failures += 1
            if self._on_failure is not None:
                self._on_failure()
            log.error("audit checkpoint write failed")
            return failure

        return d.addCallbacks(written, failed)

    def _tick(self) -> None:
        self._background(Deferred.fromCoroutine(self._checkpoint_newest()))

    async def _checkpoint_newest(self, kind: CheckpointKind = "checkpoint") -> None:
        """Checkpoint the newest link in the database, which may be newer than ours:
        ``switchctl audit search`` appends its own record from another process."""
        try:
            newest = await self._store.audit_head()
        except Exception:  # the checkpoint of our own head still helps
            log.error("audit head unreadable before a checkpoint")
            newest = None
        if newest is not None and (self._head is None or newest.seq > self._head.seq):
            self._head = newest
        await self.checkpoint(kind)

    # -- retention

    def purge(self) -> Deferred[int]:
        """Drop whole seq ranges older than the retention, leaving a signed anchor (the
        hash of the last purged seq) first in the checkpoints file, then in the same
        transaction as the delete: verify starts the chain from it."""
        return Deferred.fromCoroutine(self._purge())

    async def _purge(self) -> int:
        cutoff = format_ts(self._clock.seconds() - self._retention)
        end = await self._store.audit_last_before(cutoff)
        if end is None:
            return 0
        anchor = Checkpoint(end.seq, end.hash, format_ts(self._clock.seconds()), "anchor")
        line = sign_checkpoint(self._key, anchor)
        await deferToThreadPool(self._reactor, self._pool, append_line, self.checkpoints, line)
        purged = await self._store.purge_audit(end.seq, line)
        log.info(
            "audit retention purged {count} records through seq {seq}", count=purged, seq=end.seq
        )
        return purged

    def _retention_tick(self) -> None:
        self._background(self.purge())

    # -- life cycle

    def start(self) -> Deferred[None]:
        """Learn the chain head and the last checkpoint, then start the timers."""
        return Deferred.fromCoroutine(self._start())

    async def _start(self) -> None:
        self._pool.start()
        self._shutdown = stop_pool_at_shutdown(self._reactor, self._pool)
        self._head = await self._store.audit_head()
        self._checkpointed = await deferToThreadPool(
            self._reactor, self._pool, last_checkpoint_seq, self.checkpoints
        )
        self._running = True
        if self._timer_interval > 0:
            self._background(self._timer.start(self._timer_interval, now=False))
        if self._retention_interval > 0 and self._retention > 0:
            self._background(self._retention_timer.start(self._retention_interval, now=True))

    def stop(self) -> Deferred[None]:
        """Flush pending records, then write the shutdown checkpoint as the very last
        audit write. Call after everything that records has stopped, before the store."""
        return Deferred.fromCoroutine(self._stop())

    async def _stop(self) -> None:
        if not self._running:
            return
        self._running = False
        for timer in (self._timer, self._retention_timer, self._probe):
            if timer.running:
                timer.stop()
        try:
            await self._store.flush()
            await self._checkpoint_newest("shutdown")
        finally:
            cancel_shutdown_trigger(self._reactor, self._shutdown)
            self._pool.stop()

    @staticmethod
    def _background(d: Deferred[Any]) -> None:
        """Fire-and-forget work whose failures are already counted and logged."""
        d.addErrback(lambda f: None)


if TYPE_CHECKING:  # mypy proves AuditLog satisfies the AuditSink Protocol

    def _conforms(log: AuditLog) -> AuditSink:
        return log
