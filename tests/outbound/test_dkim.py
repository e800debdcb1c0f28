"""DKIM signing of our own mail, the published record, and a round trip through DNS."""

from __future__ import annotations

import datetime as dt
import re
import stat
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from mailsvc.adapters.dns import DnsResolver, PinnedResolver
from mailsvc.errors import ConfigError
from mailsvc.message import InboundMessage
from mailsvc.outbound.dkim import (
    DkimSigner,
    DkimSigningError,
    dns_txt_record,
    generate_private_key,
    public_key_value,
)
from mailsvc.pipeline.authentication import AuthenticationStage
from mailsvc.policy.authentication import AuthenticationPolicy
from tests.dns_server import DnsTestServer

NOTICE = (
    "From: Hệ thống thư công vụ <mailer-daemon@sotttt.example.vn>\r\n"
    "To: vanthu@stp.example.vn\r\n"
    "Subject: =?utf-8?q?Th=C3=B4ng_b=C3=A1o_t=E1=BB=AB_ch=E1=BB=91i_nh=E1=BA=ADn?=\r\n"
    "Date: Sat, 21 Nov 2026 09:00:00 +0700\r\n"
    "Message-ID: <notice-1@sotttt.example.vn>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Văn bản của Quý cơ quan không được tiếp nhận.\r\n"
).encode()


class NoAgencies:
    def agency_for_domain(self, domain: str) -> None:
        return None

    def is_local_domain(self, domain: str) -> bool:
        return False


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return generate_private_key(tmp_path_factory.mktemp("dkim") / "private.pem")


def verify(message: bytes, txt: str) -> bool:
    return bool(dkim.verify(message, dnsfunc=lambda name, timeout=5: txt.encode()))


def test_generated_key_is_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "dkim" / "private.pem"
    pem = generate_private_key(path, bits=2048)
    assert pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert generate_private_key(path) == pem  # never overwritten


def test_signature_verifies_with_dkimpy(key_pem: bytes) -> None:
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn")
    signed = signer.sign(NOTICE)
    assert signed.endswith(NOTICE)
    assert verify(signed, signer.txt_value())
    header = signed[: len(signed) - len(NOTICE)].decode()
    assert "d=sotttt.example.vn;" in header and "s=mailsvc;" in header
    assert "c=relaxed/relaxed;" in header
    # From is signed one more time than it occurs: a second From breaks the signature
    assert re.search(r"h=from\s*:\s*from", header.replace("\r\n", ""))
    assert not verify(b"From: <boss@sotttt.example.vn>\r\n" + signed, signer.txt_value())
    assert not verify(signed.replace("tiếp nhận".encode(), "xử lý".encode()), signer.txt_value())


def test_body_length_and_lf_messages(key_pem: bytes) -> None:
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn", body_length=True)
    lf = NOTICE.replace(b"\r\n", b"\n")
    signed = signer.sign(lf)
    assert b"\r\n" not in signed
    assert re.search(rb";\s*l=\d+;", signed.split(b"\nFrom:")[0])
    assert verify(signed + b"appended by a list\n", signer.txt_value())


def test_other_key_formats_and_bad_keys(tmp_path: Path) -> None:
    pkcs8 = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    signer = DkimSigner(pkcs8, "s1", "Example.VN.")
    assert signer.domain == "example.vn"
    assert verify(signer.sign(NOTICE), signer.txt_value())
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ConfigError, match="RSA"):
        DkimSigner(ec_pem, "s1", "example.vn")
    with pytest.raises(ConfigError, match="PEM"):
        DkimSigner(b"not a key", "s1", "example.vn")
    with pytest.raises(ConfigError, match="cannot read"):
        DkimSigner.from_file(tmp_path / "absent.pem", "s1", "example.vn")
    with pytest.raises(DkimSigningError, match="From"):
        signer.sign(b"To: a@example.vn\r\nSubject: x\r\n\r\nbody\r\n")


def test_dns_record_text(key_pem: bytes) -> None:
    value = public_key_value(key_pem)
    assert value.startswith("v=DKIM1; k=rsa; p=MIIB")
    line = dns_txt_record(value, "mailsvc", "sotttt.example.vn")
    assert line.startswith("mailsvc._domainkey.sotttt.example.vn. 3600 IN TXT ( ")
    strings = re.findall(r'"([^"]*)"', line)
    assert all(len(s) <= 255 for s in strings)
    assert "".join(strings) == value


async def test_published_record_round_trip_through_dns(key_pem: bytes) -> None:
    """Publish the printed record on a real DNS server; our stage verifies our own mail."""
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn")
    strings = re.findall(
        r'"([^"]*)"', dns_txt_record(signer.txt_value(), "mailsvc", "sotttt.example.vn")
    )
    server = DnsTestServer().start()
    try:
        server.add("mailsvc._domainkey.sotttt.example.vn", "TXT", "".join(strings))
        resolver = DnsResolver(["127.0.0.1"], server.port, timeout=0.5)
        stage = AuthenticationStage(
            NoAgencies(), resolver, AuthenticationPolicy(), "mx.stp.example.vn"
        )
        msg = InboundMessage(
            queue_id="Q",
            mail_from="",
            rcpt_tos=("vanthu@stp.example.vn",),
            raw=signer.sign(NOTICE),
            received_at=dt.datetime.now(dt.UTC),
        )
        dkim_finding = (await stage.inspect(msg))[0]
    finally:
        server.stop()
    assert dkim_finding.reason == "dkim-pass"
    assert (dkim_finding.auth_result or "").startswith(
        "dkim=pass header.d=sotttt.example.vn header.s=mailsvc"
    )


async def test_pinned_record_verifies_without_dns(key_pem: bytes) -> None:
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn")
    pinned = PinnedResolver({"txt": {"mailsvc._domainkey.sotttt.example.vn": signer.txt_value()}})
    stage = AuthenticationStage(NoAgencies(), pinned, AuthenticationPolicy(), "mx")
    msg = InboundMessage("Q", "", ("a@b.vn",), signer.sign(NOTICE), dt.datetime.now(dt.UTC))
    assert (await stage.inspect(msg))[0].reason == "dkim-pass"
