"""``mailsvc backup`` and ``mailsvc restore``: one consistent archive of the home, and
its verified restore (see mailsvc/backup/)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import click

from mailsvc.backup.archive import BackupResult, create_backup, prune_archives, record_backup
from mailsvc.backup.manifest import ArchiveError
from mailsvc.backup.restore import (
    RestoreSummary,
    backup_key,
    record_refusal,
    record_restore,
    restoring,
    verify_archive,
)
from mailsvc.cli import Context
from mailsvc.cli.console import (
    actor,
    echo_json,
    json_option,
    open_session,
    progress,
    require_home,
)
from mailsvc.errors import ConflictError, MailsvcError

pass_ctx = click.make_pass_decorator(Context)

# Members besides mail and blobs (database snapshot, configuration, keys, policies, their
# directories): only for the progress bar's length.
HOME_ENTRIES = 16


def _mib(size: int) -> str:
    return f"{size / 1048576:.1f} MiB"


@click.command("backup")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory for the archive (default: [backup] directory, normally HOME/backups).",
)
@click.option(
    "--keep",
    type=click.IntRange(min=1),
    help="Afterwards delete all but the newest N archives in that directory.",
)
@json_option
@pass_ctx
def backup_cmd(ctx: Context, output: Path | None, keep: int | None, as_json: bool) -> None:
    """Write one consistent archive: database snapshot, Maildirs, blobs, configuration.

    Safe while `mailsvc serve` receives mail: the database snapshot is taken first and
    decides which Maildir files and blobs belong to the archive."""
    require_home(ctx)
    settings = ctx.settings
    directory = (output or settings.path(settings.backup.directory)).resolve()
    estimate = (
        _count_files(settings.path(settings.paths.maildir_root))
        + _count_files(settings.path(settings.paths.blob_root))
        + HOME_ENTRIES
    )
    with progress(estimate, "backup", enabled=not as_json) as advance:
        result = create_backup(settings, directory, progress=advance)
    deleted = prune_archives(directory, keep) if keep else []
    with open_session(ctx) as session:
        record_backup(session, actor(), result, deleted)
        session.commit()
    if as_json:
        echo_json({**result.audit_details(deleted), "created_at": result.created_at,
                   "seconds": round(result.seconds, 3)}, ctx)  # fmt: skip
        return
    _print_backup(result, deleted)


def _count_files(root: Path) -> int:
    """Files and directories under ``root``: the progress bar's length (an estimate: the
    snapshot decides what goes in, and the home's own files come on top)."""
    if not root.is_dir():
        return 0
    return sum(1 + len(files) for _, _, files in os.walk(root))


def _print_backup(result: BackupResult, deleted: list[str]) -> None:
    c = result.counts
    click.echo(f"archive   {result.path}")
    click.echo(f"created   {result.created_at}")
    click.echo(
        f"database  {result.database_kind} snapshot: {c['message_rows']} message rows "
        f"({c['messages_delivered']} delivered, {c['messages_stored']} stored)"
    )
    click.echo(
        f"maildirs  {c['maildir_messages']} messages in {c['mailboxes']} mailbox(es), "
        f"{c['maildir_other_files']} UID-list/index files; {c['maildir_left_out']} left out "
        "(not delivered in the snapshot)"
    )
    click.echo(
        f"blobs     {c['blobs']} files; {c['blobs_left_out']} left out "
        "(not referenced by the snapshot)"
    )
    click.echo(f"home      {c['home_files']} files (configuration, keys, policies)")
    click.echo(f"size      {_mib(result.size)} in {result.seconds:.1f} s")
    click.echo(f"sha256    {result.sha256}")
    for name in deleted:
        click.echo(f"deleted   {name}")


