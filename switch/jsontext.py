"""JSON text as the switch writes and reads it on its hot path.

An inquiry costs about a dozen encodings here (its audit records, their mailbox items,
the saved result, the response): with the standard library some 6 us each, with orjson
about 0.5. orjson is used only where its bytes are the standard library's, so nothing
that was hashed, stored or compared before reads differently now (the log lines stay
on ``json``: they keep ``ensure_ascii``, ASCII whatever the stream's encoding):

- :func:`canonical` is DESIGN §7's ``json.dumps(value, sort_keys=True, separators=(",",
  ":"), ensure_ascii=False)``, the text the audit chain hashes. For every value without
  floats the two agree byte for byte (``tests/unit/test_jsontext.py`` holds them to it over
  generated values); the audit refuses floats, and elsewhere orjson writes a float as the
  same number (timestamps byte for byte), only some small ones are spelled
  differently (``0.00001`` for ``1e-05``, ``1e-7`` for ``1e-07``).
  Whatever orjson refuses (integers beyond 64 bits, lone surrogates, non-string keys) goes
  to the standard library, which decides as before.
- :func:`compact` is the same without sorting (the API's bodies, SSE data).
- :func:`loads` parses hostile input (request bodies, the local network's frames): strict
  JSON only: no ``NaN``/``Infinity``, nesting at most 1024 deep, lone surrogate escapes
  and invalid UTF-8 refused, every refusal a ``ValueError``. An integer beyond 64 bits
  reads as a float, which every field check refuses where it wants an int.
"""

from __future__ import annotations

import json
from typing import Any, Final

import orjson

_CANONICAL: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)
_COMPACT: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_SORT: Final = orjson.OPT_SORT_KEYS


def canonical(value: object) -> str:
    """Sorted keys, no spaces, UTF-8 text as is: the audit chain's form."""
    try:
        return orjson.dumps(value, option=_SORT).decode("utf-8")
    except TypeError:  # orjson.JSONEncodeError: the standard library decides
        return _CANONICAL.encode(value)


def compact(value: object) -> bytes:
    """No spaces, keys in their order, UTF-8: a response body or an event's data."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return _COMPACT.encode(value).encode("utf-8")


def loads(data: bytes | str) -> Any:
    """One JSON document; ValueError (orjson.JSONDecodeError) for anything else."""
    return orjson.loads(data)
