"""What a CMS encloses (mailsvc.documents.cms), and the walks that open it: extraction
(the text checks and the virus scan) and the register's files.

Attacked first: damaged and hostile DER must give a precise ``UnreadableDocument`` or a
result, never another exception; a compression bomb is stopped at the limit without
inflating it; an encrypted CMS is reported, never taken as empty; nesting is bounded.
"""

from __future__ import annotations

import base64
import subprocess
import zlib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

import pytest
from asn1crypto import cms as asn1_cms
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.documents import cms
from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import CORRUPT, ENCRYPTED, TOO_LARGE, UnreadableDocument
from mailsvc.message import parse_tree
from mailsvc.register.attachments import attachments_in
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits
from tests.signatures.pki import (
    _openssl,
    cms_detached,
    cms_enveloping,
    make_pdf,
    mime_entity,
    session_pki,
    smime_message,
)

PDF = make_pdf("Công văn số 12/STTTT-VP")
ENTITY = mime_entity("Kính gửi Văn thư.\r\n", [("qd.pdf", PDF)])


def compressed_cms(content: bytes) -> bytes:
    return asn1_cms.ContentInfo(
        {
            "content_type": "compressed_data",
            "content": asn1_cms.CompressedData(
                {
                    "version": "v0",
                    "compression_algorithm": {"algorithm": "zlib"},
                    "encap_content_info": {
                        "content_type": "data",
                        "content": zlib.compress(content),
                    },
                }
            ),
        }
    ).dump()


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return cms_enveloping(PDF, session_pki().organisation, tmp_path_factory.mktemp("p7m"))


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    work = tmp_path_factory.mktemp("enc")
    (work / "entity.eml").write_bytes(ENTITY)
    cert = session_pki().personal.cert_path
    src = str(work / "entity.eml")
    return _openssl("cms", "-encrypt", "-aes256", "-outform", "DER", "-in", src, str(cert))


def with_attachment(data: bytes, subtype: str, filename: str) -> bytes:
    msg = EmailMessage()
    msg.set_content("x")
    msg.add_attachment(data, maintype="application", subtype=subtype, filename=filename)
    return msg.as_bytes(policy=SMTP_POLICY)


def opaque_message(entity_body: str, work: Path, **kw: object) -> bytes:
    return smime_message(session_pki().organisation, work, body=entity_body, opaque=True, **kw)  # type: ignore[arg-type]


# -- open_cms ---------------------------------------------------------------------------


def test_signed_content_is_returned(signed: bytes) -> None:
    assert cms.is_cms(signed)
    assert cms.open_cms(signed, 1 << 20) == cms.Enclosure(cms.SIGNED, PDF, "signed_data")
    assert not cms.is_mime_entity(PDF)
    assert cms.is_mime_entity(ENTITY)


def test_pem_is_read_like_der(signed: bytes) -> None:
    pem = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(signed) + b"-----END PKCS7-----\n"
    assert cms.is_cms(pem)
    assert cms.open_cms(pem, 1 << 20).content == PDF


def test_a_detached_signature_encloses_nothing(tmp_path: Path) -> None:
    p7s = cms_detached(PDF, session_pki().organisation, tmp_path)
    assert cms.is_cms(p7s)
    assert cms.open_cms(p7s, 1 << 20).kind == cms.DETACHED


def test_encrypted_is_reported_as_such(encrypted: bytes) -> None:
    assert cms.is_cms(encrypted)
    assert cms.open_cms(encrypted, 1 << 20) == cms.Enclosure(
        cms.ENCRYPTED, content_type="enveloped_data"
    )


def test_compressed_content_is_inflated() -> None:
    assert cms.open_cms(compressed_cms(ENTITY), 1 << 20).content == ENTITY


def test_a_compression_bomb_stops_at_the_limit() -> None:
    bomb = compressed_cms(bytes(200 << 20))  # 200 MiB of zeros, ~200 KB compressed
    assert len(bomb) < 300_000
    with pytest.raises(UnreadableDocument) as info:
        cms.open_cms(bomb, 1 << 20)
    assert info.value.kind == TOO_LARGE


