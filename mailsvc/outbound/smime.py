"""S/MIME signatures on notices, with the agency's organisation certificate.

A receipt the sender can keep as evidence: ``multipart/signed`` (RFC 8551), detached
signature, SHA-256, made by ``cryptography``'s PKCS#7 builder (no hand-written CMS).
The signed entity is the notice's whole body (text, HTML and ``status.json``); the
outer header fields (From, To, Subject, Date ...) are not covered, as usual for S/MIME.
DKIM signs afterwards, over everything.

signer = SmimeSigner.from_files(Path("smime/org.pem"), Path("smime/org.key"), None)
raw = signer.sign_message(entity, [("From", ...), ("To", ...), ...])
"""

from __future__ import annotations

from collections.abc import Sequence
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from mailsvc.config import Settings
from mailsvc.errors import ConfigError

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SmimeSigner:
    def __init__(
        self,
        cert: x509.Certificate,
        key: SigningKey,
        chain: Sequence[x509.Certificate] = (),
    ) -> None:
        if cert.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ) != key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise ConfigError("S/MIME: the private key does not belong to the certificate")
        self.cert = cert
        self.key = key
        self.chain = tuple(chain)

    @classmethod
    def from_files(cls, cert: Path, key: Path, chain: Path | None) -> SmimeSigner:
        try:
            certificate = x509.load_pem_x509_certificate(cert.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"outbound.smime_cert: cannot load {cert}: {exc}") from exc
        try:
            private = serialization.load_pem_private_key(key.read_bytes(), password=None)
        except (OSError, ValueError, TypeError) as exc:
            raise ConfigError(f"outbound.smime_key: cannot load {key}: {exc}") from exc
        if not isinstance(private, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
            raise ConfigError(f"outbound.smime_key: {key}: an RSA or EC key is needed")
        intermediates: list[x509.Certificate] = []
        if chain is not None:
            try:
                intermediates = x509.load_pem_x509_certificates(chain.read_bytes())
            except (OSError, ValueError) as exc:
                raise ConfigError(f"outbound.smime_chain: cannot load {chain}: {exc}") from exc
        return cls(certificate, private, intermediates)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmimeSigner | None:
        """The signer for ``[outbound] smime_cert/smime_key/smime_chain``; None when off."""
        out = settings.outbound
        if not out.smime_cert and not out.smime_key:
            return None
        if not out.smime_cert or not out.smime_key:
            raise ConfigError("outbound: smime_cert and smime_key are set together")
        chain = settings.path(out.smime_chain) if out.smime_chain else None
        return cls.from_files(settings.path(out.smime_cert), settings.path(out.smime_key), chain)

    def sign(self, entity: bytes) -> bytes:
        """``MIME-Version`` and ``Content-Type: multipart/signed`` fields and the body
        (the entity, CRLF line ends, then the ``smime.p7s`` part)."""
        builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
        builder = builder.add_signer(self.cert, self.key, hashes.SHA256())
        for cert in self.chain:
            builder = builder.add_certificate(cert)
        return builder.sign(serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])

    def sign_message(self, entity: EmailMessage, headers: Sequence[tuple[str, str]]) -> bytes:
        """A complete message: ``headers`` (RFC 2047-encoded as needed), then the
        signed ``entity`` (its own MIME-Version field is dropped: the outer one counts)."""
        del entity["MIME-Version"]
        body = entity.as_bytes(policy=SMTP_POLICY)
        outer = EmailMessage(policy=SMTP_POLICY)
        for name, value in headers:
            outer[name] = value
        head = b"".join(SMTP_POLICY.fold_binary(name, value) for name, value in outer.items())
        return head + self.sign(body)
