"""Builders for test documents (PDF, DOCX, ODT, archives) and messages, generated at test time.

PDFs are written with fpdf2 and DejaVu Sans (Debian fonts-dejavu-core), so Vietnamese text
with diacritics is embedded as real Unicode text, as in documents from the agencies' systems.
The labelled corpus lives in tests/data/classification/corpus.yaml.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import io
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import docx
import libarchive
import yaml
from cryptography.hazmat.primitives import padding as sym_padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from docx.shared import Pt
from fpdf import FPDF
from odf.draw import Frame
from odf.draw import Object as DrawObject
from odf.opendocument import OpenDocumentText
from odf.style import Footer, Header, MasterPage, PageLayout
from odf.text import P
from PIL import Image, ImageDraw

from tests.documents.cfb import (
    legacy_doc_with_object,
    legacy_ppt_with_object,
    legacy_xls,
    ole_object,
    ole_package,
    outlook_msg,
)
from tests.documents.ooxml import add_docx_part, make_pptx, make_xlsx
from tests.documents.tnef import winmail_dat

DATA = Path(__file__).resolve().parent.parent / "data" / "classification"
FONT = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")
SENDER = "vanthu@ubnd.example.vn"
RECIPIENT = "vanthu@stttt.example.vn"

PDF_TYPE = ("application", "pdf")
DOCX_TYPE = ("application", "vnd.openxmlformats-officedocument.wordprocessingml.document")
ODT_TYPE = ("application", "vnd.oasis.opendocument.text")
XLSX_TYPE = ("application", "vnd.openxmlformats-officedocument.spreadsheetml.sheet")
PPTX_TYPE = ("application", "vnd.openxmlformats-officedocument.presentationml.presentation")


def make_pdf(
    text: str,
    *,
    title: str | None = None,
    keywords: str | None = None,
    subject: str | None = None,
    embed: tuple[str, bytes] | None = None,
    annotation_file: tuple[str, bytes] | None = None,
) -> bytes:
    """A one-page PDF of ``text``; ``embed`` attaches a file to the document (its
    EmbeddedFiles), ``annotation_file`` to the page as a file attachment annotation (the
    paperclip Acrobat's "Attach File" comment puts on the page)."""
    pdf = FPDF(format="A4")
    pdf.add_font("DejaVu", fname=str(FONT))
    pdf.set_font("DejaVu", size=11)
    pdf.set_auto_page_break(True, margin=15)
    pdf.add_page()
    if title:
        pdf.set_title(title)
    if keywords:
        pdf.set_keywords(keywords)
    if subject:
        pdf.set_subject(subject)
    for line in text.split("\n"):
        if line.strip():
            pdf.multi_cell(0, 6, line, align="L", new_x="LMARGIN", new_y="NEXT")
        else:
            pdf.ln(4)
    if embed:
        pdf.embed_file(bytes=embed[1], basename=embed[0])
    if annotation_file:
        return attach_to_page(bytes(pdf.output()), [annotation_file])
    return bytes(pdf.output())


def outlined_pdf(text: str, *, size: float = 13, rules: int = 0) -> bytes:
    """A one-page PDF whose text is drawn as glyph outlines (what "print text as curves"
    or a design program's "create outlines" makes): a reader sees every word, the page has
    no text layer. ``rules``: that many horizontal table rules drawn as well (a path of
    four segments each)."""
    from fontTools.pens.basePen import BasePen
    from fontTools.ttLib import TTFont

    from tests.signatures.pki import pdf_from_objects

    class Pen(BasePen):
        def __init__(self, glyphs: Any, scale: float, x: float, y: float) -> None:
            super().__init__(glyphs)
            self.ops: list[str] = []
            self.place = (scale, x, y)

        def _xy(self, pt: tuple[float, float]) -> str:
            scale, x, y = self.place
            return f"{pt[0] * scale + x:.2f} {pt[1] * scale + y:.2f}"

        def _moveTo(self, pt: tuple[float, float]) -> None:
            self.ops.append(f"{self._xy(pt)} m")

        def _lineTo(self, pt: tuple[float, float]) -> None:
            self.ops.append(f"{self._xy(pt)} l")

        def _curveToOne(self, p1: Any, p2: Any, p3: Any) -> None:
            self.ops.append(f"{self._xy(p1)} {self._xy(p2)} {self._xy(p3)} c")

        def _qCurveToOne(self, p1: Any, p2: Any) -> None:  # TrueType: quadratic to cubic
            p0 = self._getCurrentPoint()
            c1 = (p0[0] + 2 / 3 * (p1[0] - p0[0]), p0[1] + 2 / 3 * (p1[1] - p0[1]))
            c2 = (p2[0] + 2 / 3 * (p1[0] - p2[0]), p2[1] + 2 / 3 * (p1[1] - p2[1]))
            self._curveToOne(c1, c2, p2)

        def _closePath(self) -> None:
            self.ops.append("h")

    font = TTFont(str(FONT))
    glyphs, cmap = font.getGlyphSet(), font.getBestCmap()
    scale = size / font["head"].unitsPerEm
    ops = ["0 g"]
    y = 780.0
    for line in text.split("\n"):
        x = 60.0
        for ch in line:
            name = cmap.get(ord(ch))
            if name is None:
                x += size / 2
                continue
            pen = Pen(glyphs, scale, x, y)
            glyphs[name].draw(pen)
            if pen.ops:
                ops += [*pen.ops, "f"]
            x += font["hmtx"][name][0] * scale
        y -= size * 1.6
    for k in range(rules):
        ops.append(f"60 {y - 20 * k:.2f} 475 0.5 re f")
    content = "\n".join(ops).encode()
    return pdf_from_objects(
        [
            b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            b"/Resources << >> >>",
            b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        ]
    )


def attach_to_page(
    carrier: bytes, files: list[tuple[str, bytes]], *, notes_before: int = 0
) -> bytes:
    """``carrier`` with ``notes_before`` text annotations, then each file attached to page 1
    as a file attachment annotation only (as Acrobat's "Attach File" comment does: not in
    the document's EmbeddedFiles), written by PDFium; an empty file names one outside."""
    import ctypes

    import pypdfium2
    import pypdfium2.raw as pdfium_c

    pdf = pypdfium2.PdfDocument(carrier)
    page = pdf[0]
    for _ in range(notes_before):
        note = pdfium_c.FPDFPage_CreateAnnot(page.raw, pdfium_c.FPDF_ANNOT_TEXT)
        pdfium_c.FPDFPage_CloseAnnot(note)
    for name, data in files:
        annot = pdfium_c.FPDFPage_CreateAnnot(page.raw, pdfium_c.FPDF_ANNOT_FILEATTACHMENT)
        pdfium_c.FPDFAnnot_SetRect(annot, pdfium_c.FS_RECTF(100, 720, 120, 700))
        wide = ctypes.c_char_p((name + "\0").encode("utf-16-le"))
        raw = pdfium_c.FPDFAnnot_AddFileAttachment(
            annot, ctypes.cast(wide, pdfium_c.FPDF_WIDESTRING)
        )
        if data:
            buffer = ctypes.create_string_buffer(data, len(data))
            assert pdfium_c.FPDFAttachment_SetFile(raw, pdf.raw, buffer, len(data))
        pdfium_c.FPDFPage_CloseAnnot(annot)
    page.close()
    out = io.BytesIO()
    pdf.save(out)
    pdf.close()
    return out.getvalue()


def make_docx(
    text: str,
    *,
    header: str | None = None,
    table: list[list[str]] | None = None,
    title: str | None = None,
    keywords: str | None = None,
) -> bytes:
    document = docx.Document()
    style = document.styles["Normal"]
    style.font.name = "Times New Roman"
    style.font.size = Pt(13)
    if header:
        document.sections[0].header.paragraphs[0].text = header
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, cell in enumerate(row):
                grid.cell(r, c).text = cell
    for line in text.split("\n"):
        document.add_paragraph(line)
    props = document.core_properties
    props.title = title or ""
    props.keywords = keywords or ""
    props.comments = ""
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_odt(text: str, *, header: str | None = None, embedded: str | None = None) -> bytes:
    """An ODT; ``embedded``: the text of another ODT embedded as an object (Insert >
    Object > OLE Object > from file in LibreOffice: a package in "Object 1/")."""
    document = OpenDocumentText()
    if header:
        layout = PageLayout(name="Layout")
        document.automaticstyles.addElement(layout)
        master = MasterPage(name="Standard", pagelayoutname=layout)
        head = Header()
        head.addElement(P(text=header))
        master.addElement(head)
        master.addElement(Footer())
        document.masterstyles.addElement(master)
    for line in text.split("\n"):
        document.text.addElement(P(text=line))
    if embedded:
        inner = OpenDocumentText()
        for line in embedded.split("\n"):
            inner.text.addElement(P(text=line))
        frame = Frame(width="16cm", height="8cm", anchortype="paragraph")
        frame.addElement(DrawObject(href=document.addObject(inner)))
        holder = P()
        holder.addElement(frame)
        document.text.addElement(holder)
    out = io.BytesIO()
    document.write(out)
    return out.getvalue()


def encrypt_odt(odt: bytes, *, whole_package: bool = False) -> bytes:
    """``odt`` as LibreOffice saves it with a password (File > Save As > Save with
    password): each XML member deflated and encrypted (AES-256-CBC, a PBKDF2 key), the
    manifest naming how in an ``encryption-data`` element; the stamp is ciphertext. With
    ``whole_package`` (ODF 1.4, LibreOffice 24.2+) the whole inner package is one
    ``encrypted-package`` member and ``content.xml`` is gone."""
    key = hashlib.pbkdf2_hmac("sha1", hashlib.sha256(b"matkhau").digest(), b"salt" * 4, 1000, 32)

    def encrypted(data: bytes) -> bytes:
        packed = zlib.compressobj(9, zlib.DEFLATED, -15)
        raw = packed.compress(data) + packed.flush()
        padder = sym_padding.PKCS7(128).padder()
        cipher = Cipher(algorithms.AES(key), modes.CBC(b"\x01" * 16)).encryptor()
        return cipher.update(padder.update(raw) + padder.finalize()) + cipher.finalize()

    entry = (
        '<manifest:file-entry manifest:full-path="{name}" manifest:media-type="text/xml" '
        'manifest:size="{size}"><manifest:encryption-data manifest:checksum-type='
        '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0#sha256-1k" manifest:checksum='
        '"AAAA"><manifest:algorithm manifest:algorithm-name='
        '"http://www.w3.org/2001/04/xmlenc#aes256-cbc" manifest:initialisation-vector='
        '"AQEBAQEBAQEBAQEBAQEBAQ=="/><manifest:start-key-generation '
        'manifest:start-key-generation-name="http://www.w3.org/2000/09/xmldsig#sha256" '
        'manifest:key-size="32"/><manifest:key-derivation manifest:key-derivation-name='
        '"PBKDF2" manifest:key-size="32" manifest:iteration-count="1000" manifest:salt='
        '"c2FsdHNhbHRzYWx0c2FsdA=="/></manifest:encryption-data></manifest:file-entry>'
    )
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(odt)) as source, zipfile.ZipFile(out, "w") as target:
        target.writestr("mimetype", source.read("mimetype"))  # stored, first, as ODF asks
        members = [n for n in source.namelist() if n.endswith(".xml") and "META-INF" not in n]
        if whole_package:
            inner = zlib.compress(odt)
            target.writestr("encrypted-package", encrypted(inner), zipfile.ZIP_STORED)
            entries = entry.format(name="encrypted-package", size=len(inner))
        else:
            for name in members:
                target.writestr(name, encrypted(source.read(name)), zipfile.ZIP_STORED)
            entries = "".join(entry.format(name=n, size=len(source.read(n))) for n in members)
        target.writestr(
            "META-INF/manifest.xml",
            '<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest='
            '"urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.3">'
            '<manifest:file-entry manifest:full-path="/" manifest:media-type='
            '"application/vnd.oasis.opendocument.text"/>' + entries + "</manifest:manifest>",
            zipfile.ZIP_DEFLATED,
        )
    return out.getvalue()


