"""Tampered archives through `mailsvc backup` / `mailsvc restore`: an attacker who can
write the archive rewrites a member and its manifest line, plants symlinks leaving their
part, setuid files, or a configuration that runs a command."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import stat
import subprocess
import sys
import tarfile
from pathlib import Path

from pydantic import BaseModel

from mailsvc.config import Settings, restore_guarded
from tests.backup.conftest import (
    REPO,
    Archive,
    Forged,
    Service,
    archive_path,
    forge_archive,
    invoke,
    rewrite_archive,
    table_rows,
)

COMMAND = "/usr/local/bin/pwn --now"


def _backup(home: Path, out: Path) -> Path:
    made = invoke(home, "backup", "--output", str(out))
    assert made.exit_code == 0, made.output
    return archive_path(made.output)


def _key(home: Path) -> bytes:
    return bytes.fromhex((home / "backup.key").read_text().strip())


def _config_with_command(home: Path) -> Forged:
    text = (home / "mailsvc.toml").read_text(encoding="utf-8")
    return Forged("home/mailsvc.toml", f'{text}\n[alerts]\ncommand = "{COMMAND}"\n'.encode())


async def test_rewritten_manifest_without_the_key_is_refused(
    service: Service, tmp_path: Path
) -> None:
    home = service.home
    good = _backup(home, tmp_path / "out")
    config = (home / "mailsvc.toml").read_bytes()
    forged = [_config_with_command(home)]
    cases = {
        "kept-mac": (dict(key=None), "is not authenticated by the backup key"),
        "wrong-key": (dict(key=b"k" * 32), "is not authenticated by the backup key"),
        "no-mac": (dict(key=None, with_mac=False), "has no manifest.hmac"),
    }
    for name, (options, message) in cases.items():
        target = tmp_path / f"{name}.tar.gz"
        forge_archive(good, target, forged, **options)  # type: ignore[arg-type]
        for args in (("--yes", "--accept-commands"), ("--verify-only",)):
            result = invoke(home, "restore", str(target), *args)
            assert result.exit_code == 1, (name, result.output)
            assert message in result.output, (name, result.output)
    assert (home / "mailsvc.toml").read_bytes() == config
    assert not [p for p in home.iterdir() if p.name.endswith((".restoring", ".replaced"))]


async def test_symlinks_leaving_their_part_are_refused_even_when_authenticated(
    service: Service, tmp_path: Path
) -> None:
    home = service.home
    good = _backup(home, tmp_path / "out")
    for member, target in (
        ("home/tls/chain.pem", "/etc/shadow"),
        ("home/policies", "../../../../etc"),
        ("maildirs/x", "../home/mailsvc.toml"),
    ):
        forged = tmp_path / "forged.tar.gz"
        forge_archive(good, forged, [Forged(member, symlink_to=target)], key=_key(home))
        result = invoke(home, "restore", str(forged), "--yes")
        assert result.exit_code == 1
        assert f"{member}: a symlink to {target!r} leaves its part" in result.output
        assert not (home / "policies").is_symlink()


async def test_modes_are_masked_and_a_new_command_needs_confirmation(
    service: Service, tmp_path: Path
) -> None:
    home = service.home
    good = _backup(home, tmp_path / "out")
    forged = tmp_path / "forged.tar.gz"
    planted = [
        _config_with_command(home),
        Forged("home/bin-helper", b"#!/bin/sh\nid\n", mode=0o6755),
        Forged("home/links-inside", symlink_to="bin-helper"),
    ]
    forge_archive(good, forged, planted, key=_key(home))
    refused = invoke(home, "restore", str(forged), "--yes")
    assert refused.exit_code == 1
    assert f"runs      alerts.command = '{COMMAND}' (now '')" in refused.output
    assert "run again with --accept-commands; nothing was changed" in refused.output
    assert COMMAND not in (home / "mailsvc.toml").read_text(encoding="utf-8")
    assert not (home / "bin-helper").exists()

    applied = invoke(home, "restore", str(forged), "--yes", "--accept-commands")
    assert applied.exit_code == 0, applied.output
    assert f"runs      alerts.command = '{COMMAND}'" in applied.output
    assert COMMAND in (home / "mailsvc.toml").read_text(encoding="utf-8")
    assert stat.S_IMODE((home / "bin-helper").stat().st_mode) == 0o755  # no setuid/setgid
    assert (home / "links-inside").resolve() == (home / "bin-helper").resolve()


async def test_the_key_stays_out_of_archives_and_restores_elsewhere_with_key(
    service: Service, tmp_path: Path
) -> None:
    home = service.home
    outside = home.parent / "fullchain.pem"
    outside.write_text("-----BEGIN CERTIFICATE-----\n", encoding="ascii")
    (home / "tls" / "fullchain.pem").symlink_to(outside)
    archive = _backup(home, tmp_path / "out")
    assert stat.S_IMODE((home / "backup.key").stat().st_mode) == 0o600
    content = Archive.read(archive)
    paths = {e["path"]: e["type"] for e in content.manifest["entries"]}
    assert "home/backup.key" not in paths
    # a link leaving HOME is archived as the file it points at: the archive restores
    assert paths["home/tls/fullchain.pem"] == "file"
    assert content.members["home/tls/fullchain.pem"] == outside.read_bytes()

    kept = tmp_path / "backup.key"
    (home / "backup.key").rename(kept)  # a new machine: the key was kept apart
    missing = invoke(home, "restore", str(archive), "--yes")
    assert missing.exit_code == 1 and "no backup key at" in missing.output
    restored = invoke(home, "restore", str(archive), "--yes", "--key", str(kept))
    assert restored.exit_code == 0, restored.output
    assert (home / "tls" / "fullchain.pem").read_bytes() == outside.read_bytes()


async def test_an_archive_repacked_by_tar_is_refused_with_a_reason(
    service: Service, tmp_path: Path
) -> None:
    """Unpacked and packed again with tar (`tar czf x.tar.gz .`): its members start with
    "./" and the directory itself is a member "."; a precise refusal, not a traceback."""
    home = service.home
    good = _backup(home, tmp_path / "out")
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    with tarfile.open(good) as archive:
        archive.extractall(unpacked)  # our own archive, just made
    repacked = tmp_path / "repacked.tar.gz"
    tar = ["tar", "czf", str(repacked), "-C", str(unpacked), "."]
    await asyncio.to_thread(subprocess.run, tar, check=True)
    config = (home / "mailsvc.toml").read_bytes()
    for args in (("--verify-only",), ("--yes",)):
        result = invoke(home, "restore", str(repacked), *args)
        assert result.exit_code == 1, result.output
        assert "not a path this archive format uses" in result.output, result.output
        assert "Traceback" not in result.output
    assert (home / "mailsvc.toml").read_bytes() == config


async def test_programs_libraries_and_written_paths_of_a_restored_config_need_confirmation(
    service: Service, tmp_path: Path
) -> None:
    """A restored config pointing freshclam (run as root by the clamav-update job) or the
    PKCS#11 library at a file shipped in the archive, or the Maildirs outside the home."""
    home = service.home
    good = _backup(home, tmp_path / "out")
    config = (home / "mailsvc.toml").read_text(encoding="utf-8")
    changed = {
        "clamav.freshclam_binary": f"{home}/tools/freshclam",
        "issuing.pkcs11_module": f"{home}/tools/libtoken.so",
        "paths.maildir_root": "/var/tmp/elsewhere",
    }
    added = "".join(
        f'\n[{key.split(".")[0]}]\n{key.split(".")[1]} = "{value}"\n'
        for key, value in changed.items()
    )
    forged = tmp_path / "forged.tar.gz"
    planted = [
        Forged("home/mailsvc.toml", (config + added).encode()),
        Forged("home/tools/freshclam", b"#!/bin/sh\nid > /tmp/pwned\n", mode=0o755),
    ]
    forge_archive(good, forged, planted, key=_key(home))
    refused = invoke(home, "restore", str(forged), "--yes")
    assert refused.exit_code == 1, refused.output
    for key in changed:
        assert key in refused.output.split("changes what mailsvc")[1], refused.output
    assert "run again with --accept-commands; nothing was changed" in refused.output
    assert (home / "mailsvc.toml").read_text(encoding="utf-8") == config
    assert not (home / "tools").exists()

    applied = invoke(home, "restore", str(forged), "--yes", "--accept-commands")
    assert applied.exit_code == 0, applied.output
    assert (home / "mailsvc.toml").read_text(encoding="utf-8") == config + added


