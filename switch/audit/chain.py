"""The pure parts of the audit trail: canonical records, the hash chain, signed checkpoints.

No I/O beyond reading key files, no Twisted: the daemon, ``switchctl audit`` and the
benchmark all link and check the chain with these same functions (DESIGN §7):

- record: ``{"event": ..., "ts": ..., **fields}``; canonical JSON is
  ``json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``.
  Floats are refused: their text form is not stable across languages, so a chain an
  auditor recomputes elsewhere could differ.
- chain: ``hash = SHA-256(prev_hash || seq as 8-byte big-endian || canonical JSON)``,
  ``prev_hash`` 32 zero bytes for seq 1.
- checkpoint: one JSON line ``{"hash", "kind", "seq", "ts", "sig"}``; ``sig`` is the
  Ed25519 signature (base64) of the canonical JSON of the other four keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from switch import jsontext
from switch.utc import format_ts as format_ts
from switch.utc import parse_ts as parse_ts

GENESIS: Final = bytes(32)
SIGNING_KEY: Final = "audit-signing.key"
PUBLIC_KEY: Final = "audit-signing.pub"
CheckpointKind = Literal["checkpoint", "shutdown", "anchor"]


class AuditKeyError(Exception):
    """The signing or verification key is missing, malformed or not private enough."""


class CheckpointError(Exception):
    """A checkpoint line is malformed or its signature does not verify."""


# --------------------------------------------------------------------------- records


#: The exact types _check_value accepts without a look inside (its fast path).
_PLAIN: Final = frozenset({str, int, bool, type(None)})


def _check_value(value: object, where: str) -> None:
    if type(value) in _PLAIN:
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is str:
                kind = type(item)
                if kind in _PLAIN:
                    continue
                if kind is list and all(type(x) in _PLAIN for x in item):
                    continue  # a list of ids: the reply record's usual shape
            if not isinstance(key, str):
                raise TypeError(f"audit field {where}: keys must be strings")
            _check_value(item, f"{where}.{key}")
        return
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float):
        raise TypeError(f"audit field {where}: floats are not allowed (use int or str)")
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_value(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"audit field {where}: keys must be strings")
            _check_value(item, f"{where}.{key}")
        return
    raise TypeError(f"audit field {where}: {type(value).__name__} is not JSON")


def build_record(event: str, ts: str, fields: Mapping[str, object]) -> dict[str, object]:
    """The record that is hashed; TypeError/ValueError for a caller's bug."""
    if not isinstance(event, str) or not event:
        raise ValueError("audit event must be a non-empty string")
    if "event" in fields or "ts" in fields:
        raise ValueError("audit fields may not be named 'event' or 'ts'")
    _check_value(fields, "fields")
    return {"event": event, "ts": ts, **fields}


def canonical(record: Mapping[str, object]) -> str:
    return jsontext.canonical(record)


def chain_step(prev: bytes, seq: int, record: str) -> bytes:
    return hashlib.sha256(prev + seq.to_bytes(8, "big") + record.encode("utf-8")).digest()


#: Indexed column -> the record key it copies.
_INDEXED: Final = (
    ("terminal", "terminal"),
    ("operator", "operator"),
    ("ori", "ori"),
    ("name", "name"),
    ("plate", "plate"),
    ("vin", "vin"),
    ("msg_id", "id"),
    ("ref_id", "in_reply_to"),
)


def index_copies(record: Mapping[str, object]) -> dict[str, str | None]:
    """The indexed column copies of a record. Each is the record's top-level string of
    the same name, else the one in its ``fields`` object; ``msg_id`` copies ``id`` and
    ``ref_id`` copies ``in_reply_to``. verify recomputes these and compares."""
    inner = record.get("fields")
    nested: Mapping[str, object] = inner if isinstance(inner, Mapping) else {}
    out: dict[str, str | None] = {}
    for column, key in _INDEXED:
        value = record.get(key)
        if not (isinstance(value, str) and value):
            value = nested.get(key)
            if not (isinstance(value, str) and value):
                value = None
        out[column] = value
    return out


# --------------------------------------------------------------------------- keys


def load_signing_key(keys_dir: Path) -> Ed25519PrivateKey:
    """``keys_dir/audit-signing.key`` (PKCS8 PEM Ed25519), refused unless only the owner
    can read it: a key others can read signs nothing an auditor should trust."""
    path = Path(keys_dir) / SIGNING_KEY
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
        if mode & 0o077:
            raise AuditKeyError(f"{path}: mode {mode:04o} lets others read it; chmod 600")
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except FileNotFoundError:
        raise AuditKeyError(f"{path}: not found (run `switchctl pki init`)") from None
    except (OSError, ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path}: not an Ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """The verification key (SubjectPublicKeyInfo PEM): all an auditor needs."""
    try:
        key = serialization.load_pem_public_key(Path(path).read_bytes())
    except FileNotFoundError:
        raise AuditKeyError(f"{path}: not found") from None
    except (OSError, ValueError, TypeError) as exc:
        raise AuditKeyError(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path}: not an Ed25519 public key")
    return key


# --------------------------------------------------------------------------- checkpoints


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: bytes
    ts: str
    kind: str

    def payload(self) -> str:
        return canonical(
            {"hash": self.hash.hex(), "kind": self.kind, "seq": self.seq, "ts": self.ts}
        )


def sign_checkpoint(key: Ed25519PrivateKey, checkpoint: Checkpoint) -> str:
    """One checkpoint line (no newline)."""
    sig = key.sign(checkpoint.payload().encode("utf-8"))
    return canonical(
        {**json.loads(checkpoint.payload()), "sig": base64.b64encode(sig).decode("ascii")}
    )


def verify_checkpoint(key: Ed25519PublicKey, line: str) -> Checkpoint:
    """Parse and check one line; CheckpointError says what is wrong."""
    try:
        data = json.loads(line)
        checkpoint = Checkpoint(
            seq=int(data["seq"]),
            hash=bytes.fromhex(data["hash"]),
            ts=str(data["ts"]),
            kind=str(data["kind"]),
        )
        sig = base64.b64decode(data["sig"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise CheckpointError("malformed checkpoint line") from None
    if len(checkpoint.hash) != 32 or checkpoint.seq < 1:
        raise CheckpointError("malformed checkpoint line")
    try:
        key.verify(sig, checkpoint.payload().encode("utf-8"))
    except InvalidSignature:
        raise CheckpointError(f"bad signature on the checkpoint of seq {checkpoint.seq}") from None
    return checkpoint