def add_zip_member(package: bytes, name: str, data: bytes) -> bytes:
    """``package`` (a zip: DOCX, ODT...) with one member more."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as source, zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            target.writestr(item, source.read(item))
        target.writestr(name, data, zipfile.ZIP_DEFLATED)
    return out.getvalue()


def make_zip(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return out.getvalue()


def make_rtf(
    text: str,
    *,
    header: str | None = None,
    textbox: str | None = None,
    comment: str | None = None,
    objects: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    """An RTF document as Word writes one: Vietnamese letters as ``\\uN?`` escapes (signed
    16-bit), Windows-1258 declared, the page header in a ``{\\header}`` group; ``comment``
    a comment on the first paragraph (``{\\*\\annotation}``); ``objects`` (class name, OLE 1
    native data) inserted as embedded objects, as hex in ``{\\*\\objdata}`` groups."""

    def escaped(line: str) -> str:
        out = []
        for ch in line:
            code = ord(ch)
            if ch in "\\{}":
                out.append("\\" + ch)
            elif code < 128:
                out.append(ch)
            else:
                out.append(f"\\u{code if code < 32768 else code - 65536}?")
        return "".join(out)

    body = "".join(f"{{\\pard {escaped(line)}\\par}}\n" for line in text.split("\n"))
    if comment:
        body += (
            "{\\*\\atnid VT}{\\*\\atnauthor Van thu}\\chatn{\\*\\annotation{\\*\\atndate 0}"
            f"\\pard {escaped(comment)}\\par}}\n"
        )
    for class_name, native in objects:
        body += (
            f"{{\\object\\objemb{{\\*\\objclass {class_name}}}\\objw2000\\objh1000"
            f"{{\\*\\objdata\n{ole1_object(class_name, native).hex()}\n}}"
            "{\\result {\\pard [icon]\\par}}}\n"
        )
    head = f"{{\\header \\pard {escaped(header)}\\par}}\n" if header else ""
    if textbox:  # a Word text box: the shape's text, and the drawing fallback for old readers
        head += (
            "{\\shp{\\*\\shpinst\\shpleft0\\shptop0{\\sp{\\sn shapeType}{\\sv 202}}"
            f"{{\\shptxt \\pard {escaped(textbox)}\\par}}}}"
            "{\\shprslt{\\*\\do\\dobxcolumn"
            f"{{\\dptxbx{{\\pard {escaped(textbox)}\\par}}}}}}}}}}\n"
        )
    return (
        "{\\rtf1\\ansi\\ansicpg1258\\deff0\\uc1{\\fonttbl{\\f0\\froman Times New Roman;}}\n"
        + head
        + body
        + "}"
    ).encode("ascii")


def embed_in_docx(outer: bytes, name: str, data: bytes) -> bytes:
    """``outer`` with ``data`` embedded as an object (``word/embeddings/NAME``, its
    relationship and content type), as Word's Insert > Object > from file stores a DOCX,
    or, for a ``.bin`` (a compound file, :func:`tests.documents.cfb.ole_object`), any
    other file: as an OLE Package."""
    ole = name.endswith(".bin")
    return add_docx_part(
        outer,
        f"embeddings/{name}",
        data,
        relation="oleObject" if ole else "package",
        content_type=(
            "application/vnd.openxmlformats-officedocument.oleObject"
            if ole
            else "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
        ),
        rel_id="rIdEmbed1",
    )


def ole1_object(class_name: str, native: bytes) -> bytes:
    """An embedded OLE 1 object (MS-OLEDS 2.2.4): version, format 2, class, topic and
    item names (length with the NUL, then the bytes), the native data's size and bytes."""

    def name(value: str) -> bytes:
        raw = value.encode("cp1252") + b"\0"
        return struct.pack("<I", len(raw)) + raw

    header = struct.pack("<II", 0x0501, 2) + name(class_name) + name("") + name("")
    return header + struct.pack("<I", len(native)) + native


