"""``switchctl config check`` and ``switchctl passwd``."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from switch.cli.switchctl import CommandError, add_config_option, config_path
from switch.config import ConfigInvalid, load_config
from switch.passwords import hash_password

MIN_PASSWORD = 8  # CJIS Security Policy IA-5: at least 8 characters


def register(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="work with the configuration")
    config.set_defaults(_parser=config)
    config_sub = config.add_subparsers(dest="config_command", metavar="COMMAND")
    check = config_sub.add_parser(
        "check", help="validate switch.toml, routes.toml and terminals.toml; print every error"
    )
    add_config_option(check)
    check.set_defaults(func=check_command)

    passwd = subparsers.add_parser(
        "passwd", help="hash a password for an operator's password_hash in terminals.toml"
    )
    passwd.add_argument(
        "--stdin", action="store_true", help="read the password as one line from stdin"
    )
    passwd.set_defaults(func=passwd_command)


def check_command(args: argparse.Namespace) -> int:
    """``OK`` and exit 0, or one line per error (file: key: message) and exit 1."""
    path = config_path(args)
    try:
        config = load_config(path)
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(str(error))
        return 1
    for name in config.demo_passwords:
        print(
            f"warning: operator {name!r} still has the demo password; "
            "set a new hash with `switchctl passwd`",
            file=sys.stderr,
        )
    print("OK")
    return 0


def passwd_command(args: argparse.Namespace) -> int:
    if args.stdin:
        line = sys.stdin.readline()
        password = line[:-1] if line.endswith("\n") else line
        password = password.removesuffix("\r")
    else:
        password = getpass.getpass("New password: ")
        again = getpass.getpass("Repeat: ")
        if password != again:
            raise CommandError("the passwords do not match")
    if len(password) < MIN_PASSWORD:
        raise CommandError(f"a password has at least {MIN_PASSWORD} characters")
    print(hash_password(password))
    return 0
