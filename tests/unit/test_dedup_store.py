"""Durable duplicate memory: answered from memory after loading the store's live entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
import structlog
from twisted.internet import task

from switch.protocols.dedup import StoreDuplicates
from switch.store.sqlite import SQLiteStore


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest_twisted.ensureDeferred
async def test_restart_remembers_and_expires(tmp_path: Path, reactor: Any) -> None:
    """Ids remembered before a restart are duplicates after it (from memory, loaded at
    start); after 25 h they are not; new ids are not."""
    clock = Clock(1_000_000.0)
    store = SQLiteStore(reactor, tmp_path / "s.db")
    await store.start()
    try:
        first = StoreDuplicates(store, clock)
        assert await first.load() == 0
        assert not await first.seen("local", "A1")
        first.remember("local", "A1")
        await first.flush()
        assert await first.seen("local", "A1")
        assert not await first.seen("regional", "A1")  # keyed by (link, id)

        clock.now += 3600
        second = StoreDuplicates(store, clock)  # a restarted daemon
        assert await second.load() == 1
        assert await second.seen("local", "A1")
        assert not await second.seen("local", "B2")

        clock.now += 25 * 3600
        third = StoreDuplicates(store, clock)
        assert await third.load() == 0
        assert not await third.seen("local", "A1")
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_too_many_to_hold_falls_back_to_the_store(tmp_path: Path, reactor: Any) -> None:
    """When the table holds more than the memory may, misses are asked of the store."""
    clock = Clock(1_000_000.0)
    store = SQLiteStore(reactor, tmp_path / "s.db")
    await store.start()
    try:
        writer = StoreDuplicates(store, clock, max_entries=10)
        for i in range(5):
            writer.remember("state", f"M{i}")
        await writer.flush()
        small = StoreDuplicates(store, clock, max_entries=3)
        assert await small.load() == 0
        assert await small.seen("state", "M0")  # not in memory: from the store
        assert not await small.seen("state", "M9")
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_remembered_ids_are_written_together(tmp_path: Path, reactor: Any) -> None:
    """With a scheduler, ids gathered within the flush delay go to the store in one
    commit; memory knows them at once; flush() writes the rest at shutdown."""
    clock = Clock(1_000_000.0)
    timers = task.Clock()
    store = SQLiteStore(reactor, tmp_path / "s.db")
    await store.start()
    try:
        dups = StoreDuplicates(store, clock, call_later=timers.callLater, flush_delay=0.1)
        await dups.load()
        commits = store.commits
        for i in range(4):
            dups.remember("local", f"R{i}")
        assert dups.known("local", "R3") is True  # from memory, before any write
        assert await dups.seen("local", "R3")
        assert dups.known("local", "R4") is False  # the memory holds every live entry
        assert len(timers.getDelayedCalls()) == 1  # one flush for the four
        assert store.commits == commits
        timers.advance(0.1)
        await dups.flush()  # waits for the write the timer started; nothing new to write
        assert store.commits == commits + 1
        assert await StoreDuplicates(store, clock).load() == 4

        dups.remember("national", "N1")
        await dups.flush()  # shutdown: no waiting for the timer
        assert not timers.getDelayedCalls()
        assert await StoreDuplicates(store, clock).load() == 5
    finally:
        await store.stop()


@pytest_twisted.ensureDeferred
async def test_failed_write_is_logged_and_ids_stay_known(tmp_path: Path, reactor: Any) -> None:
    """Nobody waits for the durable copy, so a failed write is logged by the memory
    (a count, no ids), flush() still fires, and the ids are still caught in memory."""
    clock = Clock(1_000_000.0)
    store = SQLiteStore(reactor, tmp_path / "s.db")
    await store.start()
    try:
        dups = StoreDuplicates(store, clock)
        await dups.load()

        def broken(entries: Any, now: float) -> Any:
            from twisted.internet.defer import fail

            return fail(OSError("disk full"))

        store.remember_duplicates = broken  # type: ignore[method-assign]
        with structlog.testing.capture_logs() as logs:
            dups.remember("local", "F1")
            dups.remember("local", "F2")
            await dups.flush()
        failed = [e for e in logs if e["event"] == "duplicate memory write failed"]
        assert [e["count"] for e in failed] == [1, 1]
        assert "F1" not in str(logs)
        assert dups.known("local", "F1") and await dups.seen("local", "F2")
    finally:
        await store.stop()
