"""The hostile corpus: every message with the SMTP answer it must get and a time bound.

Small messages are files in ``messages/`` (LF line ends, sent as CRLF); big ones, and
those whose trick is a byte that does not survive an editor (NUL, bare CR, invalid
UTF-8), are built here by code at test time. ``CASES`` is the table the corpus test
walks; ``scripts/fuzz`` and the fuzz test reuse the builders as seeds.

Expected answers: ``250`` accepted (delivered, perhaps as reference only or to Junk),
``5xx`` a definite refusal (with a fragment of its text), never ``4xx``: every cause
here is permanent, so a retry cannot help.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import tests.hostile_mail as hostile_mail  # EICAR, bombs, deep nesting
from tests.documents.cfb import (
    Storage,
    legacy_ppt_with_object,
    ole_object,
    ole_package,
    write_cfb,
)
from tests.documents.samples import embed_in_docx, make_docx, make_pdf, make_photo, make_rar
from tests.documents.tnef import winmail_dat

HERE = Path(__file__).parent
MESSAGES = HERE / "messages"
SENDER = "cv@sender.example.vn"
RECIPIENT = "vanthu@sotttt.example.vn"
OFFICIAL = "annv.stttt@sotttt.example.vn"
DISPATCH = "phathanh@sotttt.example.vn"  # a draft sent here is registered for issuing


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    code: int  # the DATA reply's code: 250, 550-554
    text: str = ""  # a fragment of the reply text ("" = any)
    seconds: float = 20.0  # from end of DATA to the reply
    listener: str = "smtp"  # or "submission" (logged in as OFFICIAL)
    sender: str = SENDER
    recipient: str = RECIPIENT


FILES_USED: set[str] = set()


def _file(name: str) -> Callable[[], bytes]:
    FILES_USED.add(name)

    def build() -> bytes:
        return (MESSAGES / f"{name}.eml").read_bytes().replace(b"\n", b"\r\n")

    return build


def head(from_line: bytes = b"From: cv@sender.example.vn", **extra: str) -> bytes:
    lines = [from_line, f"To: {RECIPIENT}".encode(), b"Subject: Hostile", b"MIME-Version: 1.0"]
    lines += [f"{k.replace('_', '-')}: {v}".encode() for k, v in extra.items()]
    return b"\r\n".join(lines) + b"\r\n"


def plain(body: bytes = b"Kinh gui.\r\n", header: bytes | None = None) -> bytes:
    return (header or head()) + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + body


def with_part(data: bytes, filename: str, ctype: str = "application/octet-stream") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = "Gui tai lieu"
    msg["Message-ID"] = "<hostile-part@sender.example.vn>"
    msg.set_content("Kinh gui tai lieu dinh kem.\n")
    maintype, _, subtype = ctype.partition("/")
    msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def raw_part(disposition: str, payload: bytes = b"SGVsbG8=\r\n") -> bytes:
    """One base64 attachment whose Content-Disposition is given literally."""
    return (
        head(Content_Type='multipart/mixed; boundary="p"')
        + b"\r\n--p\r\nContent-Type: text/plain\r\n\r\nKinh gui.\r\n--p\r\n"
        + b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
        + b"Content-Disposition: "
        + disposition.encode()
        + b"\r\n\r\n"
        + payload
        + b"--p--\r\n"
    )


# --- header section ------------------------------------------------------------------


def bare_cr_in_subject() -> bytes:
    return plain(header=head() + b"X-Trick: a\rFrom: giamdoc@sotttt.example.vn\r\n")


def nul_in_header() -> bytes:
    return plain(header=head() + b"X-Note: a\x00b\r\n")


def eight_bit_field_name() -> bytes:
    return plain(header=head() + "Tiêu-đề: x\r\n".encode())


def invalid_utf8_in_from() -> bytes:
    return plain(header=head(b"From: \xc3\x28\xff <cv@sender.example.vn>"))


def invalid_utf8_in_subject() -> bytes:
    return plain(header=head() + b"X-Subject-2: \xc3\x28\xa0\xa1\xff\r\n")


def from_nested_comments() -> bytes:
    return plain(header=head(b"From: " + b"\r\n ".join([b"(" * 750] * 2) + b"cv@sender.example.vn"))


def from_over_cap() -> bytes:
    names = b"\r\n ".join(b'"Nguoi gui %d" <a%d@sender.example.vn>,' % (i, i) for i in range(80))
    return plain(header=head(b"From: " + names + b"\r\n cv@sender.example.vn"))


def from_folded_200k() -> bytes:
    names = b"\r\n ".join(b'"Nguoi gui %d" <a%d@sender.example.vn>,' % (i, i) for i in range(5000))
    return plain(header=head(b"From: " + names + b"\r\n cv@sender.example.vn"))


def many_header_fields() -> bytes:
    return plain(header=head() + b"".join(b"X-F-%d: v\r\n" % i for i in range(1200)))


def huge_header_section() -> bytes:
    return hostile_mail.huge_header().replace(
        b"From: sender@partner.example.vn", b"From: cv@sender.example.vn"
    )


def long_header_line_folded() -> bytes:
    # 20 KB in one physical line cannot pass SMTP (1,000 octets): folded in 900-byte
    # lines, it is one 20 KB field (within limits) — accepted.
    value = b"\r\n ".join([b"A" * 900] * 22)
    return plain(header=head() + b"X-Long: " + value + b"\r\n")


# --- bodies ----------------------------------------------------------------------------


def nul_in_body() -> bytes:
    return plain(b"Kinh gui\x00 van ban\x00\x00.\r\n")


def invalid_utf8_body() -> bytes:
    return plain(b"Kinh g\xc3\x28i \xed\xa0\x80 \xf8\x88\x80\x80\x80 \xff\xfe\r\n")


def ten_thousand_tiny_parts() -> bytes:
    return hostile_mail.many_parts(10_000).replace(
        b"sender@partner.example.vn", b"cv@sender.example.vn"
    )


def nested_rfc822_200() -> bytes:
    inner = plain()
    for level in range(200):
        inner = (
            head(Content_Type="message/rfc822").replace(b"Hostile", b"Level %d" % level)
            + b"\r\n"
            + inner
        )
    return inner


def nested_multipart_200() -> bytes:
    return hostile_mail.deep_nesting(200).replace(
        b"sender@partner.example.vn", b"cv@sender.example.vn"
    )


def base64_with_garbage() -> bytes:
    data = base64.encodebytes(b"Bao cao quy III\n" * 50).replace(b"\n", b"\r\n")
    garbage = data.replace(b"\r\n", b"!!*~\x01\r\n", 5) + b"====@@@@\r\n"
    return raw_part('attachment; filename="bao-cao.txt"', garbage).replace(
        b"application/pdf", b"text/plain"
    )


def base64_bad_padding_pdf() -> bytes:
    return raw_part('attachment; filename="cong-van.pdf"', b"JVBERi0xLjcKJeLjz9MKMSAwIG9i=\r\n")


def truncated_base64_pdf() -> bytes:
    encoded = base64.encodebytes(pdf_objects([b"<< /Type /Catalog /Pages 2 0 R >>"] * 3))
    encoded = encoded.replace(b"\n", b"\r\n")
    return raw_part('attachment; filename="cong-van.pdf"', encoded[: len(encoded) // 2])


# --- file names --------------------------------------------------------------------------


def rtl_override_filename() -> bytes:
    return with_part(b"MZ\x90\x00 not really", "hoa-don-\u202efdp.exe")


def rtl_isolate_filename() -> bytes:
    return with_part(b"%PDF-1.4 fake", "quyet-dinh\u2067fdp.scr\u2069.pdf", "application/pdf")


def zero_width_filename() -> bytes:
    return with_part(b"data", "cong\u200b-van\u200d.pdf\u200b.exe")


def bom_in_filename() -> bytes:
    return with_part(b"data", "\ufeffbao-cao.pdf")


def control_char_filename() -> bytes:
    return raw_part("attachment; filename*=utf-8''bao%0D%0Acao.pdf")


def invalid_percent_filename() -> bytes:
    return raw_part("attachment; filename*=utf-8''%FF%FE%ZZbao.pdf")


def long_filename() -> bytes:
    return with_part(b"data", "tai-lieu-" + "rat-dai-" * 120 + ".txt", "text/plain")


def path_traversal_filename() -> bytes:
    return with_part(b"data", "../../../../etc/cron.d/evil", "text/plain")


# --- archives ----------------------------------------------------------------------------


def zip_bomb() -> bytes:
    return _retarget(hostile_mail.with_attachment(hostile_mail.zip_bomb(), "tai-lieu.zip"))


def ratio_bomb() -> bytes:
    return _retarget(hostile_mail.with_attachment(hostile_mail.ratio_bomb(), "so-lieu.zip"))


def zip_nested_deep() -> bytes:
    blob = hostile_mail.zip_bytes({"cuoi.txt": b"x"})
    for level in range(6):
        blob = hostile_mail.zip_bytes({f"lop{level}.zip": blob})
    return _retarget(hostile_mail.with_attachment(blob, "long-nhau.zip"))


def zip_many_entries() -> bytes:
    blob = hostile_mail.zip_bytes({f"f{i}.txt": b"" for i in range(6000)}, zipfile.ZIP_STORED)
    return _retarget(hostile_mail.with_attachment(blob, "nhieu-tep.zip"))


def zip_truncated() -> bytes:
    blob = hostile_mail.zip_bytes({"a.txt": b"noi dung " * 1000})
    return _retarget(hostile_mail.with_attachment(blob[: len(blob) // 2], "hong.zip"))


def gzip_bomb() -> bytes:
    data = zlib.compressobj(9, zlib.DEFLATED, 31)
    blob = data.compress(bytes(64 * 1024 * 1024)) + data.flush()
    return _retarget(hostile_mail.with_attachment(blob, "so-lieu.gz", "gzip"))


def eicar_attachment() -> bytes:
    return _retarget(hostile_mail.eicar_plain())


def eicar_zipped() -> bytes:
    return _retarget(hostile_mail.eicar_zipped())


def eicar_in_nested_message() -> bytes:
    return _retarget(hostile_mail.eicar_nested())


def _retarget(raw: bytes) -> bytes:
    return raw.replace(b"sender@partner.example.vn", SENDER.encode()).replace(
        b"clerk@example.vn", RECIPIENT.encode()
    )


# --- PDF ---------------------------------------------------------------------------------


def pdf_objects(
    objects: list[bytes], *, xref: bool = True, offset_shift: int = 0, trailer: bytes = b""
) -> bytes:
    """A PDF from object bodies (object 1 is the catalog), with a classic xref table."""
    out = io.BytesIO()
    out.write(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    start = out.tell()
    if xref:
        out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
        out.writelines(b"%010d 00000 n \n" % (o + offset_shift) for o in offsets)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n"
        % (len(objects) + 1, trailer, start)
    )
    return out.getvalue()


def _stream(data: bytes, extra: bytes = b"", flate: bool = False) -> bytes:
    if flate:
        data = zlib.compress(data, 9)
        extra += b" /Filter /FlateDecode"
    return b"<< /Length %d%s >>\nstream\n" % (len(data), extra) + data + b"\nendstream"


CONTENT = b"BT /F1 12 Tf 72 720 Td (Cong van so 12) Tj ET"
FONT = b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"


def _pdf_mail(pdf: bytes, name: str = "cong-van.pdf") -> bytes:
    return with_part(pdf, name, "application/pdf")


def pdf_page_tree_loop() -> bytes:
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [2 0 R 3 0 R] /Count 2 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                _stream(CONTENT),
            ]
        )
    )


def pdf_page_tree_cycle() -> bytes:
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1000000 >>",
                b"<< /Type /Pages /Parent 2 0 R /Kids [2 0 R 3 0 R] /Count 1000000 >>",
            ]
        )
    )


def pdf_huge_object_stream() -> bytes:
    """An object stream declaring ten million objects, inflating to 64 MiB."""
    body = b"5 0 " * (16 * 1024 * 1024)
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                _stream(CONTENT),
                _stream(body, b" /Type /ObjStm /N 10000000 /First 16", flate=True),
            ]
        )
    )


def pdf_content_flate_bomb() -> bytes:
    """A page whose content stream inflates to 256 MiB of spaces."""
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
                _stream(CONTENT + b" " * (256 * 1024 * 1024), flate=True),
            ]
        )
    )


def pdf_broken_xref() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
        b" /Resources << /Font << /F1 5 0 R >> >> >>",
        _stream(CONTENT),
        FONT,
    ]
    return _pdf_mail(pdf_objects(objects, offset_shift=37))


def pdf_no_xref_garbage_startxref() -> bytes:
    raw = pdf_objects([b"<< /Type /Catalog /Pages 2 0 R >>"], xref=False)
    return _pdf_mail(raw.replace(b"startxref\n", b"startxref\n99999999999999999999"))


def pdf_50000_pages() -> bytes:
    count = 50_000
    kids = b" ".join(b"%d 0 R" % (i + 4) for i in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [" + kids + b"] /Count %d >>" % count,
        _stream(CONTENT),
    ]
    objects += [b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 3 0 R >>"] * count
    return _pdf_mail(pdf_objects(objects))


def pdf_deeply_nested_arrays() -> bytes:
    depth = 100_000
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R /X " + b"[" * depth + b"]" * depth + b" >>",
                b"<< /Type /Pages /Kids [] /Count 0 >>",
            ]
        )
    )


def pdf_truncated() -> bytes:
    raw = pdf_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R >>",
            _stream(CONTENT),
        ]
    )
    return _pdf_mail(raw[: len(raw) // 2])


def pdf_fake_signature() -> bytes:
    """A signature field whose /Contents and /ByteRange are nonsense."""
    sig = (
        b"<< /Type /Sig /Filter /Adobe.PPKLite /SubFilter /adbe.pkcs7.detached"
        b" /ByteRange [0 99999999 99999999 5] /Contents <3082FFFF0000> >>"
    )
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [5 0 R] /SigFlags 3 >> >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
                b" /Annots [5 0 R] >>",
                _stream(CONTENT),
                b"<< /FT /Sig /T (Chu ky) /Type /Annot /Subtype /Widget /Rect [0 0 0 0]"
                b" /P 3 0 R /V 6 0 R >>",
                sig,
            ]
        )
    )


def pdf_javascript() -> bytes:
    return _pdf_mail(
        pdf_objects(
            [
                b"<< /Type /Catalog /Pages 2 0 R /OpenAction << /S /JavaScript"
                b" /JS (app.alert\\('x'\\); this.exportDataObject\\({cName: 'a'}\\)) >> >>",
                b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
                b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R"
                b" /Resources << /Font << /F1 5 0 R >> >> >>",
                _stream(CONTENT),
                FONT,
            ]
        )
    )


def pdf_not_a_pdf() -> bytes:
    return _pdf_mail(b"MZ\x90\x00\x03" + bytes(2000), "quyet-dinh.pdf")


# --- DOCX ----------------------------------------------------------------------------------

DOCX_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/'
    b'package/2006/content-types"><Default Extension="xml" ContentType="application/xml"/>'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
    b'relationships+xml"/><Override PartName="/word/document.xml" ContentType="application/'
    b'vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/></Types>'
)
DOCX_RELS = (
    b'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="http://schemas.'
    b'openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type="http://'
    b'schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target='
    b'"word/document.xml"/></Relationships>'
)
W = b"http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def docx_package(document: bytes) -> bytes:
    return hostile_mail.zip_bytes(
        {"[Content_Types].xml": DOCX_TYPES, "_rels/.rels": DOCX_RELS, "word/document.xml": document}
    )


def _docx_mail(docx: bytes) -> bytes:
    return with_part(
        docx,
        "cong-van.docx",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    )


def docx_100000_runs() -> bytes:
    # Varied text (a hash chain) so the part compresses like a real document, not a bomb.
    words = [hashlib.sha256(b"%d" % i).hexdigest()[:12].encode() for i in range(100_000)]
    runs = b"".join(b"<w:r><w:t>" + w + b" </w:t></w:r>" for w in words)
    doc = b'<w:document xmlns:w="' + W + b'"><w:body><w:p>' + runs + b"</w:p></w:body></w:document>"
    return _docx_mail(docx_package(doc))


def docx_deep_elements() -> bytes:
    depth = 50_000
    doc = (
        b'<w:document xmlns:w="' + W + b'"><w:body>'
        + b"<w:p>" * depth + b"<w:r><w:t>x</w:t></w:r>" + b"</w:p>" * depth
        + b"</w:body></w:document>"
    )  # fmt: skip
    return _docx_mail(docx_package(doc))


def docx_entity_expansion() -> bytes:
    lol = b"".join(
        b'<!ENTITY l%d "%s">' % (i, b"&l%d;" % (i - 1) * 10) if i else b'<!ENTITY l0 "lol">'
        for i in range(10)
    )
    doc = (
        b'<?xml version="1.0"?><!DOCTYPE w:document [' + lol + b']><w:document xmlns:w="'
        + W + b'"><w:body><w:p><w:r><w:t>&l9;</w:t></w:r></w:p></w:body></w:document>'
    )  # fmt: skip
    return _docx_mail(docx_package(doc))


def docx_missing_document() -> bytes:
    blob = hostile_mail.zip_bytes({"[Content_Types].xml": DOCX_TYPES, "_rels/.rels": DOCX_RELS})
    return _docx_mail(blob)


def docx_not_xml() -> bytes:
    return _docx_mail(docx_package(b"\x00\xff<w:document <<<< not xml"))


# --- submission -----------------------------------------------------------------------------


def submission(from_line: str) -> Callable[[], bytes]:
    def build() -> bytes:
        return plain(header=head(from_line.encode()))

    return build


# The fields whose values the email package parses as structured (its header registry:
# addresses, dates, message ids, MIME fields): on some hostile values its parser raises
# IndexError or AttributeError instead of recording a defect. Each goes into a message
# carrying a document (the register, the metadata and the exchange readers run) and, but
# the originator fields, into an official's submission.
STRUCTURED_FIELDS = (
    "From", "Sender", "Reply-To", "Resent-From", "Resent-Sender",
    "To", "Cc", "Bcc", "Resent-To", "Resent-Cc", "Resent-Bcc",
    "Message-ID", "Date", "Resent-Date", "Orig-Date",
    "MIME-Version", "Content-Type", "Content-Disposition", "Content-Transfer-Encoding",
)  # fmt: skip
ORIGINATOR_FIELDS = frozenset({"From", "Sender", "Reply-To", "Resent-From", "Resent-Sender"})
# Each raised in the email package's parser for most of the fields above (IndexError,
# AttributeError): found by feeding it random values.
UNPARSABLE_VALUES = ("<", "*@[b\\:@ ", "<@b>")


def unparsable_field(name: str, value: str, *, official: bool = False) -> Callable[[], bytes]:
    """A document message (a text PDF attached) whose ``name`` field is ``value``, added
    to the fields it has or in place of its own."""

    def build() -> bytes:
        from tests.documents.samples import make_pdf

        msg = EmailMessage(policy=SMTP)
        msg["From"] = OFFICIAL if official else SENDER
        msg["To"] = RECIPIENT
        msg["Subject"] = "Công văn số 12/STTTT-VP"
        msg["Message-ID"] = f"<unparsable-{name.lower()}@sender.example.vn>"
        msg.set_content("Kính gửi: Văn phòng.\n")
        msg.add_attachment(
            make_pdf("Công văn số 12/STTTT-VP\nV/v báo cáo"),
            maintype="application",
            subtype="pdf",
            filename="12-STTTT.pdf",
        )
        raw = msg.as_bytes()
        top, _, rest = raw.partition(b"\r\n\r\n")
        prefix = name.lower().encode() + b":"
        kept = [f for f in top.split(b"\r\n") if not f.lower().startswith(prefix)]
        kept.append(f"{name}: {value}".encode())
        return b"\r\n".join(kept) + b"\r\n\r\n" + rest

    return build


# Declared charsets Python cannot decode with: a NUL in the name (ValueError), a byte
# that is not ASCII (UnicodeEncodeError), codecs that fail even with errors="replace"
# (idna, punycode) or are not text codecs (rot13, base64), unknown names.
HOSTILE_CHARSETS = (
    b"\x00utf-8", b"utf-8\x00", b"utf\xff8", b"idna", b"punycode", b"rot13", b"base64",
    b"unicode_escape", b"x" * 200,
)  # fmt: skip


def declared_charset(charset: bytes, layout: str, *, official: bool = False) -> Callable[[], bytes]:
    """A message whose text part declares ``charset``: alone ("plain"), beside a PDF
    document ("document") or as the HTML of a multipart/alternative ("html")."""

    def build() -> bytes:
        from tests.documents.samples import make_pdf

        sender = OFFICIAL if official else SENDER
        text = (
            b"Content-Type: text/" + (b"html" if layout == "html" else b"plain")
            + b'; charset="' + charset + b'"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n'
            + "Kính gửi: Văn phòng. Công văn số 12/STTTT-VP \\x =FF\r\n".encode()
        )  # fmt: skip
        top = (
            f"From: {sender}\r\nTo: {RECIPIENT}\r\nSubject: Charset\r\n"
            f"Message-ID: <charset-{layout}-{charset.hex()[:40]}@sender.example.vn>\r\n"
            "MIME-Version: 1.0\r\n"
        ).encode()
        if layout == "plain":
            return top + text
        if layout == "html":
            plain = b"Content-Type: text/plain; charset=utf-8\r\n\r\nKinh gui.\r\n"
            return (
                top + b'Content-Type: multipart/alternative; boundary="a"\r\n\r\n'
                + b"--a\r\n" + plain + b"--a\r\n" + text + b"--a--\r\n"
            )  # fmt: skip
        pdf = base64.encodebytes(make_pdf("Công văn số 12/STTTT-VP")).replace(b"\n", b"\r\n")
        return (
            top + b'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
            + b"--m\r\n" + text + b"--m\r\n"
            + b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            + b'Content-Disposition: attachment; filename="12-STTTT.pdf"\r\n\r\n'
            + pdf + b"--m--\r\n"
        )  # fmt: skip

    return build


def _charset_cases() -> tuple[Case, ...]:
    cases = []
    for i, charset in enumerate(HOSTILE_CHARSETS):
        for layout in ("plain", "document", "html"):
            # A NUL in the message's own header section is refused before anything reads it.
            top_nul = layout == "plain" and b"\x00" in charset
            code, text = (554, "control character") if top_nul else (250, "")
            build = declared_charset(charset, layout)
            cases.append(Case(f"charset-{layout}-{i}", build, code, text))
        official = declared_charset(charset, "document", official=True)
        cases.append(_submitted(f"draft-charset-{i}", official, recipient=DISPATCH))
    return tuple(cases)


def _submitted(name: str, build: Callable[[], bytes], recipient: str = RECIPIENT) -> Case:
    """An official's submission that must be accepted."""
    return Case(
        name, build, 250, seconds=30, listener="submission", sender=OFFICIAL, recipient=recipient
    )


