"""Digital signature verification (issue 4): S/MIME, CMS, PDF and OpenPGP, via pyHanko and gpg.

Public API (no import side effects):
- report: SignatureResult, DocumentSignatureReport, Indication, DocumentOutcome, ...
- policy: SignaturePolicy, load_signature_policy
- trust: TrustConfig, TrustStore
- crl: refresh_crls
- engine: SignatureEngine, home_trust_config, home_gnupg
"""

from mailsvc.signatures.crl import CrlRefresh, refresh_crls
from mailsvc.signatures.engine import SignatureEngine, home_gnupg, home_trust_config
from mailsvc.signatures.policy import SignaturePolicy, load_signature_policy
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
    Indication,
    SignatureFormat,
    SignatureResult,
)
from mailsvc.signatures.trust import TrustConfig, TrustStore

__all__ = [
    "CertificateKind",
    "CrlRefresh",
    "DocumentOutcome",
    "DocumentSignatureReport",
    "Indication",
    "SignatureEngine",
    "SignatureFormat",
    "SignaturePolicy",
    "SignatureResult",
    "TrustConfig",
    "TrustStore",
    "home_gnupg",
    "home_trust_config",
    "load_signature_policy",
    "refresh_crls",
]
