"""The signature stage reads the attached files from the worker's part tree instead of
walking the raw message a second time; the jobs it finds must be the raw walk's own.

A difference would be a hole: a file verified under another name or other bytes than the
ones the register records and the clerk opens, or a detached signature paired with the
wrong document. Every case compares ``jobs_for_parsed`` (the tree) with
``jobs_for_message`` (the raw walk) job by job, names, bytes and pairing included; the
cases where the tree must step aside (MIME-level signatures, enclosed messages, unusual
transfer encodings, trees the feed parser built) are checked to take the raw walk.
"""

from __future__ import annotations

import base64
import quopri
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailsvc.message import fast_tree, is_fast_tree, parse_tree
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.smime import _files_of_tree, jobs_for_message, jobs_for_parsed
from tests import hostile_mail
from tests.documents.test_parse_tree import HOSTILE
from tests.hostile import corpus
from tests.hostile.damage import DAMAGE_SETTINGS, Edit, damaged, edits

POLICY = SignaturePolicy()
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
P7S = b"\x30\x82\x01\x00" + bytes(200)


def same_jobs(raw: bytes) -> bool:
    """Compare both readings; True when the tree's was used (not the raw walk)."""
    tree = parse_tree(raw)
    assert jobs_for_parsed(raw, tree, POLICY) == jobs_for_message(raw, POLICY)
    return is_fast_tree(tree) and _files_of_tree(tree) is not None


def head(ctype: str = 'multipart/mixed; boundary="b1"') -> bytes:
    return (
        b"From: a@b.example.vn\r\nMIME-Version: 1.0\r\nContent-Type: "
        + ctype.encode()
        + b"\r\n\r\n"
    )


def part(headers: list[str], body: bytes) -> bytes:
    return "".join(h + "\r\n" for h in headers).encode() + b"\r\n" + body + b"\r\n"


def mixed(*parts: bytes, boundary: str = "b1") -> bytes:
    out = head(f'multipart/mixed; boundary="{boundary}"')
    for p in parts:
        out += f"--{boundary}\r\n".encode() + p
    return out + f"--{boundary}--\r\n".encode()


def b64(data: bytes) -> bytes:
    return base64.encodebytes(data).replace(b"\n", b"\r\n").rstrip(b"\r\n")


def attachment(name_field: str, data: bytes = PDF, cte: str = "base64") -> bytes:
    body = b64(data) if cte.strip().lower() == "base64" else data
    if cte.strip().lower() == "quoted-printable":
        body = quopri.encodestring(data)
    return part(
        [
            "Content-Type: application/pdf",
            f"Content-Disposition: attachment; {name_field}",
            f"Content-Transfer-Encoding: {cte}",
        ],
        body,
    )


TEXT = part(["Content-Type: text/plain; charset=utf-8"], "Kính gửi Văn thư.".encode())

# Cases the tree reads itself (asserted below): names and encodings it must read as the
# raw walk does.
TREE = {
    "one document": mixed(TEXT, attachment('filename="qd.pdf"')),
    "detached pair": mixed(
        TEXT, attachment('filename="qd.pdf"'), attachment('filename="qd.pdf.p7s"', P7S)
    ),
    "enveloping file": mixed(attachment('filename="qd.pdf.p7m"', P7S)),
    "encoded-word name": mixed(attachment('filename="=?utf-8?b?UXV5ZXQgZGluaC5wZGY=?="')),
    "RFC 2231 name": mixed(attachment("filename*=utf-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh.pdf")),
    "RFC 2231 continuations": mixed(
        attachment("filename*0*=utf-8''Quy%E1%BA%BFt; filename*1=\"-dinh.pdf\"")
    ),
    "name in Content-Type only": mixed(
        part(
            ['Content-Type: application/pdf; name="qd.pdf"', "Content-Disposition: attachment"],
            b64(PDF),
        )
    ),
    "quoted-printable file": mixed(
        attachment('filename="note.txt"', b"a=b\r\nc\r\n", "quoted-printable")
    ),
    "7bit file": mixed(attachment('filename="note.txt"', b"plain text\r\nline 2", "7bit")),
    "upper-case encoding": mixed(attachment('filename="qd.pdf"', PDF, "BASE64")),
    "base64 with bad padding": mixed(
        part(
            [
                "Content-Type: application/pdf",
                'Content-Disposition: attachment; filename="x.pdf"',
                "Content-Transfer-Encoding: base64",
            ],
            b"QUJDRA",
        )
    ),
    "base64 with stray characters": mixed(
        part(
            [
                "Content-Type: application/pdf",
                'Content-Disposition: attachment; filename="x.pdf"',
                "Content-Transfer-Encoding: base64",
            ],
            b"QUJD*RA==\r\n!!\r\n",
        )
    ),
    "two names, first wins": mixed(
        part(
            [
                "Content-Type: application/pdf",
                'Content-Disposition: attachment; filename="a.pdf"',
                'Content-Disposition: attachment; filename="b.pdf"',
                "Content-Transfer-Encoding: base64",
            ],
            b64(PDF),
        )
    ),
    "nested multipart": mixed(
        head('multipart/alternative; boundary="b2"')[
            len(b"From: a@b.example.vn\r\nMIME-Version: 1.0\r\n") :
        ]
        + b"--b2\r\n"
        + attachment('filename="inner.pdf"')
        + b"--b2--\r\n"
    ),
    "8-bit name": mixed(attachment('filename="Kính gửi.pdf"')),
}