def test_signed_content_over_the_limit_is_too_large(signed: bytes) -> None:
    with pytest.raises(UnreadableDocument) as info:
        cms.open_cms(signed, len(PDF) - 1)
    assert info.value.kind == TOO_LARGE


@pytest.mark.parametrize(
    "data",
    [b"", b"%PDF-1.7\n", b"\x30", b"\x30\x80", b"\x30\x03\x02\x01\x01", bytes(range(256)) * 4],
    ids=["empty", "pdf", "one byte", "indefinite", "integer", "noise"],
)
def test_what_is_no_cms_is_not_taken_for_one(data: bytes) -> None:
    assert not cms.is_cms(data)


@DAMAGE_SETTINGS
@given(
    st.sampled_from(["signed", "encrypted", "compressed"]),
    edits([b"\x00", b"\xff", b"\x30\x80", b"\x04\x84\xff\xff\xff\xff", b"\x06\x09", b"\x80"]),
)
def test_damaged_der_gives_a_result_or_a_precise_error(
    signed: bytes, encrypted: bytes, which: str, changes: list[tuple[float, int, bytes]]
) -> None:
    original = {"signed": signed, "encrypted": encrypted, "compressed": compressed_cms(ENTITY)}
    data = damaged(original[which], changes)
    try:
        opened = cms.open_cms(data, 1 << 20)
    except UnreadableDocument as exc:
        assert exc.kind in (CORRUPT, TOO_LARGE)
        return
    assert opened.kind in (cms.SIGNED, cms.COMPRESSED, cms.ENCRYPTED, cms.DETACHED, cms.OTHER)


# -- extraction: text checks and the virus scan see the enclosed content ------------------


def test_extraction_walks_opaque_smime(tmp_path: Path) -> None:
    raw = opaque_message("TỐI MẬT\r\n", tmp_path, attachments=[("qd.pdf", PDF)])
    text = extract_message_bytes(raw, ExtractionLimits())
    bodies = [p for p in text.parts if p.source == "body"]
    assert [(p.location, p.text.strip()) for p in bodies] == [
        ("attachment 1 > enclosed > body 1", "TỐI MẬT")
    ]
    [document] = text.attachments(top_level=False)
    assert document.filename == "qd.pdf"
    assert document.location == "attachment 1 > enclosed > attachment 1"
    [content] = text.enclosed
    assert "TỐI MẬT".encode() in content and text.complete


def test_extraction_names_a_p7m_file_after_its_content(signed: bytes) -> None:
    raw = with_attachment(signed, "octet-stream", "qd.pdf.p7m")
    text = extract_message_bytes(raw, ExtractionLimits())
    [document] = text.attachments(top_level=False)
    assert (document.filename, document.content_type) == ("qd.pdf", "application/pdf")
    assert text.enclosed == (PDF,)


def test_extraction_reports_encrypted_cms(encrypted: bytes) -> None:
    raw = with_attachment(encrypted, "pkcs7-mime", "smime.p7m")
    text = extract_message_bytes(raw, ExtractionLimits())
    [failure] = text.failures
    assert (failure.kind, failure.location) == (ENCRYPTED, "attachment 1")
    assert "enveloped_data" in failure.detail and text.enclosed == ()


def test_extraction_skips_a_broken_cms_like_any_unknown_file(signed: bytes) -> None:
    raw = with_attachment(signed[:200], "pkcs7-mime", "a.p7m")
    text = extract_message_bytes(raw, ExtractionLimits())
    assert text.complete and [s.location for s in text.skipped] == ["attachment 1"]


def test_cms_inside_cms_stops_at_the_extraction_depth() -> None:
    data = ENTITY
    for _ in range(10):
        data = compressed_cms(data)
    limits = ExtractionLimits()
    text = extract_message_bytes(with_attachment(data, "pkcs7-mime", "smime.p7z"), limits)
    assert [f.kind for f in text.failures] == [TOO_LARGE]
    assert len(text.enclosed) == limits.max_depth


# -- the register: the files inside opaque S/MIME are the entry's files ------------------


def test_the_register_takes_the_files_opaque_smime_encloses(tmp_path: Path) -> None:
    raw = opaque_message("Kính gửi.\r\n", tmp_path, attachments=[("qd.pdf", PDF)])
    files = attachments_in(parse_tree(raw))
    assert [(a.filename, a.role, a.data) for a in files] == [("qd.pdf", "main", PDF)]


