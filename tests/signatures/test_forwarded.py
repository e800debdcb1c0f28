"""Documents inside a forwarded message (``message/rfc822``, named ``.eml`` or not) are
the register's documents: the signature walk must find and validate them too.

Before, the walk took an enclosed message as one opaque file (``attachment.eml``) while
the register, reading the email package's tree, took the PDF inside as the entry's main
document: a valid signature read "not verified", and a PDF changed after signing was
never looked at. The register's files and the walk's documents are compared here on
every way mail clients forward (and on hostile shapes); real signatures inside forwarded
messages are validated through the stage in tests/pipeline/test_signatures.py.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import PurePosixPath

import pytest

from mailsvc.message import parse_tree
from mailsvc.register.attachments import SIGNATURE_EXTENSIONS, attachments_in
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.smime import MAX_DEPTH, NestingTooDeep, jobs_for_message
from tests.documents.test_parse_tree import HOSTILE
from tests.hostile import corpus
from tests.signatures.pki import (
    AGENCY_DOMAIN,
)
from tests.signatures.test_jobs_from_tree import RAW, TREE

POLICY = SignaturePolicy()
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
SENDER = f"vanthu@{AGENCY_DOMAIN}"


def original(pdf: bytes = PDF, name: str = "35-QD-UBND.pdf") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = "vanthu@stc.thunghiem.gov.vn"
    msg["Subject"] = "V/v triển khai kế hoạch chuyển đổi số"
    msg.set_content("Kính gửi Văn thư.")
    msg.add_attachment(pdf, maintype="application", subtype="pdf", filename=name)
    return msg


def head(ctype: str, *more: str, sender: str = SENDER) -> bytes:
    lines = [f"From: {sender}", "MIME-Version: 1.0", f"Content-Type: {ctype}"]
    return "".join(f"{line}\r\n" for line in (*lines, *more)).encode() + b"\r\n"


def forward(inner: bytes, *part_headers: str, beside: bytes = b"", sender: str = SENDER) -> bytes:
    """A forward "as attachment": a text part, then the original as an enclosed part."""
    out = head('multipart/mixed; boundary="fw"', sender=sender)
    out += b"--fw\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
    out += "Chuyển tiếp văn bản để biết.".encode() + b"\r\n"
    if beside:
        out += b"--fw\r\n" + beside + b"\r\n"
    headers = part_headers or ("Content-Type: message/rfc822",)
    out += b"--fw\r\n" + "".join(f"{h}\r\n" for h in headers).encode() + b"\r\n"
    return out + inner + b"\r\n--fw--\r\n"


def as_bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP_POLICY)


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


def signed_original() -> bytes:
    """The original as a sender's client signs it: multipart/signed (S/MIME) whose first
    part holds the text and the document; the signature bytes are a placeholder."""
    content = (
        b'Content-Type: multipart/mixed; boundary="o1"\r\n\r\n'
        + b"--o1\r\nContent-Type: text/plain\r\n\r\nKinh gui.\r\n"
        + b"--o1\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + b'Content-Disposition: attachment; filename="35-QD-UBND.pdf"\r\n\r\n'
        + b64(PDF)
        + b"--o1--\r\n"
    )
    return (
        head('multipart/signed; protocol="application/pkcs7-signature"; boundary="s1"')
        + b"--s1\r\n"
        + content
        + b"\r\n--s1\r\nContent-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + b64(b"\x30\x82\x01\x00" + bytes(200))
        + b"\r\n--s1--\r\n"
    )


ORIGINAL = as_bytes(original())
FORWARDS = {
    # Thunderbird, "Forward As Attachment": named after the subject
    "named .eml": forward(
        ORIGINAL,
        'Content-Type: message/rfc822; name="V/v trien khai.eml"',
        'Content-Disposition: attachment; filename="V/v trien khai.eml"',
    ),
    # Outlook and others: no name at all
    "unnamed": forward(ORIGINAL, "Content-Type: message/rfc822", "Content-Disposition: attachment"),
    "inline disposition": forward(ORIGINAL, "Content-Type: message/rfc822"),
    "forwarded twice": forward(forward(ORIGINAL), "Content-Type: message/rfc822"),
    "beside a document of its own": forward(
        ORIGINAL,
        "Content-Type: message/rfc822",
        beside=b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + b'Content-Disposition: attachment; filename="to-trinh.pdf"\r\n\r\n'
        + b64(PDF[:-20] + b"to trinh\n%%EOF\n"),
    ),
    "message/global (RFC 6532)": forward(ORIGINAL, "Content-Type: message/global"),
    "the top entity is the forwarded message": head("message/rfc822") + ORIGINAL,
    # Not allowed by RFC 2046 for message/rfc822; the email package reads the body as sent
    "base64-encoded enclosure": forward(
        b64(ORIGINAL),
        "Content-Type: message/rfc822",
        "Content-Transfer-Encoding: base64",
    ),
    "an S/MIME-signed original": forward(signed_original(), "Content-Type: message/rfc822"),
    "a delivery report (no enclosure)": forward(
        b"Reporting-MTA: dns; mail.example.vn\r\n\r\nFinal-Recipient: rfc822; a@b\r\n",
        "Content-Type: message/delivery-status",
    ),
}


def _is_signature(name: str) -> bool:
    return PurePosixPath(name.lower()).suffix in SIGNATURE_EXTENSIONS


def register_documents(raw: bytes) -> list[tuple[str, str]]:
    """(name, SHA-256) of each file the register keeps as a document (not a signature)."""
    return sorted(
        (a.filename, a.sha256)
        for a in attachments_in(parse_tree(raw))
        if a.role != "signature" and not _is_signature(a.filename)
    )


def walked_documents(raw: bytes) -> list[tuple[str, str]]:
    """(name, SHA-256) of each document the signature walk validates."""
    return sorted(
        (j.name, hashlib.sha256(j.content).hexdigest())
        for j in jobs_for_message(raw, POLICY)
        if not j.message_level and not _is_signature(j.name)
    )


@pytest.mark.parametrize("name", sorted(FORWARDS))
def test_the_walk_validates_the_documents_the_register_keeps(name: str) -> None:
    raw = FORWARDS[name]
    assert walked_documents(raw) == register_documents(raw)


def test_the_forwarded_document_is_found_by_its_own_bytes() -> None:
    found = walked_documents(FORWARDS["named .eml"])
    assert found == [("35-QD-UBND.pdf", hashlib.sha256(PDF).hexdigest())]
    assert not [name for name, _ in walked_documents(FORWARDS["unnamed"]) if ".eml" in name]


def test_a_signed_original_covers_the_document_inside_it_only() -> None:
    """The forwarded original's own S/MIME signature is a message-level job that is not
    the message's (whole_message False): it speaks for the documents inside it, which
    carry its entity in ``within``; the forwarding mail's own text has none."""
    jobs = jobs_for_message(FORWARDS["an S/MIME-signed original"], POLICY)
    [seal] = [j for j in jobs if j.message_level]
    assert seal.whole_message is False and seal.within == ()
    [document] = [j for j in jobs if not j.message_level]
    assert document.within == (hashlib.sha256(seal.content).hexdigest(),)


