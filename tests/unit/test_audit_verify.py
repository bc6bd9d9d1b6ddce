"""`switchctl audit verify|search|export`: every tamper case is caught, search filters are
indexed and exact, exports are complete and re-verifiable."""

from __future__ import annotations

import argparse
import base64
import csv
import io
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switch.audit.chain import GENESIS, Checkpoint, chain_step, sign_checkpoint
from switch.cli import cmd_audit
from tests.unit.test_audit import Env, close_env, open_env

SUBJECTS = [
    {"terminal": "DISPATCH1", "operator": "demo", "ori": "MO0380100",
     "fields": {"name": "DOE, JOHN A", "dob": "1980-01-01"}},
    {"terminal": "RECORDS1", "operator": "alice", "ori": "MO0380100",
     "fields": {"plate": "ABC123", "plate_state": "MO"}},
    {"terminal": "DISPATCH1", "operator": "bob", "ori": "MO0480000",
     "fields": {"vin": "1HGCM82633A004352"}},
    {"terminal": "ADMIN1", "operator": "demo", "ori": "MO0380100",
     "fields": {"name": "DOERR, MARY"}},
]  # fmt: skip


@pytest_twisted.async_yield_fixture
async def trail(tmp_path: Path, reactor: Any) -> AsyncIterator[Env]:
    """12 records (inquiries and their replies), checkpoints at 5 and 10, a shutdown
    checkpoint at 12, the daemon stopped."""
    env = await open_env(tmp_path, reactor, checkpoint_every=5, checkpoint_seconds=0)
    for i in range(6):
        subject = SUBJECTS[i % len(SUBJECTS)]
        await env.audit.record("inquiry", {"id": f"Q{i}", "subject": "person", **subject})
        env.clock.advance(3600)
        await env.audit.record(
            "reply", {"id": f"R{i}", "in_reply_to": f"Q{i}", "network": "state", "status": "hit"}
        )
        env.clock.advance(3600)
    await close_env(env)
    yield env


def run(env: Env, *argv: str) -> tuple[int, str]:
    """Run one `switchctl audit` action in-process on the env's files."""
    parser = argparse.ArgumentParser()
    cmd_audit.register(parser.add_subparsers())
    extra = [] if argv[0] != "verify" else [
        "--keys", str(env.tmp / "keys"), "--checkpoints", str(env.checkpoints)
    ]  # fmt: skip
    args = parser.parse_args(["audit", *argv, "--db", str(env.store.path), *extra])
    out = io.StringIO()
    import sys

    saved, sys.stdout = sys.stdout, out
    try:
        code = args.func(args)
    finally:
        sys.stdout = saved
    return code, out.getvalue()


def sql(env: Env, statement: str, *params: Any) -> None:
    conn = sqlite3.connect(env.store.path)
    conn.execute(statement, params)
    conn.commit()
    conn.close()


def rechain_from(env: Env, seq: int) -> None:
    """An attacker with write access recomputes every hash from ``seq`` on."""
    conn = sqlite3.connect(env.store.path)
    rows = conn.execute("SELECT seq, record, hash FROM audit_log ORDER BY seq").fetchall()
    prev = GENESIS
    for s, record, digest in rows:
        if s >= seq:
            digest = chain_step(prev, s, record)
            conn.execute("UPDATE audit_log SET hash = ? WHERE seq = ?", (digest, s))
        prev = bytes(digest)
    conn.commit()
    conn.close()


def verdict(env: Env) -> tuple[int, str]:
    code, out = run(env, "verify")
    return code, out.strip()


# --------------------------------------------------------------------------- verify


def test_verify_ok(trail: Env) -> None:
    """An untouched trail verifies: OK, the record count and the last checkpoint."""
    code, out = verdict(trail)
    assert code == 0
    assert out.startswith("OK: 12 records (seq 1..12)")
    assert "last checkpoint seq 12 (shutdown" in out


def test_record_edit_detected(trail: Env) -> None:
    """Editing a record's content is reported at that seq as changed."""
    sql(trail, "UPDATE audit_log SET record = replace(record, 'DOE, JOHN A', 'ROE, JOHN A')"
        " WHERE seq = 1")  # fmt: skip
    assert verdict(trail) == (
        1,
        "FAILED at seq 1: changed: record or hash does not match the chain",
    )


