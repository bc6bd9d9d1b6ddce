"""Typed, validated configuration: ``conf/switch.toml``, ``routes.toml``, ``terminals.toml``.

The loader reports every error at once (file, key, what was expected) so that an admin
fixes a broken config in one pass; nothing half-valid ever reaches the daemon.

``switch.toml`` names the other two files (``routes``/``terminals``, relative to its own
directory); every other relative path in the config resolves against the working
directory (DESIGN §8). Keys are documented in ``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from switch import paths
from switch.model import STATE_CODES, SUBJECTS, ValidationError, is_ori, validate_ori
from switch.passwords import DEMO_PASSWORD, is_valid_hash, verify_password

ROLES = ("dispatch", "records", "supervisor", "admin")
NETWORKS = ("local", "regional", "state", "national")
#: Teletype broadcast codes a destination rule may name (DESIGN §6).
BROADCAST_CODES: Final = frozenset({"REG", "STATE"})
#: Endpoint schemes a link may use and the ``:key=value`` options each accepts.
ENDPOINT_OPTIONS: Final[Mapping[str, frozenset[str]]] = {
    "tcp": frozenset({"timeout", "bindAddress"}),
    "tls": frozenset({"timeout", "bindAddress"}),
}


@dataclass(frozen=True)
class ConfigError:
    """One problem in one file at one key."""

    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.message}"


class ConfigInvalid(Exception):
    """Raised by :func:`load_config` with every error found."""

    def __init__(self, errors: list[ConfigError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


@dataclass(frozen=True)
class Endpoint:
    """A parsed link endpoint string: ``tcp:host:port`` or ``tls:host:port`` + options.

    The daemon dials ``host``/``port`` itself (``HostnameEndpoint``) and, for ``tls``,
    wraps it with :func:`switch.pki.client_tls_options` built from the link's files.
    """

    scheme: str
    host: str
    port: int
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def tls(self) -> bool:
        return self.scheme == "tls"

    @property
    def loopback(self) -> bool:
        return is_loopback(self.host)


@dataclass(frozen=True)
class LinkConfig:
    """One upstream network connection (DESIGN §4)."""

    name: str
    network: str  # wire format: local | regional | state | national
    endpoint: str  # Twisted client endpoint string: tcp:host:port or tls:host:port
    station: str
    secret_file: Path
    heartbeat: float = 15.0
    window: int = 64
    ack_timeout: float = 10.0
    insecure_plaintext: bool = False
    ca: Path | None = None
    certificate: Path | None = None
    private_key: Path | None = None
    server_name: str | None = None  # TLS name to verify (national: "localhost")

    @property
    def parsed_endpoint(self) -> Endpoint:
        """The endpoint split into scheme, host, port (already validated by the loader)."""
        return parse_endpoint(self.endpoint)


@dataclass(frozen=True)
class ApiConfig:
    socket: Path = Path("var/run/switch.sock")
    socket_mode: int = 0o660
    socket_group: str | None = None
    max_body: int = 64 * 1024
    client_timeout: float = 60.0


@dataclass(frozen=True)
class MetricsConfig:
    host: str = "127.0.0.1"
    port: int = 9464


@dataclass(frozen=True)
class SessionConfig:
    idle_expiry: float = 1800.0
    lockout_failures: int = 5
    lockout_window: float = 900.0
    lockout_duration: float = 600.0


@dataclass(frozen=True)
class StoreConfig:
    path: Path = Path("var/switch.db")
    inquiry_retention_hours: float = 24.0
    mailbox_retention_days: float = 30.0
    commit_interval_ms: float = 2.0


@dataclass(frozen=True)
class AuditConfig:
    keys_dir: Path = Path("var/keys")
    checkpoints: Path = Path("var/audit/checkpoints.jsonl")
    checkpoint_every: int = 1000
    checkpoint_seconds: float = 60.0
    retention_days: int = 365


@dataclass(frozen=True)
class InquiryConfig:
    timeout: float = 30.0


@dataclass(frozen=True)
class TeletypeConfig:
    ttl_hours: float = 24.0
    max_attempts: int = 5


@dataclass(frozen=True)
class Terminal:
    """A workstation: its ORI, what it may ask, and the most its sessions may hold."""

    id: str
    ori: str
    roles: frozenset[str]
    subjects: frozenset[str]
    networks: frozenset[str]
    rate_limit: float = 5.0  # inquiries per second, burst of the same size
    idle_exempt: bool = False
    #: receives unsolicited network notices (ER, SM) in its mailbox (DESIGN §6)
    notices: bool = False


@dataclass(frozen=True)
class Operator:
    name: str
    roles: frozenset[str]
    password_hash: str  # scrypt$N$r$p$salt_b64$hash_b64, never a plain password


@dataclass(frozen=True)
class DestinationRule:
    """Teletype routing: first match wins (DESIGN §6).

    ``pattern``: an exact ORI, an ORI prefix ending in ``*`` (``MO048*``), a 2-letter
    state code, a broadcast code (``REG``, ``STATE``), or ``*`` (any other valid state
    code or ORI). ``link`` None means unroutable (intercept queue).
    """

    pattern: str
    link: str | None


@dataclass(frozen=True)
class RoutesConfig:
    #: subject -> link names to ask
    inquiries: Mapping[str, tuple[str, ...]]
    #: driver / registration for another state go here instead
    out_of_state_link: str | None
    destinations: tuple[DestinationRule, ...]


@dataclass(frozen=True)
class Config:
    source: Path  # the switch.toml this came from
    ori: str
    var_dir: Path
    api: ApiConfig
    metrics: MetricsConfig
    sessions: SessionConfig
    store: StoreConfig
    audit: AuditConfig
    inquiry: InquiryConfig
    teletype: TeletypeConfig
    links: tuple[LinkConfig, ...]
    routes: RoutesConfig
    terminals: Mapping[str, Terminal]
    operators: Mapping[str, Operator]
    demo_passwords: tuple[str, ...] = field(default=())  # operators still on a demo password
    #: SIGTERM: how long in-flight work may drain before the links are logged off (§8)
    drain_timeout: float = 5.0
    #: the routes.toml and terminals.toml actually read (reload watches the same files)
    routes_file: Path | None = None
    terminals_file: Path | None = None

    def link(self, name: str) -> LinkConfig | None:
        return next((lk for lk in self.links if lk.name == name), None)


# --------------------------------------------------------------------------- endpoints

_HOST_LABEL: Final = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_LINK_NAME: Final = re.compile(r"[a-z][a-z0-9_-]{0,31}")
_TERMINAL_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}")
_OPERATOR_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_PREFIX_PATTERN: Final = re.compile(r"([A-Z]{2})[A-Z0-9]{0,6}\*")


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address: plain TCP there never leaves the machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_hostname(host: str) -> bool:
    """An IP address or an RFC 1123 host name."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    name = host[:-1] if host.endswith(".") else host
    return 0 < len(name) <= 253 and all(_HOST_LABEL.fullmatch(p) for p in name.split("."))