def _unparsable_cases() -> tuple[Case, ...]:
    cases = []
    for name in STRUCTURED_FIELDS:
        for i, value in enumerate(UNPARSABLE_VALUES):
            refused = name in ORIGINATOR_FIELDS
            cases.append(
                Case(
                    f"unparsable-{name.lower()}-{i}",
                    unparsable_field(name, value),
                    554 if refused else 250,
                    "cannot be parsed" if refused else "",
                    seconds=30,
                )
            )
            official = unparsable_field(name, value, official=True)
            if not refused:
                cases.append(_submitted(f"submission-unparsable-{name.lower()}-{i}", official))
            if name in ("To", "Cc"):  # the draft's recipients are read from these
                label = f"draft-unparsable-{name.lower()}-{i}"
                cases.append(_submitted(label, official, recipient=DISPATCH))
    return tuple(cases)


def ole_packaged(stream: bytes) -> bytes:
    """A DOCX with an object whose OLE Package stream is ``stream`` (as Word stores a PDF
    inserted as an object, but with what a hostile sender writes there)."""
    cfb = write_cfb(Storage({"\x01Ole10Native": stream}))
    cover = make_docx("Kính gửi các đơn vị.")
    return with_part(embed_in_docx(cover, "oleObject1.bin", cfb), "cong-van.docx")


