"""``switchd --config conf/switch.toml``: the gateway daemon, in the foreground.

Order of start-up (DESIGN §8): validate the whole config first (exit 2 with one line
per error and no traceback), then configure logging, build the service, listen (exit 1
if that fails: socket held by a live daemon, port taken), write ``var/run/switchd.pid``.
SIGTERM or SIGINT stop it in order (listeners first; see switch.service) and exit 0; the
pid file is removed on a clean exit. SIGHUP reloads the configuration (switch.reload): the
handler only schedules the reload on the reactor with ``callFromThread``; a SIGHUP before
the daemon is up, or while it stops, is logged and ignored (never the default action,
which would end the process). The global reactor is imported here and nowhere below.
"""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final, NoReturn

import structlog
from twisted.internet.defer import Deferred

from switch import logs, paths
from switch.config import Config, ConfigInvalid, load_config
from switch.locks import StoreLocks
from switch.metrics import Metrics
from switch.protocols.link import UP
from switch.service import Gateway, StartupError, SwitchService, add_gateway, make_service

#: Where versions before the store held the operator locks (imported once at start).
LEGACY_LOCKS_FILE = "locks.json"
#: Bound on the orderly part of shutdown beyond draining (DESIGN §8: exit within
#: drain + 5 s); then we exit regardless.
SHUTDOWN_GRACE = 5.0
#: The collector's generation thresholds once running (CPython's default is 700, 10, 10).
#: Nearly everything an inquiry allocates is freed by reference counting, yet with 700 a
#: young-generation collection ran every one or two inquiries: 7-10 % of the daemon's
#: CPU at saturation (bench/RESULTS.md). At 10,000 a young collection walks at most that
#: many survivors (well under a millisecond), and cycles still go within seconds.
GC_THRESHOLDS: Final = (10_000, 20, 20)

_log = structlog.get_logger("switchd")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="switchd", description="switch gateway daemon")
    parser.add_argument(
        "--config", default="conf/switch.toml", help="switch.toml (default conf/switch.toml)"
    )
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error")
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    args = parse_args(argv)
    try:
        config = load_config(Path(args.config))
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # unreadable file, loader bug: still no traceback
        print(f"{args.config}: cannot load config: {exc}", file=sys.stderr)
        sys.exit(1)

    logs.configure(level=args.log_level, cache=True)
    logs.start_twisted_logging(min_level=args.log_level)

    from twisted.internet import reactor, task

    task.react(_run, (config,), _reactor=reactor)


async def open_storage(reactor: Any, config: Config, metrics: Metrics) -> tuple[Any, Any]:
    """Open the database and the audit trail (both durable) before anything listens.

    The audit signing key must exist (``switchctl init`` / ``pki init``) and be private;
    a problem here is a start-up failure (exit 1), never a daemon without an audit.
    """
    from switch.audit.log import AuditLog
    from switch.pki import load_audit_signing_key
    from switch.store.sqlite import SQLiteStore

    key = load_audit_signing_key(config.audit.keys_dir)
    config.store.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    config.audit.checkpoints.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    store = SQLiteStore(
        reactor,
        config.store.path,
        inquiry_retention=config.store.inquiry_retention_hours * 3600.0,
        mailbox_retention=config.store.mailbox_retention_days * 86400.0,
        commit_interval=config.store.commit_interval_ms / 1000.0,
        on_commit=lambda seconds, _jobs: metrics.audit_commit_seconds.observe(seconds),
    )
    await store.start()
    audit = AuditLog(
        store,
        reactor,
        key,
        config.audit.checkpoints,
        checkpoint_every=config.audit.checkpoint_every,
        checkpoint_seconds=config.audit.checkpoint_seconds,
        retention_days=config.audit.retention_days,
        on_failure=metrics.audit_failures.inc,
    )
    try:
        await audit.start()
    except Exception:
        await store.stop()
        raise
    return store, audit


def _run(reactor: Any, config: Config) -> Deferred[None]:
    return Deferred.fromCoroutine(_serve(reactor, config))


