"""What the text extraction read from a message, for the document tests."""

from __future__ import annotations

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes


def read_parts(raw: bytes, limits: ExtractionLimits | None = None) -> list[tuple[str, str, str]]:
    """(location, file name, text) of every part read from the message's attachments,
    at any depth; the test fails if anything could not be read."""
    text = extract_message_bytes(raw, limits or ExtractionLimits())
    assert not text.failures, text.failures
    return [(p.location, p.filename or "", p.text) for p in text.attachments(top_level=False)]
