"""Compliance evaluation and report generation for a year of checks. Not a test.

    python bench/compliance.py [--mailboxes 200] [--days 365] [--messages 4] [--rounds 3]
                               [--pg postgresql://postgres@127.0.0.1:5432/test] [--skip-sqlite]

The database gets ``--mailboxes`` clerk mailboxes and ``--days`` days of checks ending
yesterday: on a working day each window is met with probability 0.93 (a check at a random
minute inside it) plus 0-2 checks at random office hours; a weekend day has a check with
probability 0.1. Each mailbox also receives ``--messages`` messages per working day with a
realistic stored verdict (7 findings); one in twenty comes from a priority sender and one
in fifty carries a document signed with a priority certificate. The policy is the packaged
one plus those senders and that certificate. Figures, from the same run and database
(median of ``--rounds`` runs):

- baseline:  the plain SELECTs evaluate() makes, rows fetched and nothing computed: the
             checks of the period (mailbox, at), the messages from priority senders and
             those signed with a priority certificate (``message_signature.fingerprint``)
- evaluate:  ``evaluate()`` for every mailbox and day (what `mailsvc checks report` does
             before printing)
- json:      evaluate + ``to_json`` + ``json.dumps`` (`report --json`)
- html:      evaluate + ``render_html`` (`report --html`), with the file's size
- job:       what ``compliance_alerts_job`` evaluates each run: the last 24 hours as of
             noon yesterday (``due_alerts``, alerts composed but none sent)

SQLite runs on a temporary file; with --pg, a fresh database is created under the given
admin URL, migrated and dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.orm import Session, sessionmaker  # noqa: E402

from mailsvc.checks.alerts import AlertNotifier, due_alerts  # noqa: E402
from mailsvc.checks.compliance import evaluate  # noqa: E402
from mailsvc.checks.models import MailboxCheck  # noqa: E402
from mailsvc.checks.policy import CheckingPolicy, PriorityPolicy, load_checking_policy  # noqa: E402
from mailsvc.checks.report import render_html  # noqa: E402
from mailsvc.config import AlertsSection  # noqa: E402
from mailsvc.db.models import Mailbox, MessageRecord  # noqa: E402
from mailsvc.db.session import make_engine, make_sessionmaker, migrate  # noqa: E402
from mailsvc.signatures.models import MessageSignature  # noqa: E402

DOMAIN = "daknong.gov.vn"
CHIEF = "bithu@tinhuy.daknong.gov.vn"
FINGERPRINT = "5f" * 32
OTHER = "30" * 32


def verdict(fingerprint: str, n: int) -> dict[str, Any]:
    def finding(stage: str, reason: str, **evidence: Any) -> dict[str, Any]:
        return {
            "stage": stage,
            "status": "pass",
            "reason": reason,
            "detail": "",
            "score": 0.0,
            "evidence": evidence,
        }

    return {
        "queue_id": f"Q{n:010d}",
        "action": "deliver",
        "deciding": None,
        "policy_version": "2026-11-21.1",
        "findings": [
            finding("limits", "within-limits", size=48213),
            finding("authentication", "dkim-pass", domain="stc.daknong.gov.vn"),
            finding("antivirus", "clean", engine="ClamAV 1.4.6"),
            finding("spam", "ham", total=0.4),
            finding("classification", "unclassified"),
            finding(
                "signatures",
                "signed",
                document="CV-123-STC.pdf",
                outcome="valid",
                sender_agency="000.00.32.H56",
                signer_matches_sender=True,
                signatures=[
                    {
                        "format": "pdf",
                        "indication": "TOTAL_PASSED",
                        "subindication": None,
                        "signer": "Nguyễn Văn An",
                        "organisation": "Sở Tài chính",
                        "kind": "personal",
                        "serial": "4F2A19",
                        "fingerprint": fingerprint,
                    }
                ],
            ),
            finding("metadata", "found", number_notation="123/STC-VP", doc_type="Công văn"),
        ],
    }


def populate(
    sessions: sessionmaker[Session],
    policy: CheckingPolicy,
    mailboxes: list[str],
    start: date,
    end: date,
    messages: int,
) -> tuple[int, int]:
    rnd = random.Random(20261121)
    zone = policy.zone
    holidays = policy.holiday_dates()
    checks: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    signatures: list[dict[str, Any]] = []
    n_checks = n_messages = 0

    def flush(force: bool = False) -> None:
        nonlocal checks, records, signatures
        if len(checks) < 20_000 and len(records) < 5_000 and not force:
            return
        with sessions.begin() as session:
            if checks:
                session.execute(insert(MailboxCheck), checks)
            if records:
                session.execute(insert(MessageRecord), records)
            if signatures:
                session.execute(insert(MessageSignature), signatures)
        checks, records, signatures = [], [], []

    with sessions.begin() as session:
        session.add_all(Mailbox(address=a, role="clerk") for a in mailboxes)
    for mailbox in mailboxes:
        day = start
        while day <= end:
            times: list[datetime] = []
            if policy.is_working_day(day, holidays):
                for window in policy.windows:
                    if rnd.random() < 0.93:
                        w_start, w_end = policy.window_bounds(day, window)
                        span = int((w_end - w_start).total_seconds())
                        times.append(w_start + timedelta(seconds=rnd.randrange(span)))
                for _ in range(rnd.randrange(3)):
                    times.append(
                        datetime.combine(day, datetime.min.time(), zone)
                        + timedelta(seconds=rnd.randrange(7 * 3600, 17 * 3600))
                    )
                for _ in range(messages):
                    n_messages += 1
                    at = datetime.combine(day, datetime.min.time(), zone) + timedelta(
                        seconds=rnd.randrange(7 * 3600, 17 * 3600)
                    )
                    roll = rnd.random()
                    sender = CHIEF if roll < 0.05 else "vanthu@stc.daknong.gov.vn"
                    key = uuid.UUID(int=rnd.getrandbits(128)).hex
                    fingerprint = FINGERPRINT if roll > 0.98 else OTHER
                    records.append(
                        {
                            "id": n_messages,
                            "queue_id": key[:12].upper(),
                            "message_key": key,
                            "message_id": f"<{key}@stc.daknong.gov.vn>",
                            "sha256": key + key,
                            "size": 48213,
                            "mail_from": sender,
                            "recipient": mailbox,
                            "direction": "inbound",
                            "received_at": at.astimezone(UTC),
                            "action": "deliver",
                            "verdict": verdict(fingerprint, n_messages),
                            "state": "delivered",
                            "delivered_at": at.astimezone(UTC),
                        }
                    )
                    signatures.append(  # what SignatureRecorder writes beside the row
                        {
                            "message_record_id": n_messages,
                            "position": 0,
                            "document": "CV-123-STC.pdf",
                            "format": "pdf",
                            "indication": "TOTAL_PASSED",
                            "subindication": "",
                            "signer": "Nguyễn Văn An",
                            "organisation": "Sở Tài chính",
                            "kind": "personal",
                            "serial": "4F2A19",
                            "fingerprint": fingerprint,
                        }
                    )
            elif rnd.random() < 0.1:
                times.append(
                    datetime.combine(day, datetime.min.time(), zone)
                    + timedelta(seconds=rnd.randrange(8 * 3600, 20 * 3600))
                )
            for at in times:
                n_checks += 1
                checks.append(
                    {
                        "mailbox": mailbox,
                        "at": at.astimezone(UTC),
                        "session": uuid.UUID(int=rnd.getrandbits(128)).hex,
                        "client": "Thunderbird 128",
                    }
                )
            flush()
            day += timedelta(days=1)
    flush(force=True)
    return n_checks, n_messages


def baseline(
    sessions: sessionmaker[Session],
    policy: CheckingPolicy,
    mailboxes: list[str],
    lo: datetime,
    hi: datetime,
) -> int:
    """The three SELECTs evaluate() makes, rows fetched, nothing else."""
    delivered = (
        MessageRecord.recipient.in_(mailboxes),
        MessageRecord.received_at >= lo,
        MessageRecord.received_at < hi,
        MessageRecord.action == "deliver",
    )
    by_sender = func.lower(MessageRecord.mail_from).in_(policy.priority.senders)
    columns = (MessageRecord.id, MessageRecord.mail_from, MessageRecord.received_at)
    with sessions() as session:
        rows = session.execute(
            select(MailboxCheck.mailbox, MailboxCheck.at)
            .where(MailboxCheck.mailbox.in_(mailboxes), MailboxCheck.at >= lo, MailboxCheck.at < hi)
            .order_by(MailboxCheck.mailbox, MailboxCheck.at)
        ).all()
        senders = session.execute(select(*columns).where(*delivered, by_sender)).all()
        by_certificate = select(MessageSignature.message_record_id).where(
            MessageSignature.fingerprint.in_(policy.priority.certificates)
        )
        signed = session.execute(
            select(*columns).where(*delivered, ~by_sender, MessageRecord.id.in_(by_certificate))
        ).all()
    return len(rows) + len(senders) + len(signed)


def timed(func: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(rounds):
        t0 = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def bench(label: str, url: str, args: argparse.Namespace) -> None:
    migrate(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    policy = load_checking_policy(ROOT / "policies" / "checking.yaml").model_copy(
        update={"priority": PriorityPolicy(senders=(CHIEF,), certificates=(FINGERPRINT,))}
    )
    zone = policy.zone
    today = datetime.now(zone).date()
    end = today - timedelta(days=1)
    start = end - timedelta(days=args.days - 1)
    mailboxes = [f"vanthu.{i:03d}@{DOMAIN}" for i in range(args.mailboxes)]
    t0 = time.perf_counter()
    n_checks, n_messages = populate(sessions, policy, mailboxes, start, end, args.messages)
    print(
        f"{label}: {args.mailboxes} mailboxes x {args.days} days ({start} .. {end}): "
        f"{n_checks} checks, {n_messages} messages (inserted in {time.perf_counter() - t0:.1f} s)"
    )
    lo = datetime.combine(start, datetime.min.time(), zone)
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time(), zone)
    now = datetime.now(UTC)

    base_s, fetched = timed(lambda: baseline(sessions, policy, mailboxes, lo, hi), args.rounds)

    def run_evaluate() -> list[Any]:
        with sessions() as session:
            return evaluate(session, policy, start, end, now=now)

    eval_s, days = timed(run_evaluate, args.rounds)
    json_s, data = timed(
        lambda: json.dumps([d.to_json() for d in run_evaluate()], ensure_ascii=False),
        args.rounds,
    )
    html_s, html = timed(
        lambda: render_html(
            run_evaluate(), policy, start, end, ROOT / "templates", generated_at=now
        ),
        args.rounds,
    )
    notifier = AlertNotifier(
        sessions,
        None,
        AlertsSection(),
        ROOT / "templates" / "alerts",
        hostname="mail",
        domain=DOMAIN,
    )
    noon = datetime.combine(end, datetime.min.time(), zone) + timedelta(hours=12)

    def run_job() -> int:
        with sessions() as session:
            return len(due_alerts(session, policy, notifier, noon))

    job_s, due = timed(run_job, args.rounds)
    late = sum(1 for d in days for p in d.priority if p.status == "late")
    decided = [d for d in days if d.working_day]
    good = sum(1 for d in decided if d.status == "compliant")
    print(f"  baseline  {base_s:7.3f} s  plain SELECTs, {fetched} rows")
    print(f"  evaluate  {eval_s:7.3f} s  {len(days)} mailbox-days  x{eval_s / base_s:.2f} baseline")
    print(
        f"  json      {json_s:7.3f} s  {len(data) / 2**20:.1f} MiB  x{json_s / base_s:.2f} baseline"
    )
    print(
        f"  html      {html_s:7.3f} s  {len(html) / 2**20:.1f} MiB  x{html_s / base_s:.2f} baseline"
    )
    print(f"  job       {job_s:7.3f} s  last 24 h as of {noon.isoformat()}: {due} alerts due")
    print(
        f"  (working mailbox-days compliant: {good}/{len(decided)}; priority messages late: {late})"
    )
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--mailboxes", type=int, default=200)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--messages", type=int, default=4, help="messages per working day")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--pg", help="PostgreSQL admin URL, e.g. postgresql://postgres@127.0.0.1/test"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-compliance-") as tmp:
        if not args.skip_sqlite:
            bench("SQLite", f"sqlite:///{Path(tmp) / 'compliance.sqlite3'}", args)
        if args.pg:
            name = f"mailsvc_bench_{uuid.uuid4().hex[:8]}"
            admin = create_engine(
                args.pg.replace("postgresql://", "postgresql+psycopg://", 1),
                isolation_level="AUTOCOMMIT",
            )
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE template0'))
            try:
                bench("PostgreSQL", f"{args.pg.rsplit('/', 1)[0]}/{name}", args)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
