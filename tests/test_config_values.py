"""Configuration values the service writes elsewhere, refused at load with the key named,
before any file is written: paths go into its daemons' configuration files (dovecot.conf,
clamd.conf, freshclam.conf) as the rest of one line, so no control character; the host
name and the domain go into SMTP replies, headers and addresses, so host-name syntax."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mailsvc.adapters.clamd_daemon import ClamdLimits
from mailsvc.adapters.clamd_daemon import render_config as render_clamd_config
from mailsvc.adapters.freshclam import render_freshclam_config
from mailsvc.cli import main
from mailsvc.config import load_settings
from mailsvc.errors import ConfigError

INJECTED = "/var/lib/x\nDatabaseOwner root"


@pytest.mark.parametrize(
    ("variable", "key", "value"),
    [
        ("MAILSVC_CLAMAV__DATABASE_DIR", "clamav.database_dir", INJECTED),
        ("MAILSVC_CLAMAV__SOCKET", "clamav.socket", "/run/clamd.sock\rTCPSocket 3310"),
        ("MAILSVC_TLS__CERT", "tls.cert", "tls/cert.pem\nssl = no"),
        ("MAILSVC_TLS__KEY", "tls.key", "tls/key.pem\x00"),
        ("MAILSVC_PATHS__MAILDIR_ROOT", "paths.maildir_root", "mail\nmail_uid = 0"),
        ("MAILSVC_PATHS__BLOB_ROOT", "paths.blob_root", "blobs\x1b[2J"),
        ("MAILSVC_PATHS__POLICIES", "paths.policies", "policies\x7f"),
        ("MAILSVC_PATHS__TEMPLATES", "paths.templates", "templates\t\n"),
    ],
)
def test_a_path_with_a_control_character_is_refused_with_its_key(
    tmp_path: Path, variable: str, key: str, value: str
) -> None:
    with pytest.raises(ConfigError, match=rf"key '{key}': .*without line breaks"):
        load_settings(tmp_path, environ={variable: value})


def test_a_home_with_a_line_break_is_refused_and_named_readably(tmp_path: Path) -> None:
    home = tmp_path / "a\nDatabaseOwner root"
    with pytest.raises(ConfigError, match=r"key 'home'") as caught:
        load_settings(home, environ={})
    assert "\n" not in str(caught.value)  # the path is shown escaped, on one line
    for args in (
        ["--home", str(home), "init", "--domain", "x.example.vn"],
        ["init", "--home", str(home), "--domain", "x.example.vn"],
    ):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 2, result.output  # a usage error
        assert "Invalid value for '--home'" in result.output
        assert "without line breaks" in result.output
        assert not home.exists()  # refused before anything was created


def test_paths_with_spaces_and_vietnamese_letters_stay_one_directive(tmp_path: Path) -> None:
    home = tmp_path / "Sở Nội vụ" / "mailsvc home"
    database_dir = tmp_path / "chữ ký" / "clamav db"
    settings = load_settings(home, environ={"MAILSVC_CLAMAV__DATABASE_DIR": str(database_dir)})
    fresh = render_freshclam_config(settings).splitlines()
    assert f"DatabaseDirectory {database_dir}" in fresh
    assert sum(line.startswith("DatabaseDirectory ") for line in fresh) == 1
    clamd = render_clamd_config(
        socket_path=home / "clamav" / "clamd.sock",
        database_dir=database_dir,
        temp_dir=home / "clamav" / "tmp",
        pid_file=home / "clamav" / "clamd.pid",
        limits=ClamdLimits(),
    ).splitlines()
    assert f"DatabaseDirectory {database_dir}" in clamd


@pytest.mark.parametrize(
    ("variable", "key", "value"),
    [
        ("MAILSVC_SERVER__HOSTNAME", "server.hostname", "mail.example.vn\r\n250-PIPELINING"),
        ("MAILSVC_SERVER__HOSTNAME", "server.hostname", "mail example.vn"),
        ("MAILSVC_SERVER__HOSTNAME", "server.hostname", ""),
        ("MAILSVC_SERVER__HOSTNAME", "server.hostname", "mail..example.vn"),
        ("MAILSVC_SERVER__DOMAIN", "server.domain", "example.vn\nssl = no"),
        ("MAILSVC_SERVER__DOMAIN", "server.domain", "-example.vn"),
        ("MAILSVC_SERVER__DOMAIN", "server.domain", "example.vn>"),
        ("MAILSVC_SERVER__DOMAIN", "server.domain", "a" * 64 + ".vn"),
    ],
)
def test_a_host_or_domain_name_that_is_not_one_is_refused_with_its_key(
    tmp_path: Path, variable: str, key: str, value: str
) -> None:
    # the host name goes into the SMTP greeting (a CRLF would add reply lines), trace
    # headers, Message-IDs and Dovecot's configuration; the domain into every address
    with pytest.raises(ConfigError, match=rf"key '{key}': .*is not a host name"):
        load_settings(tmp_path, environ={variable: value})


def test_host_and_domain_names_are_kept_in_their_usual_form(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        environ={
            "MAILSVC_SERVER__HOSTNAME": "Mail.Sở-TTTT.vn.",
            "MAILSVC_SERVER__DOMAIN": "localhost",
        },
    )
    assert settings.server.hostname == "mail.xn--s-tttt-bp8b.vn"  # IDN as its A-label
    assert settings.server.domain == "localhost"


def test_init_refuses_a_hostname_that_is_not_one_before_writing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main, ["--home", str(home), "init", "--domain", "x.example.vn", "--hostname", "mail x"]
    )
    assert result.exit_code == 1, result.output
    assert "--hostname: 'mail x' is not a host name" in result.output
    assert not home.exists()


@pytest.mark.parametrize(
    ("variable", "key", "value", "says"),
    [
        ("MAILSVC_SERVER__TIMEZONE", "server.timezone", "Mars/Olympus", "not a time zone"),
        ("MAILSVC_SERVER__TIMEZONE", "server.timezone", "../../etc/passwd", "not a time zone"),
        ("MAILSVC_DKIM__SELECTOR", "dkim.selector", "s1\r\nX-Evil: 1", "not a DKIM selector"),
        ("MAILSVC_DKIM__SELECTOR", "dkim.selector", "s1; d=other.vn", "not a DKIM selector"),
        ("MAILSVC_ISSUING__DISPATCH_ADDRESS", "issuing.dispatch_address", "phat hanh@x.vn",
         "not a mailbox address"),
        ("MAILSVC_ISSUING__DISPATCH_ADDRESS", "issuing.dispatch_address", "phathanh",
         "not a mailbox address"),
        ("MAILSVC_ISSUING__DISPATCH_ADDRESS", "issuing.dispatch_address", "a@x.vn>, b@y.vn",
         "not a mailbox address"),
        ("MAILSVC_ISSUING__DISPATCH_ADDRESS", "issuing.dispatch_address", "phathanh@x.vn\nbcc.vn",
         "is not a host name"),
    ],
)  # fmt: skip
def test_zone_selector_and_dispatch_address_are_checked_at_load(
    tmp_path: Path, variable: str, key: str, value: str, says: str
) -> None:
    # the zone was only read when a time was first shown (a CLI command or a report
    # crashed); the selector goes into every DKIM-Signature; the address is a recipient
    with pytest.raises(ConfigError, match=rf"key '{key}': .*{says}"):
        load_settings(tmp_path, environ={variable: value})


def test_zone_selector_and_dispatch_address_in_their_usual_form(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path,
        environ={
            "MAILSVC_SERVER__TIMEZONE": "Asia/Ho_Chi_Minh",
            "MAILSVC_DKIM__SELECTOR": "mailsvc-2026.12",
            "MAILSVC_ISSUING__DISPATCH_ADDRESS": " PhatHanh@STTTT.Example.gov.vn ",
        },
    )
    assert settings.server.timezone == "Asia/Ho_Chi_Minh"
    assert settings.dkim.selector == "mailsvc-2026.12"
    assert settings.issuing.dispatch_address == "phathanh@stttt.example.gov.vn"
    assert load_settings(tmp_path, environ={}).dispatch_address == "phathanh@example.vn"