def test_whitespace_only_edit_detected(trail: Env) -> None:
    """Even a change that keeps the JSON meaning (a space) breaks the chain."""
    sql(trail, "UPDATE audit_log SET record = replace(record, ',', ', ') WHERE seq = 4")
    assert verdict(trail)[1].startswith("FAILED at seq 4: changed")


def test_hash_edit_detected(trail: Env) -> None:
    """Editing a stored hash is reported at that seq."""
    sql(trail, "UPDATE audit_log SET hash = ? WHERE seq = 7", bytes(32))
    assert verdict(trail)[1].startswith("FAILED at seq 7: changed")


@pytest.mark.parametrize(
    ("column", "seq"),
    [("ts", 3), ("terminal", 1), ("operator", 3), ("ori", 5), ("name", 1), ("plate", 3),
     ("vin", 5), ("msg_id", 9), ("ref_id", 10)],
)  # fmt: skip
def test_index_copy_edit_detected(trail: Env, column: str, seq: int) -> None:
    """Every searchable copy (and ts) is checked against the record."""
    sql(trail, f"UPDATE audit_log SET {column} = 'X' WHERE seq = ?", seq)
    assert verdict(trail) == (1, f"FAILED at seq {seq}: index copy mismatch: {column}")


def test_index_copy_cleared_detected(trail: Env) -> None:
    """Hiding a record from search by nulling its copy is detected."""
    sql(trail, "UPDATE audit_log SET name = NULL WHERE seq = 1")
    assert verdict(trail) == (1, "FAILED at seq 1: index copy mismatch: name")


def test_deletion_detected(trail: Env) -> None:
    """Deleting a row in the middle names the missing seq."""
    sql(trail, "DELETE FROM audit_log WHERE seq = 6")
    assert verdict(trail) == (1, "FAILED at seq 6: deleted: seq 6 is missing")


def test_deleting_the_start_detected(trail: Env) -> None:
    """Deleting the oldest rows without a signed anchor is a deletion from seq 1."""
    sql(trail, "DELETE FROM audit_log WHERE seq <= 2")
    code, out = verdict(trail)
    assert code == 1 and out.startswith("FAILED at seq 1: deleted")


def test_seq_edit_detected(trail: Env) -> None:
    """Moving a row to another seq leaves a gap."""
    sql(trail, "UPDATE audit_log SET seq = 99 WHERE seq = 8")
    assert verdict(trail)[1] == "FAILED at seq 8: deleted: seq 8 is missing"


def test_reordering_whole_rows_detected(trail: Env) -> None:
    """Swapping two rows (record and hash) is reported as reordered."""
    conn = sqlite3.connect(trail.store.path)
    a = conn.execute("SELECT record, hash FROM audit_log WHERE seq = 3").fetchone()
    b = conn.execute("SELECT record, hash FROM audit_log WHERE seq = 4").fetchone()
    conn.execute("UPDATE audit_log SET record = ?, hash = ? WHERE seq = 3", b)
    conn.execute("UPDATE audit_log SET record = ?, hash = ? WHERE seq = 4", a)
    conn.commit()
    conn.close()
    assert verdict(trail) == (1, "FAILED at seq 3: reordered: the record of seq 3 is at seq 4")


def test_reordering_records_only_detected(trail: Env) -> None:
    """Swapping two records but leaving the hashes is reported as reordered too."""
    conn = sqlite3.connect(trail.store.path)
    a = conn.execute("SELECT record FROM audit_log WHERE seq = 2").fetchone()[0]
    b = conn.execute("SELECT record FROM audit_log WHERE seq = 9").fetchone()[0]
    conn.execute("UPDATE audit_log SET record = ? WHERE seq = 2", (b,))
    conn.execute("UPDATE audit_log SET record = ? WHERE seq = 9", (a,))
    conn.commit()
    conn.close()
    assert verdict(trail) == (1, "FAILED at seq 2: reordered: the record of seq 2 is at seq 9")


def test_rechained_rewrite_detected_by_checkpoint(trail: Env) -> None:
    """An attacker who edits seq 7 and recomputes every later hash produces a
    self-consistent chain; the signed checkpoint of seq 10 exposes it, after seq 5."""
    sql(trail, "UPDATE audit_log SET record = replace(record, 'hit', 'no_record') WHERE seq = 8")
    rechain_from(trail, 8)
    code, out = verdict(trail)
    assert code == 1
    assert out.startswith("FAILED at seq 6: changed: records after seq 5 were rewritten")


