"""Who signed: name, organisation and certificate kind, read from the signing certificate."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID, NameOID

from mailsvc.signatures.policy import OrganisationRule
from mailsvc.signatures.report import CertificateKind

_NAME_OIDS = {
    "given_name": NameOID.GIVEN_NAME,
    "surname": NameOID.SURNAME,
    "pseudonym": NameOID.PSEUDONYM,
    "common_name": NameOID.COMMON_NAME,
    "serial_number": NameOID.SERIAL_NUMBER,
    "user_id": NameOID.USER_ID,
}


@dataclass(frozen=True)
class SignerIdentity:
    signer_name: str
    organisation: str
    kind: CertificateKind
    serial: str
    issuer: str
    subject: str
    fingerprint: str


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str:
    attrs = name.get_attributes_for_oid(oid)
    value = attrs[0].value if attrs else ""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _policy_oids(cert: x509.Certificate) -> set[str]:
    try:
        ext = cert.extensions.get_extension_for_oid(ExtensionOID.CERTIFICATE_POLICIES)
    except x509.ExtensionNotFound:
        return set()
    value = ext.value
    assert isinstance(value, x509.CertificatePolicies)
    return {p.policy_identifier.dotted_string for p in value}


def classify(cert: x509.Certificate, rule: OrganisationRule) -> CertificateKind:
    """Personal or organisation certificate, by the rule documented in OrganisationRule."""
    oids = _policy_oids(cert)
    if oids & set(rule.organisation_policy_oids):
        return CertificateKind.ORGANISATION
    if oids & set(rule.personal_policy_oids):
        return CertificateKind.PERSONAL
    subject = cert.subject
    for attr in rule.personal_name_attributes:
        oid = _NAME_OIDS.get(attr)
        if oid is not None and subject.get_attributes_for_oid(oid):
            return CertificateKind.PERSONAL
    org = _first(subject, NameOID.ORGANIZATION_NAME)
    cn = _first(subject, NameOID.COMMON_NAME)
    units = {a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)}
    if org and (not cn or cn.casefold() == org.casefold() or cn in units):
        return CertificateKind.ORGANISATION
    return CertificateKind.PERSONAL


def identify(cert: asn1_x509.Certificate | bytes, rule: OrganisationRule) -> SignerIdentity:
    """Who the certificate names, and whether it is personal or an organisation's."""
    return _identify(cert if isinstance(cert, bytes) else cert.dump(), rule)


@lru_cache(maxsize=1024)
def _identify(der: bytes, rule: OrganisationRule) -> SignerIdentity:
    """Kept by certificate and rule: an official signs many documents with one
    certificate, an agency seals all of its own with one (parsing the extensions was a
    twentieth of a worker's time on signed documents)."""
    c = x509.load_der_x509_certificate(der)
    org = _first(c.subject, NameOID.ORGANIZATION_NAME)
    cn = _first(c.subject, NameOID.COMMON_NAME) or org
    return SignerIdentity(
        signer_name=cn,
        organisation=org,
        kind=classify(c, rule),
        serial=format(c.serial_number, "X"),
        issuer=c.issuer.rfc4514_string(),
        subject=c.subject.rfc4514_string(),
        fingerprint=c.fingerprint(hashes.SHA256()).hex(),
    )
