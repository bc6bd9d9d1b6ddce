"""``switchctl init`` (prepare ``var/`` for ``make run``) and ``switchctl pki init``.

Both are idempotent: what exists is kept, so ``make run`` runs them every time and an
operator's replaced secret or certificate is never silently overwritten.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

from switch import paths
from switch.cli.switchctl import CommandError, add_config_option, config_path
from switch.config import Config, ConfigInvalid, load_config
from switch.pki import PkiError, init_pki


def register(subparsers: Any) -> None:
    init = subparsers.add_parser(
        "init", help="prepare var/: directories, link secrets, PKI and audit keys"
    )
    add_config_option(init)
    init.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    init.set_defaults(func=init_command)

    pki = subparsers.add_parser("pki", help="demo PKI for the national link and audit keys")
    pki.set_defaults(_parser=pki)
    pki_sub = pki.add_subparsers(dest="pki_command", metavar="COMMAND")
    pinit = pki_sub.add_parser(
        "init", help="create the CA, national server and gateway client certificates"
    )
    pinit.add_argument("--dir", type=Path, default=paths.pki_dir(), help="default var/pki")
    pinit.add_argument("--keys", type=Path, default=paths.keys_dir(), help="default var/keys")
    pinit.add_argument("--force", action="store_true", help="replace existing files")
    pinit.set_defaults(func=pki_init_command)


def _ensure_dir(path: Path, mode: int = 0o700) -> bool:
    """Create ``path`` (and parents) with ``mode``; an existing directory is left as is."""
    if path.is_dir():
        return False
    if path.exists():
        raise CommandError(f"{path}: exists and is not a directory")
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=mode)
        p.chmod(mode)  # mkdir's mode is filtered by the umask
    return True


def _pki(pki_dir: Path, keys_dir: Path, force: bool, station: str) -> list[Path]:
    try:
        return list(init_pki(pki_dir, keys_dir, force=force, station=station).written)
    except PkiError as exc:
        raise CommandError(str(exc)) from None
    except OSError as exc:
        raise CommandError(f"{exc.filename or pki_dir}: {exc.strerror or exc}") from None


def pki_init_command(args: argparse.Namespace) -> int:
    for path in _pki(args.dir, args.keys, args.force, "MO0380100"):
        print(f"wrote {path}")
    return 0


def _pki_dir(config: Config) -> Path:
    """Where the TLS links expect the PKI: the directory of their CA file, else var/pki."""
    for link in config.links:
        if link.ca is not None:
            return link.ca.parent
    return paths.pki_dir(config.var_dir)


def prepare_var(config: Config) -> list[Path]:
    """Create what ``make run`` needs and is missing; returns what was created."""
    created: list[Path] = []
    var = config.var_dir
    group = config.api.socket_group is not None
    # With a socket group, the group must be able to traverse to the socket.
    for d, mode in (
        (var, 0o710 if group else 0o700),
        (config.api.socket.parent, 0o750 if group else 0o700),
        (paths.secrets_dir(var), 0o700),
        (config.audit.keys_dir, 0o700),
        (config.audit.checkpoints.parent, 0o700),
        (config.store.path.parent, 0o700),
        (paths.sim_dir(var), 0o700),
    ):
        if _ensure_dir(d, mode):
            created.append(d)
    for link in config.links:
        _ensure_dir(link.secret_file.parent)
        secret = (secrets.token_urlsafe(32) + "\n").encode("ascii")
        if paths.write_private(link.secret_file, secret):
            created.append(link.secret_file)
    pki_dir = _pki_dir(config)
    if _ensure_dir(pki_dir):
        created.append(pki_dir)
    created += _pki(pki_dir, config.audit.keys_dir, False, config.ori)
    return created


def init_command(args: argparse.Namespace) -> int:
    path = config_path(args)
    try:
        # files do not exist yet: learn which to create, check everything else
        config = load_config(path, check_files=False, check_demo_passwords=False)
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return 1
    try:
        created = prepare_var(config)
    except OSError as exc:
        raise CommandError(f"{exc.filename or config.var_dir}: {exc.strerror or exc}") from None
    try:
        load_config(path, check_demo_passwords=False)  # now with the files
    except ConfigInvalid as exc:
        for error in exc.errors:
            print(str(error), file=sys.stderr)
        return 1
    if not args.quiet:
        for item in created:
            print(f"created {item}")
        print(f"{config.var_dir} ready")
    return 0
