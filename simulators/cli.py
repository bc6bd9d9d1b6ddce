"""``switch-sim all|local|regional|state|national``: run simulated networks in the foreground.

Stays in its process group (no daemonizing) and exits 0 within seconds of SIGTERM or
SIGINT, as `make run` expects (DESIGN §9).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from .config import NETWORKS, SimConfigError, load
from .faults import Faults


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="switch-sim", description=__doc__)
    p.add_argument("network", choices=("all", *NETWORKS))
    p.add_argument("--config", type=Path, default=Path("conf/simulators.toml"))
    p.add_argument("--seed", type=int)
    p.add_argument("--persons", type=int)
    p.add_argument("--control-port", type=int)
    p.add_argument("--var", type=Path, help="var directory (secrets, pki, sim cache)")
    p.add_argument("--any-port", action="store_true", help="listen on free ports (tests)")
    p.add_argument("--ready-file", type=Path, help="write the bound ports here as JSON")
    p.add_argument("--heartbeat", type=float)
    p.add_argument(
        "--delay-ms", type=float, help="configured reply delay for every file (0: at once)"
    )
    p.add_argument(
        "--originate-every",
        type=float,
        metavar="S",
        help="originate an AM or a YQ to the gateway every S seconds (default: off)",
    )
    faults = p.add_argument_group("faults (same as POST /<network>/faults)")
    faults.add_argument("--fault-delay-ms", type=float, metavar="MS", help="delay_ms fault")
    faults.add_argument("--drop-after", type=int, metavar="N")
    faults.add_argument("--refuse-logon", action="store_true")
    faults.add_argument("--no-ack", action="store_true")
    faults.add_argument("--garble", action="store_true")
    faults.add_argument("--refuse-connections", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = load(args.config if args.config.exists() else None)
    except SimConfigError as exc:
        print(f"switch-sim: {exc}", file=sys.stderr)
        return 2
    if args.var is not None:
        config = replace(
            config,
            secrets_dir=args.var / "secrets",
            pki_dir=args.var / "pki",
            cache_dir=args.var / "sim",
        )
    if args.seed is not None:
        config = replace(config, seed=args.seed)
    if args.persons is not None:
        config = replace(config, persons=args.persons)
    if args.control_port is not None:
        config = replace(config, control_port=args.control_port)
    if args.heartbeat is not None:
        config = replace(config, heartbeat=args.heartbeat)
    if args.delay_ms is not None:
        config = config.with_delay((args.delay_ms, args.delay_ms))
    if args.originate_every is not None:
        nets = {
            n: replace(s, originate_every_s=max(0.0, args.originate_every))
            for n, s in config.networks.items()
        }
        config = replace(config, networks=nets)
    if args.any_port:
        nets = {n: replace(s, port=0) for n, s in config.networks.items()}
        config = replace(config, networks=nets, control_port=0)
    names = NETWORKS if args.network == "all" else (args.network,)
    fault_request: dict[str, Any] = {}
    if args.drop_after:
        fault_request["drop_after"] = args.drop_after
    if args.fault_delay_ms is not None:
        fault_request["delay_ms"] = args.fault_delay_ms
    for flag in ("refuse_logon", "no_ack", "garble", "refuse_connections"):
        if getattr(args, flag):
            fault_request[flag] = True

    try:
        Faults().merge(dict(fault_request))  # refuse a bad flag before starting anything
    except ValueError as exc:
        print(f"switch-sim: {exc}", file=sys.stderr)
        return 2

    from switch.logs import configure, start_twisted_logging

    configure(cache=True)
    start_twisted_logging()

    from twisted.internet import reactor as _reactor

    reactor: Any = _reactor

    from .data import Dataset
    from .service import start

    try:
        dataset = Dataset(seed=config.seed, persons=config.persons)
        sims = start(reactor, config, names, dataset)
    except Exception as exc:  # start-up failure: one line, no traceback
        print(f"switch-sim: cannot start: {exc}", file=sys.stderr)
        return 1
    for network in sims.networks.values():
        if fault_request:
            network.apply_faults(dict(fault_request))
    if args.ready_file is not None:
        assert sims.control is not None
        ports = dict(sims.port_numbers)
        ports["control"] = sims.control.getHost().port  # type: ignore[attr-defined]
        tmp = args.ready_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(ports))
        tmp.replace(args.ready_file)

    stopping: list[bool] = []

    def shutdown(*_: object) -> None:
        reactor.callFromThread(_stop)

    def _stop() -> None:
        if stopping:
            return
        stopping.append(True)
        # a hung listener or thread must not keep us past the 10 s of DESIGN §9
        reactor.callLater(8.0, os._exit, 0)
        d = Deferred.fromCoroutine(sims.stop())
        d.addBoth(lambda _: reactor.stop())

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    reactor.run(installSignalHandlers=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