def test_truncation_before_last_checkpoint_detected(trail: Env) -> None:
    """Dropping the tail covered by a checkpoint is reported as truncated."""
    sql(trail, "DELETE FROM audit_log WHERE seq > 8")
    assert verdict(trail) == (
        1,
        "FAILED at seq 9: truncated: the log ends at seq 8 but a signed checkpoint names seq 12",
    )


def test_truncating_everything_detected(trail: Env) -> None:
    """An emptied table with checkpoints but no anchor is truncation."""
    sql(trail, "DELETE FROM audit_log")
    assert verdict(trail)[1].startswith("FAILED at seq 1: truncated")


@pytest_twisted.ensureDeferred
async def test_tail_after_last_checkpoint_is_the_known_limit(tmp_path: Path, reactor: Any) -> None:
    """After a crash (no shutdown checkpoint) records past the last checkpoint are held
    by the chain only: dropping them is not detectable (documented); dropping into the
    checkpointed part is."""
    env = await open_env(tmp_path, reactor, checkpoint_every=5)
    for i in range(7):
        await env.audit.record("delivery", {"id": f"M{i}"})
    await env.store.flush()
    await env.audit.checkpoint()  # barrier for the file write of seq 5's checkpoint
    await env.audit.stop()
    sql(env, "DELETE FROM audit_log WHERE seq = 7")  # as if the crash lost it
    lines = env.checkpoints.read_text().splitlines()
    env.checkpoints.write_text(lines[0] + "\n")  # keep only the checkpoint of seq 5
    await env.store.stop()
    assert verdict(env)[0] == 0
    sql(env, "DELETE FROM audit_log WHERE seq >= 5")
    assert verdict(env)[1].startswith("FAILED at seq 5: truncated")


def test_forged_checkpoint_detected(trail: Env) -> None:
    """A checkpoint signed with another key (covering a rewrite) is a bad signature."""
    sql(trail, "UPDATE audit_log SET record = replace(record, 'hit', 'no_record') WHERE seq = 8")
    rechain_from(trail, 8)
    conn = sqlite3.connect(trail.store.path)
    h12 = bytes(conn.execute("SELECT hash FROM audit_log WHERE seq = 12").fetchone()[0])
    h10 = bytes(conn.execute("SELECT hash FROM audit_log WHERE seq = 10").fetchone()[0])
    conn.close()
    forger = Ed25519PrivateKey.generate()
    lines = [
        sign_checkpoint(forger, Checkpoint(10, h10, "2027-01-15T09:00:00.000000Z", "checkpoint")),
        sign_checkpoint(forger, Checkpoint(12, h12, "2027-01-15T10:00:00.000000Z", "shutdown")),
    ]
    original = trail.checkpoints.read_text().splitlines()
    trail.checkpoints.write_text("\n".join([original[0], *lines]) + "\n")
    code, out = verdict(trail)
    assert code == 1
    assert out.startswith("FAILED at seq 10: bad signature: checkpoints line 2")


def test_tampered_signature_detected(trail: Env) -> None:
    """Flipping one bit of a real signature is a bad signature."""
    lines = trail.checkpoints.read_text().splitlines()
    data = json.loads(lines[1])
    sig = bytearray(base64.b64decode(data["sig"]))
    sig[0] ^= 1
    data["sig"] = base64.b64encode(bytes(sig)).decode()
    lines[1] = json.dumps(data)
    trail.checkpoints.write_text("\n".join(lines) + "\n")
    assert verdict(trail)[1].startswith("FAILED at seq 10: bad signature")


def test_missing_public_key_is_an_error(trail: Env, capsys: Any) -> None:
    """verify without the public key fails with one line, not a traceback."""
    (trail.tmp / "keys" / "audit-signing.pub").unlink()
    with pytest.raises(Exception, match="not found"):
        run(trail, "verify")


# --------------------------------------------------------------------------- search/export


