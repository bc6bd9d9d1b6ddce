"""Verify the audit trail from the database file, the checkpoints and the public key only.

Synchronous on purpose: it runs in ``switchctl audit verify`` on a read-only connection,
whether or not the daemon runs. It names the *first* bad seq and why:

- ``deleted``: a seq is missing, or records before the first one are gone without a
  signed anchor;
- ``changed``: a record (or its hash) no longer matches the chain, or the whole chain
  after some point was rewritten (it then disagrees with a signed checkpoint);
- ``reordered``: the record at a seq hashes correctly at another seq;
- ``truncated``: a signed checkpoint names a seq beyond the end of the log;
- ``bad signature``: a checkpoint or anchor line does not verify with the public key;
- ``index copy mismatch``: a search column no longer equals the record's field.

Records written after the last checkpoint are protected by the chain only: dropping
them from the tail is undetectable until the next checkpoint (the shutdown checkpoint
closes that window on every clean stop).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from switch.store.interface import AUDIT_INDEX_COLUMNS

from .chain import GENESIS, Checkpoint, CheckpointError, canonical, chain_step, index_copies
from .chain import verify_checkpoint as _verify_line

_WINDOW = 1000  # rows each side searched to tell "reordered" from "changed"


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    first_seq: int | None
    last_seq: int | None
    last_checkpoint: Checkpoint | None
    bad_seq: int | None = None
    reason: str | None = None

    def describe(self) -> str:
        if self.ok:
            cp = self.last_checkpoint
            where = f"seq {self.first_seq}..{self.last_seq}" if self.count else "empty"
            last = f"seq {cp.seq} ({cp.kind}, {cp.ts})" if cp else "none"
            return f"OK: {self.count} records ({where}); last checkpoint {last}"
        at = f"seq {self.bad_seq}" if self.bad_seq is not None else "checkpoints"
        return f"FAILED at {at}: {self.reason}"


class _Bad(Exception):
    def __init__(self, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.seq = seq
        self.reason = reason


def _checkpoints(
    key: Ed25519PublicKey, lines: Iterable[str], anchor: str | None, anchored: set[int]
) -> dict[int, Checkpoint]:
    """Every signed checkpoint by seq; ``anchored`` collects the seqs of anchor lines."""
    found: dict[int, Checkpoint] = {}
    sources = [(f"checkpoints line {n}", line) for n, line in enumerate(lines, 1)]
    if anchor is not None:
        sources.append(("database anchor", anchor))
    for where, line in sources:
        if not line.strip():
            continue
        try:
            cp = _verify_line(key, line)
        except CheckpointError as exc:
            seq = None
            try:
                seq = int(json.loads(line)["seq"])
            except (ValueError, KeyError, TypeError):
                pass
            raise _Bad(seq, f"bad signature: {where}: {exc}") from None
        seen = found.get(cp.seq)
        if seen is not None and seen.hash != cp.hash:
            raise _Bad(cp.seq, f"bad signature: two signed checkpoints disagree ({where})")
        if seen is None or cp.kind == "shutdown":
            found[cp.seq] = cp
        if cp.kind == "anchor":
            anchored.add(cp.seq)
    return found


def _reordered(conn: sqlite3.Connection, seq: int, prev: bytes, stored: bytes) -> int | None:
    """Where the record that belongs at ``seq`` went, if a nearby row holds it: that
    record hashes, at ``seq`` after the verified ``prev``, to its own stored hash (whole
    rows moved) or to the hash stored at ``seq`` (records moved, hashes left)."""
    rows = conn.execute(
        "SELECT seq, record, hash FROM audit_log WHERE seq BETWEEN ? AND ?",
        (seq - _WINDOW, seq + _WINDOW),
    ).fetchall()
    for other, record, digest in sorted(rows, key=lambda r: abs(r[0] - seq)):
        if other != seq and chain_step(prev, seq, record) in (bytes(digest or b""), stored):
            return int(other)
    return None


def verify(
    conn: sqlite3.Connection, key: Ed25519PublicKey, checkpoint_lines: Iterable[str]
) -> VerifyResult:
    """Walk the whole chain once, in seq order, and check it against every checkpoint."""
    count = 0
    first: int | None = None
    last: int | None = None
    last_cp: Checkpoint | None = None
    try:
        anchor_row = conn.execute("SELECT line FROM audit_anchor WHERE id = 1").fetchone()
        anchored: set[int] = set()
        cps = _checkpoints(key, checkpoint_lines, anchor_row[0] if anchor_row else None, anchored)
        last_cp = max(cps.values(), key=lambda c: c.seq) if cps else None
        good_cp = 0  # seq of the last checkpoint that matched
        prev_hash = GENESIS
        cols = ", ".join(AUDIT_INDEX_COLUMNS)
        rows = conn.execute(
            f"SELECT seq, ts, record, hash, {cols} FROM audit_log ORDER BY seq"  # noqa: S608
        )
        for row in rows:
            seq, ts, record, stored = row[0], row[1], row[2], bytes(row[3] or b"")
            if first is None:
                first = seq
                if seq != 1:
                    start = cps.get(seq - 1)
                    if start is None:
                        lost = max((s for s in cps if s < seq), default=0) + 1
                        raise _Bad(
                            lost,
                            f"deleted: seq {lost}..{seq - 1} missing and no "
                            f"signed anchor for seq {seq - 1}",
                        )
                    prev_hash, good_cp = start.hash, start.seq
            elif seq != last + 1:  # type: ignore[operator]
                raise _Bad(last + 1, f"deleted: seq {last + 1} is missing")  # type: ignore[operator]
            digest = chain_step(prev_hash, seq, record)
            if digest != stored:
                moved = _reordered(conn, seq, prev_hash, stored)
                if moved is not None:
                    raise _Bad(seq, f"reordered: the record of seq {seq} is at seq {moved}")
                raise _Bad(seq, "changed: record or hash does not match the chain")
            try:
                parsed = json.loads(record)
                if not isinstance(parsed, dict) or canonical(parsed) != record:
                    raise ValueError
            except ValueError:
                raise _Bad(seq, "changed: record is not canonical JSON") from None
            if ts != parsed.get("ts"):
                raise _Bad(seq, "index copy mismatch: ts")
            copies = index_copies(parsed)
            for i, column in enumerate(AUDIT_INDEX_COLUMNS):
                if row[4 + i] != copies[column]:
                    raise _Bad(seq, f"index copy mismatch: {column}")
            cp = cps.get(seq)
            if cp is not None:
                if cp.hash != digest:
                    raise _Bad(
                        good_cp + 1,
                        f"changed: records after seq {good_cp} were rewritten (the chain "
                        f"disagrees with the signed checkpoint of seq {seq})",
                    )
                good_cp = seq
            prev_hash, last = digest, seq
            count += 1
        if first is None and cps:
            # Everything purged by retention: the anchor is the whole story.
            newest = max(cps)
            if newest not in anchored:
                raise _Bad(1, f"truncated: the log is empty but a checkpoint names seq {newest}")
        elif last_cp is not None and last is not None and last_cp.seq > last:
            raise _Bad(
                last + 1,
                f"truncated: the log ends at seq {last} but a signed checkpoint names "
                f"seq {last_cp.seq}",
            )
    except _Bad as bad:
        return VerifyResult(False, count, first, last, last_cp, bad.seq, bad.reason)
    return VerifyResult(True, count, first, last, last_cp)
