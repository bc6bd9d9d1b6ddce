"""Encode + decode rate of every wire codec present, for a typical inquiry and a hit reply.

Usage: ``python bench/bench_codecs.py [--seconds N]`` (default 1 s per measurement).
Each measurement runs ``encode(message)`` then ``decode(frame)`` in a loop, where
``frame`` is what the codec's own framer cuts from the encoded bytes, and prints pairs
per second and microseconds per pair. The regional codec is measured twice: with its
hand-written fast path and with pyasn1 only. Missing codec modules are skipped.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from switch.model import Inquiry, Origin, Record, Reply, Warrant

OWN_ORI = "MO0380100"
CODECS = [
    ("local", "switch.formats.local", "LocalCodec", {}),
    ("regional", "switch.formats.regional", "RegionalCodec", {}),
    ("regional (pyasn1)", "switch.formats.regional", "RegionalCodec", {"fast": False}),
    ("state", "switch.formats.state", "StateCodec", {}),
    ("national", "switch.formats.national", "NationalCodec", {}),
]


def sample_messages(network: str) -> dict[str, Any]:
    """A person inquiry (with a state control number) and a one-record warrant hit."""
    inquiry = Inquiry(
        id="01JDZK3V8Y7Q2W0000000000AA",
        subject="person",
        fields={"name": "DOE, JOHN A", "dob": "1980-01-01", "sex": "M"},
        origin=Origin(ori=OWN_ORI),
        purpose="C",
        control="S00000123",
    )
    record = Record(
        file="wanted_person",
        fields={"name": "DOE, JOHN A", "dob": "1980-01-01", "sex": "M", "race": "W"},
        caveats=("armed_and_dangerous",),
        warrant=Warrant(
            number="C26-0042",
            offense="BURGLARY",
            issued="2026-02-03",
            entering_ori="MO0480000",
            oca="26-001187",
        ),
    )
    reply = Reply(
        id="R7F3K2",
        network=network,
        status="hit",
        text="WANTED NAM/DOE, JOHN A DOB/19800101 WNO/C26-0042 OFF/BURGLARY",
        records=(record,),
        in_reply_to=inquiry.id,
        control=inquiry.control,
        subject="person",
    )
    return {"inquiry": inquiry, "hit reply": reply}


def measure(codec: Any, message: Any, seconds: float) -> tuple[float, float]:
    """(pairs per second, microseconds per pair) of encode + decode."""
    frames = codec.framer().feed(codec.encode(message))
    assert len(frames) == 1, "the framer must cut exactly one frame"
    codec.decode(frames[0])  # fails loudly before timing if the codec cannot read it back
    encode, decode = codec.encode, codec.decode
    frame = frames[0]
    count = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(50):
            encode(message)
            decode(frame)
        count += 50
        now = time.perf_counter()
        if now >= deadline:
            break
    elapsed = now - start
    return count / elapsed, elapsed / count * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="per measurement")
    args = parser.parse_args(argv)
    print(f"{'codec':<20} {'message':<12} {'pairs/s':>10} {'us/pair':>9}  frame bytes")
    for label, module_name, class_name, kwargs in CODECS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            print(f"{label:<20} (not present, skipped)")
            continue
        codec = getattr(module, class_name)(OWN_ORI, **kwargs)
        for kind, message in sample_messages(codec.name).items():
            try:
                rate, micros = measure(codec, message, args.seconds)
                size = len(codec.encode(message))
            except Exception as exc:  # report and go on: one broken codec must not hide others
                print(f"{label:<20} {kind:<12} failed: {type(exc).__name__}: {exc}")
                continue
            print(f"{label:<20} {kind:<12} {rate:>10,.0f} {micros:>9.1f}  {size}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
