"""Hypothesis fuzzing of the parse → stages → verdict path, through a running mailsvc.

Messages are built from hostile pieces (header fields with odd names, separators and
bytes; MIME trees with random types, encodings, boundaries and bodies; broken PDFs,
zips and DOCX files as attachments) or are corpus messages with bytes flipped,
inserted, cut and lines repeated. For every one:

- the server answers 250, 4xx or 5xx within ``BOUND_SECONDS``;
- no exception escapes a stage (no "stage … crashed" / "check unavailable" log);
- never a 4xx: every dependency is up, so no cause here is transient.

CI runs ``MAILSVC_FUZZ_EXAMPLES`` examples (default 40, derandomized: the same ones
every run); ``scripts/fuzz`` runs thousands with fresh randomness.
"""

from __future__ import annotations

import base64
import os
import zlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.documents import samples
from tests.documents.test_cms import compressed_cms
from tests.hostile import corpus
from tests.hostile.conftest import ThreadedServer

EXAMPLES = int(os.environ.get("MAILSVC_FUZZ_EXAMPLES", "40"))
LONG_RUN = "MAILSVC_FUZZ_EXAMPLES" in os.environ
BOUND_SECONDS = 60.0

FIELD_NAMES = [b"From", b"To", b"Subject", b"Sender", b"Reply-To", b"Content-Type",
               b"Content-Transfer-Encoding", b"Content-Disposition", b"MIME-Version",
               b"Message-ID", b"Date", b"X-Tr\xe1\xbb\x91", b"DKIM-Signature", b"", b"Cc",
               b"Resent-From", b"Resent-To", b"In-Reply-To", b"References", b"Auto-Submitted",
               b"Disposition-Notification-To", b"Return-Receipt-To"]  # fmt: skip
SEPARATORS = [b": ", b":", b" : ", b"\t:", b":\t", b"", b"::"]
TOKENS = [b"cv@sender.example.vn", b"<giamdoc@sotttt.example.vn>", b'"a@b" <c@d>', b"(((",
          b"grp:;", b"=?utf-8?b?4oCu?=", b"=?x?q?=00?=", b"\x00", b"\r", b"\xff\xfe",
          b"\xe2\x80\xae", b"multipart/mixed; boundary=", b"base64", b"quoted-printable",
          b"attachment; filename*=utf-8''%E2%80%AE", b"message/rfc822", b";", b",",
          b"\r\n ", b"\r\n\t", b"application/pdf", b"text/plain; charset=utf-8",
          # pieces the email package's structured parsers raise on ("<@b>", "To: <")
          b"<", b">", b"@", b"[", b"]", b"\\", b'"', b"*", b"<@b>"]  # fmt: skip
CTYPES = [b"text/plain", b"text/html", b"application/pdf", b"application/zip",
          b"application/octet-stream", b"message/rfc822", b"multipart/mixed",
          b"multipart/alternative", b"multipart/report", b"multipart/digest",
          b"application/vnd.openxmlformats-officedocument.wordprocessingml.document",
          b"image/png", b"x-garbage/\xff", b"multipart/signed", b"application/pkcs7-signature",
          b"application/pkcs7-mime", b"multipart/encrypted", b"application/pgp-encrypted",
          b"message/delivery-status", b"application/x-rar", b"application/x-7z-compressed",
          b"application/rtf"]  # fmt: skip
ENCODINGS = [b"7bit", b"8bit", b"base64", b"quoted-printable", b"binary", b"x-uuencode", b""]

