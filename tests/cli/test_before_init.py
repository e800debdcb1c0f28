"""`mailsvc serve` and `mailsvc backup` on a home that `mailsvc init` has not made: a
precise error saying what to run, no traceback, nothing created."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from mailsvc.cli import main


def test_serve_on_a_missing_home_says_to_run_init(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    result = CliRunner().invoke(main, ["--home", str(home), "serve"])
    assert result.exit_code == 1, result.output
    assert f"error: {home} does not exist: run `mailsvc init --home {home} --domain DOMAIN`" in (
        result.output
    )
    assert "Traceback" not in result.output
    assert not home.exists()


def test_serve_without_the_tls_certificate_names_the_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "mailsvc.toml").write_text('[server]\ndomain = "x.example.vn"\n', encoding="utf-8")
    (home / "mailsvc.toml").chmod(0o600)
    result = CliRunner().invoke(main, ["--home", str(home), "serve"])
    assert result.exit_code == 1, result.output
    assert f"error: tls.cert: {home / 'tls' / 'cert.pem'} does not exist" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in home.iterdir()) == ["mailsvc.toml"]  # nothing started


def test_a_relay_that_is_not_host_port_is_refused_at_load(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["--home", str(tmp_path), "serve"], env={"MAILSVC_OUTBOUND__RELAY": "x y"}
    )
    assert result.exit_code == 1, result.output
    assert "key 'outbound.relay': Value error, expected HOST:PORT, got 'x y'" in result.output


def test_backup_of_a_missing_home_says_to_run_init(tmp_path: Path) -> None:
    home = tmp_path / "nowhere"
    result = CliRunner().invoke(main, ["--home", str(home), "backup"])
    assert result.exit_code == 1, result.output
    assert f"error: {home} does not exist: run `mailsvc init" in result.output
    assert "Traceback" not in result.output
    assert not home.exists()
