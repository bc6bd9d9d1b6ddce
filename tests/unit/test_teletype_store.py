"""The TeletypeStore seam: the SQLite tables (schema migration 2) behave exactly like the
in-memory store the engine's unit tests use, and survive a restart."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from switch.store import SQLiteStore, StoreError, TeletypeItem
from switch.teletype_store import (
    ConfirmationRecord,
    InterceptRecord,
    MemoryTeletypeStore,
    MessageRecord,
    RouteRecord,
)

T0 = 1_800_000_000.0


def message(id: str = "M1", created: float = T0) -> MessageRecord:
    return MessageRecord(
        id=id,
        terminal="DISPATCH1",
        operator="demo",
        key="YQ",
        from_ori="MO0380100",
        to=("TX1234567", "KS"),
        text="PLEASE CONFIRM",
        priority="urgent",
        fields={"nic": "W123", "urgency": "U"},
        in_reply_to=None,
        created=created,
    )


def routes(id: str = "M1", state: Any = "queued") -> list[RouteRecord]:
    return [
        RouteRecord(id, 1, "TX1234567", "national", state, f"{id}-1", T0),
        RouteRecord(id, 2, "KS", None, "intercepted", f"{id}-2", T0),
    ]


def confirmation(id: str = "C1", outcome: Any = "pending") -> ConfirmationRecord:
    return ConfirmationRecord(
        id=id,
        direction="incoming",
        urgency="U",
        request_number=1,
        sent_at=T0,
        outcome=outcome,
        terminals=("RECORDS1",),
        counterpart="TX1234567",
        message_ids=("X1",),
        fields={"nic": "W123"},
        created=T0,
        updated=T0,
    )


@pytest_twisted.async_yield_fixture(params=["memory", "sqlite"])
async def store(request: Any, tmp_path: Path, reactor: Any) -> AsyncIterator[Any]:
    if request.param == "memory":
        yield MemoryTeletypeStore()
        return
    s = SQLiteStore(reactor, tmp_path / "switch.db")
    await s.start()
    yield s
    await s.stop()


@pytest_twisted.ensureDeferred
async def test_message_and_routes_round_trip(store: Any) -> None:
    """A saved message comes back with its routes in order; a second save of the same id
    fails; an unknown id is None."""
    await store.save_message(message(), routes())
    got = await store.get_message("M1")
    assert got is not None
    assert got[0] == message()
    assert [r.wire_id for r in got[1]] == ["M1-1", "M1-2"]
    assert got[1][1].link is None and got[1][0].link == "national"
    with pytest.raises((ValueError, StoreError)):  # the engine's own error type
        await store.save_message(message(), [])
    assert await store.get_message("nope") is None


@pytest_twisted.ensureDeferred
async def test_route_update_moves_the_wire_id(store: Any) -> None:
    """update_route replaces (message, number); the old wire id no longer finds it, the
    new one does; open_routes lists queued/sent only."""
    await store.save_message(message(), routes())
    first = (await store.get_message("M1"))[1][0]
    moved = dataclasses.replace(first, wire_id="M1-3", state="sent", attempts=2, text="EDITED")
    await store.update_route(moved)
    assert await store.route_by_wire("M1-1") is None
    assert await store.route_by_wire("M1-3") == moved
    assert [r.wire_id for r in await store.open_routes()] == ["M1-3"]
    with pytest.raises(KeyError):
        await store.update_route(dataclasses.replace(first, number=9))


@pytest_twisted.ensureDeferred
async def test_intercepts_and_confirmations(store: Any) -> None:
    """Intercept items are listed oldest first, replaced by id and deleted once;
    confirmations are upserted and filtered by open outcome."""
    a = InterceptRecord("M1-2", "M1", 2, "unroutable", "no rule", T0 + 1)
    b = InterceptRecord("M2-1", "M2", 1, "rejected", "NAK 19", T0)
    await store.put_intercept(a)
    await store.put_intercept(b)
    locked = dataclasses.replace(a, locked_by="demo", lock_session="s1", lock_expires=T0 + 900)
    await store.put_intercept(locked)
    assert [i.id for i in await store.list_intercepts()] == ["M2-1", "M1-2"]
    assert await store.get_intercept("M1-2") == locked
    assert await store.delete_intercept("M2-1") is True
    assert await store.delete_intercept("M2-1") is False
    await store.save_confirmation(confirmation("C1"))
    await store.save_confirmation(confirmation("C2", "confirmed"))
    answered = dataclasses.replace(
        confirmation("C1"), outcome="in_progress", reply={"confirmed": "P"}, warned=1
    )
    await store.save_confirmation(answered)
    assert await store.get_confirmation("C1") == answered
    assert [c.id for c in await store.list_confirmations(open_only=True)] == ["C1"]
    assert len(await store.list_confirmations()) == 2


@pytest_twisted.ensureDeferred
async def test_sqlite_state_survives_a_restart_and_purge_keeps_open_work(
    tmp_path: Path, reactor: Any
) -> None:
    """Messages, intercept items and confirmations are durable; purge drops only finished
    messages and closed confirmations past the retention."""
    path = tmp_path / "switch.db"
    s = SQLiteStore(reactor, path, teletype_retention=100.0)
    await s.start()
    await s.save_message(message("M1"), routes("M1", "accepted"))
    await s.save_message(message("M2"), routes("M2", "queued"))
    await s.save_message(message("M3"), [RouteRecord("M3", 1, "TX", "national", "accepted",
                                                     "M3-1", T0)])  # fmt: skip
    await s.put_intercept(InterceptRecord("M1-2", "M1", 2, "unroutable", "no rule", T0))
    await s.save_confirmation(confirmation("C1"))
    await s.save_confirmation(confirmation("C2", "confirmed"))
    await s.enqueue_teletype(
        TeletypeItem("M2-1", "national", "urgent", {"id": "M2-1"}, expires=T0 + 10), T0
    )
    await s.stop()
    s = SQLiteStore(reactor, path, teletype_retention=100.0)
    await s.start()
    try:
        assert (await s.get_message("M2")) is not None
        assert [i.id for i in await s.list_intercepts()] == ["M1-2"]
        counts = await s.purge(T0 + 1000)
        assert counts.extra == {"messages": 1, "confirmations": 1}
        assert await s.get_message("M3") is None  # finished, nothing intercepted
        assert await s.get_message("M1") is not None  # an item waits for an admin
        assert await s.get_message("M2") is not None  # still queued
        assert [c.id for c in await s.list_confirmations()] == ["C1"]
    finally:
        await s.stop()


@pytest_twisted.ensureDeferred
async def test_message_and_queue_items_commit_with_their_audit_record(
    tmp_path: Path, reactor: Any
) -> None:
    """The engine commits a message, its routes and its queue items as companion writes
    of its ``teletype.out`` record: one commit, and all of them or none (here the second
    submission's queue item clashes, so its record and message are not kept either)."""
    from switch.audit.interface import AuditUnavailable, CompanionWrite
    from switch.deferreds import nothing
    from tests.unit.test_audit import close_env, open_env

    env = await open_env(tmp_path, reactor)
    try:
        store = env.store
        item = TeletypeItem("M1-1", "national", "urgent", {"text": "X"}, T0 + 3600)

        def writes(id: str) -> list[CompanionWrite]:
            return [
                CompanionWrite(store.save_message_job(message(id), routes(id)), nothing),
                CompanionWrite(store.enqueue_teletype_job(item, T0), nothing),
            ]

        before = store.commits
        await env.audit.record("teletype.out", {"id": "M1"}, writes("M1"), gather=False)
        assert store.commits - before == 1
        assert (await store.get_message("M1")) is not None
        assert (await store.get_teletype("M1-1")) is not None
        with pytest.raises(AuditUnavailable):
            await env.audit.record("teletype.out", {"id": "M2"}, writes("M2"))
        assert await store.get_message("M2") is None
        rows = await store.read(lambda c: c.execute("SELECT count(*) FROM audit_log").fetchone())
        assert rows[0] == 1
    finally:
        await close_env(env)
