"""A classification stamp pasted as a picture into a DOCX or ODT.

The rules put the stamp under the number (box 10a) at the top of page 1; a clerk who has
it as a scanned picture pastes it there or into the page header, where Word and Writer
show it on the page. A PDF's pictures at the top of page 1 were read by OCR; a DOCX's and
an ODT's were not read at all: a TỐI MẬT stamp pasted as a picture went out unread. The
generated corpus (``image-stamp`` in DOCX and ODT, in the body and in the header, on
white and cut out on a transparent background) shows each place; here the bounds are
attacked: what is not a stamp (a photo, a logo, a picture far down the text, pictures
Pillow cannot open) costs no OCR, at most three pictures are read, and hostile XML is
looked at once.
"""

from __future__ import annotations

import io
import time
import zipfile

import docx
import pytest
from docx.shared import Mm
from hypothesis import given
from hypothesis import strategies as st
from odf.draw import Frame
from odf.draw import Image as OdfImage
from odf.opendocument import OpenDocumentText
from odf.text import P
from PIL import Image, ImageDraw, ImageFont

from mailsvc.documents import formats
from mailsvc.documents.extract import ExtractionLimits
from mailsvc.documents.ocr import Ocr
from tests.documents.samples import make_photo

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSerif-Bold.ttf"


def stamp_png(text: str = "TỐI MẬT") -> bytes:
    """A boxed stamp at 200 dpi, as scanned."""
    font = ImageFont.truetype(FONT, 44)
    left, top, right, bottom = font.getbbox(text)
    image = Image.new("L", (right - left + 60, bottom - top + 40), 255)
    draw = ImageDraw.Draw(image)
    draw.rectangle((3, 3, image.width - 4, image.height - 4), outline=0, width=4)
    draw.text((30 - left, 20 - top), text, font=font, fill=0)
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def docx_with(pictures: list[tuple[bytes, float]], *, before: int = 0) -> bytes:
    """A DOCX with ``before`` paragraphs of text, then each picture (bytes, width in mm)
    in a paragraph of its own."""
    document = docx.Document()
    document.add_paragraph("ỦY BAN NHÂN DÂN TỈNH\nSố: 12/UBND-VP")
    for i in range(before):
        document.add_paragraph(f"Đoạn {i}: nội dung báo cáo.")
    for data, width in pictures:
        document.add_paragraph().add_run().add_picture(io.BytesIO(data), width=Mm(width))
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def read_docx(data: bytes) -> formats.FileText:
    ocr = Ocr(ExtractionLimits().ocr)
    return formats.ooxml_text(data, formats.DOCX, max_member_bytes=10**7, max_chars=10**6, ocr=ocr)


def test_a_stamp_picture_under_the_number_is_read() -> None:
    text = read_docx(docx_with([(stamp_png(), 42)]))
    assert text.ocr_images == 1 and "TỐI MẬT" in text.text


def test_without_ocr_nothing_is_read() -> None:
    data = docx_with([(stamp_png(), 42)])
    text = formats.ooxml_text(data, formats.DOCX, max_member_bytes=10**7, max_chars=10**6)
    assert text.ocr_images == 0 and "MẬT" not in text.text


EMF = b"\x01\x00\x00\x00" + bytes(200)  # an EMF header: Pillow cannot open it here


@pytest.mark.parametrize(
    ("pictures", "before"),
    [
        ([(make_photo(size=(1600, 1200)), 160)], 0),  # a photo across the page
        ([(stamp_png(), 8)], 0),  # an icon-sized picture
        ([(stamp_png(), 42)], 20),  # far down the text, past the top of page 1
        ([(EMF, 42)], 0),  # a vector picture
    ],
    ids=["photo", "icon", "far-down", "emf"],
)
def test_what_is_not_a_stamp_costs_no_ocr(pictures: list[tuple[bytes, float]], before: int) -> None:
    if pictures[0][0] is EMF:  # python-docx cannot size an EMF: swap the picture's bytes
        data = _replace_member(docx_with([(stamp_png(), 42)]), "word/media/image1.png", EMF)
    else:
        data = docx_with(pictures, before=before)
    text = read_docx(data)
    assert text.ocr_images == 0 and "MẬT" not in text.text


def test_at_most_three_pictures_are_read() -> None:
    words = ["TỐI MẬT", "MẬT", "KHẨN", "HỎA TỐC"]
    text = read_docx(docx_with([(stamp_png(w), 42) for w in words]))
    assert text.ocr_images == 3 and "HỎA TỐC" not in text.text


def test_a_stamp_in_the_page_header_of_an_odt_is_read() -> None:
    document = OpenDocumentText()
    from odf.style import Header, MasterPage, PageLayout

    layout = PageLayout(name="Layout")
    document.automaticstyles.addElement(layout)
    master = MasterPage(name="Standard", pagelayoutname=layout)
    head = Header()
    href = document.addPicture("Pictures/stamp.png", "image/png", stamp_png("MẬT"))
    frame = Frame(width="4.2cm", height="1.4cm", anchortype="paragraph")
    frame.addElement(OdfImage(href=href))
    holder = P()
    holder.addElement(frame)
    head.addElement(holder)
    master.addElement(head)
    document.masterstyles.addElement(master)
    document.text.addElement(P(text="Kính gửi các đơn vị."))
    out = io.BytesIO()
    document.write(out)
    ocr = Ocr(ExtractionLimits().ocr)
    text = formats.odf_text(out.getvalue(), max_member_bytes=10**7, max_chars=10**6, ocr=ocr)
    assert text.ocr_images == 1 and "MẬT" in text.text


