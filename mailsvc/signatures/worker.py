"""The unit of CPU work: verify one document. Top-level and picklable for a ProcessPoolExecutor."""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass

from mailsvc.signatures.openpgp import verify_openpgp
from mailsvc.signatures.report import SignatureFormat, SignatureResult
from mailsvc.signatures.smime import DocumentJob
from mailsvc.signatures.validation import (
    ValidationSettings,
    validate_detached_cms,
    validate_enveloping_cms,
    validate_pdf,
)


@dataclass(frozen=True)
class DocumentResult:
    """What the worker found; the engine turns it into a DocumentSignatureReport."""

    name: str
    sha256: str  # of the validated content (for a .p7m: the content it encloses)
    signatures: tuple[SignatureResult, ...]
    unwrapped: bytes | None = None  # content of an enveloping CMS (walked for attachments)
    attachment_sha256: str = ""  # of the file as attached (for a .p7m: the .p7m itself)
    message_level: bool = False  # DocumentJob's flags, carried over
    whole_message: bool = False
    within: tuple[str, ...] = ()


def is_pdf(data: bytes) -> bool:
    return b"%PDF-" in data[:1024]


async def _verify(job: DocumentJob, settings: ValidationSettings, version: str) -> DocumentResult:
    fmt = SignatureFormat.SMIME if job.message_level else SignatureFormat.CMS
    results: list[SignatureResult] = []
    content = job.content
    attached = hashlib.sha256(content).hexdigest()
    name = job.name
    unwrapped = None
    if job.enveloping:
        found, inner = await validate_enveloping_cms(content, settings, version, fmt)
        results.extend(found)
        if inner is not None:
            content = unwrapped = inner
        if not job.message_level and "." in name:
            name = name[: name.rfind(".")]
    if not job.message_level and is_pdf(content):
        results.extend(await validate_pdf(content, settings, version))
    for sig in job.detached:
        if sig.kind == "openpgp":
            results.extend(verify_openpgp(content, sig.data, settings.gnupg_home))
        else:
            results.extend(await validate_detached_cms(content, sig.data, settings, version, fmt))
    return DocumentResult(
        name=name,
        sha256=hashlib.sha256(content).hexdigest(),
        signatures=tuple(results),
        unwrapped=unwrapped if job.message_level else None,
        attachment_sha256=attached,
        message_level=job.message_level,
        whole_message=job.whole_message,
        within=job.within,
    )


def verify_document(job: DocumentJob, settings: ValidationSettings, version: str) -> DocumentResult:
    """Verify every signature of one document. Runs in a worker thread or process."""
    return asyncio.run(_verify(job, settings, version))
