"""``mailsvc inspect FILE...``: what the service reads from a document, and why it would act.

For each file (PDF, DOCX, ODT, an image, a text file, or a whole message ``.eml``) the same
extraction, marking rules and metadata reader as the pipeline run, in a worker process
with the configured limits and OCR: where the text came from (text layer or OCR, per
page), every classified marking with its rule and place, the metadata fields with where
each was found, and parts that could not be read. Exit status: 0 when nothing would keep
the document out, 2 when a marking or an unreadable part would (1 for errors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import click

from mailsvc.cli import Context
from mailsvc.documents import formats
from mailsvc.documents.extract import (
    DocumentPart,
    ExtractedText,
    ExtractionFailure,
    ExtractionLimits,
    Source,
    extract_message_bytes,
)
from mailsvc.documents.markings import MarkingDetector, MarkingMatch
from mailsvc.documents.metadata import DocumentMetadata, extract_metadata
from mailsvc.errors import MailsvcError
from mailsvc.message import parse_tree
from mailsvc.pipeline.metadata import attachment_names, main_document
from mailsvc.policy.classification import (
    ClassificationPolicy,
    Unreadable,
    load_classification_policy,
)
from mailsvc.register.attachments import main_attachment

pass_ctx = click.make_pass_decorator(Context)

FIELDS = (
    ("number_notation", "số, ký hiệu"),
    ("issued_date", "ngày văn bản"),
    ("doc_type", "tên loại"),
    ("abstract", "trích yếu"),
    ("urgency", "độ khẩn"),
    ("issuing_agency", "cơ quan ban hành"),
    ("parent_agency", "cơ quan chủ quản"),
    ("signer", "người ký"),
    ("signer_title", "chức vụ"),
    ("deadline", "hạn xử lý"),
)
WHERE_TEXT = {
    "header": "header",
    "heading": "heading",
    "signature": "signature block",
    "body": "body text",
    "subject": "mail subject",
}
# fields recorded together with another one
_SAME_PLACE = {"parent_agency": "issuing_agency", "signer_title": "signer"}
_HEADING = re.compile(
    r"^\s*(QUYẾT ĐỊNH|NGHỊ QUYẾT|KẾ HOẠCH|BÁO CÁO|THÔNG BÁO|TỜ TRÌNH|CHỈ THỊ|GIẤY MỜI|"
    r"QUY CHẾ|QUY ĐỊNH|CÔNG VĂN|HƯỚNG DẪN|CHƯƠNG TRÌNH)\s*$"
)


@dataclass(frozen=True)
class Inspection:
    path: Path
    text: ExtractedText
    matches: tuple[MarkingMatch, ...]
    deciding: MarkingMatch | None
    metadata: DocumentMetadata
    metadata_from: str  # location of the part the metadata were read from
    blocking: tuple[ExtractionFailure, ...]  # unreadable parts the policy refuses or errors


def as_message(path: Path, data: bytes) -> bytes:
    """The file as the pipeline sees it: a message (``.eml`` as is); a text file as a mail's
    text (how a document typed as text is sent, and where the pipeline reads it); else one
    attachment."""
    if path.suffix.lower() == ".eml" or formats.sniff(data, path.name, "") == formats.RFC822:
        return data
    msg = EmailMessage(policy=SMTP)
    msg["Subject"] = ""
    kind = formats.sniff(data, path.name, "application/octet-stream")
    if kind == "text/plain":
        msg.set_content(data.decode("utf-8", "replace"))
        return msg.as_bytes()
    msg.set_content("")
    maintype, _, subtype = kind.partition("/")
    msg.add_attachment(
        data, maintype=maintype, subtype=subtype or "octet-stream", filename=path.name
    )
    return msg.as_bytes()


def inspect_file(
    path: Path, policy: ClassificationPolicy, limits: ExtractionLimits, pool: ProcessPoolExecutor
) -> Inspection:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise MailsvcError(f"{path}: {exc.strerror or exc}") from exc
    raw = as_message(path, data)
    text = pool.submit(extract_message_bytes, raw, limits).result(timeout=limits.timeout_s)
    detector = MarkingDetector(policy)
    matches = tuple(detector.scan(text))
    # the main file as the register and the metadata stage decide it: only its text
    main_file = main_attachment(parse_tree(raw))
    main = main_document(text, main_file)
    names = attachment_names(text)
    subject = text.subject if path.suffix.lower() == ".eml" else ""
    source = main if main is not None else None
    body = source.text if source is not None else ("" if main_file else text.body_text)
    meta = extract_metadata(body, subject, [], names)
    blocking = tuple(
        f
        for f in (*text.failures, *text.skipped)
        if policy.unreadable.for_kind(f.kind) is not Unreadable.IGNORE
    )
    return Inspection(
        path=path,
        text=text,
        matches=matches,
        deciding=detector.strongest(matches),
        metadata=meta,
        metadata_from=source.location if source is not None else "body",
        blocking=blocking,
    )


def place_of(match: MarkingMatch, text: ExtractedText) -> str:
    """Where on the document a marking sits, in a clerk's words."""
    if match.source == Source.FILENAME:
        return "file name"
    if match.source in (Source.PDF_METADATA, Source.DOC_METADATA):
        return "document properties (keywords/title)"
    if match.source == Source.SUBJECT:
        return "mail subject"
    if match.rule == "label":
        return '"Độ mật:" line'
    part = next(
        (p for p in text.parts if p.location == match.location and p.source == match.source),
        None,
    )
    if part is None or match.line is None:
        return match.source
    lines = part.text.split("\n")
    i = match.line - 1
    above = [ln.strip() for ln in lines[max(0, i - 5) : i] if ln.strip()]
    below = [ln.strip() for ln in lines[i + 1 : i + 4] if ln.strip()]
    if any(ln.startswith("V/v") for ln in above[-4:]):
        return "header, left column, under the abstract (V/v)"
    if any(re.match(r"^Số\b", ln) for ln in above[-3:]):
        return "header, left column, under the number (Decree 30 box 10a)"
    if below and _HEADING.match(below[0].split("\t")[0]):
        return "above the type heading"
    if i < 3:
        return "top of the page / page header"
    return f"text line {match.line}"