def ole_secret_pdf() -> bytes:
    secret = make_pdf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 118/BC-CAT-PA03")
    cover = make_docx("Kính gửi các đơn vị.")
    docx = embed_in_docx(cover, "oleObject1.bin", ole_object("bc.pdf", secret))
    return with_part(docx, "cong-van.docx")


def ole_lying_length() -> bytes:
    good = ole_package("a.txt", b"TOI MAT " * 100)
    return ole_packaged(good[:-300])  # the file's size says 800 bytes, 500 follow


def ole_fifty_one_objects() -> bytes:
    pool = {f"_{i}": Storage({"\x01Ole10Native": ole_package(f"{i}.txt", b"x")}) for i in range(51)}
    return with_part(write_cfb(Storage({"ObjectPool": Storage(pool)})), "cong-van.doc")


def ole_garbage() -> bytes:
    junk = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\xff" * 2000 + "Kính gửi".encode("utf-16-le")
    return with_part(junk, "cong-van.doc")


def doc_starting_with_a_pdf() -> bytes:
    harmless = make_pdf("UBND HUYỆN\nThông báo lịch tiếp công dân.")
    word = "BỘ CHỈ HUY\rTỐI MẬT\r".encode("utf-16-le")
    return with_part(write_cfb(Storage({"Data": harmless, "WordDocument": word}), first="Data"),
                     "ke-hoach.doc")  # fmt: skip