MINIATURE_PDF = corpus.pdf_objects(
    [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
        b"<< /Length 44 >>\nstream\nBT /F1 12 Tf 72 720 Td (Cong van) Tj ET\nendstream",
    ]
)
BLOBS = [
    MINIATURE_PDF,
    MINIATURE_PDF[: len(MINIATURE_PDF) // 2],
    MINIATURE_PDF.replace(b"/Kids [3 0 R]", b"/Kids [2 0 R]"),
    corpus.hostile_mail.zip_bytes({"a.txt": b"noi dung " * 200}),
    corpus.hostile_mail.zip_bytes({"a.txt": b"x" * 1000})[:80],
    corpus.docx_package(
        b"<w:document><w:body><w:p><w:r><w:t>x</w:t></w:r></w:p></w:body></w:document>"
    ),
    zlib.compress(b"\x00" * 100_000),
    b"%PDF-1.7\n" + bytes(range(256)) * 4,
    b"PK\x03\x04" + bytes(300),
    # what the wrappers the checks open look like: CMS (S/MIME, .p7m), RAR, 7z, RTF
    compressed_cms(b"Content-Type: text/plain\r\n\r\nT\xe1\xbb\x90I M\xe1\xba\xacT\r\n"),
    compressed_cms(MINIATURE_PDF)[:120],
    samples.make_rar({"bao-cao.txt": b"noi dung " * 50}),
    samples.make_7z({"bao-cao.txt": b"noi dung " * 50}),
    samples.make_rtf("Công văn số 12/STTTT-VP"),
    b"-----BEGIN PGP MESSAGE-----\r\n\r\nhQEMA5/\r\n-----END PGP MESSAGE-----\r\n",
]
# Built once here (the email package draws random boundaries: not inside a strategy).
SEEDS = [c.build() for c in corpus.CASES if c.listener == "smtp" and c.name in corpus.SMALL_CASES]


@st.composite
def header_field(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(FIELD_NAMES) | st.binary(min_size=1, max_size=12))
    separator = draw(st.sampled_from(SEPARATORS))
    value = b"".join(draw(st.lists(st.sampled_from(TOKENS) | st.binary(max_size=24), max_size=6)))
    return name + separator + value[:900]


@st.composite
def mime_entity(draw: st.DrawFn, depth: int = 0) -> bytes:
    ctype = draw(st.sampled_from(CTYPES))
    encoding = draw(st.sampled_from(ENCODINGS))
    head = [b"Content-Type: " + ctype]
    boundary = draw(st.sampled_from([b"b", b"--", b"", b'"q', b"x" * 80]))
    if ctype.startswith(b"multipart/"):
        head[0] += b'; boundary="' + boundary + b'"'
    if encoding:
        head.append(b"Content-Transfer-Encoding: " + encoding)
    if draw(st.booleans()):
        name = draw(
            st.sampled_from([b"tai-lieu.pdf", b"a\xe2\x80\xaefdp.exe", b"=?utf-8?b?\xff?="])
        )
        head.append(b'Content-Disposition: attachment; filename="' + name + b'"')
    head += draw(st.lists(header_field(), max_size=2))
    if ctype.startswith(b"multipart/") and depth < 4:
        children = draw(st.lists(mime_entity(depth + 1), max_size=4))
        closing = draw(st.booleans())
        body = b"".join(b"--" + boundary + b"\r\n" + child + b"\r\n" for child in children)
        body += b"--" + boundary + b"--\r\n" if closing else b""
    elif ctype == b"message/rfc822" and depth < 4:
        body = draw(message(depth + 1))
    else:
        blob = draw(st.sampled_from(BLOBS) | st.binary(max_size=300))
        if encoding == b"base64":
            body = base64.encodebytes(blob).replace(b"\n", b"\r\n")
            if draw(st.booleans()):
                body = body[: draw(st.integers(0, len(body)))] + b"!*\r\n"
        else:
            body = b"\r\n".join(blob[i : i + 76] for i in range(0, len(blob), 76))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


@st.composite
def message(draw: st.DrawFn, depth: int = 0, sender: str = corpus.SENDER) -> bytes:
    fields = [b"From: " + sender.encode(), b"To: " + corpus.RECIPIENT.encode()]
    fields += draw(st.lists(header_field(), max_size=5))
    order = draw(st.permutations(fields))
    entity = draw(mime_entity(depth))
    return b"\r\n".join(order) + b"\r\nMIME-Version: 1.0\r\n" + entity


@st.composite
def mutated_seed(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 8))):
        if not raw:
            break
        at = draw(st.integers(0, len(raw) - 1))
        action = draw(st.sampled_from(["flip", "insert", "cut", "repeat"]))
        if action == "flip":
            raw[at] = draw(st.integers(0, 255))
        elif action == "insert":
            raw[at:at] = draw(st.sampled_from(TOKENS))
        elif action == "cut":
            del raw[at : at + draw(st.integers(1, 2000))]
        else:
            end = raw.find(b"\n", at)
            if end != -1:
                line = raw[raw.rfind(b"\n", 0, at) + 1 : end + 1]
                raw[end + 1 : end + 1] = line * draw(st.integers(1, 50))
    return bytes(raw)


FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=not LONG_RUN,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@FUZZ
@given(raw=message() | mutated_seed())
def test_every_message_gets_a_definite_answer_in_time(
    hostile_server: ThreadedServer, raw: bytes
) -> None:
    crashes_before = len(hostile_server.watch.crashes)
    reply = hostile_server.send(raw, timeout=BOUND_SECONDS * 2)
    assert reply.code in (250,) or 500 <= reply.code < 600, reply
    assert reply.seconds < BOUND_SECONDS, reply
    hostile_server.idle()
    assert hostile_server.watch.crashes[crashes_before:] == []


@FUZZ
@given(
    raw=message(sender=corpus.OFFICIAL),
    recipient=st.sampled_from([corpus.RECIPIENT, corpus.DISPATCH]),
)
def test_every_submission_gets_a_definite_answer_in_time(
    hostile_server: ThreadedServer, raw: bytes, recipient: str
) -> None:
    """The same through the submission port, logged in as an official: to a colleague,
    or as a draft to the dispatch address (registered for issuing)."""
    crashes_before = len(hostile_server.watch.crashes)
    reply = hostile_server.send(
        raw,
        listener="submission",
        sender=corpus.OFFICIAL,
        recipient=recipient,
        timeout=BOUND_SECONDS * 2,
    )
    assert reply.code in (250,) or 500 <= reply.code < 600, reply
    assert reply.seconds < BOUND_SECONDS, reply
    hostile_server.idle()
    assert hostile_server.watch.crashes[crashes_before:] == []
