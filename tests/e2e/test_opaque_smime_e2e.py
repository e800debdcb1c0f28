"""Opaque S/MIME and .p7m through the running server: what a CMS encloses is checked.

An opaque S/MIME message (``application/pkcs7-mime; smime-type=signed-data``, what
``openssl cms -sign -nodetach`` and some clients' "opaque signing" send) carries its whole
MIME entity as DER; so does an enveloping ``x.pdf.p7m``. Every mail client opens them.
clamd and the text checks saw only the DER: a virus or a page stamped TỐI MẬT inside one
was delivered, and the register's entry was ``smime.p7m`` with no number nor abstract.
Real clamd, real ``openssl cms``, real SMTP; the encrypted case has no key here.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import subprocess
import zlib
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, make_msgid
from pathlib import Path

import pytest
from asn1crypto import cms
from sqlalchemy import select

from mailsvc.db.models import MessageRecord
from mailsvc.register.models import RegisterDocument
from tests.documents.metadata_samples import LAYOUTS, layout_pdf
from tests.e2e.conftest import RunningServer
from tests.e2e.test_signed_documents_e2e import CLERK, SENDER, send_raw, trust_sample_agency
from tests.e2e.test_smtp_core import fetch_inbox
from tests.signatures.pki import (
    AGENCY_DOMAIN,
    _openssl,
    cms_enveloping,
    mime_entity,
    session_pki,
    signed_pdf,
    smime_message,
)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
CLASSIFIED = "ỦY BAN NHÂN DÂN TỈNH\r\n\r\nTỐI MẬT\r\n\r\nBáo cáo tình hình an ninh quý IV.\r\n"


def envelope(cms_entity: bytes) -> bytes:
    """Sender's header fields before an S/MIME entity as ``openssl cms`` writes it."""
    head = (
        f"From: {SENDER}\r\nTo: {CLERK}\r\nSubject: Cong van so 12\r\nDate: {formatdate()}\r\n"
        f"Message-ID: {make_msgid(domain=AGENCY_DOMAIN)}\r\n"
    ).encode()
    return head + cms_entity.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def compressed(entity: bytes) -> bytes:
    """An S/MIME compressed-data message (RFC 3274; Debian's openssl has no zlib)."""
    info = cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": "zlib"},
                    "encap_content_info": {
                        "content_type": "data",
                        "content": zlib.compress(entity),
                    },
                }
            ),
        }
    )
    msg = EmailMessage()
    msg.set_content(
        info.dump(),
        maintype="application",
        subtype="pkcs7-mime",
        params={"smime-type": "compressed-data"},
        filename="smime.p7z",
    )
    return envelope(msg.as_bytes())


def encrypted(entity: bytes, work: Path) -> bytes:
    work.mkdir(parents=True, exist_ok=True)
    (work / "entity.eml").write_bytes(entity)
    recipient = session_pki().personal.cert_path
    return envelope(
        _openssl("cms", "-encrypt", "-aes256", "-in", str(work / "entity.eml"), str(recipient))
    )


def p7m_attachment(p7m: bytes, filename: str, subtype: str = "octet-stream") -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, CLERK, "Gui van ban"
    msg["Message-ID"] = make_msgid(domain=AGENCY_DOMAIN)
    msg.set_content("Kính gửi Văn thư.")
    msg.add_attachment(p7m, maintype="application", subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP_POLICY)


def refused(server: RunningServer, raw: bytes) -> smtplib.SMTPDataError:
    with pytest.raises(smtplib.SMTPDataError) as info:
        send_raw(server, raw)
    return info.value


