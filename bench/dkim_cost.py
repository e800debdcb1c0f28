"""DKIM signatures and verifications per second, with mailsvc's faster parts of dkimpy
(``mailsvc.pipeline.dkim_speedups``) and with dkimpy's own functions, in the same run.

    python bench/dkim_cost.py [--seconds 2]

Two messages: a 20 KB plain text (a receipt or an official's letter) and a 307 KB
message with a 200 KB PDF in base64 (a document). Signing is ``DkimSigner.sign`` (what the
outbound queue does for every message it sends: RSA 2048, relaxed/relaxed); verifying is
the worker pool's DKIM work for a received message (``parse_signatures`` then
``verify_signatures`` with the key already fetched). The reference is the same calls with
dkimpy's own functions in place (the speed-ups uninstalled for that measurement). Each
figure is the median of three measurements of ``--seconds`` each, on one core.
"""

from __future__ import annotations

import argparse
import base64
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailsvc.outbound.dkim import DkimSigner, generate_private_key, public_key_value
from mailsvc.pipeline import dkim_speedups
from mailsvc.pipeline.dkim_verify import parse_signatures, verify_signatures

HEAD = (
    "From: Văn thư <vanthu@sotttt.example.vn>\r\n"
    "To: vanthu@stp.example.vn\r\n"
    "Subject: =?utf-8?q?C=C3=B4ng_v=C4=83n?=\r\n"
    "Date: Mon, 07 Dec 2026 09:00:00 +0700\r\n"
    "Message-ID: <bench-1@sotttt.example.vn>\r\n"
    "MIME-Version: 1.0\r\n"
).encode()


def messages() -> dict[str, bytes]:
    rng = random.Random(7)
    text = "Kính gửi Sở Tư pháp. Sở Thông tin và Truyền thông đề nghị phối hợp.\r\n"
    plain = (text * (20_000 // len(text.encode()) + 1)).encode()[:20_000]
    pdf = base64.encodebytes(rng.randbytes(225_000)).replace(b"\n", b"\r\n")
    return {
        "20 KB text": HEAD + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + plain,
        "307 KB document": HEAD
        + b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + pdf,
    }


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of CPU time, the median of three measurements."""
    fn()
    rates = []
    for _ in range(3):
        n, start = 0, time.thread_time()
        while (elapsed := time.thread_time() - start) < seconds:
            fn()
            n += 1
        rates.append(n / elapsed)
    return statistics.median(rates)


def both(fn: Callable[[], object], seconds: float) -> tuple[float, float]:
    """(with the speed-ups, with dkimpy's own functions)"""
    assert dkim_speedups.install(), "dkimpy is not the release the speed-ups were checked on"
    ours = rate(fn, seconds)
    dkim_speedups.uninstall()
    try:
        theirs = rate(fn, seconds)
    finally:
        dkim_speedups.install()
    return ours, theirs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        pem = generate_private_key(Path(tmp) / "private.pem")
    signer = DkimSigner(pem, "mailsvc", "sotttt.example.vn")
    key = public_key_value(pem).encode()

    print("| operation | message | mailsvc /s | dkimpy's own /s | mailsvc ÷ dkimpy |")
    print("| --- | --- | ---: | ---: | ---: |")
    for label, message in messages().items():
        signed = signer.sign(message)

        def verify(raw: bytes = signed) -> None:
            found = parse_signatures(raw, 5)
            results = verify_signatures(raw, [(sig, key) for sig in found], 1024)
            assert [r.result for r in results] == ["pass"], results

        for operation, fn in (("sign", lambda m=message: signer.sign(m)), ("verify", verify)):
            ours, theirs = both(fn, args.seconds)
            print(
                f"| {operation} | {label} | {ours:.1f} ({1000 / ours:.2f} ms) "
                f"| {theirs:.1f} ({1000 / theirs:.2f} ms) | {ours / theirs:.2f} |"
            )


if __name__ == "__main__":
    main()
