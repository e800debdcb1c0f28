"""policies/signature.yaml as a typed, frozen object.

The file says which key usages a signing certificate must carry, how revocation is
checked, how personal and organisation certificates are told apart, and what a
document is worth (valid / reference_only / invalid) given its signatures.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mailsvc.errors import ConfigError

KeyUsage = Literal[
    "digital_signature",
    "non_repudiation",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
]


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrganisationRule(_Section):
    """How a certificate is classified as personal or organisation.

    In order:
    1. a certificate policy OID listed in ``organisation_policy_oids`` → organisation;
    2. one listed in ``personal_policy_oids`` → personal;
    3. a subject with any of ``personal_name_attributes`` (given name, surname,
       pseudonym) → personal;
    4. a subject with O and whose CN is absent or equal to O (or to an OU) → organisation;
    5. otherwise → personal.
    """

    organisation_policy_oids: tuple[str, ...] = ()
    personal_policy_oids: tuple[str, ...] = ()
    personal_name_attributes: tuple[str, ...] = ("given_name", "surname", "pseudonym")


class SignaturePolicy(_Section):
    version: int = 1
    # Key usages of the signer's certificate; any one suffices unless key_usage_match_all.
    key_usage: tuple[KeyUsage, ...] = ("digital_signature", "non_repudiation")
    key_usage_match_all: bool = False
    # Extended key usages accepted when the certificate has an EKU extension (None: any).
    extended_key_usage: tuple[str, ...] | None = None
    # Revocation: "hard-fail" needs the CRLs we hold for every certificate that names a CRL.
    revocation_mode: Literal["hard-fail", "require", "soft-fail"] = "hard-fail"
    allow_fetching: bool = False  # fetch CRLs/OCSP over the network (closed networks: off)
    crl_sources: tuple[str, ...] = ()  # files (relative to HOME) or http(s) URLs
    crl_refresh_minutes: int = Field(default=360, gt=0)
    # Certificates of these kinds must name a revocation source (a CRL distribution point or
    # an OCSP responder); without one, hard-fail has nothing to check and a revoked key
    # would pass. Agencies' organisation (seal) certificates always carry one.
    require_revocation_source: tuple[Literal["organisation", "personal"], ...] = (
        "organisation",
    )
    organisation_rule: OrganisationRule = OrganisationRule()
    # What a document is worth.
    require_organisation_signature: bool = True
    require_personal_signature: bool = False
    unsigned: Literal["reference_only", "refuse"] = "reference_only"
    indeterminate: Literal["reference_only", "refuse"] = "reference_only"
    invalid_signature: Literal["refuse", "reference_only"] = "refuse"
    # The signing organisation is not the sender's agency (forwarded, or forged). The seeds
    # never require them to be the same, so by default the finding is kept and shown.
    signer_mismatch: Literal["refuse", "reference_only", "ignore"] = "reference_only"
    # A passed S/MIME (or PGP/MIME) signature on the message also signs the attachments
    # inside its signed entity (never a part beside it).
    message_signature_covers_attachments: bool = False
    # Attachments with these suffixes are signatures, not documents.
    detached_signature_suffixes: tuple[str, ...] = (".p7s", ".sig", ".asc")
    enveloping_suffixes: tuple[str, ...] = (".p7m",)


def load_signature_policy(path: Path) -> SignaturePolicy:
    """Load and validate the file; an invalid file raises ConfigError naming file and key."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    try:
        return SignaturePolicy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"{path}: key '{key}': {first['msg']}") from exc
