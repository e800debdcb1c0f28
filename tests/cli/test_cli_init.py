"""`mailsvc init`: a complete, commented config; database, Maildir root, TLS, DKIM; idempotent;
--demo prints a working clerk login."""

from __future__ import annotations

import base64
import json
import os
import re
import stat
import tomllib
from pathlib import Path

import dkim
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pydantic import BaseModel
from sqlalchemy import select

from mailsvc.cli import main
from mailsvc.cli.init import DESCRIPTIONS, render_config
from mailsvc.config import Settings, load_settings
from mailsvc.db.models import Agency, Mailbox
from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.passwords import verify_password
from mailsvc.permissions import sqlite_files
from mailsvc.register.models import RegisterDocument


def _settings_keys() -> list[tuple[str, str, BaseModel]]:
    out = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            out += [(section, key, model) for key in model.model_fields]
    return out


def _init(home: Path, db_url: str, *extra: str) -> str:
    result = CliRunner().invoke(
        main,
        ["--home", str(home), "init", "--domain", "demo.example.gov.vn", *extra],
        env={"MAILSVC_DATABASE__URL": db_url, "MAILSVC_PASSWORD__ARGON2_MEMORY_KIB": "8192"},
    )
    assert result.exit_code == 0, (result.output, result.exception)
    return result.stdout


def test_every_settings_key_is_written_with_a_comment() -> None:
    text = render_config()
    data = tomllib.loads(text)
    comment_before: dict[tuple[str, str], str] = {}
    section, previous = "", ""
    for line in text.splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif " = " in line and not line.startswith("#"):
            comment_before[(section, line.split(" = ")[0])] = previous
        previous = line
    for section, key, model in _settings_keys():
        assert key in data[section], f"{section}.{key} missing"
        default = model.model_fields[key].default
        assert data[section][key] == (list(default) if isinstance(default, tuple) else default)
        assert comment_before[(section, key)].startswith("# "), f"{section}.{key} uncommented"
        described = model.model_fields[key].description or DESCRIPTIONS.get(f"{section}.{key}")
        assert described, (
            f"{section}.{key} has no description: add Field(description=...) in config.py"
        )
    # The rendered file loads as-is.
    assert Settings.model_validate({**data, "home": Path("/tmp")}).server.domain == "example.vn"


def test_init_creates_everything_and_is_idempotent(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    out = _init(home, db_url, "--hostname", "mail.demo.example.gov.vn")
    config = (home / "mailsvc.toml").read_text(encoding="utf-8")
    settings = load_settings(home)
    assert settings.server.domain == "demo.example.gov.vn"
    assert settings.server.hostname == "mail.demo.example.gov.vn"
    assert (home / "mail").is_dir()

    cert = x509.load_pem_x509_certificate((home / "tls" / "cert.pem").read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "mail.demo.example.gov.vn" in san.get_values_for_type(x509.DNSName)
    assert "localhost" in san.get_values_for_type(x509.DNSName)
    assert "127.0.0.1" in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert (home / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600

    key_pem = (home / "dkim" / "private.pem").read_bytes()
    key = serialization.load_pem_private_key(key_pem, password=None)
    assert key.key_size == 2048  # type: ignore[union-attr]
    record = re.search(r"mailsvc\._domainkey\.demo\.example\.gov\.vn\. IN TXT \( (.+) \)", out)
    assert record is not None
    txt = "".join(re.findall(r'"([^"]*)"', record.group(1)))
    spki = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert txt == f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode()}"
    # dkimpy signs with the generated key.
    message = b"From: a@demo.example.gov.vn\r\nTo: b@x.vn\r\nSubject: t\r\n\r\nbody\r\n"
    signature = dkim.sign(message, b"mailsvc", b"demo.example.gov.vn", key_pem)
    assert signature.startswith(b"DKIM-Signature:")

    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        assert s.scalars(select(Mailbox)).all() == []  # no --demo: no mailbox
    engine.dispose()

    before = {p: p.read_bytes() for p in (home / "tls" / "cert.pem", home / "dkim" / "private.pem")}
    (home / "mailsvc.toml").write_text(config + "\n# edited by the admin\n", encoding="utf-8")
    again = _init(home, db_url)
    assert "config: kept" in again and "tls: kept" in again and "dkim: kept" in again
    assert {p: p.read_bytes() for p in before} == before
    assert (home / "mailsvc.toml").read_text(encoding="utf-8").endswith("# edited by the admin\n")


def test_demo_creates_agency_and_clerk_with_usable_password(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    out = _init(home, db_url, "--demo")
    login = re.search(r"login: (\S+)  password: (\S+)", out)
    assert login is not None and login.group(1) == "vanthu@demo.example.gov.vn"
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as s:
        box = s.scalars(select(Mailbox).where(Mailbox.address == login.group(1))).one()
        assert box.role == "clerk" and box.enabled and not box.must_change
        assert verify_password(box.password_hash, login.group(2))
        agency = s.scalars(select(Agency)).one()
        assert agency.domains == ["demo.example.gov.vn"] and agency.local
        assert box.agency_id == agency.id
        # The workspace demo: a leader and an official too, and six register entries.
        roles = sorted(m.role for m in s.scalars(select(Mailbox)))
        assert roles == ["clerk", "leader", "official"]
        assert len(s.scalars(select(RegisterDocument)).all()) == 6
    # Re-running prints the same login and creates nothing new.
    again = _init(home, db_url, "--demo")
    assert f"login: {login.group(1)}  password: {login.group(2)}" in again
    with make_sessionmaker(engine)() as s:
        assert len(s.scalars(select(Mailbox)).all()) == 3
        assert len(s.scalars(select(Agency)).all()) == 1
        assert len(s.scalars(select(RegisterDocument)).all()) == 6
    engine.dispose()


def test_database_url_option_is_written(tmp_path: Path, db_url: str) -> None:
    home = tmp_path / "home"
    result = CliRunner().invoke(
        main,
        ["--home", str(home), "init", "--domain", "x.example.vn", "--database-url", db_url],
    )
    assert result.exit_code == 0, result.output
    assert tomllib.loads((home / "mailsvc.toml").read_text())["database"]["url"] == db_url
    assert json.dumps(db_url) in (home / "mailsvc.toml").read_text()


def test_init_makes_the_home_private(tmp_path: Path, db_url: str) -> None:
    """An old home with a world-readable config: init tightens it, creates nothing readable
    by others (umask 077), and leaves the process umask as it was."""
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    home.chmod(0o755)
    config = home / "mailsvc.toml"
    config.write_text('[server]\ndomain = "demo.example.gov.vn"\n', encoding="utf-8")
    config.chmod(0o644)
    before = os.umask(0o022)
    try:
        out = _init(home, db_url)
        assert os.umask(0o022) == 0o022
    finally:
        os.umask(before)
    assert stat.S_IMODE(home.stat().st_mode) == 0o750
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert f"permissions: {config} was readable by others; now 0600" in out
    for path in sqlite_files(db_url):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    readable = [p for p in home.rglob("*") if p.stat().st_mode & (stat.S_IROTH | stat.S_IWOTH)]
    assert readable == []