def _replace_member(package: bytes, name: str, data: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(package))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(info, data if info.filename == name else source.read(info))
    return out.getvalue()


def test_hostile_drawing_markup_is_looked_at_once() -> None:
    """25,000 drawings and 25,000 shapes with no picture at the top of the body, and the
    picture's relationship pointing out of the package: looked at once, nothing read."""
    package = docx_with([(stamp_png(), 42)])
    body = zipfile.ZipFile(io.BytesIO(package)).read("word/document.xml")
    junk = (
        b"<w:drawing><wp:inline><wp:extent cx='1' cy='1'/></wp:inline></w:drawing>" * 25_000
        + b"<w:pict><v:shape style='width:90pt;height:30pt'/></w:pict>" * 25_000
    )
    hostile = body.replace(b"<w:body>", b"<w:body><w:p><w:r>" + junk + b"</w:r></w:p>", 1)
    rels = zipfile.ZipFile(io.BytesIO(package)).read("word/_rels/document.xml.rels")
    rels = rels.replace(b'Target="media/image1.png"', b'Target="../../../etc/passwd"')
    data = _replace_member(_replace_member(package, "word/document.xml", hostile),
                           "word/_rels/document.xml.rels", rels)  # fmt: skip
    started = time.process_time()
    text = read_docx(data)
    assert time.process_time() - started < 5
    assert text.ocr_images == 0


def test_a_vml_picture_is_read() -> None:
    """Word 2003's picture markup (``v:shape`` with ``v:imagedata``), still written by
    some converters: sized by the shape's style."""
    package = docx_with([(stamp_png(), 42)])
    body = zipfile.ZipFile(io.BytesIO(package)).read("word/document.xml")
    start, end = body.index(b"<w:drawing>"), body.index(b"</w:drawing>") + len(b"</w:drawing>")
    rid = body[start:end].split(b'r:embed="', 1)[1].split(b'"', 1)[0]
    vml = (
        b'<w:pict><v:shape id="s1" style="width:119pt;height:41pt">'
        b'<v:imagedata r:id="' + rid + b'" o:title=""/></v:shape></w:pict>'
    )
    text = read_docx(_replace_member(package, "word/document.xml", body[:start] + vml + body[end:]))
    assert text.ocr_images == 1 and "TỐI MẬT" in text.text


def test_a_stamp_sized_picture_too_large_to_read_is_too_large() -> None:
    """Skipping it would leave its stamp unread: a PNG that claims 10,000 x 10,000 pixels
    (a decompression bomb's header) laid out as a stamp makes the document unreadable."""
    import struct
    import zlib

    from mailsvc.documents.formats import TOO_LARGE, UnreadableDocument

    png = bytearray(stamp_png())
    header = struct.pack(">II", 10_000, 10_000) + bytes(png[24:29])
    png[16:29] = header
    png[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + header))
    with pytest.raises(UnreadableDocument) as caught:
        read_docx(_replace_member(docx_with([(stamp_png(), 42)]), "word/media/image1.png", png))
    assert caught.value.kind == TOO_LARGE


def emf(*texts: str, glyph_indices: bool = False) -> bytes:
    """An Enhanced Metafile drawing each text with EMR_EXTTEXTOUTW (MS-EMF 2.3.5.8), as
    Word's "Paste Special > Picture (Enhanced Metafile)" of a stamp keeps it."""
    import struct

    records = []
    for text in texts:
        chars = text.encode("utf-16-le")
        string = chars + bytes(-len(chars) % 4)
        dx = struct.pack(f"<{len(text)}I", *([20] * len(text)))
        size = 76 + len(string) + len(dx)
        options = 0x10 if glyph_indices else 0
        records.append(
            struct.pack("<II4i", 84, size, 0, 0, 400, 100)
            + struct.pack("<Iff", 1, 1.0, 1.0)
            + struct.pack(
                "<2iIII4iI", 10, 60, len(text), 76, options, 0, 0, 400, 100, 76 + len(string)
            )
            + string
            + dx
        )
    eof = struct.pack("<IIIII", 14, 20, 0, 16, 20)
    total = 88 + sum(len(r) for r in records) + len(eof)
    header = (
        struct.pack("<II4i4i", 1, 88, 0, 0, 400, 100, 0, 0, 10000, 3000)
        + b" EMF"
        + struct.pack("<IIIHHIIIii", 0x10000, total, len(records) + 2, 1, 0, 0, 0, 0, 1920, 1080)
        + struct.pack("<ii", 508, 286)
    )
    assert len(header) == 88
    return header + b"".join(records) + eof


@pytest.mark.parametrize("glyph_indices", [False, True])
def test_a_stamp_pasted_as_an_enhanced_metafile_is_read(glyph_indices: bool) -> None:
    """Pillow cannot draw an EMF here; its text records say what it shows (text given as
    glyph indices names no characters and is not read)."""
    picture = emf("TỐI MẬT", glyph_indices=glyph_indices)
    data = _replace_member(docx_with([(stamp_png(), 42)]), "word/media/image1.png", picture)
    text = read_docx(data)
    assert ("TỐI MẬT" in text.text) is not glyph_indices
    assert text.ocr_images == (0 if glyph_indices else 1)


@given(st.binary(max_size=2000))
def test_any_records_after_an_emf_header_give_text_or_nothing(tail: bytes) -> None:
    from mailsvc.documents.formats import emf_text

    header = emf("TỐI MẬT")[:88]
    assert isinstance(emf_text(header + tail), str)
    assert emf_text(tail) == "" or tail.startswith(b"\x01\x00\x00\x00")
