"""The four wire formats by name: one place that knows which codec speaks which network.

Imports are lazy so that a process using one format does not load the others (lxml,
pyasn1) and a missing optional module fails only where it is used.
"""

from __future__ import annotations

from typing import Literal

from .base import Codec

FORMATS = ("local", "regional", "state", "national")


def codec_for(fmt: str, own_ori: str, role: Literal["client", "server"] = "client") -> Codec:
    """A fresh per-connection codec of format ``fmt`` (``role`` matters for ``state``)."""
    if fmt == "local":
        from .local import LocalCodec

        return LocalCodec(own_ori)
    if fmt == "regional":
        from .regional import RegionalCodec

        return RegionalCodec(own_ori)
    if fmt == "state":
        from .state import StateCodec

        return StateCodec(own_ori, role=role)
    if fmt == "national":
        from .national import NationalCodec

        return NationalCodec(own_ori)
    raise ValueError(f"unknown wire format {fmt!r}")
