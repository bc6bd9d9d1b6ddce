"""``conf/simulators.toml`` -> typed settings, with the defaults of DESIGN §4 and §9."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

NETWORKS = ("local", "regional", "state", "national")
_PORTS = {"local": 7101, "regional": 7102, "state": 7103, "national": 7104}
_HOT = {"local": (20, 100), "regional": (20, 100), "state": (100, 500), "national": (50, 300)}
_SLOW = {
    "local": (20, 100),
    "regional": (20, 100),
    "state": (1000, 10000),
    "national": (1000, 10000),
}


class SimConfigError(ValueError):
    pass


@dataclass(frozen=True)
class NetworkSettings:
    name: str
    host: str = "127.0.0.1"
    port: int = 0
    delay_ms: tuple[float, float] = (20.0, 100.0)
    slow_delay_ms: tuple[float, float] = (20.0, 100.0)
    teletype_delay_ms: tuple[float, float] | None = (2000.0, 10000.0)
    teletype_no_answer: float = 0.0
    teletype_deny: float = 0.0
    auto_reply_am: bool = True
    originate_every_s: float = 0.0  # scheduled AM/YQ to the gateway; 0: off


@dataclass(frozen=True)
class SimConfig:
    seed: int = 1
    persons: int = 100_000
    station: str = "MO0380100"
    secrets_dir: Path = Path("var/secrets")
    pki_dir: Path = Path("var/pki")
    cache_dir: Path | None = None
    control_host: str = "127.0.0.1"
    control_port: int = 7100
    heartbeat: float = 15.0
    networks: dict[str, NetworkSettings] = field(default_factory=dict)

    def with_delay(self, delay_ms: tuple[float, float]) -> SimConfig:
        """Every reply delay replaced (``--delay-ms`` for benchmarks)."""
        nets = {
            n: replace(s, delay_ms=delay_ms, slow_delay_ms=delay_ms)
            for n, s in self.networks.items()
        }
        return replace(self, networks=nets)


def _pair(value: Any, key: str) -> tuple[float, float]:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value), float(value))
    if (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
        and 0 <= value[0] <= value[1]
    ):
        return (float(value[0]), float(value[1]))
    raise SimConfigError(f"{key}: expected [min, max] milliseconds")


def _teletype_delay(value: Any, key: str) -> tuple[float, float] | None:
    """``[min, max]`` ms, or ``false`` / ``"never"``: the agencies never answer."""
    if value is False or value == "never":
        return None
    return _pair(value, key)


def _fraction(value: Any, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 <= value <= 1:
        return float(value)
    raise SimConfigError(f"{key}: expected a fraction between 0 and 1")


def _number(value: Any, key: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    raise SimConfigError(f"{key}: expected a non-negative number")


def load(path: Path | None) -> SimConfig:
    """Read the file (defaults for anything missing; no file: all defaults)."""
    try:
        return _load(path)
    except (TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, SimConfigError):
            raise
        raise SimConfigError(f"{path}: bad value ({exc})") from None


def _load(path: Path | None) -> SimConfig:
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SimConfigError(f"{path}: {exc}") from None
    nets = {}
    for name in NETWORKS:
        table = raw.get(name, {})
        if not isinstance(table, dict):
            raise SimConfigError(f"{path}: [{name}] must be a table")
        hot = _pair(table.get("delay_ms", list(_HOT[name])), f"{name}.delay_ms")
        nets[name] = NetworkSettings(
            name=name,
            host=str(table.get("host", "127.0.0.1")),
            port=int(table.get("port", _PORTS[name])),
            delay_ms=hot,
            slow_delay_ms=_pair(table.get("slow_delay_ms", list(_SLOW[name])), f"{name}.slow"),
            teletype_delay_ms=_teletype_delay(
                table.get("teletype_delay_ms", [2000, 10000]), f"{name}.teletype_delay_ms"
            ),
            teletype_no_answer=_fraction(
                table.get("teletype_no_answer", 0.0), f"{name}.teletype_no_answer"
            ),
            teletype_deny=_fraction(table.get("teletype_deny", 0.0), f"{name}.teletype_deny"),
            auto_reply_am=bool(table.get("auto_reply_am", True)),
            originate_every_s=_number(
                table.get("originate_every_s", 0.0), f"{name}.originate_every_s"
            ),
        )
    control = raw.get("control", {})
    cache = raw.get("cache_dir")
    return SimConfig(
        seed=int(raw.get("seed", 1)),
        persons=int(raw.get("persons", 100_000)),
        station=str(raw.get("station", "MO0380100")),
        secrets_dir=Path(raw.get("secrets_dir", "var/secrets")),
        pki_dir=Path(raw.get("pki_dir", "var/pki")),
        cache_dir=Path(cache) if cache else None,
        control_host=str(control.get("host", "127.0.0.1")),
        control_port=int(control.get("port", 7100)),
        heartbeat=float(raw.get("heartbeat", 15.0)),
        networks=nets,
    )