async def test_opaque_smime_document_is_registered_from_the_enclosed_pdf(
    server: RunningServer, tmp_path: Path
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    sealed = signed_pdf(layout_pdf(LAYOUTS["cv_state"]), pki.organisation)
    raw = smime_message(
        pki.organisation,
        tmp_path,
        recipient=CLERK,
        attachments=[("1875-SNV.pdf", sealed)],
        opaque=True,
    )
    assert b"smime-type=signed-data" in raw
    assert await asyncio.to_thread(send_raw, server, raw) == {}
    [delivered] = await asyncio.to_thread(fetch_inbox, server, CLERK)
    assert b"X-Mailsvc-Signature: valid" in delivered.split(b"\r\n\r\n", 1)[0]
    assert delivered.endswith(raw.split(b"\r\n\r\n", 1)[1])  # the clerk gets it as sent
    with server.sessions() as session:
        [document] = session.scalars(select(RegisterDocument)).all()
        assert (document.signature_outcome, document.incoming_number) == ("valid", 1)
        # the enclosed PDF is the entry's document, not smime.p7m
        assert [(a.filename, a.role) for a in document.attachments] == [("1875-SNV.pdf", "main")]
        assert document.main_sha256 == hashlib.sha256(sealed).hexdigest()
        expected = LAYOUTS["cv_state"].expected
        assert document.number_notation == expected["number_notation"] == "1875/SNV-VTLT"
        assert document.abstract == expected["abstract"]


@pytest.mark.parametrize("opaque", [False, True], ids=["clear-signed", "opaque"])
async def test_classified_text_in_signed_smime_is_refused(
    server: RunningServer, tmp_path: Path, opaque: bool
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    raw = smime_message(
        session_pki().organisation, tmp_path, recipient=CLERK, body=CLASSIFIED, opaque=opaque
    )
    error = await asyncio.to_thread(refused, server, raw)
    assert error.smtp_code == 554 and b"classified content" in error.smtp_error


async def test_a_virus_inside_cms_is_refused_however_it_is_wrapped(
    server: RunningServer, tmp_path: Path
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    pki = session_pki()
    virus_entity = mime_entity("Kính gửi.", [("hoadon.com", EICAR)])
    wrapped = {
        "opaque S/MIME": smime_message(
            pki.organisation, tmp_path / "o", recipient=CLERK, attachments=[("hoadon.com", EICAR)],
            opaque=True,
        ),
        "compressed S/MIME": compressed(virus_entity),
        "x.pdf.p7m": p7m_attachment(
            cms_enveloping(EICAR, pki.organisation, tmp_path / "p"), "hoadon.pdf.p7m"
        ),
        # by content, not by name or type: a .p7m renamed and sent as octet-stream
        ".p7m renamed .bin": p7m_attachment(
            cms_enveloping(EICAR, pki.organisation, tmp_path / "b"), "tailieu.bin"
        ),
    }  # fmt: skip
    for name, raw in wrapped.items():
        error = await asyncio.to_thread(refused, server, raw)
        assert (error.smtp_code, b"virus detected" in error.smtp_error) == (554, True), name
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []


def pgp_mime(entity: bytes, work: Path) -> bytes:
    """PGP/MIME (RFC 3156) encrypted by gpg with a password (no key needed to make it)."""
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        armoured = subprocess.run(
            ["gpg", "--homedir", str(work), "--batch", "--pinentry-mode", "loopback", "--armor",
             "--passphrase", "mat-khau", "--symmetric"],
            input=entity, capture_output=True, check=True,
        ).stdout  # fmt: skip
    finally:  # no gpg-agent outlives the test
        subprocess.run(["gpgconf", "--homedir", str(work), "--kill", "all"], check=False)
    return envelope(
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
        b' boundary="e1"\r\n\r\n--e1\r\nContent-Type: application/pgp-encrypted\r\n\r\n'
        b"Version: 1\r\n--e1\r\nContent-Type: application/octet-stream;"
        b' name="encrypted.asc"\r\n\r\n' + armoured + b"\r\n--e1--\r\n"
    )


@pytest.mark.parametrize("kind", ["S/MIME enveloped-data", "PGP/MIME"])
async def test_an_encrypted_message_cannot_be_checked_and_is_refused(
    server: RunningServer, tmp_path: Path, kind: str
) -> None:
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    entity = mime_entity(CLASSIFIED)
    if kind == "PGP/MIME":
        raw = pgp_mime(entity, tmp_path / "gnupg")
    else:
        raw = encrypted(entity, tmp_path)
        assert b"smime-type=enveloped-data" in raw
    error = await asyncio.to_thread(refused, server, raw)
    assert error.smtp_code == 554
    assert b"cannot be read" in error.smtp_error and b"encrypted" in error.smtp_error
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []


def gpg_made(work: Path, *args: str, stdin: bytes) -> bytes:
    """gpg's output (a throw-away home with one key, no agent left behind)."""
    work.mkdir(mode=0o700, parents=True, exist_ok=True)
    base = ["gpg", "--homedir", str(work), "--batch", "--pinentry-mode", "loopback"]
    try:
        if not (work / "pubring.kbx").exists():
            subprocess.run(
                [*base, "--passphrase", "", "--quick-gen-key", f"cv@{AGENCY_DOMAIN}"],
                capture_output=True, check=True,
            )  # fmt: skip
        return subprocess.run(
            [*base, *args], input=stdin, capture_output=True, check=True
        ).stdout
    finally:
        subprocess.run(["gpgconf", "--homedir", str(work), "--kill", "all"], check=False)


def with_body(text: str) -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = SENDER, CLERK, "Bao cao"
    msg["Message-ID"] = make_msgid(domain=AGENCY_DOMAIN)
    msg.set_content(text)
    return msg.as_bytes(policy=SMTP_POLICY)


async def test_what_a_signed_openpgp_message_encloses_is_checked(
    server: RunningServer, tmp_path: Path
) -> None:
    """``gpg --sign`` keeps the content inside the packets (compressed): clamd and the
    text checks saw only packets, while ``gpg --decrypt`` shows the content without the
    signer's key and Thunderbird shows an inline one decoded. Both were delivered."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    gnupg = tmp_path / "gnupg"
    inline = gpg_made(gnupg, "--sign", "--armor", stdin=CLASSIFIED.encode())
    error = await asyncio.to_thread(refused, server, with_body("Kính gửi,\n\n" + inline.decode()))
    assert error.smtp_code == 554 and b"classified content" in error.smtp_error
    attached = gpg_made(gnupg, "--sign", stdin=EICAR)
    raw = p7m_attachment(attached, "hoadon.com.gpg", subtype="octet-stream")
    error = await asyncio.to_thread(refused, server, raw)
    assert error.smtp_code == 554 and b"virus detected" in error.smtp_error
    encrypted_inline = gpg_made(
        gnupg, "--armor", "--passphrase", "mat-khau", "--symmetric", stdin=CLASSIFIED.encode()
    )
    error = await asyncio.to_thread(
        refused, server, with_body("Kính gửi,\n\n" + encrypted_inline.decode())
    )
    assert error.smtp_code == 554 and b"encrypted" in error.smtp_error
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []
    # the same signed message with an ordinary text is delivered as sent
    ordinary = gpg_made(gnupg, "--sign", "--armor", stdin="Lịch họp tuần sau.\n".encode())
    raw = with_body("Kính gửi,\n\n" + ordinary.decode())
    assert await asyncio.to_thread(send_raw, server, raw) == {}


@pytest.mark.parametrize("name", ["bao-cao.dat", "ban-sao"])
async def test_an_openpgp_file_encrypted_by_password_is_refused_under_any_name(
    server: RunningServer, tmp_path: Path, name: str
) -> None:
    """``gpg --symmetric`` output renamed away from ``.gpg`` (the recipient renames it
    back, or opens it with ``gpg -d``): was delivered unchecked, its first packet now
    says what it is."""
    server.add_mailbox(CLERK)
    trust_sample_agency(server)
    sealed = gpg_made(
        tmp_path / "gnupg", "--passphrase", "mat-khau", "--symmetric", stdin=CLASSIFIED.encode()
    )
    raw = p7m_attachment(sealed, name, subtype="octet-stream")
    error = await asyncio.to_thread(refused, server, raw)
    assert error.smtp_code == 554
    assert b"cannot be read" in error.smtp_error and b"encrypted" in error.smtp_error
    with server.sessions() as session:
        assert session.scalars(select(MessageRecord)).all() == []
