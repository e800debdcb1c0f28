"""CRLs: fetch configured URLs (or copy configured files) into the cache under HOME.

``refresh_crls`` is what the scheduled job calls. Validation reads the cache and the
configured files offline; a CRL whose nextUpdate has passed makes validation
INDETERMINATE/TRY_LATER under hard-fail, so the job must run more often than CRLs expire.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

from mailsvc.signatures.trust import read_crls

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CrlRefresh:
    """Outcome of refreshing one CRL source."""

    source: str
    ok: bool
    path: Path | None = None
    issuer: str = ""
    this_update: datetime | None = None
    next_update: datetime | None = None
    error: str = ""


MAX_CRL_BYTES = 64 * 1024 * 1024


def cache_path(cache_dir: Path, source: str) -> Path:
    return cache_dir / f"{hashlib.sha256(source.encode()).hexdigest()[:24]}.crl"


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def refresh_crls(
    sources: Sequence[str], cache_dir: Path, *, home: Path | None = None, timeout: float = 30.0
) -> list[CrlRefresh]:
    """Fetch each URL (or read each file) and store valid CRLs in ``cache_dir`` atomically.

    A source that fails keeps its previous cached copy; the failure is reported, not raised.
    Relative file sources are resolved against ``home``.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    results: list[CrlRefresh] = []
    # A CRL is one GET of a static file (redirects followed, an HTTP error raises): the
    # standard library does it; aiohttp stays the only third-party HTTP client.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    for source in sources:
        try:
            if is_url(source):
                with opener.open(source, timeout=timeout) as response:
                    data = response.read(MAX_CRL_BYTES + 1)
                if len(data) > MAX_CRL_BYTES:
                    raise ValueError(f"CRL larger than {MAX_CRL_BYTES} bytes")
            else:
                path = Path(source)
                if not path.is_absolute() and home is not None:
                    path = home / path
                data = path.read_bytes()
            ders = read_crls(data, source)
            if len(ders) != 1:
                raise ValueError(f"expected one CRL, found {len(ders)}")
            crl = x509.load_der_x509_crl(ders[0])
            target = cache_path(cache_dir, source)
            tmp = target.with_suffix(".tmp")
            tmp.write_bytes(ders[0])
            os.replace(tmp, target)
            results.append(
                CrlRefresh(
                    source=source,
                    ok=True,
                    path=target,
                    issuer=crl.issuer.rfc4514_string(),
                    this_update=crl.last_update_utc,
                    next_update=crl.next_update_utc,
                )
            )
        except Exception as exc:  # boundary: one bad source must not stop the others
            log.warning("CRL refresh failed for %s: %s", source, exc)
            results.append(CrlRefresh(source=source, ok=False, error=str(exc)))
    return results
