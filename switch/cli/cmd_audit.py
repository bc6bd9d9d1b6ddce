"""``switchctl audit verify|search|export``: the audit trail straight from ``var/``.

These open the database read-only and need only the public key, so they work whether or
not the daemon runs and an auditor can run them on a copy (DESIGN §7). Output is one
JSON object per line, ``{"seq", "hash", "record"}``, where ``record`` is the stored
canonical JSON verbatim: an exported file can be re-chained independently.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from switch.audit.chain import (
    PUBLIC_KEY,
    AuditKeyError,
    index_copies,
    load_public_key,
    parse_ts,
)
from switch.audit.verify import verify
from switch.store.interface import AuditQuery, AuditRow, StoreError
from switch.store.sqlite import connect_reader, search_audit_rows

DEFAULT_DB = Path("var/switch.db")
DEFAULT_KEYS = Path("var/keys")
DEFAULT_CHECKPOINTS = Path("var/audit/checkpoints.jsonl")

CSV_COLUMNS = (
    "seq",
    "ts",
    "event",
    "terminal",
    "operator",
    "ori",
    "name",
    "plate",
    "vin",
    "msg_id",
    "ref_id",
    "hash",
    "record",
)


def _fail(message: str) -> Exception:
    from switch.cli.switchctl import CommandError

    return CommandError(message)


def _open(args: argparse.Namespace) -> Any:
    try:
        return connect_reader(Path(args.db))
    except StoreError as exc:
        raise _fail(str(exc)) from None


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="database (var/switch.db)")


def _filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", help="records at or after this UTC date/time (ISO)")
    parser.add_argument("--until", help="records before this UTC date/time (ISO)")
    parser.add_argument("--terminal")
    parser.add_argument("--operator")
    parser.add_argument("--ori")
    parser.add_argument("--name", help="subject name, prefix match (DOE, JOHN)")
    parser.add_argument("--plate")
    parser.add_argument("--vin")
    parser.add_argument("--id", help="message or inquiry id (also matches replies to it)")
    parser.add_argument("--limit", type=int, default=None, help="at most N records")


def _query(args: argparse.Namespace) -> AuditQuery:
    def upper(value: str | None) -> str | None:
        return value.strip().upper() if value else None

    try:
        since = parse_ts(args.since) if args.since else None
        until = parse_ts(args.until) if args.until else None
    except ValueError as exc:
        raise _fail(str(exc)) from None
    return AuditQuery(
        since=since,
        until=until,
        terminal=args.terminal,
        operator=args.operator,
        ori=upper(args.ori),
        name=upper(args.name),
        plate=upper(args.plate),
        vin=upper(args.vin),
        id=args.id,
    )


def jsonl_line(row: AuditRow) -> str:
    # The stored record is canonical JSON already: embed it byte for byte.
    return f'{{"seq":{row.seq},"hash":"{row.hash.hex()}","record":{row.record}}}\n'


def _rows(args: argparse.Namespace) -> Iterator[AuditRow]:
    conn = _open(args)
    try:
        yield from search_audit_rows(conn, _query(args), args.limit)
    finally:
        conn.close()


def _write_jsonl(rows: Iterator[AuditRow], out: TextIO) -> int:
    count = 0
    for row in rows:
        out.write(jsonl_line(row))
        count += 1
    return count


def _write_csv(rows: Iterator[AuditRow], out: TextIO) -> int:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    count = 0
    for row in rows:
        record = json.loads(row.record)
        copies = index_copies(record)
        writer.writerow(
            [row.seq, row.ts, record.get("event", "")]
            + [copies[c] or "" for c in CSV_COLUMNS[3:11]]
            + [row.hash.hex(), row.record]
        )
        count += 1
    return count


# --------------------------------------------------------------------------- commands


def cmd_verify(args: argparse.Namespace) -> int:
    try:
        key = load_public_key(Path(args.keys) / PUBLIC_KEY)
    except AuditKeyError as exc:
        raise _fail(str(exc)) from None
    try:
        lines = Path(args.checkpoints).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{args.checkpoints}: unreadable ({type(exc).__name__})") from None
    conn = _open(args)
    try:
        result = verify(conn, key, lines)
    finally:
        conn.close()
    print(result.describe())
    return 0 if result.ok else 1


def cmd_search(args: argparse.Namespace) -> int:
    _write_jsonl(_rows(args), sys.stdout)
    sys.stdout.flush()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out: TextIO
    if args.output is None or str(args.output) == "-":
        out = sys.stdout
    else:
        out = Path(args.output).open("w", encoding="utf-8", newline="")
    try:
        writer = _write_csv if args.format == "csv" else _write_jsonl
        count = writer(_rows(args), out)
    finally:
        if out is not sys.stdout:
            out.close()
        else:
            out.flush()
    if out is not sys.stdout:
        print(f"exported {count} records to {args.output}", file=sys.stderr)
    return 0


def register(subparsers: Any) -> None:
    """Add ``audit verify|search|export`` to switchctl."""
    audit = subparsers.add_parser("audit", help="verify, search and export the audit trail")
    audit.set_defaults(_parser=audit)
    sub = audit.add_subparsers(dest="audit_command", metavar="ACTION")

    p = sub.add_parser("verify", help="check the hash chain and the signed checkpoints")
    _common(p)
    p.add_argument("--keys", type=Path, default=DEFAULT_KEYS, help="key directory (var/keys)")
    p.add_argument("--checkpoints", type=Path, default=DEFAULT_CHECKPOINTS)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("search", help="records matching filters, one JSON object per line")
    _common(p)
    _filters(p)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("export", help="records as JSON lines or CSV")
    _common(p)
    _filters(p)
    p.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    p.add_argument("--output", "-o", type=Path, default=None, help="file (default stdout)")
    p.set_defaults(func=cmd_export)