def test_the_register_keeps_a_p7m_file_as_it_is(signed: bytes) -> None:
    files = attachments_in(parse_tree(with_attachment(signed, "pkcs7-mime", "qd.pdf.p7m")))
    assert [(a.filename, a.role) for a in files] == [("qd.pdf.p7m", "main")]


def test_the_register_opens_nested_opaque_smime_a_bounded_number_of_times() -> None:
    data = ENTITY
    for _ in range(50):
        wrapper = EmailMessage()
        wrapper.set_content(
            compressed_cms(data), maintype="application", subtype="pkcs7-mime",
            params={"smime-type": "compressed-data"}, filename="smime.p7z",
        )  # fmt: skip
        data = wrapper.as_bytes(policy=SMTP_POLICY)
    [only] = attachments_in(parse_tree(data))
    assert only.filename == "smime.p7z"  # the fifth is kept as a file: no recursion without end


# -- OpenPGP: an encrypted message cannot be checked either -----------------------------


def _gpg(home: Path, *args: str, stdin: bytes) -> bytes:
    command = ["gpg", "--homedir", str(home), "--batch", "--pinentry-mode", "loopback", *args]
    return subprocess.run(command, input=stdin, capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def gpg_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("gnupg")
    home.chmod(0o700)
    try:
        _gpg(home, "--passphrase", "", "--quick-gen-key", "vanthu@example.vn", stdin=b"")
        yield home
    finally:  # gpg started an agent for this home: no daemon outlives the tests
        subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "all"], check=False)


def pgp_messages(home: Path) -> dict[str, tuple[bytes, str | None, bool]]:
    """(bytes, file name, encrypted) of OpenPGP messages made by gpg."""
    to_key = ("--trust-model", "always", "--encrypt", "-r", "vanthu@example.vn")
    symmetric = ("--passphrase", "mat-khau", "--symmetric")
    return {
        "armoured, to a key": (_gpg(home, "--armor", *to_key, stdin=PDF), "qd.pdf.asc", True),
        "binary, to a key": (_gpg(home, *to_key, stdin=PDF), "qd.pdf.gpg", True),
        "armoured, by password": (_gpg(home, "--armor", *symmetric, stdin=PDF), None, True),
        "binary, by password": (_gpg(home, *symmetric, stdin=PDF), "qd.pdf.pgp", True),
        "armoured, signed only": (_gpg(home, "--armor", "--sign", stdin=PDF), "qd.asc", False),
        "binary, signed only": (_gpg(home, "--sign", stdin=PDF), "qd.pdf.gpg", False),
        # known by the first packet's fields without an OpenPGP name
        "binary, by password, no .gpg name": (_gpg(home, *symmetric, stdin=PDF), "x.bin", True),
        "binary, by password, no name": (_gpg(home, *symmetric, stdin=PDF), None, True),
        "binary, to a key, named .pdf": (_gpg(home, *to_key, stdin=PDF), "qd.pdf", True),
        "binary, AES-256 and Argon2-less S2K mode 1": (
            _gpg(home, *symmetric, "--cipher-algo", "AES256", "--s2k-mode", "1", stdin=PDF),
            "x.dat",
            True,
        ),
        "binary, signed only, no name": (_gpg(home, "--sign", stdin=PDF), None, False),
    }


def test_encrypted_openpgp_files_are_told_apart(gpg_home: Path) -> None:
    found = {
        name: cms.is_encrypted_pgp(data, filename)
        for name, (data, filename, _) in pgp_messages(gpg_home).items()
    }
    assert found == {name: enc for name, (_, _, enc) in pgp_messages(gpg_home).items()}


def test_extraction_reports_encrypted_openpgp(gpg_home: Path) -> None:
    data, filename, _ = pgp_messages(gpg_home)["armoured, to a key"]
    assert filename is not None
    raw = with_attachment(data, "octet-stream", filename)
    text = extract_message_bytes(raw, ExtractionLimits())
    assert [(f.kind, f.detail) for f in text.failures] == [(ENCRYPTED, "encrypted OpenPGP message")]


