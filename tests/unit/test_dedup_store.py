"""Durable duplicate memory: answered from memory after loading the store's live entries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest_twisted
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
        await first.remember("local", "A1")
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
            await writer.remember("state", f"M{i}")
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
        done = [dups.remember("local", f"R{i}") for i in range(4)]
        assert await dups.seen("local", "R3")  # from memory, before any write
        assert not any(d.called for d in done)
        assert len(timers.getDelayedCalls()) == 1  # one flush for the four
        commits = store.commits
        timers.advance(0.1)
        for d in done:
            await d
        assert store.commits == commits + 1
        assert await StoreDuplicates(store, clock).load() == 4

        last = dups.remember("national", "N1")
        await dups.flush()  # shutdown: no waiting for the timer
        assert last.called and not timers.getDelayedCalls()
        assert await StoreDuplicates(store, clock).load() == 5
    finally:
        await store.stop()
