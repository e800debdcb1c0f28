"""Signature verifications per second on a 200 KB document, per format, beside the
reference tools run on the same files in the same run.

    python bench/signatures.py [--seconds 3]

Our figures: the engine's worker function (``verify_document``) called in this process, one
document after another, exactly as a pool worker runs it (ValidationContext rebuilt per
document from cached parsed trust material, hard-fail revocation with our CRLs, PDF
difference analysis on). Reference: ``openssl cms -verify`` (CMS, S/MIME) and ``gpg
--verify`` (OpenPGP), one process per verification as an admin would run them, with the
same trust root and CRLs (``-crl_check_all``). openssl cannot verify PDF signatures: the
PDF row's reference is the same validation with pyHanko's and asn1crypto's own functions
in place of ours (mailsvc.signatures.speedups uninstalled for that measurement).
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from mailsvc.signatures import speedups
from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.smime import jobs_for_files, jobs_for_message
from mailsvc.signatures.worker import verify_document
from tests.signatures.pki import (
    build_pki,
    cms_detached,
    make_pdf,
    openpgp_detached,
    signed_pdf,
    smime_message,
    stop_gpg_agents,
)

SIZE = 200 * 1024


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (imports, caches)
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        count += 1
    return count / elapsed


def libraries_own(fn: Callable[[], object], seconds: float) -> float:
    """``rate`` of ``fn`` with the libraries' own functions instead of our speed-ups."""
    speedups.uninstall()
    try:
        return rate(fn, seconds)
    finally:
        assert speedups.install()


def run_ok(args: list[str]) -> Callable[[], None]:
    def call() -> None:
        result = subprocess.run(args, capture_output=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {result.stderr.decode(errors='replace')}")

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        work = Path(tmp)
        pki = build_pki(work / "pki")
        assert pki.gpg is not None
        policy = SignaturePolicy()
        engine = SignatureEngine(policy, pki.trust_config(), gnupg_home=pki.gpg.keyring_home)
        settings, version = engine.settings, engine.trust.version()

        pdf = make_pdf(size=SIZE)
        files = {
            "doc.pdf": pdf,
            "doc.pdf.p7s": cms_detached(pdf, pki.organisation, work / "s"),
            "signed.pdf": signed_pdf(pdf, pki.personal, pki.organisation),
            "doc.pdf.sig": openpgp_detached(pdf, pki.gpg, pki.gpg.personal),
            "msg.eml": smime_message(pki.organisation, work / "m", attachments=[("doc.pdf", pdf)]),
        }
        for name, data in files.items():
            (work / name).write_bytes(data)
        # openssl reads CRLs from the CAfile
        cafile = work / "ca-and-crls.pem"
        cafile.write_bytes(
            pki.root.cert_path.read_bytes()
            + b"".join(
                x509.load_der_x509_crl(p.read_bytes()).public_bytes(Encoding.PEM)
                for p in sorted(pki.crl_dir.glob("*.crl"))
            )
        )
        openssl = [
            "openssl",
            "cms",
            "-verify",
            "-CAfile",
            str(cafile),
            "-crl_check_all",
            "-purpose",
            "any",
            "-out",
            "/dev/null",
        ]

        cms_job = jobs_for_files([("doc.pdf", pdf), ("doc.pdf.p7s", files["doc.pdf.p7s"])], policy)[
            0
        ]
        pdf_job = jobs_for_files([("signed.pdf", files["signed.pdf"])], policy)[0]
        pgp_job = jobs_for_files([("doc.pdf", pdf), ("doc.pdf.sig", files["doc.pdf.sig"])], policy)[
            0
        ]
        smime_job = jobs_for_message(files["msg.eml"], policy)[0]
        for job, expected in ((cms_job, 1), (pdf_job, 2), (pgp_job, 1), (smime_job, 1)):
            result = verify_document(job, settings, version)
            passed = [s.passed for s in result.signatures]
            assert passed == [True] * expected, (job.name, result.signatures)

        rows = [
            (
                "detached CMS (x.pdf + x.pdf.p7s)",
                rate(lambda: verify_document(cms_job, settings, version), args.seconds),
                "openssl cms -verify",
                rate(
                    run_ok(
                        [
                            *openssl,
                            "-binary",
                            "-inform",
                            "DER",
                            "-in",
                            str(work / "doc.pdf.p7s"),
                            "-content",
                            str(work / "doc.pdf"),
                        ]
                    ),
                    args.seconds,
                ),
            ),
            (
                "S/MIME multipart/signed",
                rate(lambda: verify_document(smime_job, settings, version), args.seconds),
                "openssl cms -verify",
                rate(run_ok([*openssl, "-in", str(work / "msg.eml")]), args.seconds),
            ),
            (
                "PDF, 2 signatures, diff analysis",
                rate(lambda: verify_document(pdf_job, settings, version), args.seconds),
                "the same without speedups.py (openssl: no PDF)",
                libraries_own(lambda: verify_document(pdf_job, settings, version), args.seconds),
            ),
            (
                "OpenPGP detached (gpg via python-gnupg)",
                rate(lambda: verify_document(pgp_job, settings, version), args.seconds),
                "gpg --verify",
                rate(
                    run_ok(
                        [
                            "gpg",
                            "--homedir",
                            str(pki.gpg.keyring_home),
                            "--batch",
                            "--trust-model",
                            "always",
                            "--verify",
                            str(work / "doc.pdf.sig"),
                            str(work / "doc.pdf"),
                        ]
                    ),
                    args.seconds,
                ),
            ),
        ]
        stop_gpg_agents(pki.gpg)
    digest = hashlib.sha256(pdf).hexdigest()[:12]
    print(
        f"document: {len(pdf) // 1024} KB PDF (sha256 {digest}…), one core, "
        f"{args.seconds:g} s per figure"
    )
    print()
    print("| format | mailsvc verifications/s | reference | reference/s | mailsvc ÷ reference |")
    print("| --- | ---: | --- | ---: | ---: |")
    for label, ours, ref_label, ref in rows:
        ratio = f"{ours / ref:.2f}×" if ref else "—"
        ref_text = f"{ref:.1f}" if ref else "—"
        print(f"| {label} | {ours:.1f} | {ref_label} | {ref_text} | {ratio} |")


if __name__ == "__main__":
    main()