def _split_endpoint(text: str) -> list[str]:
    """Split on unescaped ``:`` the way Twisted does (``\\:`` escapes an IPv6 colon)."""
    parts, cur, escaped = [], [], False
    for ch in text:
        if escaped:
            cur.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == ":":
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return parts


def parse_endpoint(text: str) -> Endpoint:
    """Parse ``tcp:host:port[:key=value...]`` or ``tls:...``; ValueError says what is wrong."""
    parts = _split_endpoint(text.strip())
    scheme = parts[0]
    if scheme not in ENDPOINT_OPTIONS:
        raise ValueError(f"{text!r}: expected tcp:host:port or tls:host:port")
    if len(parts) < 3:
        raise ValueError(f"{text!r}: expected {scheme}:host:port")
    host, port_text = parts[1], parts[2]
    if not is_hostname(host):
        raise ValueError(f"{text!r}: {host!r} is not a host name or IP address")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: port must be 1-65535")
    options: dict[str, str] = {}
    for item in parts[3:]:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"{text!r}: {item!r} is not key=value")
        if key not in ENDPOINT_OPTIONS[scheme]:
            allowed = ", ".join(sorted(ENDPOINT_OPTIONS[scheme]))
            raise ValueError(f"{text!r}: unknown option {key!r} (allowed: {allowed})")
        if key == "timeout":
            try:
                ok = float(value) > 0
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{text!r}: timeout must be a positive number of seconds")
        if key == "bindAddress" and not is_hostname(value):
            raise ValueError(f"{text!r}: bindAddress must be an address")
        options[key] = value
    return Endpoint(scheme, host, int(port_text), options)


