"""Operator password hashes: scrypt from the standard library, no further dependency.

Stored format (one line, pasted into ``terminals.toml`` by ``switchctl passwd``)::

    scrypt$<n>$<r>$<p>$<salt base64>$<hash base64>

The parameters travel with the hash so that they can be raised later without
invalidating existing hashes. :func:`verify_password` never raises: a stored value it
cannot parse (hand-edited, truncated, absurd parameters) simply does not verify, so a
bad config line can never be turned into a crash or a bypass at logon.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import Final

SCHEME: Final = "scrypt"
N: Final = 2**14
R: Final = 8
P: Final = 1
SALT_BYTES: Final = 16
HASH_BYTES: Final = 32

#: Demo password of the shipped ``conf/terminals.toml`` (DESIGN §9); switchd warns while
#: any operator still verifies against it.
DEMO_PASSWORD: Final = "demo-only-change-me"  # noqa: S105 (public by design, §9)

# Bounds on parameters read back from config: a hostile or mistyped hash must not make
# a logon attempt allocate gigabytes or spin for minutes.
_MAX_N: Final = 2**20
_MAX_R: Final = 32
_MAX_P: Final = 16
_MAX_SALT: Final = 64
_MAX_HASH: Final = 64


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int, dklen: int) -> bytes:
    # hashlib's default maxmem (32 MiB) is too small for some valid parameters; allow
    # what the parameters need (128 * r * n for the main buffer) plus slack.
    maxmem = 128 * r * n + 128 * r * p + 1024 * 1024
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen
    )


def hash_password(password: str) -> str:
    """Hash ``password`` with a fresh random salt; returns the one-line stored form."""
    salt = os.urandom(SALT_BYTES)
    digest = _scrypt(password, salt, N, R, P, HASH_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.strip().split("$")
    if len(parts) != 6 or parts[0] != SCHEME:
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        digest = base64.b64decode(parts[5], validate=True)
    except (ValueError, binascii.Error):
        return None
    if not (2 <= n <= _MAX_N and n & (n - 1) == 0):
        return None
    if not (1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        return None
    # A shorter digest would be a prefix of the real one: a truncated line must not
    # verify with fewer bits than we wrote.
    if not (SALT_BYTES <= len(salt) <= _MAX_SALT and HASH_BYTES <= len(digest) <= _MAX_HASH):
        return None
    return n, r, p, salt, digest


def is_valid_hash(stored: object) -> bool:
    """True when ``stored`` is a well-formed hash in our format (config validation)."""
    return isinstance(stored, str) and _parse(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    """Constant-time check of ``password`` against a stored hash; False on anything odd."""
    if not isinstance(password, str) or not isinstance(stored, str):
        return False
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    try:
        candidate = _scrypt(password, salt, n, r, p, len(digest))
    except (ValueError, MemoryError, UnicodeError):
        return False
    return hmac.compare_digest(candidate, digest)