def lines_of(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.mark.parametrize(
    ("flags", "seqs"),
    [
        ([], list(range(1, 14))),  # 13: this search's own audit.search record
        (["--terminal", "DISPATCH1"], [1, 5, 9]),
        (["--operator", "demo"], [1, 7, 9]),
        (["--ori", "mo0480000"], [5]),
        (["--name", "DOE"], [1, 7, 9]),
        (["--name", "doe,"], [1, 9]),
        (["--plate", "abc123"], [3, 11]),
        (["--vin", "1HGCM82633A004352"], [5]),
        (["--id", "Q2"], [5, 6]),
        (["--since", "2027-01-15T10:00:00Z", "--until", "2027-01-15T12:00"], [3, 4]),
        (["--since", "2027-01-15T10:00:00+02:00", "--until", "2027-01-15T09:00"], [1]),
        (["--terminal", "DISPATCH1", "--since", "2027-01-15T09:00:00"], [5, 9]),
        (["--name", "NOBODY"], []),
        (["--limit", "2"], [1, 2]),
    ],
)
def test_search_filters(trail: Env, flags: list[str], seqs: list[int]) -> None:
    """Each filter selects exactly the matching records, in seq order, as JSON lines
    carrying the stored canonical record verbatim."""
    code, out = run(trail, "search", *flags)
    assert code == 0
    got = lines_of(out)
    assert [g["seq"] for g in got] == seqs
    for g in got:
        assert set(g) == {"seq", "hash", "record"} and len(bytes.fromhex(g["hash"])) == 32


def test_search_bad_time_is_an_error(trail: Env) -> None:
    """A malformed --since is a one-line error."""
    with pytest.raises(Exception, match="not an ISO date"):
        run(trail, "search", "--since", "yesterday")


def test_every_filter_uses_an_index(trail: Env) -> None:
    """The query plan of every filter searches an index, never scans the table."""
    from switch.store.interface import AuditQuery

    conn = sqlite3.connect(trail.store.path)
    queries = [
        AuditQuery(since="2027"), AuditQuery(until="2027"), AuditQuery(terminal="T"),
        AuditQuery(operator="o"), AuditQuery(ori="O"), AuditQuery(name="N"),
        AuditQuery(plate="P"), AuditQuery(vin="V"), AuditQuery(id="I"),
        AuditQuery(terminal="T", since="2027"),
    ]  # fmt: skip
    from switch.store import sqlite as store_sqlite

    captured: list[tuple[str, list[object]]] = []
    for q in queries:
        captured.clear()

        class Spy:
            def execute(self, statement: str, args: Any) -> Any:
                captured.append((statement, list(args)))
                return iter(())

        list(store_sqlite.search_audit_rows(Spy(), q))  # type: ignore[arg-type]
        statement, args = captured[0]
        plan = " ".join(r[3] for r in conn.execute("EXPLAIN QUERY PLAN " + statement, args))
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, (q, plan)
        assert "SCAN audit_log" not in plan, (q, plan)
    conn.close()


def test_export_jsonl_rechains(trail: Env) -> None:
    """export --format jsonl is every record; its records re-chain to the stored hashes."""
    code, out = run(trail, "export", "--format", "jsonl")
    assert code == 0
    prev = GENESIS
    got = lines_of(out)
    assert len(got) == 13 and got[-1]["record"]["event"] == "audit.export"
    for g in got:
        text = json.dumps(g["record"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        prev = chain_step(prev, g["seq"], text)
        assert prev.hex() == g["hash"]


def test_export_csv(trail: Env, tmp_path: Path) -> None:
    """export --format csv writes a header and one row per record with the copies."""
    target = tmp_path / "out.csv"
    code, _ = run(trail, "export", "--format", "csv", "--output", str(target))
    assert code == 0
    rows = list(csv.DictReader(target.open(newline="")))
    assert len(rows) == 13 and rows[-1]["event"] == "audit.export"
    assert rows[0]["event"] == "inquiry" and rows[0]["name"] == "DOE, JOHN A"
    assert rows[1]["ref_id"] == "Q0" and json.loads(rows[1]["record"])["network"] == "state"


def test_search_and_export_are_audited(trail: Env, tmp_path: Path) -> None:
    """Each search and export appends its own record (who, where, which filters) to the
    chain before reading, and the chain still verifies."""
    run(trail, "search", "--name", "doe", "--since", "2027-01-15T10:00Z", "--limit", "5")
    run(trail, "export", "--format", "csv", "--output", str(tmp_path / "x.csv"), "--id", "Q1")
    conn = sqlite3.connect(trail.store.path)
    rows = conn.execute("SELECT seq, record, name, msg_id FROM audit_log WHERE seq > 12").fetchall()
    conn.close()
    assert [r[0] for r in rows] == [13, 14]
    search, export = (json.loads(r[1]) for r in rows)
    assert search["event"] == "audit.search" and export["event"] == "audit.export"
    assert search["filters"] == {"name": "DOE", "since": "2027-01-15T10:00:00.000000Z"}
    assert search["limit"] == 5 and search["os_user"] and search["host"]
    assert export["filters"] == {"id": "Q1"} and export["limit"] is None
    assert export["format"] == "csv" and export["output"] == str(tmp_path / "x.csv")
    # the filters have no search copies: searching for a name finds no searches
    assert all(r[2] is None and r[3] is None for r in rows)
    assert verdict(trail)[0] == 0


def test_unrecordable_search_is_refused(
    trail: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the search cannot be recorded (here: a database SQLite reports read-only;
    file modes do not stop root, who runs CI) it is refused with a one-line reason:
    nothing is printed and no export file is created."""
    from switch.store.interface import StoreError

    def read_only(path: Path, entry: object) -> None:
        raise StoreError(f"{path}: cannot write (attempt to write a readonly database)")

    monkeypatch.setattr(cmd_audit, "append_audit_now", read_only)
    with pytest.raises(Exception, match=r"readonly database.*themselves audited"):
        run(trail, "search")
    target = tmp_path / "never.csv"
    with pytest.raises(Exception, match="themselves audited"):
        run(trail, "export", "--format", "csv", "--output", str(target))
    assert not target.exists()
    monkeypatch.undo()
    with pytest.raises(Exception, match="--limit"):
        run(trail, "search", "--limit", "-1")
    assert [g["seq"] for g in lines_of(run(trail, "search")[1])][-1] == 13


def test_direct_append_never_creates_a_database(tmp_path: Path) -> None:
    """The CLI's append refuses a path with no database rather than making an empty one."""
    from switch.audit.log import audit_entry
    from switch.store.interface import StoreError
    from switch.store.sqlite import append_audit_now

    entry = audit_entry("audit.search", "2027-01-15T00:00:00.000000Z", {})
    with pytest.raises(StoreError, match="no such database"):
        append_audit_now(tmp_path / "missing.db", entry)
    assert not (tmp_path / "missing.db").exists()


@pytest_twisted.ensureDeferred
async def test_cli_reads_while_daemon_runs(tmp_path: Path, reactor: Any) -> None:
    """verify and search work on the live database while the daemon holds it open; the
    search's own record joins the daemon's chain, and the daemon's shutdown checkpoint
    signs it."""
    env = await open_env(tmp_path, reactor)
    try:
        await env.audit.record("session.logon", {"terminal": "DISPATCH1", "operator": "demo"})
        await env.audit.checkpoint()
        code, out = run(env, "verify")
        assert code == 0 and out.startswith("OK: 1 records")
        assert [g["seq"] for g in lines_of(run(env, "search", "--operator", "demo")[1])] == [1]
        assert await env.audit.record("session.logoff", {"operator": "demo"}) == 3
        run(env, "search", "--id", "nothing")  # seq 4: newer than anything the daemon wrote
    finally:
        await close_env(env)
    code, out = verdict(env)
    assert code == 0 and "4 records" in out and "last checkpoint seq 4 (shutdown" in out


@pytest_twisted.ensureDeferred
async def test_anchor_forgery_detected(tmp_path: Path, reactor: Any) -> None:
    """After retention the anchor carries the chain; an edited anchor fails its signature."""
    env = await open_env(tmp_path, reactor, retention_days=1, retention_check_seconds=0)
    for i in range(3):
        await env.audit.record("delivery", {"id": f"M{i}"})
    env.clock.advance(2 * 86400)
    await env.audit.record("delivery", {"id": "NEW"})
    assert await env.audit.purge() == 3
    await close_env(env)
    assert verdict(env)[0] == 0
    # drop the file copy: only the database anchor remains, and it is forged
    env.checkpoints.write_text(
        "\n".join(x for x in env.checkpoints.read_text().splitlines() if '"anchor"' not in x)
    )
    assert verdict(env)[0] == 0
    conn = sqlite3.connect(env.store.path)
    line = json.loads(conn.execute("SELECT line FROM audit_anchor").fetchone()[0])
    line["hash"] = "00" * 32
    conn.execute("UPDATE audit_anchor SET line = ?", (json.dumps(line),))
    conn.commit()
    conn.close()
    assert verdict(env)[1].startswith("FAILED at seq 3: bad signature: database anchor")
