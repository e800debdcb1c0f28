"""split_multipart finds delimiters with bytes.find; it must cut exactly where the
RFC 2046 grammar (and the regular expression it replaced) cuts."""

from __future__ import annotations

import base64
import itertools
import re

import pytest

from mailsvc.message import decode_body, parse_head, split_head
from mailsvc.signatures.smime import _parse, _types, split_multipart


def reference(raw: bytes, boundary: str) -> list[bytes]:
    m = re.search(rb"\r?\n\r?\n", raw)
    body = raw[m.end() :] if m else b""
    delim = re.escape(b"--" + boundary.encode("ascii", "replace"))
    pattern = re.compile(rb"(?:^|\r?\n)" + delim + rb"(--)?[ \t]*(?=\r?\n|$)")
    matches = list(pattern.finditer(body))
    parts: list[bytes] = []
    for current, following in itertools.pairwise(matches):
        if current.group(1):
            break
        start = current.end()
        if body.startswith(b"\r\n", start):
            start += 2
        elif body.startswith(b"\n", start):
            start += 1
        parts.append(body[start : following.start()])
    return parts


HEAD = b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
BODIES = [
    b"--b1\r\nA: 1\r\n\r\none\r\n--b1\r\n\r\ntwo\r\n--b1--\r\n",
    b"preamble\r\n--b1\r\n\r\none\r\n--b1  \t\r\n\r\ntwo\r\n--b1--  \r\nepilogue",
    b"--b1\n\none\n--b1\n\ntwo\n--b1--",
    b"--b1\r\n\r\nnot a --b1 delimiter\r\nx--b1\r\n--b1x\r\n--b1\r\n\r\nlast\r\n--b1--",
    b"--b1\r\n\r\nno close\r\n--b1\r\n\r\nsecond",
    b"--b1\r\n\r\n\r\n--b1\r\n--b1--\r\n",
    b"",
]


@pytest.mark.parametrize("body", BODIES)
def test_same_cut_as_the_grammar(body: bytes) -> None:
    raw = HEAD + body
    assert split_multipart(raw, "b1") == reference(raw, "b1")


def test_head_and_body_decoding() -> None:
    data = bytes(range(256)) * 50
    encoded = base64.encodebytes(data)
    raw = b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + encoded
    head, body = split_head(raw)
    assert head.endswith(b"base64")
    part = parse_head(raw)
    assert part.get_content_type() == "application/pdf" and body == encoded
    assert decode_body(part, body) == data
    qp = parse_head(b"Content-Transfer-Encoding: quoted-printable\r\n\r\n")
    assert decode_body(qp, b"Vi=E1=BB=87t") == "Việt".encode()
    assert split_head(b"Subject: no body") == (b"Subject: no body", b"")


HEADS = [
    b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; boundary=b1',
    b"Content-Type: Multipart/Signed (comment); Protocol=application/pgp-signature; boundary=x",
    b'Content-Type: application/pkcs7-mime; smime-type="signed-data"; name="smime.p7m"',
    b"Content-Type: application/x-pkcs7-mime; smime-type=enveloped-data",
    b'Content-Disposition: attachment; filename="=?utf-8?b?UXV54bq/dCDEkeG7i25oLnBkZg==?="',
    b"Content-Disposition: attachment; filename*=utf-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh.pdf",
    b"Content-Disposition: attachment; filename*0=\"qd-\"; filename*1=\"12.pdf\"",
    b"Content-Type: application/pdf; name=\"a.pdf\"\r\nContent-Disposition: inline",
    b'Content-Type: text/plain; name="one.pdf"; name="two.pdf"',
    b"Content-Type: application/pdf\r\nContent-Type: multipart/mixed; boundary=z",
    b"Content-Type: garbage",
    b"Content-Type: ; boundary=q",
    b'Content-Type: multipart/mixed; boundary="  spaced  "',
    b"Content-Disposition: attachment; filename=\"K\xc3\xadnh g\xe1\xbb\xadi.pdf\"",
    b"Content-Type: multipart/mixed; boundary=\r\n =?utf-8?q?encoded?=",
    b"X-Other: 1",
]


@pytest.mark.parametrize("head", HEADS)
def test_the_walk_reads_types_and_names_as_the_entity_would(head: bytes) -> None:
    """jobs_for_message parses each entity's Content-Type and Content-Disposition once and
    asks a plain message holding those values; every answer equals the entity's own."""
    part = _parse(head + b"\r\n\r\nbody\r\n")
    types = _types(part)
    assert types.get_content_type() == part.get_content_type()
    assert types.get_content_maintype() == part.get_content_maintype()
    assert types.get_boundary() == part.get_boundary()
    assert types.get_filename() == part.get_filename()
    for param in ("protocol", "smime-type", "name"):
        assert types.get_param(param, "", header="content-type") == part.get_param(
            param, "", header="content-type"
        )
