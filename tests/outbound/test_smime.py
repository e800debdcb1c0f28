"""S/MIME signatures on notices: openssl verifies them with the CA (cms and smime), the
JSON part is inside the signed content, the organisation key in the PKCS#11 token
(softhsm2) signs them as it signs issued documents, and a key file needs
allow_file_key."""

from __future__ import annotations

import logging
import subprocess
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from cryptography import x509

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.errors import ConfigError
from mailsvc.notify.exchange import read_status
from mailsvc.notify.notices import NoticeComposer, StatusNotice
from mailsvc.outbound.smime import KeySmimeSigner, SmimeSigner, TokenSmimeSigner
from tests.signatures.pki import SamplePki, session_pki
from tests.softhsm import Token


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
    """openssl TOOL -verify against the test root; the content goes to work/content and
    the signer's certificate to work/signer.pem."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "in.eml").write_bytes(raw)
    return subprocess.run(
        ["openssl", tool, "-verify", "-in", str(work / "in.eml"), "-CAfile",
         str(pki.root.cert_path), "-out", str(work / "content"),
         "-signer", str(work / "signer.pem")],
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


def _token_settings(home: Path, token: Token, pki: SamplePki, **extra: object) -> Settings:
    pin = home / "token.pin"
    pin.write_text(token.pin + "\n", encoding="utf-8")
    pin.chmod(0o600)
    issuing = {
        "pkcs11_module": token.module,
        "token_label": token.label,
        "key_label": token.key_label,
        "cert": str(pki.organisation.cert_path),
        "chain": str(pki.organisation.chain_path),
        "pin_file": str(pin),
    }
    return Settings.model_validate({"home": home, "issuing": issuing, **extra})


async def test_notices_are_signed_by_the_organisation_key_in_the_token(
    pki: SamplePki, softhsm: Token, tmp_path: Path
) -> None:
    """The issuing signer signs notices too; called here from inside a running event
    loop, as the server's notice follower does."""
    signer = SmimeSigner.from_settings(_token_settings(tmp_path, softhsm, pki))
    assert isinstance(signer, TokenSmimeSigner)
    raw = _receipt(signer, tmp_path)
    assert b"multipart/signed" in raw.split(b"\r\n\r\n", 1)[0]
    result = _verify("smime", raw, pki, tmp_path / "ok")
    assert result.returncode == 0, result.stderr
    assert b"Verification successful" in result.stderr
    # the signer is the organisation certificate, whose key only the token holds
    signer_pem = tmp_path / "ok" / "signer.pem"
    assert x509.load_pem_x509_certificate(signer_pem.read_bytes()) == pki.organisation.cert
    report = read_status(
        message_from_bytes((tmp_path / "ok" / "content").read_bytes(), policy=default)
    )
    assert report is not None and report.status_code == "03"


def test_a_key_file_for_notices_needs_allow_file_key(
    pki: SamplePki, tmp_path: Path, softhsm: Token, caplog: pytest.LogCaptureFixture
) -> None:
    files = {
        "smime_cert": str(pki.organisation.cert_path),
        "smime_key": str(pki.organisation.key_path),
    }
    refused = Settings.model_validate({"home": tmp_path, "outbound": files})
    with pytest.raises(ConfigError, match="allow_file_key is false"):
        SmimeSigner.from_settings(refused)
    allowed = Settings.model_validate(
        {"home": tmp_path, "outbound": files, "issuing": {"allow_file_key": True}}
    )
    with caplog.at_level(logging.WARNING, logger="mailsvc.outbound.smime"):
        assert isinstance(SmimeSigner.from_settings(allowed), KeySmimeSigner)
    assert "not a PKCS#11 token" in caplog.text
    # The issuing key file (allowed) signs notices as it signs documents.
    issuing_file = Settings.model_validate(
        {
            "home": tmp_path,
            "issuing": {
                "allow_file_key": True,
                "key_file": str(pki.organisation.key_path),
                "cert": str(pki.organisation.cert_path),
            },
        }
    )
    signer = SmimeSigner.from_settings(issuing_file)
    assert isinstance(signer, KeySmimeSigner) and signer.cert == pki.organisation.cert
    # A token and a key file for notices: two seals, refused.
    both = _token_settings(tmp_path, softhsm, pki, outbound=files)
    with pytest.raises(ConfigError, match="remove smime_cert and smime_key"):
        SmimeSigner.from_settings(both)
