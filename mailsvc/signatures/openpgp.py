"""OpenPGP signatures through python-gnupg and the admin-managed keyring (GNUPGHOME).

Every key in the keyring is a trust anchor (``--trust-model always``): the admin decides
what is in it. A key that is not there gives INDETERMINATE/NO_CERTIFICATE_CHAIN_FOUND.
User ids follow "Name (Organisation) <mail>"; a user id whose name equals its comment is
an organisation key.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from datetime import UTC, datetime

import gnupg

from mailsvc.errors import DependencyError
from mailsvc.signatures.report import CertificateKind, Indication, SignatureFormat, SignatureResult

_gpgs: dict[str, gnupg.GPG] = {}
_lock = threading.Lock()
_UID = re.compile(r"^(?P<name>[^(<]*?)\s*(?:\((?P<comment>[^)]*)\))?\s*(?:<(?P<mail>[^>]*)>)?$")


def _gpg(home: str) -> gnupg.GPG:
    with _lock:
        found = _gpgs.get(home)
        if found is None:
            try:
                found = gnupg.GPG(
                    gnupghome=home,
                    options=["--trust-model", "always", "--no-auto-key-retrieve"],
                )
            except (OSError, ValueError) as exc:
                raise DependencyError(f"gpg is not usable: {exc}") from exc
            found.encoding = "utf-8"
            _gpgs[home] = found
        return found


def _time(value: str | None) -> datetime | None:
    if not value or not value.isdigit():
        return None
    return datetime.fromtimestamp(int(value), UTC)


def _blocks(stderr: str) -> list[list[tuple[str, str]]]:
    blocks: list[list[tuple[str, str]]] = []
    for line in stderr.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        key, _, value = line[9:].partition(" ")
        if key == "NEWSIG" or not blocks:
            blocks.append([])
        blocks[-1].append((key, value))
    return [b for b in blocks if any(k not in ("NEWSIG",) for k, _ in b)]


def _identity(uid: str) -> tuple[str, str, CertificateKind]:
    m = _UID.match(uid.strip())
    if not m:
        return uid, "", CertificateKind.PERSONAL
    name = (m.group("name") or "").strip()
    org = (m.group("comment") or "").strip()
    kind = (
        CertificateKind.ORGANISATION
        if org and (not name or name.casefold() == org.casefold())
        else CertificateKind.PERSONAL
    )
    return name or org, org, kind


def _result(block: list[tuple[str, str]]) -> SignatureResult:
    status = dict(block)
    fmt = SignatureFormat.OPENPGP
    uid = ""
    for key in ("GOODSIG", "BADSIG", "EXPKEYSIG", "REVKEYSIG", "EXPSIG"):
        if key in status:
            uid = status[key].partition(" ")[2]
    name, org, kind = _identity(uid) if uid else ("", "", CertificateKind.UNKNOWN)
    fingerprint = ""
    signing_time = None
    if "VALIDSIG" in status:
        parts = status["VALIDSIG"].split()
        fingerprint = parts[9] if len(parts) >= 10 else parts[0]
        signing_time = _time(parts[2])
    elif "ERRSIG" in status:
        parts = status["ERRSIG"].split()
        fingerprint = parts[6] if len(parts) >= 7 else parts[0]
        signing_time = _time(parts[4] if len(parts) > 4 else None)
    indication, sub, detail = Indication.TOTAL_PASSED, None, "the signature is valid"
    if "BADSIG" in status:
        indication, sub = Indication.TOTAL_FAILED, "HASH_FAILURE"
        detail = "the signed content was changed after signing"
    elif "REVKEYSIG" in status:
        indication, sub = Indication.TOTAL_FAILED, "REVOKED"
        detail = "the signing key is revoked"
    elif "EXPKEYSIG" in status:
        indication, sub = Indication.INDETERMINATE, "OUT_OF_BOUNDS_NO_POE"
        detail = "the signing key has expired"
    elif "EXPSIG" in status:
        indication, sub = Indication.INDETERMINATE, "EXPIRED"
        detail = "the signature has expired"
    elif "NO_PUBKEY" in status:
        indication, sub = Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"
        detail = "the signer's key is not in the admin keyring"
    elif "ERRSIG" in status or "GOODSIG" not in status or "VALIDSIG" not in status:
        indication, sub = Indication.TOTAL_FAILED, "FORMAT_FAILURE"
        detail = "the signature could not be checked"
    return SignatureResult(
        format=fmt,
        indication=indication,
        subindication=sub,
        signer_name=name,
        organisation=org,
        kind=kind,
        serial=fingerprint,
        subject=uid,
        fingerprint=fingerprint,
        signing_time=signing_time,
        detail=detail,
    )


def verify_openpgp(
    content: bytes, signature: bytes, gnupg_home: str | None
) -> list[SignatureResult]:
    """Verify a detached OpenPGP signature (binary or armored) over ``content``."""
    if not gnupg_home:
        return [
            SignatureResult(
                format=SignatureFormat.OPENPGP,
                indication=Indication.INDETERMINATE,
                subindication="NO_CERTIFICATE_CHAIN_FOUND",
                detail="no OpenPGP keyring is configured",
            )
        ]
    gpg = _gpg(gnupg_home)
    fd, path = tempfile.mkstemp(prefix="mailsvc-sig-", suffix=".sig")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(signature)
        result = gpg.verify_data(path, content)
    finally:
        os.unlink(path)
    blocks = _blocks(result.stderr or "")
    if result.returncode is None and not blocks:
        raise DependencyError("gpg did not run")
    if not blocks:
        return [
            SignatureResult(
                format=SignatureFormat.OPENPGP,
                indication=Indication.TOTAL_FAILED,
                subindication="FORMAT_FAILURE",
                detail="no OpenPGP signature found",
            )
        ]
    return [_result(b) for b in blocks]
