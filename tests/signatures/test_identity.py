"""Who signed: the identity kept per certificate answers as a fresh reading does, and the
rule it was read under is part of what is kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from mailsvc.signatures.identity import _identify, identify
from mailsvc.signatures.policy import OrganisationRule
from mailsvc.signatures.report import CertificateKind
from tests.signatures.pki import SamplePki


def _certificate(*attributes: tuple[x509.ObjectIdentifier, str]) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attributes])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def test_the_same_certificate_under_two_rules_is_read_under_each() -> None:
    # O and CN alike (an organisation's seal by step 4) but with a given name (personal by
    # step 3 unless the rule drops that attribute)
    der = _certificate(
        (NameOID.ORGANIZATION_NAME, "UBND tỉnh Bắc Ninh"),
        (NameOID.COMMON_NAME, "UBND tỉnh Bắc Ninh"),
        (NameOID.GIVEN_NAME, "An"),
    )
    default, without_names = OrganisationRule(), OrganisationRule(personal_name_attributes=())
    for _ in range(2):  # the second time from what was kept
        assert identify(der, default).kind is CertificateKind.PERSONAL
        assert identify(der, without_names).kind is CertificateKind.ORGANISATION
    assert identify(der, default).organisation == "UBND tỉnh Bắc Ninh"


def test_kept_identities_equal_fresh_readings(pki: SamplePki) -> None:
    rule = OrganisationRule()
    for identity in (pki.personal, pki.organisation, pki.other_agency, pki.expired):
        der = identity.cert.public_bytes(Encoding.DER)
        fresh = _identify.__wrapped__(der, rule)
        assert identify(der, rule) == fresh
        hits = _identify.cache_info().hits
        assert identify(der, rule) == fresh
        assert _identify.cache_info().hits == hits + 1
    assert identify(pki.personal.cert.public_bytes(Encoding.DER), rule).signer_name == (
        "Nguyễn Văn An"
    )