# Cases the tree leaves to the raw walk.
RAW = {
    "multipart/signed": head(
        'multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s1"'
    )
    + b"--s1\r\n"
    + TEXT
    + b"--s1\r\n"
    + part(
        [
            "Content-Type: application/pkcs7-signature; name=smime.p7s",
            "Content-Transfer-Encoding: base64",
        ],
        b64(P7S),
    )
    + b"--s1--\r\n",
    "opaque S/MIME": head("application/pkcs7-mime; smime-type=signed-data; name=smime.p7m")[:-2]
    + b"Content-Transfer-Encoding: base64\r\n\r\n"
    + b64(P7S)
    + b"\r\n",
    "enclosed message": mixed(
        part(["Content-Type: message/rfc822"], mixed(attachment('filename="inner.pdf"')))
    ),
    "uuencoded file": mixed(
        attachment('filename="qd.pdf"', b"begin 644 qd.pdf\r\nend", "x-uuencode")
    ),
    "encoding with a trailing space": mixed(attachment('filename="qd.pdf"', PDF, "base64 ")),
    "no close (feed parser's tree)": mixed(attachment('filename="qd.pdf"'))[: -len(b"--b1--\r\n")],
}


@pytest.mark.parametrize("name", sorted(TREE))
def test_the_tree_gives_the_raw_walks_jobs(name: str) -> None:
    assert same_jobs(TREE[name]), "the tree stepped aside"


@pytest.mark.parametrize("name", sorted(RAW))
def test_what_the_tree_cannot_say_is_walked_raw(name: str) -> None:
    assert not same_jobs(RAW[name]), "the tree was used"


def test_a_real_document_message_reads_from_the_tree() -> None:
    msg = EmailMessage()
    msg["From"] = "vanthu@stttt.example.vn"
    msg["Subject"] = "V/v gửi Quyết định"
    msg.set_content("Kính gửi Văn thư.")
    msg.add_attachment(PDF, maintype="application", subtype="pdf", filename="Quyết định 12.pdf")
    msg.add_attachment(P7S, maintype="application", subtype="pkcs7-signature",
                       filename="Quyết định 12.pdf.p7s")  # fmt: skip
    raw = msg.as_bytes(policy=SMTP_POLICY)
    assert fast_tree(raw) is not None
    assert same_jobs(raw)
    (job,) = jobs_for_parsed(raw, parse_tree(raw), POLICY)
    assert job.name == "Quyết định 12.pdf" and job.content == PDF
    assert [d.data for d in job.detached] == [P7S]


def test_no_tree_means_the_raw_walk() -> None:
    raw = TREE["one document"]
    assert jobs_for_parsed(raw, None, POLICY) == jobs_for_message(raw, POLICY)


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_structure_gives_the_raw_walks_jobs(name: str) -> None:
    same_jobs(HOSTILE[name])


@pytest.mark.parametrize("case", corpus.CASES, ids=lambda c: c.name)
def test_the_hostile_corpus_gives_the_raw_walks_jobs(case: corpus.Case) -> None:
    same_jobs(case.build())


def test_the_virus_builders_give_the_raw_walks_jobs() -> None:
    for name in ("clean", "eicar_plain", "eicar_zipped", "eicar_nested"):
        same_jobs(getattr(hostile_mail, name)())


SEEDS = [TREE["detached pair"], TREE["RFC 2231 continuations"], TREE["nested multipart"],
         TREE["quoted-printable file"], RAW["multipart/signed"]]  # fmt: skip
DAMAGE = [b"\r", b"\n", b"\r\n", b"-", b"--", b"--b1", b"--b1--", b" ", b":",
          b"\r\n\r\n", b"=", b"\x00", b"\xff", b"\"", b";", b"*", b"'",
                          b"=?utf-8?q?", b"?="]  # fmt: skip


@DAMAGE_SETTINGS
@given(seed=st.sampled_from(SEEDS), changes=edits(DAMAGE))
def test_damaged_messages_give_the_raw_walks_jobs(seed: bytes, changes: list[Edit]) -> None:
    """Bytes inserted or cut at random places: in names, parameters, delimiters, bodies."""
    same_jobs(damaged(seed, changes))
