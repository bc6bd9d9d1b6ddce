"""Config loading: the shipped conf/ loads after ``switchctl init``; every class of error
is reported with its file and key, and all of them at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from switch.cli.switchctl import main
from switch.config import (
    ConfigError,
    ConfigInvalid,
    load_config,
    parse_endpoint,
)
from switch.passwords import hash_password
from switch.routing.destinations import match

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of conf/ with var/ made by ``switchctl init`` (done once: keys are slow)."""
    base = tmp_path_factory.mktemp("prepared")
    shutil.copytree(CONF, base / "conf")
    cwd = os.getcwd()
    os.chdir(base)
    try:
        assert main(["init", "--config", "conf/switch.toml", "-q"]) == 0
    finally:
        os.chdir(cwd)
    return base


@pytest.fixture
def site(prepared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the prepared tree, as the working directory."""
    shutil.copytree(prepared, tmp_path / "site", symlinks=True)
    monkeypatch.chdir(tmp_path / "site")
    return tmp_path / "site"


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def errors() -> list[ConfigError]:
    with pytest.raises(ConfigInvalid) as info:
        load_config("conf/switch.toml", check_demo_passwords=False)
    return info.value.errors


def has(errs: list[ConfigError], file: str, key: str, text: str = "") -> ConfigError:
    """The error naming ``file`` and ``key`` (and containing ``text``) must be there,
    and its one-line rendering must name both."""
    for e in errs:
        if e.file.endswith(file) and e.key == key and text in e.message:
            line = str(e)
            assert file in line and key in line
            return e
    raise AssertionError(f"no {file}: {key}: ...{text}... in\n" + "\n".join(map(str, errs)))


# --------------------------------------------------------------------------- shipped conf


def test_shipped_conf_loads_cleanly(site: Path) -> None:
    """After ``switchctl init`` the shipped conf/ is valid and holds the §9 defaults."""
    cfg = load_config("conf/switch.toml")
    assert cfg.ori == "MO0380100"
    assert [(lk.name, lk.network, lk.parsed_endpoint.port) for lk in cfg.links] == [
        ("local", "local", 7101),
        ("regional", "regional", 7102),
        ("state", "state", 7103),
        ("national", "national", 7104),
    ]
    assert all(lk.station == "MO0380100" for lk in cfg.links)
    assert all(lk.secret_file == Path(f"var/secrets/{lk.network}.secret") for lk in cfg.links)
    national = cfg.links[3]
    assert national.parsed_endpoint.tls and national.server_name == "localhost"
    assert national.ca == Path("var/pki/ca.pem")
    assert national.certificate == Path("var/pki/gateway-client.pem")
    assert national.private_key == Path("var/pki/gateway-client.key")
    assert cfg.api.socket == Path("var/run/switch.sock") and cfg.api.socket_mode == 0o660
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9464)
    assert cfg.store.path == Path("var/switch.db")
    assert cfg.audit.checkpoints == Path("var/audit/checkpoints.jsonl")
    assert cfg.routes.inquiries["person"] == ("local", "regional", "state", "national")
    assert cfg.routes.inquiries["driver"] == ("state",)
    assert cfg.routes.out_of_state_link == "national"
    assert set(cfg.terminals) == {"DISPATCH1", "RECORDS1", "ADMIN1"}
    assert cfg.terminals["DISPATCH1"].roles == {"dispatch"}
    assert cfg.terminals["RECORDS1"].roles == {"records"}
    assert cfg.terminals["ADMIN1"].roles == {"admin", "supervisor"}
    for t in cfg.terminals.values():
        assert t.ori == "MO0380100" and len(t.subjects) == 6 and len(t.networks) == 4
    assert cfg.operators["demo"].roles == {"dispatch", "records", "supervisor", "admin"}
    assert cfg.demo_passwords == ("demo",)
    assert cfg.routes_file == Path("conf/routes.toml")


def test_shipped_conf_never_holds_the_demo_password_in_clear() -> None:
    """terminals.toml carries only the scrypt hash of the demo password."""
    text = (CONF / "terminals.toml").read_text()
    assert "demo-only-change-me" not in text
    assert 'password_hash = "scrypt$16384$8$1$' in text


@pytest.mark.parametrize(
    ("dest", "link"),
    [
        ("MO0380100", "local"),
        ("MO0380155", "local"),
        ("MO0480001", "regional"),
        ("REG", "regional"),
        ("MO0990000", "state"),
        ("STATE", "state"),
        ("MO", "state"),
        ("KS0123456", "national"),
        ("TX", "national"),
        ("ZZ0000000", None),  # not a valid state code: unroutable
        ("XX", None),
    ],
)
def test_shipped_demo_routes(site: Path, dest: str, link: str | None) -> None:
    """The demo destination rules of DESIGN §9, first match wins."""
    rule = match(load_config("conf/switch.toml").routes.destinations, dest)
    assert (rule.link if rule else None) == link


def test_changed_password_is_not_a_demo_password(site: Path) -> None:
    """An operator whose hash does not verify the demo password is not reported."""
    edit(
        Path("conf/terminals.toml"),
        'password_hash = "scrypt',
        f'password_hash = "{hash_password("another-long-password")}"\n# "scrypt',
    )
    assert load_config("conf/switch.toml").demo_passwords == ()


def test_relative_config_files_resolve_against_switch_toml(site: Path) -> None:
    """routes/terminals are found beside switch.toml whatever the working directory."""
    os.chdir(site / "conf")
    cfg = load_config("switch.toml", check_files=False, check_demo_passwords=False)
    assert cfg.routes_file == Path("routes.toml")
    assert "DISPATCH1" in cfg.terminals


# --------------------------------------------------------------------------- error classes


def test_toml_syntax_error_names_file_and_line(site: Path) -> None:
    """A TOML syntax error reports the file and the line."""
    lines = Path("conf/routes.toml").read_text().splitlines()
    lineno = lines.index('pattern = "REG"') + 1
    edit(Path("conf/routes.toml"), 'pattern = "REG"', "pattern = REG")
    e = has(errors(), "routes.toml", f"line {lineno}", "TOML syntax error")
    assert f"conf/routes.toml: line {lineno}:" in str(e)


def test_syntax_error_in_switch_toml_still_checks_the_other_files(site: Path) -> None:
    """A broken switch.toml does not hide errors in terminals.toml."""
    lineno = Path("conf/switch.toml").read_text().splitlines().index("[api]") + 1
    edit(Path("conf/switch.toml"), "[api]", "[api")
    edit(Path("conf/terminals.toml"), 'roles = ["records"]', 'roles = ["clerk"]')
    errs = errors()
    assert has(errs, "switch.toml", f"line {lineno}")
    has(errs, "terminals.toml", "terminals.RECORDS1.roles[0]", "unknown role 'clerk'")


def test_unknown_keys_are_named_with_their_dotted_path(site: Path) -> None:
    """Typos are errors, named by dotted path with an index for arrays of tables."""
    edit(Path("conf/switch.toml"), "heartbeat = 15.0", "hearbeat = 15.0")
    edit(Path("conf/switch.toml"), "port = 9464", "port = 9464\nhots = 1")
    edit(Path("conf/switch.toml"), 'ori = "MO0380100"', 'ori = "MO0380100"\nvardir = "x"')
    edit(Path("conf/terminals.toml"), "rate_limit = 5.0", "rate_limt = 5.0")
    edit(Path("conf/routes.toml"), "driver = [", "drivr = [")
    errs = errors()
    has(errs, "switch.toml", "links[0].hearbeat", "did you mean 'heartbeat'")
    has(errs, "switch.toml", "metrics.hots", "unknown key")
    has(errs, "switch.toml", "vardir", "did you mean 'var_dir'")
    has(errs, "terminals.toml", "terminals.DISPATCH1.rate_limt", "unknown key")
    has(errs, "routes.toml", "inquiries.drivr", "unknown subject; did you mean 'driver'")


def test_wrong_types(site: Path) -> None:
    """Values of the wrong TOML type name the expected type."""
    edit(Path("conf/switch.toml"), "window = 64", 'window = "64"')
    edit(Path("conf/switch.toml"), "timeout = 30.0", "timeout = true")
    edit(Path("conf/switch.toml"), "[metrics]", "[metrics]\nhost = 127")
    edit(Path("conf/switch.toml"), 'host = "127.0.0.1"\n', "")
    edit(Path("conf/terminals.toml"), "idle_exempt = true", 'idle_exempt = "yes"')
    edit(
        Path("conf/terminals.toml"), 'networks = ["local", "regional"', 'networks = [1, "regional"'
    )
    errs = errors()
    has(errs, "switch.toml", "links[0].window", "expected an integer, got a string")
    has(errs, "switch.toml", "inquiry.timeout", "expected a number, got a boolean")
    has(errs, "switch.toml", "metrics.host", "expected a string, got an integer")
    has(errs, "terminals.toml", "terminals.DISPATCH1.idle_exempt", "expected true or false")
    has(errs, "terminals.toml", "terminals.DISPATCH1.networks[0]", "expected a string")


def test_bad_values(site: Path) -> None:
    """Bad ORIs, roles, subjects, networks and out-of-range numbers are refused."""
    edit(Path("conf/switch.toml"), 'ori = "MO0380100"', 'ori = "XX123"')
    edit(Path("conf/switch.toml"), 'network = "regional"', 'network = "county"')
    edit(Path("conf/switch.toml"), 'station = "MO0380100"', 'station = "ZZ0380100"')
    edit(Path("conf/switch.toml"), "window = 64", "window = 0")
    edit(Path("conf/switch.toml"), "socket_mode = 0o660", "socket_mode = 0o666")
    edit(Path("conf/switch.toml"), "commit_interval_ms = 2.0", "commit_interval_ms = 500")
    edit(Path("conf/terminals.toml"), 'ori = "MO0380100"', 'ori = "MO03801"')
    edit(Path("conf/terminals.toml"), 'roles = ["dispatch"]', 'roles = ["dispatcher"]')
    edit(Path("conf/terminals.toml"), 'subjects = ["person"', 'subjects = ["persons"')
    edit(Path("conf/routes.toml"), 'pattern = "MO048*"', 'pattern = "MO-048*"')
    errs = errors()
    has(errs, "switch.toml", "ori", "is not an ORI")
    has(errs, "switch.toml", "links[1].network", "'county' is not one of")
    has(errs, "switch.toml", "links[0].station", "is not an ORI")
    has(errs, "switch.toml", "links[0].window", "between 1 and")
    has(errs, "switch.toml", "api.socket_mode", "gives others access")
    has(errs, "switch.toml", "store.commit_interval_ms", "between 0 and 100")
    has(errs, "terminals.toml", "terminals.DISPATCH1.ori", "is not an ORI")
    has(errs, "terminals.toml", "terminals.DISPATCH1.roles[0]", "unknown role 'dispatcher'")
    has(errs, "terminals.toml", "terminals.DISPATCH1.subjects[0]", "unknown subject 'persons'")
    has(errs, "routes.toml", "destinations[2].pattern", "is not an ORI")


def test_bad_password_hash(site: Path) -> None:
    """A password_hash that is not our scrypt line (e.g. a plain password) is refused."""
    text = Path("conf/terminals.toml").read_text()
    start = text.index('password_hash = "') + len('password_hash = "')
    end = text.index('"', start)
    Path("conf/terminals.toml").write_text(text[:start] + "hunter22" + text[end:])
    has(errors(), "terminals.toml", "operators.demo.password_hash", "switchctl passwd")


@pytest.mark.parametrize(
    ("endpoint", "text"),
    [
        ("udp:127.0.0.1:7101", "expected tcp:host:port or tls:host:port"),
        ("tcp:127.0.0.1", "expected tcp:host:port"),
        ("tcp:127.0.0.1:0", "port must be 1-65535"),
        ("tcp:127.0.0.1:70000", "port must be 1-65535"),
        ("tcp:127.0.0.1:http", "port must be 1-65535"),
        ("tcp:bad_host!:7101", "is not a host name"),
        ("tcp:127.0.0.1:7101:timeout", "is not key=value"),
        ("tcp:127.0.0.1:7101:timeout=-1", "timeout must be a positive"),
        ("tcp:127.0.0.1:7101:trustRoots=/etc", "unknown option 'trustRoots'"),
    ],
)
def test_bad_endpoint_strings(site: Path, endpoint: str, text: str) -> None:
    """Only tcp:/tls:host:port with known key=value options; host and port validated."""
    edit(Path("conf/switch.toml"), 'endpoint = "tcp:127.0.0.1:7101"', f'endpoint = "{endpoint}"')
    has(errors(), "switch.toml", "links[0].endpoint", text)


def test_endpoint_parser_accepts_twisted_style() -> None:
    """Valid strings parse, including options and an escaped IPv6 loopback."""
    ep = parse_endpoint("tcp:localhost:7101:timeout=5:bindAddress=127.0.0.1")
    assert (ep.scheme, ep.host, ep.port, dict(ep.options)) == (
        "tcp",
        "localhost",
        7101,
        {"timeout": "5", "bindAddress": "127.0.0.1"},
    )
    v6 = parse_endpoint(r"tls:\:\:1:7104")
    assert (v6.host, v6.port, v6.tls, v6.loopback) == ("::1", 7104, True, True)


def test_duplicate_link_name(site: Path) -> None:
    """Two links with one name are refused at the second."""
    edit(Path("conf/switch.toml"), 'name = "state"', 'name = "regional"')
    has(errors(), "switch.toml", "links[2].name", "duplicate link name 'regional'")


def test_terminal_refers_to_unknown_link(site: Path) -> None:
    """A terminal may only name configured links."""
    edit(Path("conf/terminals.toml"), '"state", "national"]', '"state", "nlets"]')
    has(errors(), "terminals.toml", "terminals.DISPATCH1.networks[3]", "unknown link 'nlets'")


def test_route_refers_to_unknown_link(site: Path) -> None:
    """Destination rules, inquiry routes and out_of_state must name configured links."""
    edit(Path("conf/routes.toml"), 'link = "regional"', 'link = "county"')
    edit(Path("conf/routes.toml"), 'driver = ["state"]', 'driver = ["dmv"]')
    edit(Path("conf/routes.toml"), 'out_of_state = "national"', 'out_of_state = "nlets"')
    errs = errors()
    has(errs, "routes.toml", "destinations[2].link", "unknown link 'county'")
    has(errs, "routes.toml", "inquiries.driver[0]", "unknown link 'dmv'")
    has(errs, "routes.toml", "inquiries.out_of_state", "unknown link 'nlets'")


def test_secret_file_missing(site: Path) -> None:
    """A link whose secret file does not exist is refused."""
    Path("var/secrets/state.secret").unlink()
    has(errors(), "switch.toml", "links[2].secret_file", "file not found")


def test_secret_file_readable_by_group_or_others(site: Path) -> None:
    """A secret others may read is refused (mode & 0o077)."""
    os.chmod("var/secrets/local.secret", 0o640)
    has(errors(), "switch.toml", "links[0].secret_file", "mode 0640")


def test_tls_files_missing(site: Path) -> None:
    """Missing CA, certificate or key files of a TLS link are each reported."""
    Path("var/pki/ca.pem").unlink()
    Path("var/pki/gateway-client.key").unlink()
    errs = errors()
    has(errs, "switch.toml", "links[3].ca", "file not found")
    has(errs, "switch.toml", "links[3].private_key", "file not found")


def test_plain_tcp_to_remote_host_needs_insecure_plaintext(site: Path) -> None:
    """Plain TCP off the machine is refused unless insecure_plaintext = true says so."""
    edit(Path("conf/switch.toml"), "tcp:127.0.0.1:7103", "tcp:state.example.org:7103")
    has(errors(), "switch.toml", "links[2].endpoint", "insecure_plaintext")
    edit(
        Path("conf/switch.toml"),
        'secret_file = "var/secrets/state.secret"',
        'secret_file = "var/secrets/state.secret"\ninsecure_plaintext = true',
    )
    cfg = load_config("conf/switch.toml", check_demo_passwords=False)
    assert cfg.links[2].insecure_plaintext


def test_national_link_needs_a_client_certificate(site: Path) -> None:
    """The national link without a client certificate (mutual TLS) is refused."""
    edit(Path("conf/switch.toml"), 'certificate = "var/pki/gateway-client.pem"\n', "")
    edit(Path("conf/switch.toml"), 'private_key = "var/pki/gateway-client.key"\n', "")
    has(errors(), "switch.toml", "links[3].certificate", "mutual TLS")


def test_national_link_over_plain_tcp_is_refused(site: Path) -> None:
    """tcp: for national is refused even on loopback, and TLS keys on tcp: are flagged."""
    edit(Path("conf/switch.toml"), "tls:127.0.0.1:7104", "tcp:127.0.0.1:7104")
    errs = errors()
    has(errs, "switch.toml", "links[3].certificate", "mutual TLS")
    has(errs, "switch.toml", "links[3].ca", "only meaningful with a tls: endpoint")


def test_every_error_is_reported_at_once(site: Path) -> None:
    """Errors in all three files come back together, one line each."""
    edit(Path("conf/switch.toml"), "window = 64", "window = -1")
    edit(Path("conf/switch.toml"), "port = 9464", "port = 99999")
    edit(Path("conf/routes.toml"), 'link = "local"', 'link = "city"')
    edit(Path("conf/terminals.toml"), 'roles = ["records"]', 'roles = ["clerk"]')
    os.chmod("var/secrets/regional.secret", 0o604)
    errs = errors()
    assert len(errs) == 5, "\n".join(map(str, errs))
    has(errs, "switch.toml", "links[0].window")
    has(errs, "switch.toml", "metrics.port")
    has(errs, "switch.toml", "links[1].secret_file")
    has(errs, "routes.toml", "destinations[0].link")
    has(errs, "terminals.toml", "terminals.RECORDS1.roles[0]")
    with pytest.raises(ConfigInvalid) as info:
        load_config("conf/switch.toml")
    assert str(info.value).count("\n") == 4


def test_missing_included_file(site: Path) -> None:
    """A routes file that does not exist is named."""
    edit(Path("conf/switch.toml"), 'routes = "routes.toml"', 'routes = "rules.toml"')
    has(errors(), "rules.toml", "(file)", "file not found")


def test_check_files_false_skips_only_file_checks(site: Path) -> None:
    """``switchctl init`` reads the config before the files exist."""
    shutil.rmtree("var")
    cfg = load_config("conf/switch.toml", check_files=False, check_demo_passwords=False)
    assert len(cfg.links) == 4
    errs = errors()
    has(errs, "switch.toml", "links[0].secret_file", "file not found")
    has(errs, "switch.toml", "links[3].certificate", "file not found")


def test_simulators_toml_has_the_documented_keys() -> None:
    """conf/simulators.toml parses and holds the §9 addresses and §4 response times."""
    import tomllib

    sim = tomllib.loads((CONF / "simulators.toml").read_text())
    assert sim["seed"] == 1 and sim["persons"] == 100000
    assert (sim["control"]["host"], sim["control"]["port"]) == ("127.0.0.1", 7100)
    assert sim["secrets_dir"] == "var/secrets" and sim["pki_dir"] == "var/pki"
    ports = {net: sim[net]["port"] for net in ("local", "regional", "state", "national")}
    assert ports == {"local": 7101, "regional": 7102, "state": 7103, "national": 7104}
    assert sim["local"]["delay_ms"] == [20, 100] and sim["regional"]["delay_ms"] == [20, 100]
    assert sim["state"]["delay_ms"] == [100, 500]
    assert sim["national"]["delay_ms"] == [50, 300]
    assert sim["state"]["slow_delay_ms"] == sim["national"]["slow_delay_ms"] == [1000, 10000]
    assert [sim[n]["ori"] for n in ports] == ["MO0380000", "MO0480000", "MO0000000", "NCIC"]
