"""Per-stage cost for a message carrying a 200 KB PDF, beside the bare-SMTP baseline.

    python bench/stages.py [--messages 200]

Starts a whole mailsvc (clamd, Dovecot, every stage as configured), then for each message
(distinct bytes, so clamd's cache does not answer) times every stage's ``inspect`` alone:
median and p99 in ms. The same run measures the bare aiosmtpd + Maildir + fsync baseline
(ms per message at 1 session) and clamd scans/s through our client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.smtp import run_baseline
from mailsvc.app import App
from mailsvc.config import load_settings
from mailsvc.message import InboundMessage
from tests.signatures.pki import make_pdf
from tests.tlsutil import write_self_signed

DOMAIN = "bench.example.vn"


def document_messages(count: int) -> list[bytes]:
    out = []
    for i in range(count):
        pdf = make_pdf(f"Quyết định số {i}/2026/QĐ-UBND về việc thử nghiệm", size=200_000)
        msg = EmailMessage()
        msg["From"] = "vanthu@sender.example.vn"
        msg["To"] = f"vanthu@{DOMAIN}"
        msg["Subject"] = f"V/v gửi Quyết định số {i}/2026/QĐ-UBND"
        msg["Message-ID"] = f"<{uuid.uuid4().hex}@sender.example.vn>"
        msg["Date"] = "Sat, 21 Nov 2026 08:00:00 +0700"
        msg.set_content("Kính gửi Văn thư, xin gửi văn bản đính kèm.")
        msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=f"qd-{i}.pdf")
        out.append(msg.as_bytes(policy=SMTP_POLICY))
    return out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    args = parser.parse_args()
    raws = document_messages(args.messages)
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)
        _, base_lat = await run_baseline(raws, 1, workdir)
        home = workdir / "home"
        home.mkdir()
        write_self_signed(home / "tls/cert.pem", home / "tls/key.pem", "localhost")
        (home / "mailsvc.toml").write_text(
            f'[server]\nhostname = "localhost"\ndomain = "{DOMAIN}"\n'
            '[listen]\nsmtp = "127.0.0.1:0"\nsubmission = "127.0.0.1:0"\n'
            'submissions = "127.0.0.1:0"\nimap = "127.0.0.1:0"\nimaps = "127.0.0.1:0"\n'
            'http = "127.0.0.1:0"\nmetrics = "127.0.0.1:0"\n[dns]\nmode = "off"\n',
            encoding="utf-8",
        )
        app = App(load_settings(home, environ={}))
        await app.start()
        try:
            timings: dict[str, list[float]] = {s.name: [] for s in app.runner.stages}
            clamd: list[float] = []
            for raw in raws:
                msg = InboundMessage(
                    queue_id=uuid.uuid4().hex[:12].upper(),
                    mail_from="vanthu@sender.example.vn",
                    rcpt_tos=(f"vanthu@{DOMAIN}",),
                    raw=raw,
                    received_at=datetime.now(UTC),
                    client_ip="127.0.0.1",
                )
                for stage in app.runner.stages:
                    t0 = time.perf_counter()
                    await stage.inspect(msg)
                    timings[stage.name].append((time.perf_counter() - t0) * 1000)
                if app.scanner is not None:
                    t0 = time.perf_counter()
                    await app.scanner.scan(raw + uuid.uuid4().hex.encode())
                    clamd.append(time.perf_counter() - t0)
        finally:
            await app.stop()
    size = len(raws[0]) // 1024
    print(f"{args.messages} messages of {size} KB (200 KB PDF attached), one at a time")
    print(f"{'stage':<16} {'median ms':>10} {'p99 ms':>10}")
    total = 0.0
    for name, values in timings.items():
        median = statistics.median(values)
        total += median
        print(f"{name:<16} {median:10.2f} {pct(values, 0.99):10.2f}")
    print(f"{'sum of stages':<16} {total:10.2f}")
    baseline_ms = statistics.median(base_lat) * 1000
    print(
        f"{'bare SMTP':<16} {baseline_ms:10.2f} {pct(base_lat, 0.99) * 1000:10.2f}"
        "   (aiosmtpd + Maildir + fsync, per message, same run)"
    )
    if clamd:
        print(
            f"clamd: {len(clamd) / sum(clamd):.1f} scans/s through our client "
            f"({size} KB each, distinct bytes)"
        )
    print(f"ratio stages/bare SMTP: {total / baseline_ms:.1f}x")


if __name__ == "__main__":
    asyncio.run(main())