def install_sighup(reactor: Any, target: list[SwitchService]) -> None:
    """SIGHUP -> ``target[0].reload("sighup")`` on the reactor thread.

    The Python-level handler runs between two bytecodes of whatever the main thread was
    doing; it must not touch Twisted state, so it only hands the work to the reactor.
    """

    def reload_now() -> None:
        if not target or not target[0].running:
            _log.warning("SIGHUP ignored: the daemon is not serving")
            return
        d = target[0].reload("sighup")
        d.addErrback(lambda f: _log.error("config reload failed", error=type(f.value).__name__))

    def on_sighup(signum: int, frame: object) -> None:
        reactor.callFromThread(reload_now)

    signal.signal(signal.SIGHUP, on_sighup)


def wire_operations(service: SwitchService, gateway: Gateway) -> None:
    """Give the reloader and the shutdown drain the parts add_gateway built."""
    reloader = service.reloader
    assert reloader is not None
    teletype = getattr(gateway, "teletype", None)
    reloader.attach(links=gateway.links, inquiries=gateway.inquiries, teletype=teletype)
    incoming = getattr(gateway, "incoming", None)
    set_terminals = getattr(incoming, "set_terminals", None)
    if set_terminals is not None:
        reloader.on_applied.append(lambda cfg: set_terminals(cfg.terminals))
    # A removed link's teletype queue goes to the intercept queue (DESIGN §8), done by
    # the teletype engine once it offers the hook.
    moved = getattr(teletype, "on_link_removed", None)
    if moved is not None:
        reloader.on_link_removed.append(moved)
    else:
        reloader.on_link_removed.append(
            lambda name: _log.warning(
                "link removed: its queued teletype waits for expiry (no intercept hook)",
                link=name,
            )
        )
    service.drain_checks.append(lambda: gateway.inquiries.outstanding() > 0)
    service.drain_checks.append(
        lambda: any(
            link.state == UP and link.queue_depth > 0 for link in gateway.links.links.values()
        )
    )


async def _serve(reactor: Any, config: Config) -> None:
    serving: list[SwitchService] = []
    install_sighup(reactor, serving)
    if config.demo_passwords:
        for _ in range(3):
            _log.warning(
                "DEMO PASSWORDS CONFIGURED: change them before real use (switchctl passwd)",
                operators=sorted(config.demo_passwords),
            )
    try:
        metrics = Metrics()
        store, audit = await open_storage(reactor, config, metrics)
        locks = await StoreLocks.open(store, legacy=config.var_dir / LEGACY_LOCKS_FILE)
        service = make_service(config, reactor, audit, metrics=metrics, locks=locks)
        gateway = add_gateway(service, config, reactor, store, audit, stop_audit=audit.stop)
        wire_operations(service, gateway)
        await gateway.dedup.load()  # before the links dial: duplicate checks in memory
        service.startService()  # type: ignore[no-untyped-call]
    except Exception as exc:
        _log.error("start-up failed", error=str(exc))
        raise SystemExit(1) from None
    try:
        service.ready()
        pid_path = paths.pid_file(config.var_dir)
        write_pid(pid_path)
        # What start-up built (modules, config, the loaded duplicate memory) lives as
        # long as the daemon: keep it out of the collector's way, so that a full
        # collection walks only what came after (its pauses show in the p99 latency).
        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
    except (StartupError, OSError) as exc:
        _log.error("start-up failed", error=str(exc))
        await service.stopService()
        raise SystemExit(1) from None

    async def shutdown() -> None:
        _log.info("stopping")
        serving.clear()  # a SIGHUP from now on is ignored
        d = service.stopService()
        d.addTimeout(service.config.drain_timeout + SHUTDOWN_GRACE, reactor)
        try:
            await d
        except Exception as exc:
            _log.error("shutdown incomplete", error=str(exc))
        remove_pid(pid_path)
        _log.info("exiting")

    reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromCoroutine(shutdown()))
    serving.append(service)
    _log.info("started", pid=os.getpid(), socket=os.fspath(config.api.socket))
    # Run until SIGTERM/SIGINT: Twisted's handlers stop the reactor, which runs the
    # shutdown trigger above; task.react then exits 0.
    await Deferred()


def write_pid(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{os.getpid()}\n", encoding="ascii")
    os.replace(tmp, path)


def remove_pid(path: Path) -> None:
    try:
        if path.read_text(encoding="ascii").strip() == str(os.getpid()):
            path.unlink()
    except (OSError, ValueError):
        pass


if __name__ == "__main__":
    main()
