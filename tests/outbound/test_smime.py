"""S/MIME signatures on notices: openssl verifies them with the CA (cms and smime), the
JSON part is inside the signed content, and the configuration is checked."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from email import message_from_bytes
from pathlib import Path

import pytest

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.errors import ConfigError
from mailsvc.notify.exchange import read_status
from mailsvc.notify.notices import NoticeComposer, StatusNotice
from mailsvc.outbound.smime import SmimeSigner
from tests.signatures.pki import SamplePki, session_pki


@pytest.fixture(scope="module")
def pki() -> SamplePki:
    return session_pki()


def _receipt(signer: SmimeSigner | None, tmp_path: Path) -> bytes:
    composer = NoticeComposer(
        templates_dir(Settings(home=tmp_path)) / "notices",
        hostname="mail.stc.thunghiem.gov.vn",
        domain="stc.thunghiem.gov.vn",
        smime=signer,
    )
    return composer.status_message(
        StatusNotice(
            recipient="vanthu@stttt.thunghiem.gov.vn",
            status_code="03",
            message_id="<35@stttt.thunghiem.gov.vn>",
            subject="V/v triển khai kế hoạch chuyển đổi số",
            time=datetime(2026, 11, 21, 1, 0, tzinfo=UTC),
            incoming_number="12",
        )
    )


def _verify(
    tool: str, raw: bytes, pki: SamplePki, work: Path
) -> subprocess.CompletedProcess[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.eml").write_bytes(raw)
    return subprocess.run(
        ["openssl", tool, "-verify", "-in", str(work / "in.eml"), "-CAfile",
         str(pki.root.cert_path), "-out", str(work / "content")],
        capture_output=True,
        check=False,
    )  # fmt: skip


@pytest.mark.parametrize("tool", ["cms", "smime"])
def test_signed_receipt_verifies_with_the_ca_and_covers_the_json(
    pki: SamplePki, tmp_path: Path, tool: str
) -> None:
    org = pki.other_agency
    signer = SmimeSigner.from_files(org.cert_path, org.key_path, org.chain_path)
    raw = _receipt(signer, tmp_path)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert b"multipart/signed" in head and b'micalg="sha-256"' in head
    assert b"Auto-Submitted: auto-replied" in head
    assert b"=?utf-8?" in head  # the Vietnamese subject is RFC 2047-encoded
    result = _verify(tool, raw, pki, tmp_path / "ok")
    assert result.returncode == 0, result.stderr
    assert b"Verification successful" in result.stderr
    content = message_from_bytes((tmp_path / "ok" / "content").read_bytes())
    report = read_status(content)
    assert report is not None and (report.status_code, report.incoming_number) == ("03", "12")
    # One changed byte inside the signed text breaks it.
    at = raw.index(b"Content-Transfer-Encoding: quoted-printable")
    tampered = raw[:at] + raw[at:].replace(
        b"S=E1=BB=91 =C4=91=E1=BA=BFn: 12", b"S=E1=BB=91 =C4=91=E1=BA=BFn: 13", 1
    )
    assert tampered != raw
    broken = _verify(tool, tampered, pki, tmp_path / "bad")
    assert broken.returncode != 0 and b"Verification successful" not in broken.stderr


def test_unsigned_receipt_when_smime_is_off(tmp_path: Path) -> None:
    raw = _receipt(None, tmp_path)
    assert b"multipart/signed" not in raw and b"multipart/mixed" in raw
    assert SmimeSigner.from_settings(Settings(home=tmp_path)) is None


def test_configuration_errors_name_the_key(pki: SamplePki, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        SmimeSigner.from_files(pki.organisation.cert_path, pki.other_agency.key_path, None)
    with pytest.raises(ConfigError, match="smime_cert"):
        SmimeSigner.from_files(tmp_path / "missing.pem", pki.organisation.key_path, None)
    settings = Settings.model_validate(
        {"home": tmp_path, "outbound": {"smime_cert": str(pki.organisation.cert_path)}}
    )
    with pytest.raises(ConfigError, match="together"):
        SmimeSigner.from_settings(settings)
