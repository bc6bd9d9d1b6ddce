"""``switchctl audit verify|search|export``: the audit trail straight from ``var/``.

They need only the public key and work whether or not the daemon runs, so an auditor
can run them on a copy (DESIGN §7). ``verify`` only reads. ``search`` and ``export`` are
themselves audited: before reading, they append an ``audit.search``/``audit.export``
record (who, where, which filters) to the chain they read, beside a running daemon or
without one, and refuse when they cannot. Output is one JSON object per line,
``{"seq", "hash", "record"}``, where ``record`` is the stored canonical JSON verbatim: an
exported file can be re-chained independently.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import getpass
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from switch.audit.chain import (
    PUBLIC_KEY,
    AuditKeyError,
    format_ts,
    index_copies,
    load_public_key,
    parse_ts,
)
from switch.audit.log import audit_entry
from switch.audit.verify import verify
from switch.store.interface import AuditQuery, AuditRow, StoreError
from switch.store.sqlite import append_audit_now, connect_reader, search_audit_rows

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


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no login name and no passwd entry: the uid says who
        return f"uid {os.getuid()}"


def _record_access(args: argparse.Namespace, query: AuditQuery, details: dict[str, object]) -> None:
    """Append the ``audit.search``/``audit.export`` record before any row is read, so
    that no search goes unrecorded; the filters go in a nested object, whose values get
    no search copies (a search for a name finds that name's inquiries, not the searches)."""
    filters = {k: v for k, v in dataclasses.asdict(query).items() if v is not None}
    fields: dict[str, object] = {
        "os_user": _os_user(),
        "host": socket.gethostname(),
        "filters": filters,
        "limit": args.limit,
        **details,
    }
    event = f"audit.{args.audit_command}"
    try:
        append_audit_now(Path(args.db), audit_entry(event, format_ts(time.time()), fields))
    except StoreError as exc:
        raise _fail(
            f"{exc}; audit searches and exports are themselves audited (DESIGN §7), so "
            "this one needs write access to the database: run it as the switch's user, "
            "or on a writable copy"
        ) from None


def _rows(args: argparse.Namespace, details: dict[str, object]) -> Iterator[AuditRow]:
    """Check the arguments and record the access now, then read lazily: nothing is
    written anywhere (not even an empty export file) for a refused search."""
    query = _query(args)
    if args.limit is not None and args.limit < 0:
        raise _fail("--limit must be 0 or more")
    conn = _open(args)
    try:
        _record_access(args, query, details)
    except BaseException:
        conn.close()
        raise

    def read() -> Iterator[AuditRow]:
        try:
            yield from search_audit_rows(conn, query, args.limit)
        finally:
            conn.close()

    return read()


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
    _write_jsonl(_rows(args, {}), sys.stdout)
    sys.stdout.flush()
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    out: TextIO
    to_stdout = args.output is None or str(args.output) == "-"
    rows = _rows(args, {"format": args.format, "output": "-" if to_stdout else str(args.output)})
    if to_stdout:
        out = sys.stdout
    else:
        try:
            out = Path(args.output).open("w", encoding="utf-8", newline="")
        except OSError as exc:
            raise _fail(f"{args.output}: cannot write ({exc.strerror})") from None
    try:
        writer = _write_csv if args.format == "csv" else _write_jsonl
        count = writer(rows, out)
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
