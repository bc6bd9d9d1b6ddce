"""Crash safety: a process writing audit records is SIGKILLed mid-stream.

Everything whose Deferred fired (the point at which the switch answers 202 or ACK) is in
the database, the chain verifies, SQLite's own integrity check passes, and a restarted
log continues the chain.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from switch.audit.chain import load_public_key
from switch.audit.log import AuditLog
from switch.audit.verify import verify
from switch.config import AuditConfig
from switch.store import SQLiteStore
from switch.store.sqlite import connect_reader
from tests.unit.test_audit import make_keys

pytestmark = pytest.mark.integration

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from twisted.internet import reactor, task
    from switch.audit.log import AuditLog
    from switch.config import AuditConfig
    from switch.store import SQLiteStore

    var = Path(sys.argv[1])

    async def main(reactor):
        store = SQLiteStore(reactor, var / "switch.db")
        await store.start()
        audit = AuditLog.from_config(
            AuditConfig(keys_dir=var / "keys", checkpoints=var / "checkpoints.jsonl",
                        checkpoint_every=50, checkpoint_seconds=0.05),
            store, reactor)
        await audit.start()
        n = 0

        def acked(seq, n):
            sys.stdout.write(f"{seq} M{n}\\n")
            sys.stdout.flush()

        while True:  # keep ~100 records in flight: group commit under load
            batch = []
            for _ in range(100):
                d = audit.record("teletype.in", {"id": f"M{n}", "text": "x" * (n % 300)})
                d.addCallback(acked, n)
                batch.append(d)
                n += 1
            from twisted.internet.defer import gatherResults
            await gatherResults(batch)

    task.react(lambda r: __import__("twisted.internet.defer", fromlist=["x"])
               .Deferred.fromCoroutine(main(r)))
    """
)


@pytest_twisted.ensureDeferred
async def test_sigkill_mid_stream_loses_nothing_acked(tmp_path: Path, reactor: Any) -> None:
    """After SIGKILL every acknowledged record is stored with the content it was given,
    the chain and checkpoints verify, and a restart continues the chain."""
    make_keys(tmp_path / "keys")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    acked: dict[int, str] = {}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            seq, msg_id = line.split()
            acked[int(seq)] = msg_id
            if len(acked) >= 1500:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=10)
    assert len(acked) >= 1500, err[-2000:]

    conn = sqlite3.connect(tmp_path / "switch.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {
        seq: json.loads(record)["id"]
        for seq, record in conn.execute("SELECT seq, record FROM audit_log")
    }
    conn.close()
    assert all(stored.get(seq) == msg_id for seq, msg_id in acked.items())
    assert max(stored) >= max(acked)

    key = load_public_key(tmp_path / "keys" / "audit-signing.pub")
    checkpoints = tmp_path / "checkpoints.jsonl"

    def check() -> Any:
        reader = connect_reader(tmp_path / "switch.db")
        try:
            return verify(reader, key, checkpoints.read_text().splitlines())
        finally:
            reader.close()

    result = check()
    assert result.ok, result.describe()
    assert result.count == len(stored)
    assert result.last_checkpoint is not None and result.last_checkpoint.kind == "checkpoint"

    store = SQLiteStore(reactor, tmp_path / "switch.db")
    await store.start()
    audit = AuditLog.from_config(
        AuditConfig(keys_dir=tmp_path / "keys", checkpoints=checkpoints), store, reactor
    )
    await audit.start()
    seq = await audit.record("session.logon", {"operator": "demo"})
    await audit.stop()
    await store.stop()
    assert seq == max(stored) + 1
    result = check()
    assert result.ok and result.last_checkpoint is not None
    assert result.last_checkpoint.seq == seq and result.last_checkpoint.kind == "shutdown"
