"""The hostile-content limits (policies/limits.yaml) as one typed, validated object."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailsvc.policy.pipeline import describe_error, load_yaml

KiB = 1024
MiB = 1024 * 1024


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MimeLimits(_Section):
    max_depth: int = Field(default=10, ge=1, le=100)  # multipart/* and message/* nesting
    max_parts: int = Field(default=500, ge=1)  # MIME entities in the whole message


class HeaderLimits(_Section):
    max_bytes: int = Field(default=256 * KiB, ge=1 * KiB)  # one header block (message or part)
    max_line_bytes: int = Field(default=16 * KiB, ge=998)  # one physical header line
    max_fields: int = Field(default=1000, ge=10)  # header fields in one block


class DecodedLimits(_Section):
    max_part_bytes: int = Field(default=30 * MiB, ge=1)  # one part after base64/QP decoding
    max_total_bytes: int = Field(default=60 * MiB, ge=1)  # all parts together


class ArchiveLimits(_Section):
    # Uncompressed bytes (as declared by the archives) across every archive in the message.
    max_total_bytes: int = Field(default=200 * MiB, ge=1)
    max_ratio: float = Field(default=150.0, gt=1)  # uncompressed / compressed, per member
    ratio_min_bytes: int = Field(default=1 * MiB, ge=0)  # ratio checked only above this size
    max_entries: int = Field(default=5000, ge=1)  # members across every archive in the message
    max_depth: int = Field(default=3, ge=1, le=20)  # archive in archive in ... (1 = no nesting)
    max_nested_bytes: int = Field(default=20 * MiB, ge=1)  # nested archive read for inspection
    refuse_unreadable: bool = True  # looks like an archive but cannot be read
    refuse_encrypted: bool = False  # password-protected members cannot be inspected


class LimitsPolicy(_Section):
    version: str = ""
    mime: MimeLimits = MimeLimits()
    headers: HeaderLimits = HeaderLimits()
    decoded: DecodedLimits = DecodedLimits()
    archives: ArchiveLimits = ArchiveLimits()


def load_limits_policy(path: Path) -> LimitsPolicy:
    """Load and validate ``limits.yaml``; ConfigError names the file and the key."""
    data = load_yaml(path)
    if data is None:
        data = {}
    try:
        return LimitsPolicy.model_validate(data)
    except ValidationError as exc:
        raise describe_error(path, exc) from exc
