"""Benchmark of the simulators' data set: build time, memory, lookup and render rates.

.venv/bin/python bench/bench_sim_data.py [--persons N] [--seed S] [--lookups N]
"""

from __future__ import annotations

import argparse
import resource
import time
import tracemalloc

from simulators.data import TIERS, Dataset
from simulators.text import render_text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--persons", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--trace", action="store_true", help="measure with tracemalloc (slow)")
    args = parser.parse_args()

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    ds = Dataset(seed=args.seed, persons=args.persons)
    t1 = time.perf_counter()
    ds.ensure_built()
    t2 = time.perf_counter()
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"persons={args.persons} seed={args.seed}")
    print(f"construct {1e3 * (t1 - t0):.3f} ms, build {t2 - t1:.2f} s")
    print(f"max RSS +{(rss1 - rss0) / 1024:.0f} MB")
    if args.trace:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"traced {current / 1e6:.1f} MB (peak {peak / 1e6:.1f} MB)")

    per = max(1, args.lookups // 6)
    inquiries = [
        (subject, fields)
        for subject in ("person", "vehicle", "driver", "registration", "gun", "article")
        for fields in ds.sample_fields(subject, per, seed=2)
    ]
    t3 = time.perf_counter()
    found = 0
    for subject, fields in inquiries:
        for tier in TIERS:
            found += len(ds.lookup(tier, subject, fields))
    t4 = time.perf_counter()
    for subject, fields in inquiries:
        for tier in TIERS:
            render_text(tier, subject, fields, ds.lookup(tier, subject, fields))
    t5 = time.perf_counter()
    n = len(inquiries) * len(TIERS)
    print(f"{n} tier lookups: {1e6 * (t4 - t3) / n:.2f} us each, {found} records found")
    print(f"lookup + render_text: {1e6 * (t5 - t4) / n:.2f} us each")


if __name__ == "__main__":
    main()