@click.command("restore")
@click.argument("archive", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option(
    "--verify-only",
    is_flag=True,
    help="Only check every file of the archive against its manifest; change nothing.",
)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="The backup.key of the home that made the archive (default: HOME/backup.key).",
)
@click.option(
    "--accept-commands",
    is_flag=True,
    help="Apply a configuration that changes what mailsvc runs or loads (alerts.command, "
    "alerts.webhook_url, binaries, issuing.pkcs11_module) or where it writes (data paths, "
    "backup.directory); they are shown first.",
)
@json_option
@pass_ctx
def restore_cmd(
    ctx: Context,
    archive: Path,
    yes: bool,
    verify_only: bool,
    key_file: Path | None,
    accept_commands: bool,
    as_json: bool,
) -> None:
    """Verify ARCHIVE completely (its manifest authenticated by the backup key), then
    replace the database, Maildirs, blobs and configuration with its content.
    `mailsvc serve` must be stopped."""
    settings = ctx.settings
    archive = archive.resolve()
    if verify_only:
        with progress(_size(archive), "verify", enabled=not as_json) as advance:
            manifest, sha = verify_archive(archive, backup_key(settings, key_file), advance)
        if as_json:
            echo_json(
                {"archive": str(archive), "created_at": manifest.created_at,
                 "entries": len(manifest.entries), "verified": True, "authenticated": True,
                 "sha256": sha},
                ctx,
            )  # fmt: skip
            return
        click.echo(f"archive   {archive} (created {manifest.created_at})")
        click.echo(
            f"verified  {len(manifest.entries)} entries: every size and SHA-256 matches "
            "the manifest, authenticated by the backup key"
        )
        click.echo(f"sha256    {sha}")
        return
    try:
        with contextlib.ExitStack() as stack:
            # The bar covers reading and staging the archive (the long part), then closes.
            with progress(_size(archive), "restore", enabled=not as_json) as advance:
                prepared = stack.enter_context(restoring(settings, archive, key_file, advance))
            m = prepared.manifest
            if not as_json:
                click.echo(f"archive   {archive} (created {m.created_at}, {m.database_kind})")
                click.echo(
                    f"verified  {len(m.entries)} entries: every size and SHA-256 matches the "
                    "authenticated manifest"
                )
            for change in [] if as_json else prepared.executed:
                click.echo(
                    f"{change.kind:<9} {change.key} = {change.restored!r} (now {change.live!r})"
                )
            if prepared.executed and not accept_commands:
                raise ArchiveError(
                    f"archive {archive.name}: the restored configuration changes what mailsvc "
                    f"runs or where it writes ({', '.join(c.key for c in prepared.executed)}); "
                    "check the values above and run again with --accept-commands; nothing was "
                    "changed"
                )
            if not yes:
                if as_json:
                    raise MailsvcError("--json needs --yes (no question can be asked)")
                click.confirm(
                    f"Replace the database, Maildirs, blobs and configuration of "
                    f"{settings.home} with this archive?",
                    abort=True,
                )
            summary = prepared.apply()
    except (ArchiveError, ConflictError) as exc:
        record_refusal(settings, actor(), archive, str(exc))
        raise
    warning = record_restore(settings, actor(), summary)
    if as_json:
        echo_json({**summary.audit_details(), "warning": warning or None}, ctx)
        return
    _print_restore(summary)
    if warning:
        click.echo(f"warning   {warning}", err=True)


def _size(archive: Path) -> int:
    """Bytes of the archive: the restore progress bar's length (0 when unreadable: the
    restore itself then says why)."""
    try:
        return archive.stat().st_size
    except OSError:
        return 0


def _print_restore(summary: RestoreSummary) -> None:
    c = summary.counts
    stored = c.get("messages_stored", 0)
    click.echo(
        f"database  replaced {summary.database_target}: {c.get('message_rows', 0)} message rows"
        + (f" ({stored} stored: delivered again when serve starts)" if stored else "")
    )
    for line in summary.replaced[1:]:
        part, _, path = line.partition(" ")
        what = (
            f"{c.get('maildir_messages', 0)} messages in {c.get('mailboxes', 0)} mailbox(es)"
            if part == "maildirs"
            else f"{c.get('blobs', 0)} files"
        )
        click.echo(f"{part:<9} replaced {path}: {what}")
    if summary.uid_counters_kept:
        click.echo(
            f"maildirs  next UID kept from the live folders in {summary.uid_counters_kept} "
            "folder(s): no UID is given twice"
        )
    if summary.home_restored:
        click.echo(f"home      restored {', '.join(summary.home_restored)}")
    if summary.home_skipped:
        click.echo(f"home      kept (data paths here) {', '.join(summary.home_skipped)}")
    if summary.tables_dropped:
        click.echo(
            "database  dropped tables the archive does not have: "
            + ", ".join(summary.tables_dropped)
        )
    click.echo("done      start `mailsvc serve`")


def register(group: click.Group) -> None:
    group.add_command(backup_cmd)
    group.add_command(restore_cmd)
