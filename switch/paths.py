"""The ``var/`` layout of DESIGN §9 in one place, and reading the shared link secrets.

The gateway, the simulators, ``switchctl init`` and the tests all derive file names from
here, so that a rename happens once. Every function takes the ``var`` directory (relative
paths resolve against the working directory, DESIGN §8).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

VAR: Final = Path("var")

CA_CERT: Final = "ca.pem"
CA_KEY: Final = "ca.key"
SERVER_CERT: Final = "national-server.pem"
SERVER_KEY: Final = "national-server.key"
CLIENT_CERT: Final = "gateway-client.pem"
CLIENT_KEY: Final = "gateway-client.key"
AUDIT_SIGNING_KEY: Final = "audit-signing.key"
AUDIT_SIGNING_PUB: Final = "audit-signing.pub"


def run_dir(var: Path = VAR) -> Path:
    """``var/run``: the API socket and ``switchd.pid``."""
    return var / "run"


def pid_file(var: Path = VAR) -> Path:
    return run_dir(var) / "switchd.pid"


def socket_path(var: Path = VAR) -> Path:
    return run_dir(var) / "switch.sock"


def secrets_dir(var: Path = VAR) -> Path:
    return var / "secrets"


def secret_file(network: str, var: Path = VAR) -> Path:
    """``var/secrets/<network>.secret``: one line, shared by the gateway and a simulator."""
    return secrets_dir(var) / f"{network}.secret"


def pki_dir(var: Path = VAR) -> Path:
    return var / "pki"


def keys_dir(var: Path = VAR) -> Path:
    """``var/keys``: the audit signing keypair."""
    return var / "keys"


def audit_dir(var: Path = VAR) -> Path:
    return var / "audit"


def checkpoints_file(var: Path = VAR) -> Path:
    return audit_dir(var) / "checkpoints.jsonl"


def database(var: Path = VAR) -> Path:
    return var / "switch.db"


def sim_dir(var: Path = VAR) -> Path:
    """``var/sim``: the simulators' record cache."""
    return var / "sim"


class SecretError(Exception):
    """A secret file is missing, empty, or readable by group or others."""


def private_mode_problem(path: Path) -> str | None:
    """Why ``path`` is not a private (owner-only) regular file, or None when it is."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file not found"
    except OSError as exc:
        return f"cannot read: {exc.strerror or exc}"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_mode & 0o077:
        return f"mode {stat.S_IMODE(st.st_mode):04o} lets group or others read it (chmod 600 it)"
    return None


def read_secret(path: Path) -> str:
    """The secret in ``path``: one line, trailing newline ignored; refuses a shared file."""
    problem = private_mode_problem(path)
    if problem is not None:
        raise SecretError(f"{path}: {problem}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeError) as exc:
        raise SecretError(f"{path}: cannot read: {exc}") from None
    secret = text.splitlines()[0].strip() if text.strip() else ""
    if not secret:
        raise SecretError(f"{path}: empty secret")
    return secret


def write_private(path: Path, data: bytes, *, replace: bool = False) -> bool:
    """Create ``path`` with mode 0600 holding ``data``; keep an existing file unless
    ``replace``. Returns True when written. Atomic: written beside, then renamed."""
    if path.exists() and not replace:
        return False
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb", closefd=False) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    finally:
        os.close(fd)
    os.replace(tmp, path)
    return True
