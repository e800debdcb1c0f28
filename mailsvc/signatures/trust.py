"""Trust anchors and CRLs: where they live, what version they are, and the admin store.

Trust anchors are certificate files (PEM or DER, one or more per file) in the
configured directories: the packaged/admin ``policies/trust/`` and ``HOME/trust/``
(managed by ``mailsvc trust add|list|remove``). Nothing is hard-coded.
CRLs are the configured files plus the cache that ``refresh_crls`` fills.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding

from mailsvc.errors import ConflictError, MailsvcError, NotFoundError

CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der")
CRL_SUFFIXES = (".crl", ".pem", ".der")


@dataclass(frozen=True)
class TrustConfig:
    """Where the validation material is; picklable, sent to worker processes.

    ``anchor_dirs`` hold trust-anchor certificates; ``crl_files`` are CRLs the admin
    placed; ``crl_cache_dir`` holds CRLs fetched by ``refresh_crls``.
    """

    anchor_dirs: tuple[Path, ...]
    crl_files: tuple[Path, ...] = ()
    crl_cache_dir: Path | None = None
    revocation_mode: str = "hard-fail"
    allow_fetching: bool = False

    def files(self) -> Iterator[tuple[str, Path]]:
        """Every material file as ("anchor" | "crl", path), in a stable order."""
        for directory in self.anchor_dirs:
            for path in _list(directory, CERT_SUFFIXES):
                yield "anchor", path
        for path in sorted(self.crl_files):
            if path.is_file():
                yield "crl", path
        if self.crl_cache_dir is not None:
            for path in _list(self.crl_cache_dir, CRL_SUFFIXES):
                yield "crl", path

    def version(self) -> str:
        """A cheap fingerprint (names, sizes, mtimes) that changes when material changes."""
        h = hashlib.sha256()
        h.update(f"{self.revocation_mode}|{self.allow_fetching}".encode())
        for kind, path in self.files():
            try:
                st = path.stat()
            except OSError:
                continue
            h.update(f"{kind}|{path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
        return h.hexdigest()[:16]


@dataclass(frozen=True)
class TrustMaterial:
    """The bytes of every trust anchor (DER) and CRL (DER), read at one moment."""

    version: str
    anchors: tuple[bytes, ...]
    crls: tuple[bytes, ...]


def load_trust_material(config: TrustConfig) -> TrustMaterial:
    version = config.version()
    anchors: list[bytes] = []
    crls: list[bytes] = []
    for kind, path in config.files():
        data = path.read_bytes()
        if kind == "anchor":
            anchors.extend(c.public_bytes(Encoding.DER) for c in read_certificates(data, path))
        else:
            crls.extend(read_crls(data, path))
    return TrustMaterial(version=version, anchors=tuple(anchors), crls=tuple(crls))


def read_certificates(data: bytes, source: Path | str = "") -> list[x509.Certificate]:
    try:
        if b"-----BEGIN" in data:
            return x509.load_pem_x509_certificates(data)
        return [x509.load_der_x509_certificate(data)]
    except ValueError as exc:
        raise MailsvcError(f"{source}: not an X.509 certificate: {exc}") from exc


def read_crls(data: bytes, source: Path | str = "") -> list[bytes]:
    """DER bytes of every CRL in a PEM or DER file."""
    try:
        if b"-----BEGIN" in data:
            blocks = re.findall(
                rb"-----BEGIN X509 CRL-----.+?-----END X509 CRL-----", data, flags=re.S
            )
            return [x509.load_pem_x509_crl(b).public_bytes(Encoding.DER) for b in blocks]
        return [x509.load_der_x509_crl(data).public_bytes(Encoding.DER)]
    except ValueError as exc:
        raise MailsvcError(f"{source}: not a CRL: {exc}") from exc


def _list(directory: Path, suffixes: Sequence[str]) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in suffixes)


@dataclass(frozen=True)
class TrustAnchor:
    """One trusted certificate as the admin sees it."""

    fingerprint: str  # SHA-256, hex
    subject: str
    issuer: str
    serial: str
    not_before: datetime
    not_after: datetime
    is_ca: bool
    path: Path
    managed: bool  # True: in HOME/trust (removable with `mailsvc trust remove`)

    def to_dict(self) -> dict[str, object]:
        """Plain values (times as datetimes, for the CLI to show in the local zone)."""
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "not_before": self.not_before,
            "not_after": self.not_after,
            "is_ca": self.is_ca,
            "path": str(self.path),
            "managed": self.managed,
        }


def describe_anchor(cert: x509.Certificate, path: Path, managed: bool) -> TrustAnchor:
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except x509.ExtensionNotFound:
        is_ca = False
    return TrustAnchor(
        fingerprint=cert.fingerprint(hashes.SHA256()).hex(),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "X"),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        is_ca=is_ca,
        path=path,
        managed=managed,
    )


class TrustStore:
    """The admin-managed anchors in HOME/trust, plus read-only ones (policies/trust)."""

    def __init__(self, directory: Path, readonly_dirs: Sequence[Path] = ()) -> None:
        self.directory = directory
        self.readonly_dirs = tuple(readonly_dirs)

    def anchors(self) -> list[TrustAnchor]:
        out: list[TrustAnchor] = []
        for directory, managed in [(d, False) for d in self.readonly_dirs] + [
            (self.directory, True)
        ]:
            for path in _list(directory, CERT_SUFFIXES):
                for cert in read_certificates(path.read_bytes(), path):
                    out.append(describe_anchor(cert, path, managed))
        return out

    def add(self, data: bytes, source: str = "") -> list[TrustAnchor]:
        """Store each certificate in ``data`` as HOME/trust/<fingerprint>.pem."""
        certs = read_certificates(data, source)
        known = {a.fingerprint for a in self.anchors()}
        self.directory.mkdir(parents=True, exist_ok=True)
        added: list[TrustAnchor] = []
        for cert in certs:
            fp = cert.fingerprint(hashes.SHA256()).hex()
            if fp in known:
                raise ConflictError(f"certificate {fp[:16]} is already trusted")
            path = self.directory / f"{fp[:32]}.pem"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(cert.public_bytes(Encoding.PEM))
            os.replace(tmp, path)
            added.append(describe_anchor(cert, path, True))
        return added

    def remove(self, ref: str) -> TrustAnchor:
        """Remove the managed anchor whose fingerprint starts with ``ref`` (>= 8 hex digits)."""
        ref = ref.lower().replace(":", "")
        if len(ref) < 8:
            raise MailsvcError("give at least 8 hex digits of the SHA-256 fingerprint")
        matches = [a for a in self.anchors() if a.fingerprint.startswith(ref)]
        if not matches:
            raise NotFoundError(f"no trusted certificate with fingerprint {ref}")
        if len(matches) > 1:
            raise ConflictError(f"fingerprint prefix {ref} is ambiguous")
        anchor = matches[0]
        if not anchor.managed:
            raise ConflictError(
                f"{anchor.path} is in a read-only trust directory; remove the file there"
            )
        others = [
            c
            for c in read_certificates(anchor.path.read_bytes(), anchor.path)
            if c.fingerprint(hashes.SHA256()).hex() != anchor.fingerprint
        ]
        if others:
            anchor.path.write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in others))
        else:
            anchor.path.unlink()
        return anchor