def test_extraction_reports_pgp_mime_encryption(gpg_home: Path) -> None:
    data, _, _ = pgp_messages(gpg_home)["armoured, to a key"]
    raw = (
        b'Content-Type: multipart/encrypted; protocol="application/pgp-encrypted";'
        b' boundary="e1"\r\nMIME-Version: 1.0\r\n\r\n--e1\r\n'
        b"Content-Type: application/pgp-encrypted\r\n\r\nVersion: 1\r\n--e1\r\n"
        b'Content-Type: application/octet-stream; name="encrypted.asc"\r\n\r\n'
        + data
        + b"\r\n--e1--\r\n"
    )
    text = extract_message_bytes(raw, ExtractionLimits())
    [failure] = text.failures
    assert (failure.kind, failure.detail) == (
        ENCRYPTED,
        "encrypted message (application/pgp-encrypted)",
    )


# -- OpenPGP signed or compressed: the content is inside, readable by anyone ------------

SECRET = "TỐI MẬT\nBáo cáo tình hình an ninh quý IV\n".encode()


@pytest.mark.parametrize("name", ["armoured, signed only", "binary, signed only"])
def test_a_signed_openpgp_message_is_opened(gpg_home: Path, name: str) -> None:
    """gpg shows the content of a signed message without the signer's key: so do we."""
    data, _, _ = pgp_messages(gpg_home)[name]
    assert cms.is_plain_pgp(data) and not cms.is_encrypted_pgp(data, None)
    content, literal_name = cms.open_pgp(data, 10_000_000)
    assert content == PDF and literal_name == ""  # made from stdin: no name inside


def test_the_literal_packets_file_name_is_kept(gpg_home: Path, tmp_path: Path) -> None:
    (tmp_path / "bao-cao mật.txt").write_bytes(SECRET)
    data = _gpg(gpg_home, "--sign", "--output", "-", str(tmp_path / "bao-cao mật.txt"), stdin=b"")
    assert cms.open_pgp(data, 10_000) == (SECRET, "bao-cao mật.txt")


def test_an_openpgp_compression_bomb_stops_at_the_limit(gpg_home: Path) -> None:
    bomb = _gpg(gpg_home, "--compress-level", "9", "--sign", stdin=bytes(30_000_000))
    assert len(bomb) < 100_000
    with pytest.raises(UnreadableDocument) as caught:
        cms.open_pgp(bomb, 1_000_000)
    assert caught.value.kind == TOO_LARGE


@pytest.mark.parametrize(
    "data", [b"\xa3\x01" + bytes(300), b"\x88\x05\x04abcd", b"\xcb\x05bhell", b"\xc8\x03\x02zz"]
)
def test_packets_that_are_not_a_message_are_corrupt(data: bytes) -> None:
    assert cms.is_plain_pgp(data)
    with pytest.raises(UnreadableDocument) as caught:
        cms.open_pgp(data, 1_000_000)
    assert caught.value.kind == CORRUPT


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n" + bytes(100),  # 0x89: an old-format signature packet's header
        b"\x88garbage",  # a length past the end
        b"\xcb\x05hello",  # literal data whose format byte is none
        b"\xa8\x05\x09xxxx",  # compressed with algorithm 9
        b"%PDF-1.7\n",
        b"",
    ],
)
def test_what_only_starts_like_a_packet_is_not_taken_for_openpgp(data: bytes) -> None:
    assert not cms.is_plain_pgp(data)
    assert not cms.is_encrypted_pgp(data, None)


@pytest.mark.parametrize(
    "data",
    [
        b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00" + bytes(640),  # a pcap capture: tag 20's header
        b"\x85\x01\x0c\x03" + bytes(300),  # a v3 session key with no room for the algorithm
        b"\x85\x01\x0c\x03" + bytes(8) + b"\x11" + bytes(300),  # DSA signs, never encrypts
        b"\x8c\x0d\x04\x05\x03" + bytes(20),  # cipher 5 is reserved
        b"\x8c\x0d\x04\x09\x02" + bytes(20),  # S2K type 2 is reserved
        b"\xd2\x05\x03" + bytes(4),  # encrypted data version 3
        b"\xc3\x0d",  # a header with a length past the end
    ],
)
def test_what_only_looks_encrypted_is_not_taken_for_openpgp(data: bytes) -> None:
    assert not cms.is_encrypted_pgp(data, None)