def describe(result: Inspection) -> list[str]:
    text = result.text
    out = [str(result.path)]
    for part in text.parts:
        if part.source != Source.ATTACHMENT:
            continue
        pages = f", {part.pages} page(s)" if part.pages else ""
        out.append(
            f"  {part.location}: {part.content_type}{pages}; text: {part.text_source}, "
            f"{len(part.text)} characters"
        )
    if not text.attachments(top_level=False) and text.body_text:
        out.append(f"  body: {len(text.body_text)} characters")
    if result.matches:
        out.append("  classified markings:")
        for m in result.matches:
            line = _line_of(m, text)
            out.append(
                f"    {m.title} ({m.category}) rule {m.rule}, {place_of(m, text)}"
                f" [{m.location}{f' line {m.line}' if m.line else ''}]"
                + (f': "{line}"' if line else "")
            )
    else:
        out.append("  classified markings: none")
    for f in result.blocking:
        out.append(f"  unreadable: {f.location}: {f.kind} ({f.detail})")
    out.append(f"  metadata (from {result.metadata_from}):")
    meta = result.metadata
    for name, label in FIELDS:
        value = getattr(meta, name)
        if value in ("", None):
            continue
        shown = value.isoformat() if hasattr(value, "isoformat") else str(value)
        where = meta.source(name) or meta.source(_SAME_PLACE.get(name, name))
        out.append(f"    {name:<16} {shown}  ({label}; from {WHERE_TEXT.get(where, where)})")
    out.append("  decision: " + decision(result))
    return out


def decision(result: Inspection) -> str:
    if result.deciding is not None:
        return f"refused: classified content ({result.deciding.title})"
    if result.blocking:
        return "refused or retried: a part could not be read (see 'unreadable')"
    return "no marking: would go on to the signature checks and the register"


def _line_of(match: MarkingMatch, text: ExtractedText) -> str:
    if match.line is None:
        return ""
    for part in text.parts:
        if part.location == match.location and part.source == match.source:
            lines = part.text.split("\n")
            if 0 < match.line <= len(lines):
                return " ".join(lines[match.line - 1].split())[:120]
    return ""


def as_json(result: Inspection) -> dict[str, Any]:
    parts: list[dict[str, Any]] = [
        {
            "location": p.location,
            "content_type": p.content_type,
            "pages": p.pages,
            "text_source": p.text_source,
            "ocr_pages": list(p.ocr_pages),
            "characters": len(p.text),
        }
        for p in result.text.parts
        if p.source == Source.ATTACHMENT
    ]
    return {
        "file": str(result.path),
        "parts": parts,
        "markings": [m.to_dict() | {"place": place_of(m, result.text)} for m in result.matches],
        "unreadable": [
            {"location": f.location, "kind": f.kind, "detail": f.detail} for f in result.blocking
        ],
        "metadata": result.metadata.to_dict(),
        "metadata_from": result.metadata_from,
        "decision": decision(result),
    }


def _load(ctx: Context) -> tuple[ClassificationPolicy, ExtractionLimits]:
    from mailsvc.app import extraction_limits, policies_dir

    settings = ctx.settings
    policy = load_classification_policy(policies_dir(settings) / "classification.yaml")
    return policy, extraction_limits(settings)


@click.command("inspect")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--json", "as_json_output", is_flag=True, help="One JSON object per file.")
@click.option("--text", "show_text", is_flag=True, help="Also print the extracted text.")
@pass_ctx
def inspect_cmd(ctx: Context, files: Sequence[Path], as_json_output: bool, show_text: bool) -> None:
    """Show what the service reads from documents: text source (layer or OCR), classified
    markings with their place, metadata with where each field came from."""
    policy, limits = _load(ctx)
    refused = False
    with ProcessPoolExecutor(max_workers=1) as pool:
        for path in files:
            result = inspect_file(path, policy, limits, pool)
            refused = refused or result.deciding is not None or bool(result.blocking)
            if as_json_output:
                click.echo(json.dumps(as_json(result), ensure_ascii=False))
                continue
            click.echo("\n".join(describe(result)))
            if show_text:
                for part in result.text.parts:
                    if part.source in (Source.ATTACHMENT, Source.BODY):
                        click.echo(f"  --- text of {part.location} ---")
                        click.echo(_indent(part))
    raise SystemExit(2 if refused else 0)


def _indent(part: DocumentPart) -> str:
    return "\n".join("    " + line for line in part.text.split("\n"))


def register(group: click.Group) -> None:
    group.add_command(inspect_cmd)
