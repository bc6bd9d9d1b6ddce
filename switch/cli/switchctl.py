"""``switchctl``: the operator's command line (DESIGN §8).

Subcommands live in small modules listed in :data:`COMMAND_MODULES`; each exposes
``register(subparsers)`` and sets ``func`` (returning an exit code) on its parsers. A
module that is not installed yet is skipped, so commands land independently. Every
failure is one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

PROG = "switchctl"

COMMAND_MODULES = [
    "switch.cli.cmd_config",
    "switch.cli.cmd_init",
    "switch.cli.cmd_session",
    "switch.cli.cmd_audit",
    "switch.cli.cmd_query",
    "switch.cli.cmd_teletype",
    "switch.cli.cmd_admin",
]

#: ``--config`` default for every subcommand; ``SWITCH_CONFIG`` overrides it.
DEFAULT_CONFIG = "conf/switch.toml"


class CommandError(Exception):
    """A command failed in a way the operator can fix: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def default_config() -> Path:
    return Path(os.environ.get("SWITCH_CONFIG") or DEFAULT_CONFIG)


def add_config_option(parser: argparse.ArgumentParser) -> None:
    """The ``--config PATH`` option shared by the subcommands that read the config."""
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        metavar="PATH",
        help=f"switch.toml to use (default: $SWITCH_CONFIG or {DEFAULT_CONFIG})",
    )


def config_path(args: argparse.Namespace) -> Path:
    value = getattr(args, "config", None)
    return Path(value) if value is not None else default_config()


def _load_modules(names: Sequence[str]) -> list[Any]:
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a command module that is present but broken: say so
                raise
    return modules


def build_parser(module_names: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Operate the switch message-switch gateway."
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _load_modules(COMMAND_MODULES if module_names is None else module_names):
        module.register(subparsers)
    return parser


def _error(message: str) -> None:
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"{PROG}: error: {first}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: usage errors (2) and --help (0)
        return exc.code if isinstance(exc.code, int) else 2
    except Exception as exc:  # a command module failed to import: one line, no traceback
        _error(f"{type(exc).__name__}: {exc}")
        return 1
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        # `switchctl` or `switchctl pki` alone: show the help of what was typed
        target = getattr(args, "_parser", parser)
        target.print_help(sys.stderr)
        return 2
    try:
        return int(func(args))
    except CommandError as exc:
        _error(str(exc))
        return exc.code
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:  # never a traceback: it may carry message content
        _error(f"{type(exc).__name__}: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