# Where the two readings still differ, the register keeps a file the walk cannot
# validate byte for byte (no report applies to it: the entry is "reference only, not
# verified"), or the difference is only how a refused file name is spelled.
KNOWN = {
    "bom-in-filename",  # the register drops the BOM from the name; same bytes
    "control-char-filename",  # refused by the limits stage (file-name-deceptive)
    "truncated-base64-pdf",  # no delimiter closes the part: the walk keeps nothing
    "opaque S/MIME",  # the walk's job is the message's own (message-level)
    "uuencoded file",  # the email package decodes uuencode; the walk does not
    "encoding with a trailing space",  # idem, "base64 " read differently
    "no close (feed parser's tree)",  # as truncated-base64-pdf
    # refused by the limits stage (mime-fragment): the email package reads the first
    # fragment's cut-off attachment, the walk reads no fragment
    "message-partial-fragment",
}


def _hostile() -> Iterator[tuple[str, bytes]]:
    yield from ((c.name, c.build()) for c in corpus.CASES)
    yield from HOSTILE.items()
    yield from TREE.items()
    yield from RAW.items()


def test_hostile_shapes_give_the_register_no_document_the_walk_misses() -> None:
    differ = set()
    for name, raw in _hostile():
        walked, kept = walked_documents(raw), register_documents(raw)
        if walked != kept:
            differ.add(name)
            # whatever the walk validates is a file the register keeps, byte for byte
            assert {sha for _, sha in walked} <= {sha for _, sha in kept} or name in KNOWN
    assert differ == KNOWN


def test_nesting_deeper_than_the_walk_goes_is_a_precise_error() -> None:
    raw = ORIGINAL
    for _ in range(MAX_DEPTH + 5):
        raw = head("message/rfc822") + raw
    with pytest.raises(NestingTooDeep, match=f"nested more than {MAX_DEPTH} deep"):
        jobs_for_message(raw, POLICY)
