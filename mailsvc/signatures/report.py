"""Typed results of signature verification, in ETSI EN 319 102-1 terms.

These objects travel in ``Finding.payload`` (the register reads them with
``verdict.payloads(DocumentSignatureReport)``) and are printed by ``mailsvc verify``.
They are frozen, picklable and hold only plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from enum import StrEnum
from typing import Any


class Indication(StrEnum):
    """Main status indication of one signature (ETSI EN 319 102-1 §5.1.3)."""

    TOTAL_PASSED = "TOTAL_PASSED"
    INDETERMINATE = "INDETERMINATE"
    TOTAL_FAILED = "TOTAL_FAILED"


class SignatureFormat(StrEnum):
    """Where the signature came from."""

    SMIME = "smime"  # multipart/signed or application/pkcs7-mime on the message
    CMS = "cms"  # detached x.pdf.p7s (CAdES-BES / CAdES-T) or enveloping x.pdf.p7m
    PDF = "pdf"  # signature embedded in a PDF (PAdES, adbe.pkcs7.detached)
    OPENPGP = "openpgp"  # detached x.pdf.sig / x.pdf.asc or PGP/MIME


class CertificateKind(StrEnum):
    """Whose signature it is (see ``OrganisationRule`` in policy.py for the rule)."""

    PERSONAL = "personal"  # chứng thư số cá nhân: replaces the handwritten signature
    ORGANISATION = "organisation"  # chứng thư số cơ quan: replaces the seal
    UNKNOWN = "unknown"  # no certificate could be read


class DocumentOutcome(StrEnum):
    """Legal value of a document under policies/signature.yaml."""

    VALID = "valid"  # giá trị pháp lý: signed as the policy requires, every signature passed
    REFERENCE_ONLY = "reference_only"  # chỉ có giá trị tham khảo
    INVALID = "invalid"  # từ chối tiếp nhận: the policy refuses it


@dataclass(frozen=True)
class SignatureResult:
    """One signature on one document, validated.

    Fields:
      format: where the signature was found.
      indication: TOTAL_PASSED, INDETERMINATE or TOTAL_FAILED.
      subindication: ETSI sub-indication name (``HASH_FAILURE``, ``REVOKED``,
        ``NO_CERTIFICATE_CHAIN_FOUND``, ``OUT_OF_BOUNDS_NO_POE``, ``TRY_LATER``,
        ``CHAIN_CONSTRAINTS_FAILURE``, ...); None when TOTAL_PASSED.
      signer_name: common name of the signer (OpenPGP: the user id's name).
      organisation: the O attribute of the signer's certificate ("" if none).
      kind: personal or organisation certificate.
      serial: certificate serial number in upper-case hex (OpenPGP: key fingerprint).
      issuer: issuer distinguished name, RFC 4514 (OpenPGP: "").
      subject: subject distinguished name, RFC 4514 (OpenPGP: the user id).
      fingerprint: SHA-256 of the certificate, hex (OpenPGP: key fingerprint).
      signing_time: time claimed by the signer (signingTime / PDF /M), UTC; may be None.
      timestamp_time: time of a trusted signature timestamp token (CAdES-T / PAdES-T), UTC.
      trust_anchor: subject of the trust anchor the path ended at ("" if none).
      revoked_at: revocation time when the certificate (or a CA) was found revoked.
      field_name: PDF signature field name ("" for other formats).
      modification: PDF only: "none", "lta_updates", "form_filling", "annotations" or
        "other" (content changed after this signature; "other" fails the signature).
      detail: one readable English sentence on why the indication is what it is.
    """

    format: SignatureFormat
    indication: Indication
    subindication: str | None
    signer_name: str = ""
    organisation: str = ""
    kind: CertificateKind = CertificateKind.UNKNOWN
    serial: str = ""
    issuer: str = ""
    subject: str = ""
    fingerprint: str = ""
    signing_time: datetime | None = None
    timestamp_time: datetime | None = None
    trust_anchor: str = ""
    revoked_at: datetime | None = None
    field_name: str = ""
    modification: str = ""
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.indication is Indication.TOTAL_PASSED

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """JSON-able; times ISO 8601 in ``tz`` (UTC as stored when None)."""
        return {
            "format": self.format.value,
            "indication": self.indication.value,
            "subindication": self.subindication,
            "signer_name": self.signer_name,
            "organisation": self.organisation,
            "kind": self.kind.value,
            "serial": self.serial,
            "issuer": self.issuer,
            "subject": self.subject,
            "fingerprint": self.fingerprint,
            "signing_time": _iso(self.signing_time, tz),
            "timestamp_time": _iso(self.timestamp_time, tz),
            "trust_anchor": self.trust_anchor,
            "revoked_at": _iso(self.revoked_at, tz),
            "field_name": self.field_name,
            "modification": self.modification,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class DocumentSignatureReport:
    """The signatures of one document (an attachment, a file, or the message itself).

    Fields:
      document: file name of the document; "(message)" for an S/MIME or PGP/MIME
        signature on the whole message.
      sha256: SHA-256 (hex) of the document bytes as received (for a .p7m: its content).
      outcome: valid / reference_only / invalid, decided by policies/signature.yaml.
      reason: stable kebab-case code for the outcome: "signed", "unsigned",
        "signature-invalid", "signature-indeterminate", "organisation-signature-missing",
        "personal-signature-missing", "signer-mismatch", "no-documents".
      signatures: every signature found, in document order.
      sender_agency: code of the agency the directory holds for the sender's domain
        (None when unknown or when verified offline).
      signer_matches_sender: True/False when an organisation signature passed and the
        sender's agency is known; None when that comparison could not be made.
      detail: one readable English sentence about the outcome.
      attachment_sha256: SHA-256 (hex) of the file as it was attached (for a .p7m: the
        .p7m file; for x.pdf with x.pdf.p7s: x.pdf). A report applies to a file only when
        this hash or ``sha256`` is the file's: never by file name.
      whole_message: a message-level signature (S/MIME, PGP/MIME) whose signed entity is
        the message's whole content; one on a single part beside unsigned others is not.
    """

    document: str
    sha256: str
    outcome: DocumentOutcome
    reason: str
    signatures: tuple[SignatureResult, ...] = ()
    sender_agency: str | None = None
    signer_matches_sender: bool | None = None
    detail: str = ""
    attachment_sha256: str = ""
    whole_message: bool = False

    def applies_to(self, sha256: str) -> bool:
        """Whether this report was made from exactly the file with this SHA-256 (the
        validated content, or the attached file it came from)."""
        return bool(sha256) and sha256 in (self.sha256, self.attachment_sha256)

    @property
    def signed(self) -> bool:
        return bool(self.signatures)

    def to_dict(self, tz: tzinfo | None = None) -> dict[str, Any]:
        """JSON-able; times ISO 8601 in ``tz`` (UTC as stored when None)."""
        return {
            "document": self.document,
            "sha256": self.sha256,
            "attachment_sha256": self.attachment_sha256,
            "whole_message": self.whole_message,
            "outcome": self.outcome.value,
            "reason": self.reason,
            "sender_agency": self.sender_agency,
            "signer_matches_sender": self.signer_matches_sender,
            "detail": self.detail,
            "signatures": [s.to_dict(tz) for s in self.signatures],
        }

    def to_json(self) -> dict[str, Any]:
        """The short form stored with the message's verdict (no times, no chain)."""
        return {
            "document": self.document,
            "outcome": self.outcome.value,
            "sender_agency": self.sender_agency,
            "signer_matches_sender": self.signer_matches_sender,
            "signatures": [
                {
                    "format": s.format.value,
                    "indication": s.indication.value,
                    "subindication": s.subindication,
                    "signer": s.signer_name,
                    "organisation": s.organisation,
                    "kind": s.kind.value,
                    "serial": s.serial,
                    "fingerprint": s.fingerprint,
                }
                for s in self.signatures
            ],
        }


def _iso(value: datetime | None, tz: tzinfo | None = None) -> str | None:
    if value is None:
        return None
    return (value.astimezone(tz) if tz is not None else value).isoformat()