# --------------------------------------------------------------------------- reading

_MISSING: Final = object()


def _type_name(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "a table"
    return "a date/time"


class _Errors:
    def __init__(self) -> None:
        self.items: list[ConfigError] = []

    def add(self, file: str, key: str, message: str) -> None:
        self.items.append(ConfigError(file, key, message))


class _Section:
    """One TOML table: typed getters that record errors instead of raising, and a
    ``finish`` that reports every key nobody asked for (typos)."""

    def __init__(self, errors: _Errors, file: str, prefix: str, data: Mapping[str, Any]) -> None:
        self.errors = errors
        self.file = file
        self.prefix = prefix
        self.data = data
        self.used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, message: str) -> None:
        self.errors.add(self.file, self.key(name), message)

    def raw(self, name: str) -> Any:
        self.used.add(name)
        return self.data.get(name, _MISSING)

    def _typed(self, name: str, kinds: tuple[type, ...], expected: str, required: bool) -> Any:
        value = self.raw(name)
        if value is _MISSING:
            if required:
                self.error(name, f"missing (expected {expected})")
            return _MISSING
        if isinstance(value, bool) and bool not in kinds:
            self.error(name, f"expected {expected}, got {_type_name(value)}")
            return _MISSING
        if not isinstance(value, kinds):
            self.error(name, f"expected {expected}, got {_type_name(value)}")
            return _MISSING
        return value

    def text(self, name: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self._typed(name, (str,), "a string", required)
        return default if value is _MISSING else str(value)

    def number(self, name: str, default: float, *, positive: bool = True) -> float:
        value = self._typed(name, (int, float), "a number", False)
        if value is _MISSING:
            return default
        if value != value or value in (float("inf"), float("-inf")):
            self.error(name, "must be a finite number")
            return default
        if positive and value <= 0:
            self.error(name, f"must be greater than 0, got {value}")
            return default
        return float(value)

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._typed(name, (int,), "an integer", False)
        if value is _MISSING:
            return default
        if not low <= value <= high:
            self.error(name, f"must be between {low} and {high}, got {value}")
            return default
        return int(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self._typed(name, (bool,), "true or false", False)
        return default if value is _MISSING else bool(value)

    def path(self, name: str, default: Path | None) -> Path | None:
        value = self._typed(name, (str,), "a path string", False)
        if value is _MISSING:
            return default
        if not value:
            self.error(name, "must not be empty")
            return default
        return Path(value)

    def strings(self, name: str, *, required: bool = False) -> list[str] | None:
        value = self._typed(name, (list,), "an array of strings", required)
        if value is _MISSING:
            return None
        out: list[str] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                self.errors.add(
                    self.file,
                    f"{self.key(name)}[{i}]",
                    f"expected a string, got {_type_name(item)}",
                )
            else:
                out.append(item)
        return out

    def table(self, name: str) -> _Section:
        value = self._typed(name, (dict,), "a table", False)
        data = {} if value is _MISSING else value
        return _Section(self.errors, self.file, self.key(name), data)

    def tables(self, name: str) -> list[_Section]:
        """An array of tables (``[[links]]``); keys read ``links[0].name``."""
        value = self._typed(name, (list,), "an array of tables", False)
        if value is _MISSING:
            return []
        out = []
        for i, item in enumerate(value):
            key = f"{self.key(name)}[{i}]"
            if not isinstance(item, dict):
                self.errors.add(self.file, key, f"expected a table, got {_type_name(item)}")
                continue
            out.append(_Section(self.errors, self.file, key, item))
        return out

    def finish(self) -> None:
        known = sorted(self.used)
        for name in self.data:
            if name not in self.used:
                close = difflib.get_close_matches(name, known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.error(name, f"unknown key{hint}")


def _read_toml(errors: _Errors, path: Path) -> dict[str, Any] | None:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        errors.add(str(path), "(file)", "file not found")
    except OSError as exc:
        errors.add(str(path), "(file)", f"cannot read: {exc.strerror or exc}")
    except UnicodeDecodeError:
        errors.add(str(path), "(file)", "not UTF-8 text")
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        m = re.search(r"\(at line (\d+), column (\d+)\)", message)
        where = f"line {m.group(1)}" if m else "(syntax)"
        text = message[: m.start()].strip() if m else message
        col = f" (column {m.group(2)})" if m else ""
        errors.add(str(path), where, f"TOML syntax error: {text}{col}")
    return None


# --------------------------------------------------------------------------- loader


class _Loader:
    def __init__(self, source: Path, check_files: bool, check_demo_passwords: bool) -> None:
        self.source = source
        self.check_files = check_files
        self.check_demo_passwords = check_demo_passwords
        self.errors = _Errors()

    # -- switch.toml ---------------------------------------------------------

    def load(self) -> Config:
        data = _read_toml(self.errors, self.source)
        main_ok = data is not None
        top = _Section(self.errors, str(self.source), "", data or {})
        base = self.source.parent
        routes_file = base / (top.text("routes", "routes.toml") or "routes.toml")
        terminals_file = base / (top.text("terminals", "terminals.toml") or "terminals.toml")

        ori = top.text("ori", required=main_ok) or "MO0380100"
        if main_ok and "ori" in top.data and not is_ori(ori):
            top.error("ori", f"{ori!r} is not an ORI (2-letter state code + 7 letters/digits)")
        var_dir = top.path("var_dir", paths.VAR) or paths.VAR
        drain = top.number("drain_timeout", 5.0)

        api = self._api(top.table("api"), var_dir)
        metrics = self._metrics(top.table("metrics"))
        sessions = self._sessions(top.table("sessions"))
        store = self._store(top.table("store"), var_dir)
        audit = self._audit(top.table("audit"), var_dir)
        inquiry = InquiryConfig(timeout=self._finish(top.table("inquiry"), "timeout", 30.0))
        tt = top.table("teletype")
        teletype = TeletypeConfig(
            ttl_hours=tt.number("ttl_hours", 24.0),
            max_attempts=tt.integer("max_attempts", 5, 1, 100),
        )
        tt.finish()
        links = self._links(top.tables("links"), ori, var_dir)
        top.finish()

        # Without a readable switch.toml the link names are unknown: check the other two
        # files for their own errors but not their references to links.
        link_names = {lk.name: lk for lk in links} if main_ok else None
        routes = self._routes(routes_file, link_names)
        terminals, operators = self._terminals(terminals_file, ori, link_names)
        if self.errors.items:
            raise ConfigInvalid(self.errors.items)
        demo: tuple[str, ...] = ()
        if self.check_demo_passwords:
            demo = tuple(
                name
                for name, op in operators.items()
                if verify_password(DEMO_PASSWORD, op.password_hash)
            )
        return Config(
            source=self.source,
            ori=ori,
            var_dir=var_dir,
            api=api,
            metrics=metrics,
            sessions=sessions,
            store=store,
            audit=audit,
            inquiry=inquiry,
            teletype=teletype,
            links=links,
            routes=routes,
            terminals=terminals,
            operators=operators,
            demo_passwords=demo,
            drain_timeout=drain,
            routes_file=routes_file,
            terminals_file=terminals_file,
        )

    def _finish(self, sec: _Section, name: str, default: float) -> float:
        value = sec.number(name, default)
        sec.finish()
        return value

    def _api(self, sec: _Section, var: Path) -> ApiConfig:
        socket = sec.path("socket", paths.socket_path(var)) or paths.socket_path(var)
        mode_raw = sec.raw("socket_mode")
        mode = 0o660
        if mode_raw is not _MISSING:
            parsed: int | None = None
            if isinstance(mode_raw, int) and not isinstance(mode_raw, bool):
                parsed = mode_raw
            elif isinstance(mode_raw, str) and re.fullmatch(r"0?o?[0-7]{3,4}", mode_raw):
                parsed = int(mode_raw.replace("o", ""), 8)
            if parsed is None or not 0 <= parsed <= 0o777:
                sec.error("socket_mode", 'expected a file mode such as 0o660 or "0660"')
            elif parsed & 0o007:
                sec.error("socket_mode", f"{parsed:04o} gives others access; use 0660 or less")
            else:
                mode = parsed
        cfg = ApiConfig(
            socket=socket,
            socket_mode=mode,
            socket_group=sec.text("socket_group"),
            max_body=sec.integer("max_body", 64 * 1024, 1024, 16 * 1024 * 1024),
            client_timeout=sec.number("client_timeout", 60.0),
        )
        sec.finish()
        return cfg

    def _metrics(self, sec: _Section) -> MetricsConfig:
        host = sec.text("host", "127.0.0.1") or "127.0.0.1"
        try:
            ipaddress.ip_address(host)
        except ValueError:
            sec.error("host", f"{host!r} is not an IP address")
        cfg = MetricsConfig(host=host, port=sec.integer("port", 9464, 0, 65535))
        sec.finish()
        return cfg

    def _sessions(self, sec: _Section) -> SessionConfig:
        cfg = SessionConfig(
            idle_expiry=sec.number("idle_expiry", 1800.0),
            lockout_failures=sec.integer("lockout_failures", 5, 1, 1000),
            lockout_window=sec.number("lockout_window", 900.0),
            lockout_duration=sec.number("lockout_duration", 600.0),
        )
        sec.finish()
        return cfg

    def _store(self, sec: _Section, var: Path) -> StoreConfig:
        cfg = StoreConfig(
            path=sec.path("path", paths.database(var)) or paths.database(var),
            inquiry_retention_hours=sec.number("inquiry_retention_hours", 24.0),
            mailbox_retention_days=sec.number("mailbox_retention_days", 30.0),
            commit_interval_ms=sec.number("commit_interval_ms", 2.0, positive=False),
        )
        if not 0.0 <= cfg.commit_interval_ms <= 100.0:
            sec.error(
                "commit_interval_ms", f"must be between 0 and 100, got {cfg.commit_interval_ms}"
            )
        sec.finish()
        return cfg

    def _audit(self, sec: _Section, var: Path) -> AuditConfig:
        cfg = AuditConfig(
            keys_dir=sec.path("keys_dir", paths.keys_dir(var)) or paths.keys_dir(var),
            checkpoints=sec.path("checkpoints", paths.checkpoints_file(var))
            or paths.checkpoints_file(var),
            checkpoint_every=sec.integer("checkpoint_every", 1000, 1, 10_000_000),
            checkpoint_seconds=sec.number("checkpoint_seconds", 60.0),
            retention_days=sec.integer("retention_days", 365, 1, 100_000),
        )
        sec.finish()
        return cfg

    # -- links -----------------------------------------------------------------

    def _links(self, sections: list[_Section], ori: str, var: Path) -> tuple[LinkConfig, ...]:
        links: list[LinkConfig] = []
        seen: set[str] = set()
        for sec in sections:
            link = self._link(sec, ori, var)
            sec.finish()
            if link is None:
                continue
            if link.name in seen:
                sec.error("name", f"duplicate link name {link.name!r}")
                continue
            seen.add(link.name)
            links.append(link)
        return tuple(links)

    def _link(self, sec: _Section, ori: str, var: Path) -> LinkConfig | None:
        ok = True
        name = sec.text("name", required=True)
        if name is not None and not _LINK_NAME.fullmatch(name):
            sec.error("name", f"{name!r}: lower-case letters, digits, '-' or '_', at most 32")
            ok = False
        network = sec.text("network", required=True)
        if network is not None and network not in NETWORKS:
            sec.error("network", f"{network!r} is not one of {', '.join(NETWORKS)}")
            ok = False
        endpoint_text = sec.text("endpoint", required=True)
        endpoint: Endpoint | None = None
        if endpoint_text is not None:
            try:
                endpoint = parse_endpoint(endpoint_text)
            except ValueError as exc:
                sec.error("endpoint", str(exc))
                ok = False
        station = sec.text("station", ori) or ori
        if "station" in sec.data:
            try:
                station = validate_ori(station, "station")
            except ValidationError:
                sec.error("station", f"{station!r} is not an ORI")
                ok = False
        default_secret = paths.secret_file(network or "link", var)
        secret = sec.path("secret_file", default_secret) or default_secret
        heartbeat = sec.number("heartbeat", 15.0)
        window = sec.integer("window", 64, 1, 10_000)
        ack_timeout = sec.number("ack_timeout", 10.0)
        insecure = sec.boolean("insecure_plaintext", False)
        ca = sec.path("ca", None)
        cert = sec.path("certificate", None)
        key = sec.path("private_key", None)
        server_name = sec.text("server_name")
        if server_name is not None and not is_hostname(server_name):
            sec.error("server_name", f"{server_name!r} is not a host name or IP address")
            ok = False

        if self.check_files:
            problem = paths.private_mode_problem(secret)
            if problem is not None:
                sec.error("secret_file", f"{secret}: {problem}")
        if endpoint is not None:
            if endpoint.tls:
                if ca is None:
                    sec.error("ca", "a tls: endpoint needs the CA certificate to verify the peer")
                if (cert is None) != (key is None):
                    which = "private_key" if key is None else "certificate"
                    sec.error(which, "certificate and private_key go together")
                if server_name is None:
                    server_name = endpoint.host
            else:
                for opt, value in (
                    ("ca", ca),
                    ("certificate", cert),
                    ("private_key", key),
                    ("server_name", server_name),
                ):
                    if value is not None:
                        sec.error(opt, "only meaningful with a tls: endpoint")
                if not endpoint.loopback and not insecure:
                    sec.error(
                        "endpoint",
                        f"plain TCP to non-loopback host {endpoint.host!r}: use tls: or set "
                        "insecure_plaintext = true",
                    )
            if network == "national" and (not endpoint.tls or cert is None or key is None):
                sec.error(
                    "certificate",
                    "the national link needs mutual TLS: a tls: endpoint with certificate "
                    "and private_key",
                )
        if self.check_files:
            for opt, tls_path in (("ca", ca), ("certificate", cert)):
                if tls_path is not None and not tls_path.is_file():
                    sec.error(opt, f"{tls_path}: file not found")
            if key is not None:
                problem = paths.private_mode_problem(key)
                if problem is not None:
                    sec.error("private_key", f"{key}: {problem}")
        if not ok or name is None or network is None or endpoint_text is None:
            return None
        return LinkConfig(
            name=name,
            network=network,
            endpoint=endpoint_text,
            station=station,
            secret_file=secret,
            heartbeat=heartbeat,
            window=window,
            ack_timeout=ack_timeout,
            insecure_plaintext=insecure,
            ca=ca,
            certificate=cert,
            private_key=key,
            server_name=server_name,
        )

    # -- routes.toml -----------------------------------------------------------

    def _check_link(
        self, sec: _Section, key: str, name: str, links: Mapping[str, Any] | None
    ) -> bool:
        if links is not None and name not in links:
            known = ", ".join(sorted(links)) or "none configured"
            self.errors.add(sec.file, key, f"unknown link {name!r} (links: {known})")
            return False
        return True

    def _routes(self, file: Path, links: Mapping[str, LinkConfig] | None) -> RoutesConfig:
        data = _read_toml(self.errors, file)
        top = _Section(self.errors, str(file), "", data or {})
        inq = top.table("inquiries")
        all_links = tuple(links) if links else ()
        inquiries: dict[str, tuple[str, ...]] = {}
        for subject in SUBJECTS:
            names = inq.strings(subject)
            if names is None:
                # DESIGN §6 defaults: driver/registration to the state network, the rest
                # to every configured link.
                if subject in ("driver", "registration"):
                    inquiries[subject] = tuple(
                        n for n in all_links if links and links[n].network == "state"
                    )
                else:
                    inquiries[subject] = all_links
                continue
            good = []
            for i, name in enumerate(names):
                if self._check_link(inq, f"{inq.key(subject)}[{i}]", name, links):
                    if name not in good:
                        good.append(name)
            inquiries[subject] = tuple(good)
        oos_raw = inq.text("out_of_state")
        out_of_state: str | None
        if oos_raw is None:
            out_of_state = next(
                (n for n in all_links if links and links[n].network == "national"), None
            )
        elif oos_raw == "":
            out_of_state = None
        else:
            out_of_state = oos_raw
            if not self._check_link(inq, inq.key("out_of_state"), oos_raw, links):
                out_of_state = None
        for name in inq.data:
            if name not in inq.used:
                # unknown keys of [inquiries] are most likely misspelt subjects
                close = difflib.get_close_matches(name, [*SUBJECTS, "out_of_state"], n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                inq.error(name, f"unknown subject{hint} (subjects: {', '.join(SUBJECTS)})")
                inq.used.add(name)

        rules: list[DestinationRule] = []
        seen: set[str] = set()
        for sec in top.tables("destinations"):
            pattern = sec.text("pattern", required=True)
            link = sec.text("link")
            sec.finish()
            if pattern is None:
                continue
            pattern = pattern.strip().upper()
            problem = _pattern_problem(pattern)
            if problem:
                sec.error("pattern", problem)
                continue
            if pattern in seen:
                sec.error("pattern", f"{pattern!r} repeats an earlier rule (it can never match)")
                continue
            seen.add(pattern)
            if link and not self._check_link(sec, sec.key("link"), link, links):
                continue
            rules.append(DestinationRule(pattern=pattern, link=link or None))
        top.finish()
        return RoutesConfig(
            inquiries=inquiries, out_of_state_link=out_of_state, destinations=tuple(rules)
        )

    # -- terminals.toml --------------------------------------------------------

    def _set(
        self,
        sec: _Section,
        name: str,
        allowed: tuple[str, ...] | None,
        what: str,
        default: tuple[str, ...] | None,
        links: Mapping[str, Any] | None = None,
    ) -> frozenset[str]:
        values = sec.strings(name, required=default is None)
        if values is None:
            return frozenset(default or ())
        out: set[str] = set()
        for i, value in enumerate(values):
            key = f"{sec.key(name)}[{i}]"
            if allowed is not None and value not in allowed:
                self.errors.add(
                    sec.file, key, f"unknown {what} {value!r} (one of {', '.join(allowed)})"
                )
            elif allowed is None and not self._check_link(sec, key, value, links):
                pass
            else:
                out.add(value)
        return frozenset(out)

    def _terminals(
        self, file: Path, ori: str, links: Mapping[str, LinkConfig] | None
    ) -> tuple[dict[str, Terminal], dict[str, Operator]]:
        data = _read_toml(self.errors, file)
        top = _Section(self.errors, str(file), "", data or {})
        terminals: dict[str, Terminal] = {}
        tsec = top.table("terminals")
        for tid in list(tsec.data):
            sec = tsec.table(tid)
            if not _TERMINAL_ID.fullmatch(tid):
                tsec.error(tid, "a terminal id is 1-32 letters, digits, '-' or '_'")
            t_ori = sec.text("ori", ori) or ori
            if "ori" in sec.data:
                try:
                    t_ori = validate_ori(t_ori)
                except ValidationError:
                    sec.error("ori", f"{t_ori!r} is not an ORI")
            terminal = Terminal(
                id=tid,
                ori=t_ori,
                roles=self._set(sec, "roles", ROLES, "role", None),
                subjects=self._set(sec, "subjects", SUBJECTS, "subject", SUBJECTS),
                networks=self._set(sec, "networks", None, "link", tuple(links or ()), links),
                rate_limit=sec.number("rate_limit", 5.0),
                idle_exempt=sec.boolean("idle_exempt", False),
                notices=sec.boolean("notices", False),
            )
            sec.finish()
            terminals[tid] = terminal
        operators: dict[str, Operator] = {}
        osec = top.table("operators")
        for name in list(osec.data):
            sec = osec.table(name)
            if not _OPERATOR_NAME.fullmatch(name):
                osec.error(name, "an operator name is 1-64 letters, digits, '.', '-' or '_'")
            pw = sec.text("password_hash", required=True) or ""
            if "password_hash" in sec.data and isinstance(sec.data["password_hash"], str):
                if not is_valid_hash(pw):
                    sec.error(
                        "password_hash",
                        "not a scrypt$n$r$p$salt$hash line: make one with `switchctl passwd`",
                    )
            operators[name] = Operator(
                name=name, roles=self._set(sec, "roles", ROLES, "role", None), password_hash=pw
            )
            sec.finish()
        top.finish()
        return terminals, operators


def _pattern_problem(pattern: str) -> str | None:
    if pattern == "*" or pattern in BROADCAST_CODES or pattern in STATE_CODES or is_ori(pattern):
        return None
    m = _PREFIX_PATTERN.fullmatch(pattern)
    if m and m.group(1) in STATE_CODES:
        return None
    return (
        f"{pattern!r} is not an ORI, an ORI prefix ending in '*', a state code, "
        f"{' or '.join(sorted(BROADCAST_CODES))}, or '*'"
    )


def load_config(
    path: Path | str, *, check_files: bool = True, check_demo_passwords: bool = True
) -> Config:
    """Load and validate the three files; raise ConfigInvalid listing every error.

    ``check_files=False`` skips the checks on secret and TLS files (``switchctl init``
    reads the config to learn which files to create). ``check_demo_passwords`` costs
    one scrypt (~50 ms) per operator.
    """
    return _Loader(Path(path), check_files, check_demo_passwords).load()
