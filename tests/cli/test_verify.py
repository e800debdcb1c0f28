"""`mailsvc verify FILE... [--json]`: the engine offline, with a readable report."""

from __future__ import annotations

import json
import shutil
from email.message import EmailMessage
from pathlib import Path

from tests.cli.conftest import Invoke
from tests.signatures.pki import (
    cms_detached,
    flip_byte,
    make_pdf,
    session_pki,
    signed_pdf,
    smime_message,
)


def _trust(admin_home: Path) -> None:
    pki = session_pki()
    (admin_home / "trust").mkdir(exist_ok=True)
    shutil.copy(pki.root.cert_path, admin_home / "trust" / "root.pem")
    crls = ", ".join(json.dumps(str(p)) for p in sorted(pki.crl_dir.glob("*.crl")))
    policy = Path("policies/signature.yaml").read_text(encoding="utf-8")
    policy = policy.replace("crl_sources: []", f"crl_sources: [{crls}]")
    (admin_home / "signature-test.yaml").write_text(policy, encoding="utf-8")


def test_verify_report_and_json(admin_cli: Invoke, admin_home: Path, tmp_path: Path) -> None:
    _trust(admin_home)
    pki = session_pki()
    pdf = make_pdf()
    signed = tmp_path / "qd.pdf"
    signed.write_bytes(signed_pdf(pdf, pki.personal, pki.organisation))
    cv = tmp_path / "cv.pdf"
    cv.write_bytes(pdf)
    (tmp_path / "cv.pdf.p7s").write_bytes(cms_detached(pdf, pki.personal, tmp_path / "w"))
    policy = admin_home / "signature-test.yaml"

    result = admin_cli(
        "verify", "--policy", str(policy), str(signed), str(cv), str(tmp_path / "cv.pdf.p7s")
    )
    assert "qd.pdf: có giá trị pháp lý (legally valid) [signed]" in result.output
    assert "signer:       Nguyễn Văn An (cá nhân / personal)" in result.output
    assert "cv.pdf: chỉ có giá trị tham khảo (reference only)" in result.output
    assert "+07:00" in result.output

    result = admin_cli("verify", "--policy", str(policy), "--json", str(signed))
    (report,) = json.loads(result.output)
    assert report["outcome"] == "valid"
    assert [s["kind"] for s in report["signatures"]] == ["personal", "organisation"]
    assert report["signatures"][0]["signing_time"].endswith("+07:00")


def test_verify_invalid_exits_2(admin_cli: Invoke, admin_home: Path, tmp_path: Path) -> None:
    _trust(admin_home)
    pki = session_pki()
    bad = tmp_path / "qd.pdf"
    bad.write_bytes(flip_byte(signed_pdf(make_pdf(), pki.organisation), b"Quy"))
    result = admin_cli(
        "verify", "--policy", str(admin_home / "signature-test.yaml"), str(bad), ok=False
    )
    assert result.exit_code == 2
    assert "TOTAL_FAILED/HASH_FAILURE" in result.output


def test_verify_eml(admin_cli: Invoke, admin_home: Path, tmp_path: Path) -> None:
    _trust(admin_home)
    pki = session_pki()
    eml = tmp_path / "thu.eml"
    eml.write_bytes(smime_message(pki.organisation, tmp_path / "w"))
    result = admin_cli("verify", "--policy", str(admin_home / "signature-test.yaml"), str(eml))
    assert f"{eml}: (message): có giá trị pháp lý" in result.output
    assert "SMIME: TOTAL_PASSED" in result.output


def test_verify_forwarded_eml_and_too_deep(
    admin_cli: Invoke, admin_home: Path, tmp_path: Path
) -> None:
    """A document inside a forwarded message is verified; a message nested deeper than
    the walk goes gets a precise error, not a traceback."""
    _trust(admin_home)
    pki = session_pki()
    original = EmailMessage()
    original["From"] = "vanthu@stttt.thunghiem.gov.vn"
    original["Subject"] = "Quyết định"
    original.set_content("Kính gửi.")
    original.add_attachment(
        signed_pdf(make_pdf(), pki.personal, pki.organisation),
        maintype="application",
        subtype="pdf",
        filename="qd.pdf",
    )
    forward = EmailMessage()
    forward["From"] = "vanthu@stttt.thunghiem.gov.vn"
    forward["Subject"] = "Fwd: Quyết định"
    forward.set_content("Chuyển tiếp.")
    forward.add_attachment(original, filename="qd.eml")
    eml = tmp_path / "fwd.eml"
    eml.write_bytes(forward.as_bytes())
    policy = str(admin_home / "signature-test.yaml")
    result = admin_cli("verify", "--policy", policy, str(eml))
    assert f"{eml}: qd.pdf: có giá trị pháp lý (legally valid)" in result.output

    deep = tmp_path / "deep.eml"
    deep.write_bytes(b"Content-Type: message/rfc822\r\n\r\n" * 1000 + b"Subject: x\r\n\r\nx\r\n")
    result = admin_cli("verify", "--policy", policy, str(deep), ok=False)
    assert result.exit_code == 1
    assert f"cannot verify {deep}: MIME entities nested more than 200 deep" in result.output
    assert "Traceback" not in result.output


def test_untrusted_without_anchor(admin_cli: Invoke, tmp_path: Path) -> None:
    pki = session_pki()
    signed = tmp_path / "qd.pdf"
    signed.write_bytes(signed_pdf(make_pdf(), pki.organisation))
    result = admin_cli("verify", str(signed))
    assert "INDETERMINATE/" in result.output


def test_a_policy_file_alone_in_home_policies_is_refused(
    admin_cli: Invoke, admin_home: Path, tmp_path: Path
) -> None:
    """HOME/policies/ replaces the packaged set only as a whole (with its pipeline.yaml): a
    changed spam.yaml put there alone would be ignored while the administrator believes it
    in force, so every command that reads the policies refuses, naming the file."""
    (admin_home / "policies").mkdir()
    (admin_home / "policies" / "spam.yaml").write_text("thresholds: {}\n", encoding="utf-8")
    document = tmp_path / "cv.pdf"
    document.write_bytes(make_pdf())
    result = admin_cli("verify", str(document), ok=False)
    assert result.exit_code == 1
    assert "spam.yaml without pipeline.yaml" in result.output, result.output
    assert "copy the whole packaged set there" in result.output
