"""The CJIS lockout survives a restart: the lock is a row of the store's table.

Operator names that do not exist are counted and locked like real ones (no user
enumeration), so the test locks one without touching the operator the harness uses.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from switch.cli.client import Client
from tests.integration.gateway_harness import Gateway, start_gateway

pytestmark = pytest.mark.integration


@pytest.fixture
def gw() -> Iterator[Gateway]:
    gateway = start_gateway(persons=500)
    try:
        yield gateway
    finally:
        gateway.close()


def _logon(gw: Gateway, operator: str) -> int:
    reply = Client(gw.socket).request(
        "POST", "/v1/sessions", {"terminal": "DISPATCH1", "operator": operator, "password": "x"}
    )
    return reply.status


def test_lock_holds_after_restart(gw: Gateway) -> None:
    assert [_logon(gw, "ghost") for _ in range(5)] == [401] * 5
    assert _logon(gw, "ghost") == 423
    gw.stop_switchd()
    db = sqlite3.connect(f"file:{gw.root / 'var' / 'switch.db'}?mode=ro", uri=True)
    try:
        rows = db.execute("SELECT operator FROM operator_locks").fetchall()
    finally:
        db.close()
    assert rows == [("ghost",)]
    assert not (gw.root / "var" / "locks.json").exists()
    gw.start_switchd()
    assert _logon(gw, "ghost") == 423
