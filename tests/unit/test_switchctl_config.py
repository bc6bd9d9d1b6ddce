"""switchctl: the command skeleton, ``config check``, ``passwd``, ``init`` and
``pki init``, driven through ``main([...])`` with exit codes and one-line errors."""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
from pathlib import Path

import pytest

from switch.cli import cmd_config, switchctl
from switch.cli.switchctl import main
from switch.passwords import verify_password

CONF = Path(__file__).resolve().parents[2] / "conf"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A working directory holding a copy of conf/ and no var/ yet."""
    shutil.copytree(CONF, tmp_path / "conf")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWITCH_CONFIG", raising=False)
    return tmp_path


def _one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert lines[0].startswith("switchctl: error: ")
    return lines[0]


def _tree(root: Path) -> dict[str, tuple[int, bytes | None]]:
    return {
        str(p): (stat.S_IMODE(p.stat().st_mode), p.read_bytes() if p.is_file() else None)
        for p in sorted(root.rglob("*"))
    }


def test_init_prepares_var_and_config_check_passes(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``init`` creates var/ (dirs 0700, secrets 0600 one token line each, PKI, audit
    keys); ``config check`` then prints OK and exits 0, warning about the demo password."""
    assert main(["init"]) == 0
    out = capsys.readouterr().out
    assert "created var/secrets/national.secret" in out and out.endswith("var ready\n")
    for d in ("var", "var/run", "var/secrets", "var/pki", "var/keys", "var/audit", "var/sim"):
        assert stat.S_IMODE(Path(d).stat().st_mode) == 0o700, d
    for network in ("local", "regional", "state", "national"):
        secret = Path(f"var/secrets/{network}.secret")
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        text = secret.read_text()
        assert text.endswith("\n") and len(text.strip()) == 43 and "\n" not in text.strip()
    for name in ("ca.pem", "national-server.pem", "national-server.key", "gateway-client.pem"):
        assert Path("var/pki", name).is_file()
    assert Path("var/keys/audit-signing.key").is_file()

    assert main(["config", "check"]) == 0
    captured = capsys.readouterr()
    assert captured.out == "OK\n"
    assert "operator 'demo' still has the demo password" in captured.err


def test_init_is_idempotent(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A second ``init`` changes nothing: secrets, keys and certificates are kept."""
    assert main(["init", "--config", "conf/switch.toml"]) == 0
    before = _tree(site / "var")
    capsys.readouterr()
    assert main(["init", "--config", "conf/switch.toml"]) == 0
    assert capsys.readouterr().out == "var ready\n"
    assert _tree(site / "var") == before


def test_init_refuses_an_invalid_config(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``init`` validates first: a bad config creates nothing and lists its errors."""
    path = site / "conf/switch.toml"
    path.write_text(path.read_text().replace("window = 64", "window = 0"))
    assert main(["init"]) == 1
    assert "switch.toml: links[0].window:" in capsys.readouterr().err
    assert not (site / "var").exists()


def test_config_check_reports_errors_one_per_line(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``config check`` on a broken config prints each error on its own line, exit 1."""
    assert main(["init", "-q"]) == 0
    path = site / "conf/terminals.toml"
    path.write_text(path.read_text().replace('roles = ["records"]', 'roles = ["clerk"]'))
    os.chmod("var/secrets/state.secret", 0o644)
    assert main(["config", "check", "--config", "conf/switch.toml"]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert any(line.startswith("conf/switch.toml: links[2].secret_file: ") for line in lines)
    assert "conf/terminals.toml: terminals.RECORDS1.roles[0]: unknown role 'clerk'" in lines[1]


def test_config_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A config path that does not exist is an error line, exit 1."""
    assert main(["config", "check", "--config", str(tmp_path / "nope.toml")]) == 1
    assert "nope.toml: (file): file not found" in capsys.readouterr().out


def test_config_check_honours_switch_config_env(
    site: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without --config, $SWITCH_CONFIG names the file."""
    monkeypatch.setenv("SWITCH_CONFIG", "elsewhere.toml")
    assert main(["config", "check"]) == 1
    assert "elsewhere.toml: (file): file not found" in capsys.readouterr().out


def test_passwd_stdin(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """``passwd --stdin`` reads one line and prints a hash line that verifies it."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse battery\nignored\n"))
    assert main(["passwd", "--stdin"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", line)


def test_passwd_prompts_twice(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Interactive ``passwd`` asks twice; a mismatch is an error and prints no hash."""
    answers = iter(["first-password", "other-password"])
    monkeypatch.setattr(cmd_config.getpass, "getpass", lambda prompt="": next(answers))
    assert main(["passwd"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "do not match" in _one_error_line(captured.err)

    answers = iter(["same-password", "same-password"])
    assert main(["passwd"]) == 0
    assert verify_password("same-password", capsys.readouterr().out.strip())


def test_passwd_refuses_short_passwords(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Fewer than 8 characters is refused."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["passwd", "--stdin"]) == 1
    assert "at least 8" in _one_error_line(capsys.readouterr().err)


def test_pki_init_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``pki init --dir --keys`` writes the files once; a second run writes nothing."""
    args = ["pki", "init", "--dir", str(tmp_path / "pki"), "--keys", str(tmp_path / "keys")]
    assert main(args) == 0
    assert capsys.readouterr().out.count("wrote ") == 8
    assert main(args) == 0
    assert capsys.readouterr().out == ""
    assert main([*args, "--force"]) == 0
    assert capsys.readouterr().out.count("wrote ") == 8


def test_pki_init_refuses_shared_private_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing private key readable by others: one error line, exit 1."""
    args = ["pki", "init", "--dir", str(tmp_path / "pki"), "--keys", str(tmp_path / "keys")]
    assert main(args) == 0
    os.chmod(tmp_path / "keys/audit-signing.key", 0o644)
    capsys.readouterr()
    assert main(args) == 1
    assert "audit-signing.key" in _one_error_line(capsys.readouterr().err)


def test_no_command_and_usage_errors(capsys: pytest.CaptureFixture[str]) -> None:
    """No subcommand shows help (exit 2); an unknown one is a usage error (exit 2)."""
    assert main([]) == 2
    assert "config" in capsys.readouterr().err
    assert main(["pki"]) == 2
    assert "init" in capsys.readouterr().err
    assert main(["frobnicate"]) == 2
    assert main(["--help"]) == 0


def test_unexpected_failure_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """An unexpected exception in a command is one stderr line and exit 1, no traceback."""

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(cmd_config, "load_config", boom)
    assert main(["config", "check"]) == 1
    assert _one_error_line(capsys.readouterr().err) == "switchctl: error: RuntimeError: boom"


def test_missing_command_modules_are_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A listed command module that does not exist is skipped silently; one that exists
    but fails to import (a missing dependency of its own) is reported, not hidden."""
    monkeypatch.setattr(
        switchctl,
        "COMMAND_MODULES",
        ["switch.cli.cmd_config", "switch.cli.cmd_does_not_exist_yet"],
    )
    assert main(["config", "check", "--config", str(tmp_path / "x.toml")]) == 1
    assert "x.toml" in capsys.readouterr().out

    (tmp_path / "switchctl_broken_cmd.py").write_text("import switchctl_no_such_dependency\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(switchctl, "COMMAND_MODULES", ["switchctl_broken_cmd"])
    assert main(["config"]) == 1
    assert "switchctl_no_such_dependency" in _one_error_line(capsys.readouterr().err)