def make_7z(members: dict[str, bytes]) -> bytes:
    """A 7z archive (LZMA), written by libarchive (the reader mailsvc uses is its other half;
    Debian's 7-Zip is not needed)."""
    out = bytearray()

    def write(data: bytes) -> int:
        out.extend(data)
        return len(data)

    with libarchive.custom_writer(write, "7zip") as archive:
        for name, data in members.items():
            archive.add_file_from_memory(name, len(data), data)
    return bytes(out)


def _rar_block(head_type: int, flags: int, fields: bytes, data: bytes = b"") -> bytes:
    header = struct.pack("<BHH", head_type, flags, 7 + len(fields)) + fields
    return struct.pack("<H", zlib.crc32(header) & 0xFFFF) + header + data


def make_rar(members: dict[str, bytes], *, encrypted: bool = False) -> bytes:
    """A RAR 4 archive of stored members (no compression), written from the format's
    description: RAR itself is proprietary and Debian has no program that writes it.
    Host Windows, archive attribute, as WinRAR writes them. ``encrypted`` sets each
    member's password flag without encrypting (how it reads: the flag, not the bytes)."""
    out = b"Rar!\x1a\x07\x00" + _rar_block(0x73, 0, struct.pack("<HI", 0, 0))
    flags = 0x8000 | (0x04 if encrypted else 0)  # LONG_BLOCK (data follows), PASSWORD
    for name, data in members.items():
        raw = name.replace("/", "\\").encode("ascii")
        size, crc = len(data), zlib.crc32(data)
        # PACK_SIZE UNP_SIZE HOST_OS FILE_CRC FTIME UNP_VER METHOD NAME_SIZE ATTR
        fields = struct.pack("<IIBIIBBHI", size, size, 2, crc, 0x5A210000, 20, 0x30, len(raw), 0x20)
        out += _rar_block(0x74, flags, fields + raw, data)
    return out + _rar_block(0x7B, 0x4000, b"")


