"""CRL sources an administrator manages from the command line (``mailsvc trust crl add |
list | remove``), kept in HOME/trust/revocation.yaml beside the managed anchors.

They add to ``crl_sources`` of policies/signature.yaml (which stays read-only here): the CRL
refresh job fetches both into HOME/crl, and validation reads the file sources of both.
(There are no configured OCSP responders: pyHanko takes them from each certificate when
``allow_fetching`` is on, so there is nothing to manage for OCSP.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from mailsvc.errors import ConfigError, MailsvcError, NotFoundError

FILE_NAME = "revocation.yaml"


def sources_path(home: Path) -> Path:
    return home / "trust" / FILE_NAME


def managed_crl_sources(home: Path) -> tuple[str, ...]:
    path = sources_path(home)
    if not path.exists():
        return ()
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    items = data.get("crl") if isinstance(data, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{path}: key 'crl': expected a list of strings")
    return tuple(items)


def _save(home: Path, sources: Sequence[str]) -> None:
    path = sources_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    text = (
        "# Managed by `mailsvc trust crl add|remove`; policies/signature.yaml's\n"
        "# crl_sources apply too.\n" + yaml.safe_dump({"crl": list(sources)}, sort_keys=False)
    )
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def normalise(source: str, cwd: Path) -> str:
    """A URL as given (http/https only); a file as an absolute path that exists."""
    source = source.strip()
    parts = urlsplit(source)
    if parts.scheme.lower() in ("http", "https"):
        if not parts.hostname:
            raise MailsvcError(f"{source!r}: a URL needs a host")
        return source
    if "://" in source:
        raise MailsvcError(f"{source!r}: only http:// and https:// URLs, or a CRL file")
    path = Path(source)
    path = path if path.is_absolute() else cwd / path
    if not path.is_file():
        raise MailsvcError(f"{path}: no such file")
    return str(path.resolve())


def add_crl_source(home: Path, source: str) -> bool:
    """Add a normalised source; False when it was already listed."""
    listed = managed_crl_sources(home)
    if source in listed:
        return False
    _save(home, (*listed, source))
    return True


def remove_crl_source(home: Path, source: str) -> str:
    """Remove the listed source equal to ``source`` (for a file: resolving to it)."""
    listed = managed_crl_sources(home)
    candidates = {source.strip()}
    if "://" not in source:
        candidates.add(str(Path(source).resolve()))
    match = next((s for s in listed if s in candidates), None)
    if match is None:
        raise NotFoundError(f"{source!r} is not a CRL source managed here (see `trust crl list`)")
    _save(home, tuple(s for s in listed if s != match))
    return match


def all_crl_sources(policy_sources: Sequence[str], home: Path) -> tuple[str, ...]:
    """The policy's CRL sources, then the managed ones (each once)."""
    return tuple(dict.fromkeys((*policy_sources, *managed_crl_sources(home))))