def test_every_setting_naming_a_program_library_or_path_is_guarded() -> None:
    """A new setting whose name says it is a program, library, command, URL or a path
    mailsvc writes to cannot be forgotten by restore's confirmation."""
    guarded = set(restore_guarded())
    suggestive = re.compile(r"binary|command|module|program|library|_url$|root$|_dir$|directory")
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            continue
        for key in model.model_fields:
            if suggestive.search(key):
                assert (section, key) in guarded, f"{section}.{key} is not guarded by restore"
    assert {("clamav", "freshclam_binary"), ("issuing", "pkcs11_module")} <= guarded


def _restore_with_file_limit(home: Path, archive: Path) -> subprocess.CompletedProcess[str]:
    """`mailsvc restore --yes` in its own process that may write no file beyond 8 MiB: a
    restore that writes a member's data before checking it is killed (SIGXFSZ)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), MAILSVC_ACTOR="cli:tester")
    limit = 8 << 20
    return subprocess.run(
        [sys.executable, "-m", "mailsvc", "--home", str(home), "restore", "--yes", str(archive)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit)),
    )


async def test_nothing_is_written_before_the_manifest_is_authenticated(
    service: Service, tmp_path: Path
) -> None:
    """An unauthenticated archive with a 64 MiB member, a sparse member (a tiny archive
    unpacking to 64 MiB), and an authenticated archive whose member is longer than its
    manifest entry: each is refused before any member's data is written, and leaves no
    file behind (not even mailsvc.pid)."""
    home = service.home
    good = _backup(home, tmp_path / "out")
    zeros = b"\0" * (64 << 20)
    unauthenticated = tmp_path / "no-mac.tar.gz"
    forge_archive(good, unauthenticated, [Forged("home/big", zeros)], key=None, with_mac=False)
    sparse_dir = tmp_path / "sparse"
    (sparse_dir / "home").mkdir(parents=True)
    with (sparse_dir / "home" / "zero").open("wb") as fh:
        fh.truncate(64 << 20)
    sparse = tmp_path / "sparse.tar.gz"
    tar = ["tar", "--sparse", "-czf", str(sparse), "-C", str(sparse_dir), "home/zero"]
    await asyncio.to_thread(subprocess.run, tar, check=True)
    longer = tmp_path / "longer.tar.gz"
    rewrite_archive(good, longer, "home/mailsvc.toml", zeros)
    before = sorted(p.name for p in home.iterdir())
    config = (home / "mailsvc.toml").read_bytes()
    for archive, message in (
        (unauthenticated, "has no manifest.hmac"),
        (sparse, "home/zero: a sparse file"),
        (longer, "home/mailsvc.toml: "),
    ):
        result = await asyncio.to_thread(_restore_with_file_limit, home, archive)
        assert result.returncode == 1, (archive.name, result.returncode, result.stderr)
        assert message in result.stderr, (archive.name, result.stderr)
        assert "nothing was changed" in result.stderr, result.stderr
        assert sorted(p.name for p in home.iterdir()) == before, archive.name
        assert (home / "mailsvc.toml").read_bytes() == config


async def test_chained_symlinks_resolving_outside_their_part_are_refused(
    service: Service, tmp_path: Path
) -> None:
    """Each link's text stays inside home/, but the second goes through the first: after
    a restore HOME/a/b/c/d/etc would be /etc."""
    home = service.home
    good = _backup(home, tmp_path / "out")
    chained = [
        Forged("home/a/b/c/d/s2", symlink_to="../../../../a"),
        Forged("home/a/b/c/d/etc", symlink_to="s2/../../../../../etc"),
    ]
    forged = tmp_path / "forged.tar.gz"
    forge_archive(good, forged, chained, key=_key(home))
    before = sorted(p.name for p in home.iterdir())
    result = invoke(home, "restore", str(forged), "--yes", "--accept-commands")
    assert result.exit_code == 1, result.output
    assert "home/a/b/c/d/etc: a symlink resolving outside its part" in result.output
    assert "nothing was changed" in result.output
    assert sorted(p.name for p in home.iterdir()) == before


async def test_members_named_like_restores_own_working_files_are_refused(
    service: Service, db_url: str, tmp_path: Path
) -> None:
    """home/.home.restoring/x is staged inside the staging directory itself: the swap
    failed half-way, after the database, blobs and Maildirs were replaced."""
    home = service.home
    good = _backup(home, tmp_path / "out")
    seed_rows = table_rows(db_url)
    before = sorted(p.name for p in home.iterdir())
    for name in (
        "home/.home.restoring/x",
        "home/.mailsvc.toml.replaced",
        "home/.blobs.restoring",
        "maildirs/example.vn/dovecot-uidlist.restoring",
    ):
        forged = tmp_path / "forged.tar.gz"
        forge_archive(good, forged, [Forged(name, b"x\n")], key=_key(home))
        result = invoke(home, "restore", str(forged), "--yes", "--accept-commands")
        assert result.exit_code == 1, (name, result.output)
        assert f"archive member {name!r}: a name restore uses for its own work" in result.output
        assert "Traceback" not in result.output
        assert sorted(p.name for p in home.iterdir()) == before, name
    audit = ("audit_log", "audit_head")
    assert {k: v for k, v in table_rows(db_url).items() if k not in audit} == {
        k: v for k, v in seed_rows.items() if k not in audit
    }
