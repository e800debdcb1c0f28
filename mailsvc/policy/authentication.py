"""policies/authentication.yaml: how DKIM, SPF and DMARC are checked (typed, validated)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailsvc.errors import ConfigError


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DkimPolicy(_Section):
    min_key_bits: int = Field(default=1024, ge=512)
    max_signatures: int = Field(default=5, ge=1)  # more are ignored (cost bound)


class SpfPolicy(_Section):
    enabled: bool = True
    lookup_limit: int = Field(default=10, ge=1)  # RFC 7208 4.6.4: terms causing DNS lookups
    void_lookup_limit: int = Field(default=2, ge=0)  # RFC 7208 4.6.4: empty answers
    mx_limit: int = Field(default=10, ge=1)  # names per mx / ptr mechanism
    # The directory's allowed_senders decide for agency domains, without DNS.
    pinned_senders: bool = True


class DmarcPolicy(_Section):
    enabled: bool = True
    # Applied to agency domains (directory) that publish no DMARC record, e.g. in a closed
    # network without public DNS. "none" disables the implicit policy.
    directory_policy: Literal["none", "quarantine", "reject"] = "reject"


class AuthenticationPolicy(_Section):
    version: str = "1"
    dkim: DkimPolicy = DkimPolicy()
    spf: SpfPolicy = SpfPolicy()
    dmarc: DmarcPolicy = DmarcPolicy()
    # Extra public suffixes for the organisational domain (e.g. private suffixes of a
    # closed network), added to the Public Suffix List (publicsuffixlist package).
    public_suffixes: tuple[str, ...] = ()


def describe_validation_error(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"]) or "(top level)"
    return f"{source}: key '{key}': {first['msg']}"


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """Read a YAML policy file that must hold a mapping; ConfigError names the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: key '(top level)': expected a mapping")
    return data


def load_authentication_policy(path: Path | str) -> AuthenticationPolicy:
    path = Path(path)
    try:
        return AuthenticationPolicy.model_validate(read_yaml_mapping(path))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, str(path))) from exc