def test_every_sample_file_type_is_told_from_encrypted_openpgp() -> None:
    """No file of the sniffing samples (PDF, Office, ODF, images, archives, ...) nor
    random bytes are taken for an encrypted message (a header byte alone would take one
    random file in 50)."""
    import random

    from tests.documents import samples

    files = [
        samples.make_pdf("Báo cáo"),
        samples.make_docx("Báo cáo"),
        samples.make_odt("Báo cáo"),
        samples.make_rtf("Báo cáo"),
        samples.make_zip({"a.txt": b"a"}),
        samples.make_7z({"a.txt": b"a"}),
        samples.make_rar({"a.txt": b"a"}),
        samples.make_tar_gz({"a.txt": b"a"}),
        *(samples.make_photo(kind) for kind in ("JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF")),
    ]
    assert not any(cms.is_encrypted_pgp(f, None) for f in files)
    rng = random.Random(5)
    blobs = [rng.randbytes(rng.randrange(4, 2000)) for _ in range(20_000)]
    assert sum(cms.is_encrypted_pgp(b, None) for b in blobs) <= 2  # about 1 in 60,000


def test_extraction_reads_a_signed_gpg_attachment(gpg_home: Path) -> None:
    data = _gpg(gpg_home, "--sign", stdin=SECRET)
    raw = with_attachment(data, "octet-stream", "bao-cao.txt.gpg")
    text = extract_message_bytes(raw, ExtractionLimits())
    assert text.failures == ()
    [inside] = [p for p in text.parts if "enclosed" in p.location and p.source == "attachment"]
    assert "TỐI MẬT" in inside.text and inside.filename == "bao-cao.txt"
    assert text.enclosed == (SECRET,)  # for the virus scan


def test_extraction_reads_an_inline_signed_body(gpg_home: Path) -> None:
    """Thunderbird shows an inline ``gpg --sign --armor`` body decoded: the checks read
    what it shows."""
    armoured = _gpg(gpg_home, "--sign", "--armor", stdin=SECRET)
    msg = EmailMessage()
    msg.set_content("Kính gửi Văn thư,\n\n" + armoured.decode() + "\nTrân trọng.\n")
    text = extract_message_bytes(msg.as_bytes(policy=SMTP_POLICY), ExtractionLimits())
    assert any("TỐI MẬT" in p.text for p in text.parts if "enclosed" in p.location)
    assert text.enclosed == (SECRET,)


def test_extraction_reports_an_inline_encrypted_body(gpg_home: Path) -> None:
    data, _, _ = pgp_messages(gpg_home)["armoured, by password"]
    msg = EmailMessage()
    msg.set_content("Kính gửi Văn thư,\n\n" + data.decode())
    text = extract_message_bytes(msg.as_bytes(policy=SMTP_POLICY), ExtractionLimits())
    assert [(f.kind, f.detail) for f in text.failures] == [(ENCRYPTED, "encrypted OpenPGP message")]


def _packet(tag: int, body: bytes) -> bytes:
    """An OpenPGP packet, new format with a five-octet length."""
    return bytes([0xC0 | tag, 255]) + len(body).to_bytes(4, "big") + body


def test_packets_nested_past_gpgs_limit_are_corrupt_and_answered_at_once() -> None:
    """A hostile file: a literal packet stamped TỐI MẬT inside 2,000 'compressed' packets
    (algorithm 0). gpg refuses the nesting, as it does for the recipient: nothing is
    shown, nothing is hidden, and no time is spent."""
    data = _packet(11, b"b\x05x.txt\x00\x00\x00\x00" + "TỐI MẬT".encode())
    for _ in range(2000):
        data = _packet(8, b"\x00" + data)
    assert cms.is_plain_pgp(data)
    with pytest.raises(UnreadableDocument) as caught:
        cms.open_pgp(data, 1_000_000)
    assert caught.value.kind == CORRUPT
    shallow = _packet(8, b"\x00" + _packet(11, b"b\x05x.txt\x00\x00\x00\x00" + SECRET))
    assert cms.open_pgp(shallow, 1_000_000) == (SECRET, "x.txt")  # a few levels: read
