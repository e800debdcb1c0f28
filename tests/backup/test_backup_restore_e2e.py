"""Backup while the server receives mail, then restore the exact prior state: through a
running mailsvc (SMTP, Dovecot), the real `mailsvc backup` / `mailsvc restore` commands
and real SMTP/IMAP clients. Runs on SQLite, and on PostgreSQL with MAILSVC_TEST_DATABASE."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from sqlalchemy import select, update

from mailsvc.db.models import MessageRecord
from mailsvc.db.session import make_engine, make_sessionmaker
from tests.backup.conftest import (
    CLERK,
    DOMAIN,
    OFFICIAL,
    Archive,
    Sender,
    Service,
    archive_path,
    archived_database,
    imap_state,
    imap_store,
    invoke,
    manifest_tree,
    rewrite_archive,
    run_cli,
    send,
    table_rows,
    tree,
)
from tests.e2e.conftest import wait_for

AUDIT_TABLES = frozenset({"audit_log", "audit_head"})


LIVE_TABLES = AUDIT_TABLES | {
    "log_cursor",
    "mailbox_check",
    "imap_session",
    "job_run",
    "apscheduler_jobs",
    "outbound_message",
}


def _without_live(rows: dict[str, set[tuple[object, ...]]]) -> dict[str, set[tuple[object, ...]]]:
    return {k: v for k, v in rows.items() if k not in LIVE_TABLES}


def _without_audit(rows: dict[str, set[tuple[object, ...]]]) -> dict[str, set[tuple[object, ...]]]:
    return {k: v for k, v in rows.items() if k not in AUDIT_TABLES}


async def test_backup_while_receiving_then_restore_exact_state(
    service: Service, db_url: str, tmp_path: Path
) -> None:
    home = service.home
    server = await service.start()
    maildir_root = server.app.settings.path(server.app.settings.paths.maildir_root)
    blob_root = server.app.settings.path(server.app.settings.paths.blob_root)
    server.add_mailbox(CLERK)
    server.add_mailbox(OFFICIAL)
    for n in range(6):
        await asyncio.to_thread(send, server, n, (CLERK, OFFICIAL)[n % 2])
    # A flag set by the user lives in the Maildir file name: it must survive.
    _, clerk_before = await asyncio.to_thread(imap_state, server, CLERK)
    flagged_uid = min(uid for uid, _ in clerk_before.values())
    await asyncio.to_thread(imap_store, server, CLERK, flagged_uid, "+FLAGS", "(\\Seen \\Flagged)")
    # One message caught between Dovecot's 250 and the 'delivered' commit: its row is
    # still 'stored', so the archive must leave its Maildir copy out (repair delivers it).
    with server.sessions() as session:
        caught = session.scalars(
            select(MessageRecord).where(MessageRecord.recipient == OFFICIAL).limit(1)
        ).one()
        session.execute(
            update(MessageRecord).where(MessageRecord.id == caught.id).values(state="stored")
        )
        session.commit()

    # Back up while a client keeps sending.
    sender = Sender(server, (CLERK, OFFICIAL), first=100)
    sender.start()
    await wait_for(lambda: sender.sent >= 3)
    sent_before = sender.sent
    backup = await asyncio.to_thread(run_cli, home, "backup")
    sent_during = sender.sent - sent_before
    await wait_for(lambda: sender.sent >= sent_before + sent_during + 3)
    await asyncio.to_thread(sender.stop)  # the loop must keep serving meanwhile
    assert backup.returncode == 0, backup.stderr
    assert sent_during > 0  # mail really arrived while the backup ran
    assert not sender.errors, sender.errors[:3]
    path = archive_path(backup.stdout)
    assert path.parent == home / "backups" and oct(path.stat().st_mode & 0o777) == "0o600"
    archive = Archive.read(path)

    # The archive is consistent: its database decides which files belong to it.
    live_rows = table_rows(db_url)
    with archived_database(archive, tmp_path) as archived_url:
        archived_rows = table_rows(archived_url)
        records = _message_rows(archived_url)
    messages = {(r.queue_id, r.recipient): r.state for r in records}
    assert len(live_rows["message"]) > len(archived_rows["message"])  # later mail left out
    assert messages[(caught.queue_id, OFFICIAL)] == "stored"
    files = archive.maildir_messages()
    archived_copies = [(qid, mailbox) for mailbox, qid in files.values()]
    assert len(archived_copies) == len(set(archived_copies))
    for qid, mailbox in archived_copies:  # no orphan: each file is a delivered row
        assert messages.get((qid, mailbox)) == "delivered", (qid, mailbox)
    for (qid, rcpt), state in messages.items():  # each delivered row has its file
        assert (state == "delivered") == ((qid, rcpt) in archived_copies), (qid, rcpt, state)
    # Plain-text mail: the message blobs are all the blobs there are.
    assert archive.blobs() == {r.sha256 for r in records}  # referenced ones, and only those
    counts = archive.manifest["counts"]
    stored = [key for key, state in messages.items() if state == "stored"]
    assert counts["message_rows"] == len(messages) and counts["messages_stored"] == len(stored)
    assert archive.manifest["created_at"].endswith("+07:00")

    _, clerk_at_backup = await asyncio.to_thread(imap_state, server, CLERK)
    _, official_at_backup = await asyncio.to_thread(imap_state, server, OFFICIAL)
    validity = (await asyncio.to_thread(imap_state, server, CLERK))[0]

    # Change everything: delete mail, add a mailbox, more mail.
    await asyncio.to_thread(imap_store, server, CLERK, flagged_uid, "+FLAGS", "(\\Deleted)")
    server.add_mailbox(f"moi@{DOMAIN}")
    for n in range(500, 503):
        await asyncio.to_thread(send, server, n, f"moi@{DOMAIN}")

    # Restore refuses while serving, and changes nothing.
    before = table_rows(db_url)
    refused = await asyncio.to_thread(invoke, home, "restore", str(path), "--yes")
    assert refused.exit_code == 1
    assert "mailsvc serve (pid " in refused.output and "stop it first" in refused.output
    # (tables the running server writes on its own, checks from the test's IMAP sessions,
    # job runs, the outbound queue, may move meanwhile; the rest must be untouched)
    assert _without_live(table_rows(db_url)) == _without_live(before)
    await service.stop()
    # A table the archive does not know (say, from a later upgrade) goes too.
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE later_feature (id INTEGER PRIMARY KEY, "
            "message_id INTEGER REFERENCES message (id))"
        )
    engine.dispose()

    restored = await asyncio.to_thread(invoke, home, "restore", str(path), "--yes")
    assert restored.exit_code == 0, restored.output
    assert "verified" in restored.output and "done" in restored.output

    # The database is the archive's, plus the audit entry of the restore.
    after = table_rows(db_url)
    assert "later_feature" not in after
    assert _without_audit(after) == _without_audit(archived_rows)
    assert archived_rows["audit_log"] < after["audit_log"]
    assert len(after["audit_log"]) == len(archived_rows["audit_log"]) + 1
    # Files: exactly the archive's, with owner, mode and times.
    assert tree(maildir_root) == manifest_tree(archive, "maildirs")
    assert tree(blob_root) == manifest_tree(archive, "blobs")
    assert not (maildir_root / DOMAIN / "moi").exists()
    assert (home / "mailsvc.toml").read_bytes() == archive.members["home/mailsvc.toml"]

    # Served again: same messages, same UIDs and flags; the 'stored' one delivered once.
    server = await service.start()
    got_validity, clerk_after = await asyncio.to_thread(imap_state, server, CLERK)
    _, official_after = await asyncio.to_thread(imap_state, server, OFFICIAL)
    assert got_validity == validity
    for mailbox, at_backup, now in (
        (CLERK, clerk_at_backup, clerk_after),
        (OFFICIAL, official_at_backup, official_after),
    ):
        expected = {q for (q, r), s in messages.items() if r == mailbox}
        assert set(now) == expected
        for qid, value in now.items():
            if (qid, mailbox) in stored:  # delivered again by repair: a new UID
                assert value[0] > max(uid for uid, _ in at_backup.values())
            else:
                assert value == at_backup[qid], (mailbox, qid)
    assert "\\Flagged \\Seen" in {flags for _, flags in clerk_after.values()}

    def states() -> set[str]:
        with server.sessions() as session:
            return set(session.scalars(select(MessageRecord.state)))

    # the 'delivered' mark of repair's copy follows its delivery (group-committed)
    await wait_for(lambda: states() == {"delivered"})


def _message_rows(url: str) -> list[MessageRecord]:
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(MessageRecord)))
    finally:
        engine.dispose()


async def test_tampered_or_truncated_archive_is_refused_and_nothing_changes(
    service: Service, db_url: str, tmp_path: Path
) -> None:
    home = service.home
    server = await service.start()
    maildir_root = server.app.settings.path(server.app.settings.paths.maildir_root)
    server.add_mailbox(CLERK)
    for n in range(3):
        await asyncio.to_thread(send, server, n, CLERK)
    made = await asyncio.to_thread(invoke, home, "backup", "--output", str(tmp_path / "out"))
    assert made.exit_code == 0, made.output
    good = archive_path(made.output)
    await asyncio.to_thread(send, server, 3, CLERK)  # the live state now differs
    await service.stop()

    message = sorted(Archive.read(good).maildir_messages())[0]
    tampered = tmp_path / "tampered.tar.gz"
    rewrite_archive(good, tampered, message, b"X-Forged: yes\n")
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])

    rows, files = _without_audit(table_rows(db_url)), tree(maildir_root)
    result = await asyncio.to_thread(invoke, home, "restore", str(tampered), "--yes")
    assert result.exit_code == 1
    assert f"refused: {message}: size " in result.output  # refused before it is written
    assert "does not match the manifest" in result.output and "nothing was changed" in result.output
    result = await asyncio.to_thread(invoke, home, "restore", str(truncated), "--yes")
    assert result.exit_code == 1 and "damaged or truncated" in result.output
    assert _without_audit(table_rows(db_url)) == rows
    assert tree(maildir_root) == files
    assert not [p for p in os.listdir(home) if p.endswith((".restoring", ".replaced"))]
    audit = await asyncio.to_thread(invoke, home, "audit", "list", "--action", "backup.")
    assert audit.output.count("backup.restore-refused") == 2

    checked = await asyncio.to_thread(invoke, home, "restore", "--verify-only", str(good))
    assert checked.exit_code == 0 and "every size and SHA-256 matches" in checked.output


async def test_a_swap_failing_halfway_puts_the_whole_home_back(
    service: Service, db_url: str, tmp_path: Path
) -> None:
    """The database, the blobs, the Maildirs and the home's files before ``mailsvc.toml`` are
    swapped in; then the configuration cannot be moved aside (immutable: the kernel refuses
    the rename, as a full or failing disk would refuse a write). Everything swapped so far
    goes back: the live state is the one before the restore, nothing is left beside it."""
    home = service.home
    server = await service.start()
    settings = server.app.settings
    maildir_root = settings.path(settings.paths.maildir_root)
    blob_root = settings.path(settings.paths.blob_root)
    server.add_mailbox(CLERK)
    for n in range(2):
        await asyncio.to_thread(send, server, n, CLERK)
    made = await asyncio.to_thread(invoke, home, "backup", "--output", str(tmp_path / "out"))
    assert made.exit_code == 0, made.output
    await asyncio.to_thread(send, server, 2, CLERK)  # the live state now differs
    await service.stop()

    config = home / "mailsvc.toml"

    def live_state() -> tuple[object, ...]:
        return (
            _without_audit(table_rows(db_url)),
            tree(maildir_root),
            tree(blob_root),
            config.read_bytes(),
            sorted(os.listdir(home)),
        )

    before = live_state()
    await asyncio.to_thread(_chattr, "+i", config)
    try:
        result = await asyncio.to_thread(
            invoke, home, "restore", str(archive_path(made.output)), "--yes"
        )
    finally:
        await asyncio.to_thread(_chattr, "-i", config)
    assert result.exit_code == 1, result.output
    assert "the home was put back as it was" in result.output
    assert "mailsvc.toml" in result.output
    assert live_state() == before
    assert not [p for p in os.listdir(home) if p.endswith((".restoring", ".replaced"))]
    assert len(_message_rows(db_url)) == 3  # the message sent after the backup is still there


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)
