"""Typed, validated configuration: ``conf/switch.toml``, ``routes.toml``, ``terminals.toml``.

The loader reports every error at once (file, key, what was expected) so that an admin
fixes a broken config in one pass; nothing half-valid ever reaches the daemon.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("dispatch", "records", "supervisor", "admin")
NETWORKS = ("local", "regional", "state", "national")


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


def load_config(path: Path | str) -> Config:
    """Load and validate the three files; raise ConfigInvalid listing every error."""
    raise NotImplementedError
