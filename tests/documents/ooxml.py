"""Small writers of XLSX and PPTX packages (ECMA-376), for the places a stamp sits that a
workbook or a presentation shows beyond its cells and slides: a sheet's page header
(printed on every page), a formula's text, a cell comment, a text box; a slide master (on
every slide), a layout, speaker notes, a comment, a SmartArt graphic, a chart title.

Only the parts and relationships the text extraction and Office need to open the file:
no styles or themes beyond what each part requires. Neither openpyxl nor python-pptx is a
dependency; the XML below follows the parts those libraries and Office write.
"""

from __future__ import annotations

import io
import zipfile
from xml.sax.saxutils import escape

S = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
A = "http://schemas.openxmlformats.org/drawingml/2006/main"
P = "http://schemas.openxmlformats.org/presentationml/2006/main"
R = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG = "http://schemas.openxmlformats.org/package/2006/relationships"
DGM = "http://schemas.openxmlformats.org/drawingml/2006/diagram"
C = "http://schemas.openxmlformats.org/drawingml/2006/chart"
XDR = "http://schemas.openxmlformats.org/drawingml/2006/spreadsheetDrawing"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
CT = "application/vnd.openxmlformats-officedocument"


def _package(parts: dict[str, str], types: dict[str, str]) -> bytes:
    overrides = "".join(
        f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in types.items()
    )
    content_types = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/><Default Extension="xml" ContentType="application/xml"/>'
        f"{overrides}</Types>"
    )
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as package:
        package.writestr("[Content_Types].xml", content_types)
        for name, xml in parts.items():
            package.writestr(name, '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + xml)
    return out.getvalue()


def _rels(*targets: tuple[str, str]) -> str:
    items = "".join(
        f'<Relationship Id="rId{i}" Type="{REL}/{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets, start=1)
    )
    return f'<Relationships xmlns="{PKG}">{items}</Relationships>'


def _paragraphs(text: str) -> str:
    return "".join(f"<a:p><a:r><a:t>{escape(line)}</a:t></a:r></a:p>" for line in text.split("\n"))


def make_xlsx(
    cells: list[str],
    *,
    header: str = "",
    formula_text: str = "",
    comment: str = "",
    textbox: str = "",
    chart_title: str = "",
) -> bytes:
    """A one-sheet workbook: ``cells`` in column A (shared strings); ``header`` as the
    sheet's page header, centred (``&C``, bold, 14 pt, as Excel's Page Setup writes it);
    ``formula_text`` as the cached text of a formula cell (``t="str"``); ``comment`` on
    cell B1; ``textbox`` a shape drawn on the sheet; ``chart_title`` a chart's title."""
    strings = "".join(f"<si><t>{escape(c)}</t></si>" for c in cells)
    rows = "".join(
        f'<row r="{i}"><c r="A{i}" t="s"><v>{i - 1}</v></c></row>' for i in range(1, len(cells) + 1)
    )
    if formula_text:
        n = len(cells) + 1
        rows += (
            f'<row r="{n}"><c r="A{n}" t="str"><f>UPPER("{escape(formula_text.lower())}")</f>'
            f"<v>{escape(formula_text)}</v></c></row>"
        )
    sheet_rels: list[tuple[str, str]] = []
    parts: dict[str, str] = {}
    types = {
        "xl/workbook.xml": f"{CT}.spreadsheetml.sheet.main+xml",
        "xl/worksheets/sheet1.xml": f"{CT}.spreadsheetml.worksheet+xml",
        "xl/sharedStrings.xml": f"{CT}.spreadsheetml.sharedStrings+xml",
    }
    drawing = ""
    anchors = ""
    if textbox:
        anchors += (
            "<xdr:twoCellAnchor><xdr:from><xdr:col>3</xdr:col><xdr:colOff>0</xdr:colOff>"
            "<xdr:row>0</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>6"
            "</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>3</xdr:row><xdr:rowOff>0"
            '</xdr:rowOff></xdr:to><xdr:sp><xdr:nvSpPr><xdr:cNvPr id="2" name="TextBox 1"/>'
            '<xdr:cNvSpPr txBox="1"/></xdr:nvSpPr><xdr:spPr/><xdr:txBody><a:bodyPr/>'
            f"{_paragraphs(textbox)}</xdr:txBody></xdr:sp><xdr:clientData/></xdr:twoCellAnchor>"
        )
    if chart_title:
        anchors += (
            "<xdr:twoCellAnchor><xdr:from><xdr:col>3</xdr:col><xdr:colOff>0</xdr:colOff>"
            "<xdr:row>5</xdr:row><xdr:rowOff>0</xdr:rowOff></xdr:from><xdr:to><xdr:col>9"
            "</xdr:col><xdr:colOff>0</xdr:colOff><xdr:row>20</xdr:row><xdr:rowOff>0"
            '</xdr:rowOff></xdr:to><xdr:graphicFrame macro=""><xdr:nvGraphicFramePr>'
            '<xdr:cNvPr id="3" name="Chart 1"/><xdr:cNvGraphicFramePr/></xdr:nvGraphicFramePr>'
            '<xdr:xfrm/><a:graphic><a:graphicData uri="' + C + '"><c:chart r:id="rId1"/>'
            "</a:graphicData></a:graphic></xdr:graphicFrame><xdr:clientData/>"
            "</xdr:twoCellAnchor>"
        )
        parts["xl/charts/chart1.xml"] = _chart(chart_title)
        parts["xl/drawings/_rels/drawing1.xml.rels"] = _rels(("chart", "../charts/chart1.xml"))
        types["xl/charts/chart1.xml"] = f"{CT}.drawingml.chart+xml"
    if anchors:
        parts["xl/drawings/drawing1.xml"] = (
            f'<xdr:wsDr xmlns:xdr="{XDR}" xmlns:a="{A}" xmlns:c="{C}" xmlns:r="{R}">'
            f"{anchors}</xdr:wsDr>"
        )
        types["xl/drawings/drawing1.xml"] = f"{CT}.drawing+xml"
        sheet_rels.append(("drawing", "../drawings/drawing1.xml"))
        drawing = f'<drawing r:id="rId{len(sheet_rels)}"/>'
    if comment:
        parts["xl/comments1.xml"] = (
            f'<comments xmlns="{S}"><authors><author>Văn thư</author></authors><commentList>'
            f'<comment ref="B1" authorId="0"><text><r><t>{escape(comment)}</t></r></text>'
            "</comment></commentList></comments>"
        )
        types["xl/comments1.xml"] = f"{CT}.spreadsheetml.comments+xml"
        sheet_rels.append(("comments", "../comments1.xml"))
    head = ""
    if header:
        code = f'&amp;C&amp;"Times New Roman,Bold"&amp;14{escape(header)}&amp;R&amp;P/&amp;N'
        head = f"<headerFooter><oddHeader>{code}</oddHeader></headerFooter>"
    parts.update(
        {
            "_rels/.rels": _rels(("officeDocument", "xl/workbook.xml")),
            "xl/workbook.xml": (
                f'<workbook xmlns="{S}" xmlns:r="{R}"><sheets>'
                '<sheet name="Báo cáo" sheetId="1" r:id="rId1"/></sheets></workbook>'
            ),
            "xl/_rels/workbook.xml.rels": _rels(
                ("worksheet", "worksheets/sheet1.xml"), ("sharedStrings", "sharedStrings.xml")
            ),
            "xl/sharedStrings.xml": (
                f'<sst xmlns="{S}" count="{len(cells)}" uniqueCount="{len(cells)}">{strings}</sst>'
            ),
            "xl/worksheets/sheet1.xml": (
                f'<worksheet xmlns="{S}" xmlns:r="{R}"><sheetData>{rows}</sheetData>'
                f"{head}{drawing}</worksheet>"
            ),
        }
    )
    if sheet_rels:
        parts["xl/worksheets/_rels/sheet1.xml.rels"] = _rels(*sheet_rels)
    return _package(parts, types)


def _chart(title: str) -> str:
    return (
        f'<c:chartSpace xmlns:c="{C}" xmlns:a="{A}"><c:chart><c:title><c:tx><c:rich>'
        f"<a:bodyPr/>{_paragraphs(title)}</c:rich></c:tx></c:title><c:plotArea><c:layout/>"
        "</c:plotArea></c:chart></c:chartSpace>"
    )


def _smartart(text: str) -> str:
    """A SmartArt graphic's data part: one point (a box of the graphic) per line."""
    points = "".join(
        f'<dgm:pt modelId="{{0000000{n}-0000-0000-0000-000000000000}}"><dgm:t>'
        f"<a:bodyPr/>{_paragraphs(line)}</dgm:t></dgm:pt>"
        for n, line in enumerate(text.split("\n"), start=1)
    )
    return (
        f'<dgm:dataModel xmlns:dgm="{DGM}" xmlns:a="{A}"><dgm:ptLst>{points}</dgm:ptLst>'
        "<dgm:cxnLst/></dgm:dataModel>"
    )


def _slide_tree(text: str, *, root: str = "p:sld") -> str:
    shapes = (
        '<p:sp><p:nvSpPr><p:cNvPr id="2" name="TextBox 1"/><p:cNvSpPr txBox="1"/><p:nvPr/>'
        f"</p:nvSpPr><p:spPr/><p:txBody><a:bodyPr/>{_paragraphs(text)}</p:txBody></p:sp>"
        if text
        else ""
    )
    return (
        f'<{root} xmlns:a="{A}" xmlns:p="{P}" xmlns:r="{R}"><p:cSld><p:spTree><p:nvGrpSpPr>'
        '<p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr/>'
        f"{shapes}</p:spTree></p:cSld></{root}>"
    )


def make_pptx(
    slides: list[str],
    *,
    master: str = "",
    layout: str = "",
    notes: str = "",
    comment: str = "",
    smartart: str = "",
    chart_title: str = "",
) -> bytes:
    """A presentation of ``slides`` (a text box each) on one master and layout; ``master``
    and ``layout`` text drawn on the slide master (shown on every slide) or the layout;
    ``notes`` the first slide's speaker notes; ``comment`` a comment on it; ``smartart``
    the text of a SmartArt graphic on it; ``chart_title`` a chart's title on it."""
    types = {
        "ppt/presentation.xml": f"{CT}.presentationml.presentation.main+xml",
        "ppt/slideMasters/slideMaster1.xml": f"{CT}.presentationml.slideMaster+xml",
        "ppt/slideLayouts/slideLayout1.xml": f"{CT}.presentationml.slideLayout+xml",
    }
    parts: dict[str, str] = {
        "_rels/.rels": _rels(("officeDocument", "ppt/presentation.xml")),
        "ppt/slideMasters/slideMaster1.xml": _slide_tree(master, root="p:sldMaster"),
        "ppt/slideMasters/_rels/slideMaster1.xml.rels": _rels(
            ("slideLayout", "../slideLayouts/slideLayout1.xml")
        ),
        "ppt/slideLayouts/slideLayout1.xml": _slide_tree(layout, root="p:sldLayout"),
        "ppt/slideLayouts/_rels/slideLayout1.xml.rels": _rels(
            ("slideMaster", "../slideMasters/slideMaster1.xml")
        ),
    }
    ids = "".join(f'<p:sldId id="{256 + i}" r:id="rId{i + 2}"/>' for i in range(len(slides)))
    parts["ppt/presentation.xml"] = (
        f'<p:presentation xmlns:a="{A}" xmlns:p="{P}" xmlns:r="{R}"><p:sldMasterIdLst>'
        f'<p:sldMasterId id="2147483648" r:id="rId1"/></p:sldMasterIdLst><p:sldIdLst>{ids}'
        '</p:sldIdLst><p:sldSz cx="9144000" cy="6858000"/><p:notesSz cx="6858000" '
        'cy="9144000"/></p:presentation>'
    )
    parts["ppt/_rels/presentation.xml.rels"] = _rels(
        ("slideMaster", "slideMasters/slideMaster1.xml"),
        *(("slide", f"slides/slide{i}.xml") for i in range(1, len(slides) + 1)),
    )
    for i, text in enumerate(slides, start=1):
        name = f"ppt/slides/slide{i}.xml"
        parts[name] = _slide_tree(text)
        types[name] = f"{CT}.presentationml.slide+xml"
        rels: list[tuple[str, str]] = [("slideLayout", "../slideLayouts/slideLayout1.xml")]
        if i == 1 and notes:
            parts["ppt/notesSlides/notesSlide1.xml"] = _slide_tree(notes, root="p:notes")
            types["ppt/notesSlides/notesSlide1.xml"] = f"{CT}.presentationml.notesSlide+xml"
            rels.append(("notesSlide", "../notesSlides/notesSlide1.xml"))
        if i == 1 and comment:
            parts["ppt/comments/comment1.xml"] = (
                f'<p:cmLst xmlns:p="{P}"><p:cm authorId="0" dt="2026-12-07T08:00:00.000" '
                f'idx="1"><p:pos x="10" y="10"/><p:text>{escape(comment)}</p:text></p:cm>'
                "</p:cmLst>"
            )
            types["ppt/comments/comment1.xml"] = f"{CT}.presentationml.comments+xml"
            rels.append(("comments", "../comments/comment1.xml"))
        if i == 1 and smartart:
            parts["ppt/diagrams/data1.xml"] = _smartart(smartart)
            types["ppt/diagrams/data1.xml"] = f"{CT}.drawingml.diagramData+xml"
            rels.append(("diagramData", "../diagrams/data1.xml"))
        if i == 1 and chart_title:
            parts["ppt/charts/chart1.xml"] = _chart(chart_title)
            types["ppt/charts/chart1.xml"] = f"{CT}.drawingml.chart+xml"
            rels.append(("chart", "../charts/chart1.xml"))
        parts[f"ppt/slides/_rels/slide{i}.xml.rels"] = _rels(*rels)
    return _package(parts, types)


def add_docx_part(
    docx: bytes,
    part: str,
    data: bytes,
    *,
    relation: str,
    content_type: str,
    rel_id: str,
    body: bytes = b"",
) -> bytes:
    """``docx`` with one part more (``word/<part>``), related from the document with the
    relationship type ``relation`` and listed with its content type, as Word writes one;
    ``body``: an element the document's body ends with (one referring to ``rel_id``)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(docx)) as source,
        zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target,
    ):
        for item in source.infolist():
            blob = source.read(item)
            if item.filename == "word/document.xml" and body:
                marker = b"<w:sectPr" if b"<w:sectPr" in blob else b"</w:body>"
                blob = blob.replace(marker, body + marker, 1)
            elif item.filename == "word/_rels/document.xml.rels":
                rel = f'<Relationship Id="{rel_id}" Type="{REL}/{relation}" Target="{part}"/>'
                blob = blob.replace(b"</Relationships>", rel.encode() + b"</Relationships>")
            elif item.filename == "[Content_Types].xml":
                override = f'<Override PartName="/word/{part}" ContentType="{content_type}"/>'
                blob = blob.replace(b"</Types>", override.encode() + b"</Types>")
            target.writestr(item, blob)
        target.writestr(f"word/{part}", data)
    return out.getvalue()


def add_docx_parts(docx: bytes, *, smartart: str = "", chart_title: str = "") -> bytes:
    """``docx`` with a SmartArt graphic's data (``word/diagrams/data1.xml``) or a chart
    (``word/charts/chart1.xml``) holding the text given, related from the document."""
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    if smartart:
        docx = add_docx_part(
            docx, "diagrams/data1.xml", (head + _smartart(smartart)).encode(),
            relation="diagramData", content_type=f"{CT}.drawingml.diagramData+xml",
            rel_id="rIdDiagram1",
        )  # fmt: skip
    if chart_title:
        docx = add_docx_part(
            docx, "charts/chart1.xml", (head + _chart(chart_title)).encode(),
            relation="chart", content_type=f"{CT}.drawingml.chart+xml", rel_id="rIdChart1",
        )  # fmt: skip
    return docx


def add_alt_chunk(docx: bytes, name: str, data: bytes, content_type: str) -> bytes:
    """``docx`` importing the part ``word/<name>`` (``data``) where its body ends, with a
    ``w:altChunk`` element and its aFChunk relationship, as Word writes an imported
    HTML, MHT, RTF or DOCX chunk: Word shows the chunk's content in place."""
    return add_docx_part(
        docx, name, data, relation="aFChunk", content_type=content_type, rel_id="rIdChunk1",
        body=b'<w:altChunk r:id="rIdChunk1"/>',
    )  # fmt: skip
