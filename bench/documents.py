"""The whole path for official documents: signed 200 KB PDFs at 10 SMTP sessions.

    python bench/documents.py [--documents 300] [--sessions 10]

Each message carries a distinct 200 KB PDF signed by the sample PKI's personal and
organisation certificates (tests/signatures/pki.py), from an agency pinned in the
directory. Our path: every configured stage (limits, authentication, clamd, spam,
classification with text extraction, signature validation with CRLs, metadata) in the
worker pool, blob fsync, register entry with the next incoming number, LMTP into
Dovecot, then 250. Baseline, same messages and client in the same run: aiosmtpd writing
each message to a Maildir with fsync. Prints documents/s, p50/p99 latency, the ratio,
checks that every document got a number (1..N, no gap), and shows the CPU time each
process (SMTP process, worker pool, clamd, Dovecot) spent per document.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select

from bench.smtp import RCPT as CLERK
from bench.smtp import WORKERS, blast_in_process, describe, run_baseline
from bench.smtp import prepare_home as prepare_bench_home
from mailsvc.app import App
from mailsvc.config import Settings
from mailsvc.db.models import Agency
from mailsvc.register.models import RegisterDocument
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    make_pdf,
    session_pki,
    signed_pdf,
)

SENDER = f"vanthu@{AGENCY_DOMAIN}"


def cpu_seconds() -> dict[str, tuple[str, float]]:
    """CPU time (user + system) of every process now alive, by pid, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out: dict[str, tuple[str, float]] = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        out[pid] = (cmd[:70], (int(fields[11]) + int(fields[12])) / tick)
    return out


def report_cpu(before: dict[str, tuple[str, float]], count: int) -> None:
    after = cpu_seconds()
    rows = sorted(
        ((cpu - before.get(pid, (cmd, 0.0))[1], cmd) for pid, (cmd, cpu) in after.items()),
        reverse=True,
    )
    print("CPU per document, by process (alive during the whole run):")
    for used, cmd in rows[:6]:
        if used > 0.05:
            print(f"  {used / count * 1000:6.1f} ms  {cmd}")


def document_messages(count: int) -> list[bytes]:
    pki = session_pki()
    out = []
    for i in range(count):
        pdf = make_pdf(f"Quyết định số {i + 1}/2026/QĐ-UBND về việc thử nghiệm", size=200_000)
        signed = signed_pdf(pdf, pki.personal, pki.organisation)
        msg = EmailMessage()
        msg["From"] = SENDER
        msg["To"] = CLERK
        msg["Subject"] = f"V/v gửi Quyết định số {i + 1}/2026/QĐ-UBND"
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@{AGENCY_DOMAIN}>"
        msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
        msg.set_content("Kính gửi Văn thư, xin gửi văn bản đính kèm.")
        msg.add_attachment(signed, maintype="application", subtype="pdf", filename=f"qd-{i}.pdf")
        out.append(msg.as_bytes(policy=SMTP_POLICY))
    return out


def prepare_home(home: Path) -> Settings:
    """bench/smtp.py's home, plus the sample PKI's trust anchors and CRLs and the sending
    agency pinned to loopback (closed network: SPF by the directory)."""
    settings = prepare_bench_home(
        home,
        Agency(
            code=AGENCY_CODE,
            name=AGENCY_NAME,
            domains=[AGENCY_DOMAIN],
            allowed_senders=["127.0.0.1"],
        ),
    )
    pki = session_pki()
    for sub, directory, pattern in (
        ("trust", pki.trust_dir, "*.pem"),
        ("crl", pki.crl_dir, "*.crl"),
    ):
        (home / sub).mkdir()
        for path in directory.glob(pattern):
            shutil.copy(path, home / sub / path.name)
    return settings


async def run_ours(
    messages: list[bytes], sessions: int, workdir: Path
) -> tuple[float, list[float], int]:
    app = App(prepare_home(workdir / "home"))
    await app.start()
    try:
        host, port = app.addresses["smtp"]
        before = cpu_seconds()
        elapsed, latencies = await asyncio.to_thread(
            blast_in_process, host, port, messages, sessions, SENDER, CLERK
        )
        report_cpu(before, len(messages))
        with app.sessions() as session:
            numbers = session.scalars(select(RegisterDocument.incoming_number)).all()
            distinct = session.scalar(
                select(func.count(func.distinct(RegisterDocument.incoming_number)))
            )
        numbered = sorted(n for n in numbers if n is not None)
        if numbered != list(range(1, len(messages) + 1)) or distinct != len(messages):
            raise SystemExit(f"register check failed: {len(numbered)} numbers")
        return elapsed, latencies, len(numbered)
    finally:
        await app.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--sessions", type=int, default=10)
    args = parser.parse_args()
    started = time.perf_counter()
    messages = document_messages(args.documents)
    size = sum(map(len, messages)) // len(messages)
    print(
        f"{args.documents} signed documents prepared ({size // 1000} KB per message) "
        f"in {time.perf_counter() - started:.1f} s; worker processes: {WORKERS}"
    )
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        base_elapsed, base_lat = await run_baseline(messages, args.sessions, workdir)
        ours_elapsed, ours_lat, numbered = await run_ours(messages, args.sessions, workdir)
    print(f"{args.sessions} SMTP sessions")
    base = describe("baseline aiosmtpd+Maildir+fsync", args.documents, base_elapsed, base_lat)
    ours = describe("mailsvc whole path, registered", args.documents, ours_elapsed, ours_lat)
    print(f"register: {numbered} documents numbered 1..{numbered}, no gap, no duplicate")
    print(f"ratio mailsvc/baseline: {ours / base:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
