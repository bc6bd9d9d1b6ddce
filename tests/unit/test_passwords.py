"""Operator password hashes: scrypt in the documented one-line format, and a verifier
that refuses malformed or hostile stored values without raising."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switch.passwords import DEMO_PASSWORD, hash_password, is_valid_hash, verify_password

#: A precomputed hash of the demo password: verifying it needs no new hash per test.
_DEMO_HASH = hash_password(DEMO_PASSWORD)


def test_hash_format_and_parameters() -> None:
    """The stored form is scrypt$16384$8$1$<16-byte salt b64>$<hash b64>."""
    scheme, n, r, p, salt, digest = _DEMO_HASH.split("$")
    assert (scheme, n, r, p) == ("scrypt", "16384", "8", "1")
    assert len(base64.b64decode(salt)) == 16
    assert len(base64.b64decode(digest)) == 32
    assert is_valid_hash(_DEMO_HASH)


def test_verify_right_and_wrong_password() -> None:
    """The right password verifies; a wrong one, or a near miss, does not."""
    assert verify_password(DEMO_PASSWORD, _DEMO_HASH)
    assert not verify_password(DEMO_PASSWORD + "x", _DEMO_HASH)
    assert not verify_password("", _DEMO_HASH)


def test_salt_is_random() -> None:
    """Two hashes of one password differ (fresh salt) and both verify."""
    other = hash_password(DEMO_PASSWORD)
    assert other != _DEMO_HASH
    assert verify_password(DEMO_PASSWORD, other)


def test_unicode_password() -> None:
    """Non-ASCII passwords are hashed as UTF-8 and verify."""
    stored = hash_password("pässwörd-ünïcode")
    assert verify_password("pässwörd-ünïcode", stored)
    assert not verify_password("passwörd-ünïcode", stored)


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "plaintext-password",
        "scrypt$16384$8$1$c2FsdA==",  # too few parts
        "bcrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
        "scrypt$abc$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
        "scrypt$16383$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,  # n not a power of 2
        "scrypt$1073741824$8$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,  # n absurd: no 128 GiB
        "scrypt$16384$999$1$c2FsdHNhbHRzYWx0c2FsdA==$" + "A" * 44,
        "scrypt$16384$8$1$!!!notbase64$" + "A" * 44,
        "scrypt$16384$8$1$c2FsdHNhbHRzYWx0c2FsdA==$QQ==",  # hash too short
        _DEMO_HASH[:-8],  # truncated
    ],
)
def test_malformed_stored_hash_is_false_not_an_exception(stored: str) -> None:
    """A stored value that is not a well-formed hash never verifies and never raises."""
    assert verify_password(DEMO_PASSWORD, stored) is False
    assert is_valid_hash(stored) is False


def test_non_string_inputs_are_false() -> None:
    """Wrong types (a config that held a number) answer False."""
    assert verify_password(None, _DEMO_HASH) is False  # type: ignore[arg-type]
    assert verify_password(DEMO_PASSWORD, 42) is False  # type: ignore[arg-type]
    assert is_valid_hash(None) is False


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=120))
def test_verify_never_raises_on_arbitrary_stored_text(stored: str) -> None:
    """Arbitrary text in password_hash is refused quietly."""
    assert verify_password("x", stored) in (True, False)