def make_photo(kind: str = "JPEG", size: tuple[int, int] = (480, 360)) -> bytes:
    """A picture of a photograph's size (tens of KB: a document's signature bytes sit
    well past the first 1,024, where a PDF header would be looked for), drawn with Pillow."""
    image = Image.new("RGB", size, (200, 220, 240))
    draw = ImageDraw.Draw(image)
    for i in range(0, size[0], 12):
        draw.line([(i, 0), (size[0] - i, size[1])], fill=(i % 256, 90, 255 - i % 256), width=3)
    out = io.BytesIO()
    image.save(out, kind, quality=90) if kind == "JPEG" else image.save(out, kind)
    return out.getvalue()


def make_tar_gz(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return out.getvalue()


def message(
    subject: str = "Công văn số 12/UBND-VP",
    body: str = "Kính gửi Văn phòng.\nXin gửi kèm văn bản.\n",
    *,
    html: str | None = None,
    message_id: str = "<corpus@ubnd.example.vn>",
) -> EmailMessage:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = SENDER
    msg["To"] = RECIPIENT
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg["Date"] = "Fri, 20 Nov 2026 09:00:00 +0700"
    msg.set_content(body)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg


def attach(msg: EmailMessage, data: bytes, filename: str, ctype: tuple[str, str]) -> None:
    msg.add_attachment(data, maintype=ctype[0], subtype=ctype[1], filename=filename)


def mail_with_file(
    data: bytes, filename: str, ctype: tuple[str, str] = ("application", "octet-stream")
) -> bytes:
    """A message (:func:`message`) with ``data`` attached, as bytes."""
    msg = message()
    attach(msg, data, filename, ctype)
    return msg.as_bytes()


# ---------------------------------------------------------------- the labelled corpus


@dataclass(frozen=True)
class Sample:
    id: str
    expect: str  # a category code, or "clean"
    kind: str
    spec: dict[str, Any] = field(default_factory=dict)

    def build(self) -> EmailMessage:
        return build_sample(self)


def load_corpus() -> list[Sample]:
    entries = yaml.safe_load((DATA / "corpus.yaml").read_text(encoding="utf-8"))
    return [
        Sample(id=e["id"], expect=e["expect"], kind=e["kind"], spec=copy.deepcopy(e))
        for e in entries
    ]


def _text(spec: dict[str, Any]) -> str:
    if "seed" in spec:
        return (DATA / "seeds" / spec["seed"]).read_text(encoding="utf-8")
    return str(spec.get("text", ""))


def _document(kind: str, spec: dict[str, Any]) -> tuple[bytes, tuple[str, str], str]:
    text = _text(spec)
    if kind == "pdf" and spec.get("outlined"):
        return outlined_pdf(text), PDF_TYPE, spec.get("filename", "van-ban.pdf")
    if kind == "pdf":
        embed = annotation = None
        if "embed_docx" in spec:
            embed = ("phu-luc.docx", make_docx(spec["embed_docx"]))
        if "annotation_docx" in spec:
            annotation = ("phu-luc.docx", make_docx(spec["annotation_docx"]))
        data = make_pdf(
            text,
            title=spec.get("title"),
            keywords=spec.get("keywords"),
            subject=spec.get("pdf_subject"),
            embed=embed,
            annotation_file=annotation,
        )
        return data, PDF_TYPE, spec.get("filename", "van-ban.pdf")
    if kind == "docx":
        data = make_docx(
            text,
            header=spec.get("header"),
            table=spec.get("table"),
            title=spec.get("title"),
            keywords=spec.get("keywords"),
        )
        return data, DOCX_TYPE, spec.get("filename", "van-ban.docx")
    if kind == "odt":
        data = make_odt(text, header=spec.get("header"), embedded=spec.get("embedded"))
        return data, ODT_TYPE, spec.get("filename", "vb.odt")
    if kind == "rtf":
        data = make_rtf(text, header=spec.get("header"), textbox=spec.get("textbox"))
        return data, ("application", "rtf"), spec.get("filename", "van-ban.rtf")
    raise ValueError(f"unknown document kind {kind}")


def build_sample(sample: Sample) -> EmailMessage:
    spec = sample.spec
    kind = sample.kind
    subject = spec.get("subject", "Công văn số 12/UBND-VP")
    if kind == "body":
        return message(subject, _text(spec) + "\n")
    if kind == "html":
        msg = message(subject, "Xem bản HTML.\n", html=_text(spec))
        return msg
    if kind == "subject":
        return message(subject)
    if kind == "filename":
        msg = message(subject)
        data, ctype, _ = _document(spec.get("as", "pdf"), {"text": "Kính gửi các đơn vị."})
        attach(msg, data, spec["filename"], ctype)
        return msg
    if kind in ("pdf", "docx", "odt", "rtf"):
        msg = message(subject)
        data, ctype, name = _document(kind, spec)
        attach(msg, data, name, ctype)
        return msg
    if kind in ("zip", "tar", "rar", "7z"):
        inner_kind = spec.get("inner", "docx")
        data, _, name = _document(inner_kind, spec)
        members = {f"ho-so/{name}": data}
        blob, archive_name, ctype = {
            "zip": lambda: (make_zip(members), "ho-so.zip", ("application", "zip")),
            "tar": lambda: (make_tar_gz(members), "ho-so.tar.gz", ("application", "gzip")),
            "rar": lambda: (make_rar(members), "ho-so.rar", ("application", "vnd.rar")),
            # sent as WinRAR and 7-Zip users' clients often do: no type of its own
            "7z": lambda: (make_7z(members), "ho-so.7z", ("application", "octet-stream")),
        }[kind]()
        msg = message(subject)
        attach(msg, blob, archive_name, ctype)
        return msg
    if kind == "appended":  # ``copy /b anh.jpg + ho-so.rar anh.jpg``: a picture, and the
        # archive WinRAR or 7-Zip opens in it (they look for its signature, as in an .exe)
        data, _, name = _document(spec.get("inner", "docx"), spec)
        members = {name: data}
        archive = {"zip": make_zip, "rar": make_rar, "7z": make_7z}[spec["archive"]](members)
        carrier, filename, ctype = {
            "jpeg": (make_photo("JPEG"), "anh-hoi-nghi.jpg", ("image", "jpeg")),
            "png": (make_photo("PNG"), "so-do.png", ("image", "png")),
            "pdf": (make_pdf("Kính gửi các đơn vị.\nThông báo lịch họp."), "tb.pdf", PDF_TYPE),
        }[spec.get("carrier", "jpeg")]
        msg = message(subject)
        attach(msg, carrier + archive, filename, ctype)
        return msg
    if kind == "xls":  # a legacy Excel workbook, the text in its cells or page header
        if spec.get("place") == "header":
            workbook = legacy_xls(["Bảng tổng hợp số liệu"], header=_text(spec))
        else:
            workbook = legacy_xls(_text(spec).splitlines())
        msg = message(subject)
        attach(msg, workbook, spec.get("filename", "so-lieu.xls"), ("application", "vnd.ms-excel"))
        return msg
    if kind in ("xlsx", "pptx"):  # the text in one place of a workbook or presentation:
        # xlsx "cells", "header" (printed on every page), "formula_text", "comment",
        # "textbox", "chart_title"; pptx "slide", "master" (on every slide), "layout",
        # "notes", "comment", "smartart", "chart_title"
        make, body, cover, name, ctype = {
            "xlsx": (make_xlsx, "cells", "Bảng tổng hợp số liệu", "so-lieu.xlsx", XLSX_TYPE),
            "pptx": (make_pptx, "slide", "Kế hoạch công tác năm 2027", "ke-hoach.pptx", PPTX_TYPE),
        }[kind]
        place = spec.get("place", body)
        first = [_text(spec)] if place == body else [cover]
        extra = {} if place == body else {place: _text(spec)}
        msg = message(subject)
        attach(msg, make(first, **extra), spec.get("filename", name), ctype)
        return msg
    if kind == "embedded":  # a document embedded as an object in an innocent DOCX
        data, _, name = _document(spec.get("inner", "docx"), spec)
        cover = make_docx("Kính gửi các đơn vị.\nTài liệu kèm theo được nhúng dưới đây.")
        if spec.get("package"):  # not an Office file: Word wraps it in an OLE Package
            name, data = "oleObject1.bin", ole_object(name, data)
        msg = message(subject)
        attach(msg, embed_in_docx(cover, name, data), "cong-van.docx", DOCX_TYPE)
        return msg
    if kind == "tnef" and spec.get("in_rtf_body"):  # the body Outlook shows, compressed
        rtf = make_rtf(_text(spec))
        msg = message(subject, "Kính gửi các đơn vị.\n")
        attach(msg, winmail_dat([], body="Kinh gui cac don vi.", rtf=rtf), "winmail.dat",
               ("application", "ms-tnef"))  # fmt: skip
        return msg
    if kind == "tnef":  # Outlook's "Rich Text Format" mail: the attachments in winmail.dat
        data, _, name = _document(spec.get("inner", "docx"), spec)
        msg = message(subject)
        attach(msg, winmail_dat([(name, data)], body="Kinh gui cac don vi."), "winmail.dat",
               ("application", "ms-tnef"))  # fmt: skip
        return msg
    if kind == "msg" and spec.get("in_html_body"):  # the body Outlook shows of a .msg
        html = "<html><body>" + "".join(f"<p>{line}</p>" for line in _text(spec).splitlines())
        msg = message(subject)
        saved = outlook_msg("Báo cáo", "Kính gửi các đơn vị.", [], html=html.encode())
        attach(msg, saved, "bao-cao.msg", ("application", "vnd.ms-outlook"))
        return msg
    if kind == "msg":  # an Outlook message saved as a file, attached
        data, _, name = _document(spec.get("inner", "docx"), spec)
        msg = message(subject)
        saved = outlook_msg("Báo cáo", "Kính gửi các đơn vị.", [(name, data)])
        attach(msg, saved, "bao-cao.msg", ("application", "vnd.ms-outlook"))
        return msg
    if kind == "doc-object":  # a legacy .doc with a file in its ObjectPool
        data, _, name = _document(spec.get("inner", "pdf"), spec)
        doc = legacy_doc_with_object("Kính gửi các đơn vị.\rTài liệu kèm theo.\r", name, data)
        msg = message(subject)
        attach(msg, doc, "cong-van.doc", ("application", "msword"))
        return msg
    if kind == "ppt-object":  # a legacy .ppt with a file on a slide (an ExOleObjStg record)
        data, _, name = _document(spec.get("inner", "pdf"), spec)
        ppt = legacy_ppt_with_object("Kế hoạch công tác năm 2027\r", name, data)
        msg = message(subject)
        attach(msg, ppt, "ke-hoach.ppt", ("application", "vnd.ms-powerpoint"))
        return msg
    if kind == "odt-ole-object":  # an OLE object in an ODF package: "Object N", binary
        data, _, name = _document(spec.get("inner", "pdf"), spec)
        odt = add_zip_member(make_odt("Kính gửi các đơn vị.\nTài liệu kèm theo."), "Object 1",
                             ole_object(name, data))  # fmt: skip
        msg = message(subject)
        attach(msg, odt, "cong-van.odt", ODT_TYPE)
        return msg
    if kind == "html-data-uri":  # a file written into the HTML body as a data: URI
        data, (maintype, subtype), name = _document(spec.get("inner", "pdf"), spec)
        uri = f"data:{maintype}/{subtype};base64," + base64.b64encode(data).decode()
        html = f'<p>Kính gửi các đơn vị.</p><p><a href="{uri}">{name}</a></p>'
        return message(subject, "Kính gửi các đơn vị.\n", html=html)
    if kind == "ics-attach":  # a file written into a meeting invitation (inline ATTACH)
        data, (maintype, subtype), name = _document(spec.get("inner", "pdf"), spec)
        value = base64.b64encode(data).decode()
        params = f";FMTTYPE={maintype}/{subtype};X-FILENAME={name}"
        line = f"ATTACH;ENCODING=BASE64;VALUE=BINARY{params}:{value}"
        folded = "\r\n ".join(line[i : i + 74] for i in range(0, len(line), 74))
        ics = (
            "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nMETHOD:REQUEST\r\nBEGIN:VEVENT\r\n"
            "SUMMARY:Họp giao ban\r\nDTSTART:20261210T020000Z\r\n"
            f"{folded}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
        )
        msg = message(subject, "Mời họp giao ban.\n")
        msg.add_alternative(ics.encode(), maintype="text", subtype="calendar")
        return msg
    if kind == "uuencoded":  # a file uuencoded into the plain-text body (pre-MIME style)
        data, _, name = _document(spec.get("inner", "pdf"), spec)
        lines = [binascii.b2a_uu(data[i : i + 45]).decode() for i in range(0, len(data), 45)]
        block = f"begin 644 {name}\n" + "".join(lines) + "`\nend\n"
        return message(subject, "Kính gửi các đơn vị.\n\n" + block)
    if kind == "rtf-object":  # a file inserted into an RTF document as an object
        data, _, name = _document(spec.get("inner", "pdf"), spec)
        package = ole_package(name, data)[4:]  # OLE 1 native data: no size field of its own
        rtf = make_rtf("Kính gửi các đơn vị.\nTài liệu kèm theo.", objects=(("Package", package),))
        msg = message(subject)
        attach(msg, rtf, "cong-van.rtf", ("application", "rtf"))
        return msg
    if kind == "file":  # a stored file, e.g. a legacy .doc made by LibreOffice
        msg = message(subject)
        path = DATA / spec["path"]
        attach(msg, path.read_bytes(), path.name, ("application", "msword"))
        return msg
    if kind == "forward":
        inner = build_sample(Sample(sample.id, sample.expect, spec["inner"], spec))
        inner.replace_header("Subject", spec.get("inner_subject", "Công văn gốc"))
        outer = message(spec.get("outer_subject", "Fwd: Công văn gốc"), "Chuyển tiếp.\n")
        outer.add_attachment(inner)
        return outer
    raise ValueError(f"unknown sample kind {kind}")
