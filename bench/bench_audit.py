"""Audit benchmark: commit throughput (group commit vs one commit per record) and search
latency on a large trail. Standalone: ``.venv/bin/python bench/bench_audit.py``.

1. Throughput: the real AuditLog on the real SQLiteStore (WAL, synchronous=FULL) in a
   temporary directory on the same disk as the working tree. "group" keeps many records
   in flight, so the writer thread commits them in batches; "single" awaits each record
   before sending the next, so every record is its own transaction and fsync.
2. Search: a trail of N records (default 1,000,000, synthetic values only) is bulk
   inserted with a valid chain (setup only: one transaction, synchronous=OFF), then each
   query runs the same code path as ``switchctl audit search`` (read-only connection,
   JSON lines rendered) and is timed to the last line. ``verify`` on the whole trail is
   timed too.

Results go to ``bench/RESULTS.md`` under the "## Audit" heading (that section only).
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import random
import sqlite3
import string
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from results import replace_section  # noqa: E402
from twisted.internet import defer, task  # noqa: E402

from switch.audit.chain import (  # noqa: E402
    GENESIS,
    Checkpoint,
    canonical,
    chain_step,
    format_ts,
    index_copies,
    sign_checkpoint,
)
from switch.audit.log import AuditLog  # noqa: E402
from switch.audit.verify import verify  # noqa: E402
from switch.cli.cmd_audit import jsonl_line  # noqa: E402
from switch.store import AuditQuery, SQLiteStore  # noqa: E402
from switch.store.interface import AUDIT_INDEX_COLUMNS  # noqa: E402
from switch.store.sqlite import connect_reader, connect_writer, migrate, search_audit_rows  # noqa: E402

START = 1_800_000_000.0


def keypair() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# --------------------------------------------------------------------------- throughput


async def throughput(reactor: Any, workdir: Path, group_n: int, single_n: int) -> dict[str, Any]:
    store = SQLiteStore(reactor, workdir / "tp.db")
    await store.start()
    audit = AuditLog(
        store, reactor, keypair(), workdir / "tp-checkpoints.jsonl", checkpoint_seconds=0
    )
    await audit.start()
    fields = {"terminal": "DISPATCH1", "operator": "demo", "ori": "MO0380100", "subject": "person"}

    c0, t0 = store.commits, time.perf_counter()
    for i in range(single_n):
        await audit.record("inquiry", {**fields, "id": f"S{i}"})
    single_s = time.perf_counter() - t0
    single_commits = store.commits - c0

    c0, t0 = store.commits, time.perf_counter()
    in_flight = 500
    for start in range(0, group_n, in_flight):
        await defer.gatherResults(
            [
                audit.record("inquiry", {**fields, "id": f"G{i}"})
                for i in range(start, min(group_n, start + in_flight))
            ]
        )
    group_s = time.perf_counter() - t0
    group_commits = store.commits - c0
    await audit.stop()
    await store.stop()
    return {
        "single_n": single_n,
        "single_rate": single_n / single_s,
        "single_commits": single_commits,
        "group_n": group_n,
        "group_rate": group_n / group_s,
        "group_commits": group_commits,
        "in_flight": in_flight,
    }


# --------------------------------------------------------------------------- search


def _word(rng: random.Random, n: int) -> str:
    return "".join(rng.choice(string.ascii_uppercase) for _ in range(n))


def build_trail(path: Path, n: int, key: Ed25519PrivateKey, checkpoints: Path) -> dict[str, Any]:
    """Bulk insert n synthetic records with a valid chain; returns values to search for."""
    rng = random.Random(7)
    names = [f"{_word(rng, 6)}, {_word(rng, 5)}" for _ in range(20_000)]
    terminals = [f"T{i:03d}" for i in range(50)]
    operators = [f"op{i:03d}" for i in range(200)]
    oris = [f"MO{i:07d}" for i in range(100)]
    conn = connect_writer(path)
    migrate(conn)
    conn.execute("PRAGMA synchronous = OFF")  # setup only
    cols = ", ".join(AUDIT_INDEX_COLUMNS)
    marks = ", ".join("?" for _ in AUDIT_INDEX_COLUMNS)
    insert = f"INSERT INTO audit_log (seq, ts, record, hash, {cols}) VALUES (?, ?, ?, ?, {marks})"
    prev = GENESIS
    picked: dict[str, Any] = {}
    step = 365 * 86400 / n  # spread over a year, as the retention keeps
    conn.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    for seq in range(1, n + 1):
        ts = format_ts(START + seq * step)
        kind = seq % 5
        base: dict[str, object] = {
            "terminal": rng.choice(terminals),
            "operator": rng.choice(operators),
            "ori": rng.choice(oris),
        }
        if kind in (0, 1):
            fields = {"name": rng.choice(names), "dob": "1980-01-01"}
            record = {
                "event": "inquiry",
                "ts": ts,
                "id": f"Q{seq}",
                "subject": "person",
                "fields": fields,
                "networks": ["local", "state"],
                **base,
            }
        elif kind == 2:
            fields = {"plate": _word(rng, 3) + str(rng.randint(100, 999)), "plate_state": "MO"}
            record = {
                "event": "inquiry",
                "ts": ts,
                "id": f"Q{seq}",
                "subject": "vehicle",
                "fields": fields,
                "networks": ["state"],
                **base,
            }
        elif kind == 3:
            fields = {"vin": _word(rng, 17)}
            record = {
                "event": "inquiry",
                "ts": ts,
                "id": f"Q{seq}",
                "subject": "vehicle",
                "fields": fields,
                "networks": ["national"],
                **base,
            }
        else:
            record = {
                "event": "reply",
                "ts": ts,
                "id": f"R{seq}",
                "in_reply_to": f"Q{seq - 1}",
                "network": "state",
                "status": "no_record",
            }
        text = canonical(record)
        prev = chain_step(prev, seq, text)
        copies = index_copies(record)
        batch.append((seq, ts, text, prev, *(copies[c] for c in AUDIT_INDEX_COLUMNS)))
        if seq == n // 2:
            picked = {"copies": copies, "ts": ts, "record": record}
        if seq == n // 2 + 2:
            picked["plate"] = record["fields"]["plate"]  # type: ignore[index]
        if seq == n // 2 + 3:
            picked["vin"] = record["fields"]["vin"]  # type: ignore[index]
        if len(batch) >= 10_000:
            conn.executemany(insert, batch)
            batch.clear()
    conn.executemany(insert, batch)
    conn.execute("COMMIT")
    conn.close()
    cp = Checkpoint(n, prev, format_ts(START + (n + 1) * step), "shutdown")
    checkpoints.write_text(sign_checkpoint(key, cp) + "\n")
    return picked


def time_query(path: Path, query: AuditQuery) -> tuple[float, int]:
    conn = connect_reader(path)
    try:
        out = io.StringIO()
        t0 = time.perf_counter()
        count = 0
        for row in search_audit_rows(conn, query):
            out.write(jsonl_line(row))
            count += 1
        return time.perf_counter() - t0, count
    finally:
        conn.close()


def search_bench(workdir: Path, n: int) -> dict[str, Any]:
    key = keypair()
    path = workdir / "search.db"
    checkpoints = workdir / "search-checkpoints.jsonl"
    t0 = time.perf_counter()
    picked = build_trail(path, n, key, checkpoints)
    build_s = time.perf_counter() - t0
    copies = picked["copies"]
    name = copies["name"]
    ts = picked["ts"]
    day_end = format_ts(START + (n // 2) * 365 * 86400 / n + 86400)
    hour_end = format_ts(START + (n // 2) * 365 * 86400 / n + 3600)
    queries = [
        ("--name (full)", AuditQuery(name=name)),
        ("--name (prefix, 3 letters)", AuditQuery(name=name[:3])),
        ("--plate", AuditQuery(plate=picked["plate"])),
        ("--vin", AuditQuery(vin=picked["vin"])),
        ("--id (inquiry + its reply)", AuditQuery(id=f"Q{n // 2 + 3}")),
        ("--since/--until (1 hour)", AuditQuery(since=ts, until=hour_end)),
        ("--since/--until (1 day)", AuditQuery(since=ts, until=day_end)),
        ("--terminal + 1 day", AuditQuery(terminal=copies["terminal"], since=ts, until=day_end)),
        ("--operator + 1 day", AuditQuery(operator=copies["operator"], since=ts, until=day_end)),
        ("--ori + 1 day", AuditQuery(ori=copies["ori"], since=ts, until=day_end)),
        ("--operator (whole year)", AuditQuery(operator=copies["operator"])),
    ]
    results = []
    for label, q in queries:
        time_query(path, q)  # warm the page cache: a second search is the common case
        seconds, count = min(time_query(path, q) for _ in range(3))
        results.append((label, count, seconds))
    conn = connect_reader(path)
    t0 = time.perf_counter()
    result = verify(conn, key.public_key(), checkpoints.read_text().splitlines())
    verify_s = time.perf_counter() - t0
    conn.close()
    assert result.ok, result.describe()
    size = path.stat().st_size + sum(
        p.stat().st_size for p in workdir.glob("search.db-*") if p.exists()
    )
    return {
        "n": n,
        "build_s": build_s,
        "queries": results,
        "verify_s": verify_s,
        "size_mb": size / 1e6,
    }


# --------------------------------------------------------------------------- report


def render(tp: dict[str, Any], sr: dict[str, Any] | None) -> str:
    lines = [
        "## Audit",
        "",
        f"`bench/bench_audit.py`, {time.strftime('%Y-%m-%d')}, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}, WAL + synchronous=FULL on the working tree's disk "
        "(ext4 on a virtual disk; numbers on bare metal differ).",
        "",
        "Commit throughput (AuditLog -> SQLiteStore writer thread, each commit one fsync):",
        "",
        "| mode | records | commits | records/s |",
        "|---|---:|---:|---:|",
        f"| one commit per record (await each) | {tp['single_n']} | {tp['single_commits']} | "
        f"{tp['single_rate']:,.0f} |",
        f"| group commit ({tp['in_flight']} in flight) | {tp['group_n']} | "
        f"{tp['group_commits']} | {tp['group_rate']:,.0f} |",
        "",
    ]
    if sr is not None:
        lines += [
            f"Search on {sr['n']:,} records ({sr['size_mb']:,.0f} MB database, spread over "
            f"a year; bulk build {sr['build_s']:.0f} s), same path as `switchctl audit search` "
            "(read-only connection, JSON lines rendered), best of 3 after one warm-up run:",
            "",
            "| filter | matches | seconds |",
            "|---|---:|---:|",
        ]
        lines += [f"| {label} | {count:,} | {sec:.4f} |" for label, count, sec in sr["queries"]]
        lines += [
            "",
            f"`verify` of the whole {sr['n']:,}-record trail: {sr['verify_s']:.1f} s.",
            "",
        ]
    return "\n".join(lines)


def write_results(section: str) -> None:
    """Replace (or add) only the "## Audit" section of bench/RESULTS.md."""
    replace_section("Audit", section)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="trail size for search")
    parser.add_argument("--group", type=int, default=20_000, help="records, group commit")
    parser.add_argument("--single", type=int, default=1_000, help="records, one commit each")
    parser.add_argument("--no-search", action="store_true")
    parser.add_argument("--no-write", action="store_true", help="print, do not edit RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=ROOT / "bench") as tmp:
        workdir = Path(tmp)
        tp: dict[str, Any] = {}

        async def run(reactor: Any) -> None:
            tp.update(await throughput(reactor, workdir, args.group, args.single))

        try:
            task.react(lambda r: defer.Deferred.fromCoroutine(run(r)))
        except SystemExit as exc:
            if exc.code:
                raise
        sr = None if args.no_search else search_bench(workdir, args.records)
    section = render(tp, sr)
    print(section)
    if args.no_search:
        # A partial run must not replace the section: its search table would be lost.
        print("(--no-search: bench/RESULTS.md left as it is)")
    elif not args.no_write:
        write_results(section)


if __name__ == "__main__":
    main()