def winmail_secret() -> bytes:
    secret = make_docx("BỘ CÔNG AN\nMẬT\nSố: 31/KH-BCA")
    return with_part(winmail_dat([("ke-hoach.docx", secret)]), "winmail.dat", "application/ms-tnef")


def winmail_cut() -> bytes:
    whole = winmail_dat([("ke-hoach.docx", make_docx("Kính gửi."))])
    return with_part(whole[: len(whole) // 2], "winmail.dat", "application/ms-tnef")


def message_partial_fragment() -> bytes:
    """The first of three fragments of a message carrying a MẬT PDF (RFC 2046 5.2.2): each
    fragment a message of its own, reassembled by the recipient."""
    whole = with_part(make_pdf("SỞ NỘI VỤ\nMẬT\nSố: 57/SNV"), "bao-cao.pdf", "application/pdf")
    third = len(whole) // 3
    return (
        head(Content_Type='message/partial; id="abc@sender.example.vn"; number=1; total=3')
        + b"\r\n"
        + whole[:third]
    )


def partial_inside_multipart() -> bytes:
    return (
        head(Content_Type='multipart/mixed; boundary="p"')
        + b"\r\n--p\r\nContent-Type: text/plain\r\n\r\nKinh gui.\r\n"
        + b'--p\r\nContent-Type: message/partial; id="x@y"; number=2; total=2\r\n\r\n'
        + base64.encodebytes(b"%PDF-1.7 the rest of the document").replace(b"\n", b"\r\n")
        + b"--p--\r\n"
    )


def external_body() -> bytes:
    return (
        head(Content_Type='multipart/mixed; boundary="p"')
        + b"\r\n--p\r\nContent-Type: text/plain\r\n\r\nKinh gui.\r\n"
        + b"--p\r\nContent-Type: message/external-body; access-type=URL;\r\n"
        + b' URL="http://files.example.com/bao-cao-mat.pdf"\r\n\r\n'
        + b"Content-Type: application/pdf\r\n\r\n--p--\r\n"
    )


def ppt_secret_pdf() -> bytes:
    secret = make_pdf("BỘ CÔNG AN\nTỐI MẬT\nSố: 33/KH-BCA")
    ppt = legacy_ppt_with_object("Kế hoạch năm 2027\r", "ke-hoach.pdf", secret)
    return with_part(ppt, "ke-hoach.ppt", "application/vnd.ms-powerpoint")


def photo_with_secret_rar() -> bytes:
    """``copy /b anh.jpg + ho-so.rar anh.jpg``: WinRAR opens the archive after the photo."""
    secret = "BỘ CÔNG AN\nTỐI MẬT\nSố: 32/KH-BCA".encode()
    return with_part(make_photo() + make_rar({"ke-hoach.txt": secret}), "anh.jpg", "image/jpeg")


def photo_with_rar_cut() -> bytes:
    whole = make_rar({"ke-hoach.txt": "Kính gửi các đơn vị.".encode() * 100})
    return with_part(make_photo() + whole[: len(whole) // 2], "anh.jpg", "image/jpeg")


CASES: tuple[Case, ...] = (
    # header section: what readers disagree about is refused
    Case("from-space-before-colon", _file("from-space-before-colon"), 554, "white space"),
    Case("from-space-before-colon-only", _file("from-space-before-colon-only"), 554, "white space"),
    Case("from-tab-before-colon", _file("from-tab-before-colon"), 554, "white space"),
    Case("subject-space-before-colon", _file("subject-space-before-colon"), 554, "white space"),
    Case("two-from-fields", _file("two-from-fields"), 554, "exactly one From"),
    Case("no-from-field", _file("no-from-field"), 554, "exactly one From"),
    Case("from-two-mailboxes", _file("from-two-mailboxes"), 554, "exactly one mailbox"),
    Case("from-group", _file("from-group"), 554, "cannot be parsed"),
    Case("from-empty-group", _file("from-empty-group"), 554, "cannot be parsed"),
    Case("from-no-address", _file("from-no-address"), 554, "cannot be parsed"),
    Case("from-null-address", _file("from-null-address"), 554, "cannot be parsed"),
    Case("from-unbalanced-angle", _file("from-unbalanced-angle"), 554, "cannot be parsed"),
    Case("sender-twice", _file("sender-twice"), 554, "appears twice"),
    Case("reply-to-twice", _file("reply-to-twice"), 554, "appears twice"),
    Case("not-a-header-line", _file("not-a-header-line"), 554, "not a header field"),
    Case("leading-continuation", _file("leading-continuation"), 554, "not a header field"),
    Case("mbox-from-line", _file("mbox-from-line"), 554, "not a header field"),
    Case("bare-cr-in-header", bare_cr_in_subject, 554, "control character"),
    Case("nul-in-header", nul_in_header, 554, "control character"),
    Case("eight-bit-field-name", eight_bit_field_name, 554, "not a header field"),
    Case("invalid-utf8-in-from", invalid_utf8_in_from, 554, "cannot be parsed"),
    Case("from-nested-comments", from_nested_comments, 554, "cannot be parsed"),
    Case("from-over-2k", from_over_cap, 554, "too large"),
    Case("from-folded-200k", from_folded_200k, 554, "too large"),
    Case("many-header-fields", many_header_fields, 554, "too many header fields"),
    Case("huge-header-section", huge_header_section, 554, "header section too large"),
    Case("content-type-twice", _file("content-type-twice"), 250),
    # accepted as received: odd but harmless
    Case("invalid-utf8-in-header", invalid_utf8_in_subject, 250),
    Case("long-header-folded", long_header_line_folded, 250),
    Case("from-display-name-is-address", _file("from-display-name-is-address"), 250),
    Case("from-encoded-name-crlf", _file("from-encoded-display-name-with-crlf"), 554, "be parsed"),
    Case("subject-encoded-crlf", _file("subject-encoded-crlf"), 250),
    Case("from-vietnamese", _file("from-vietnamese-ok"), 250),
    Case("from-idn-homoglyph", _file("from-idn-homoglyph-ok"), 250),
    Case("nul-in-body", nul_in_body, 250),
    Case("invalid-utf8-body", invalid_utf8_body, 250),
    Case("boundary-never-closed", _file("boundary-never-closed"), 250),
    Case("multipart-without-boundary", _file("multipart-without-boundary"), 250),
    Case("content-type-garbage", _file("content-type-garbage"), 250),
    Case("message-id-empty-local", _file("message-id-empty-local"), 250),
    Case("message-id-open-literal", _file("message-id-open-literal"), 250),
    Case("to-unparsable", _file("to-unparsable"), 250),
    Case("cc-unparsable", _file("cc-unparsable"), 250),
    Case("resent-to-unparsable", _file("resent-to-unparsable"), 250),
    Case("sender-unparsable", _file("sender-unparsable"), 554, "cannot be parsed"),
    Case("quoted-printable-garbage", _file("quoted-printable-garbage"), 250),
    Case("html-script-body", _file("html-script-body"), 250),
    Case("base64-with-garbage", base64_with_garbage, 250),
    # MIME structure
    Case("ten-thousand-tiny-parts", ten_thousand_tiny_parts, 554, "too many MIME parts"),
    Case("nested-rfc822-200", nested_rfc822_200, 554, "MIME nesting too deep"),
    Case("nested-multipart-200", nested_multipart_200, 554, "MIME nesting too deep"),
    # file names that lie about what they are
    Case("rtl-override-filename", rtl_override_filename, 554, "file name"),
    Case("rtl-isolate-filename", rtl_isolate_filename, 554, "file name"),
    Case("zero-width-filename", zero_width_filename, 554, "file name"),
    Case("bom-in-filename", bom_in_filename, 554, "file name"),
    Case("control-char-filename", control_char_filename, 554, "file name"),
    Case("invalid-percent-filename", invalid_percent_filename, 554, "file name"),
    Case("long-filename", long_filename, 250),
    Case("path-traversal-filename", path_traversal_filename, 250),
    # archives and viruses
    Case("zip-bomb", zip_bomb, 554, "archive"),
    Case("ratio-bomb", ratio_bomb, 554, "zip bomb"),
    Case("zip-nested-deep", zip_nested_deep, 554, "nested too deeply"),
    Case("zip-many-entries", zip_many_entries, 554, "too many entries"),
    Case("zip-truncated", zip_truncated, 554, "cannot be read"),
    Case("gzip-bomb", gzip_bomb, 554, "zip bomb"),
    Case("eicar-attachment", eicar_attachment, 554, "virus"),
    Case("eicar-zipped", eicar_zipped, 554, "virus"),
    Case("eicar-in-nested-message", eicar_in_nested_message, 554, "virus"),
    # PDFs: never a crash, never a retry
    Case("base64-bad-padding-pdf", base64_bad_padding_pdf, 554),
    Case("truncated-base64-pdf", truncated_base64_pdf, 554),
    Case("pdf-page-tree-loop", pdf_page_tree_loop, 554, "cannot be read", seconds=30),
    Case("pdf-page-tree-cycle", pdf_page_tree_cycle, 554, "cannot be read", seconds=30),
    Case("pdf-huge-object-stream", pdf_huge_object_stream, 250, seconds=30),
    Case("pdf-content-flate-bomb", pdf_content_flate_bomb, 250, seconds=30),
    Case("pdf-broken-xref", pdf_broken_xref, 554, seconds=30),
    Case("pdf-no-xref", pdf_no_xref_garbage_startxref, 554, seconds=30),
    Case("pdf-50000-pages", pdf_50000_pages, 250, seconds=60),
    Case("pdf-deeply-nested-arrays", pdf_deeply_nested_arrays, 554, seconds=30),
    Case("pdf-truncated", pdf_truncated, 554, seconds=30),
    Case("pdf-fake-signature", pdf_fake_signature, 554, "signature", seconds=30),
    Case("pdf-javascript", pdf_javascript, 250, seconds=30),
    Case("pdf-not-a-pdf", pdf_not_a_pdf, 554, "cannot be read", seconds=30),
    # DOCX
    Case("docx-100000-runs", docx_100000_runs, 250, seconds=60),
    Case("docx-deep-elements", docx_deep_elements, 250, seconds=30),
    Case("docx-entity-expansion", docx_entity_expansion, 554, seconds=30),
    Case("docx-missing-document", docx_missing_document, 250, seconds=30),
    Case("docx-not-xml", docx_not_xml, 554, "cannot be read", seconds=30),
    # compound files: objects and polyglots
    Case("ole-package-secret-pdf", ole_secret_pdf, 554, "classified", seconds=30),
    Case("ole-package-lying-length", ole_lying_length, 554, "cannot be read", seconds=30),
    Case("ole-fifty-one-objects", ole_fifty_one_objects, 554, "cannot be read", seconds=30),
    Case("ole-garbage-after-magic", ole_garbage, 250, seconds=30),
    Case("polyglot-doc-starting-with-a-pdf", doc_starting_with_a_pdf, 554, seconds=30),
    Case("winmail-dat-secret-docx", winmail_secret, 554, "classified", seconds=30),
    Case("winmail-dat-cut-in-half", winmail_cut, 554, "cannot be read", seconds=30),
    Case("message-partial-fragment", message_partial_fragment, 554, "fragments"),
    Case("message-partial-inside-multipart", partial_inside_multipart, 554, "fragments"),
    Case("message-external-body", external_body, 554, "by reference"),
    Case("ppt-object-secret-pdf", ppt_secret_pdf, 554, "classified", seconds=30),
    Case("photo-with-secret-rar-appended", photo_with_secret_rar, 554, "classified", seconds=30),
    Case("photo-with-rar-cut-in-half", photo_with_rar_cut, 554, "cannot be read", seconds=30),
    # submission: an official's own mail shows who sent it
    Case(
        "submission-display-name-address",
        submission(f'From: "giamdoc@sotttt.example.vn" <{OFFICIAL}>'),
        553,
        "display name",
        listener="submission",
        sender=OFFICIAL,
    ),
    Case(
        "submission-from-not-owned",
        submission("From: giamdoc@sotttt.example.vn"),
        553,
        "not owned",
        listener="submission",
        sender=OFFICIAL,
    ),
    Case(
        "submission-two-mailboxes",
        submission(f"From: {OFFICIAL}, giamdoc@sotttt.example.vn"),
        554,
        "exactly one mailbox",
        listener="submission",
        sender=OFFICIAL,
    ),
    Case(
        "submission-encoded-name-address",
        submission(f"From: =?utf-8?b?Z2lhbWRvY0Bzb3R0dHQuZXhhbXBsZS52bg==?= <{OFFICIAL}>"),
        553,
        "display name",
        listener="submission",
        sender=OFFICIAL,
    ),
)

CASES += _unparsable_cases() + _charset_cases()

# Quick to build and under 100 KB: the fuzz test's seeds.
SMALL_CASES = frozenset(
    c.name
    for c in CASES
    if "bomb" not in c.name
    and not c.name.startswith(("pdf-50000", "pdf-huge", "docx-100000", "ten-thousand", "huge"))
    and "200" not in c.name
)
