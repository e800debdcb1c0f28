"""S/MIME signatures on notices, with the agency's organisation key.

A receipt the sender can keep as evidence: ``multipart/signed`` (RFC 8551), detached
signature, SHA-256. The CMS SignedData comes from the organisation's PKCS#11 token
(pyHanko's PKCS11Signer, the signer that issues documents: "notices and receipts keep
using the same signer") or, only with ``[issuing] allow_file_key = true``, from a key
file (``cryptography``'s PKCS#7 builder); no hand-written CMS either way.
The signed entity is the notice's whole body (text, HTML and ``status.json``); the
outer header fields (From, To, Subject, Date ...) are not covered, as usual for S/MIME.
DKIM signs afterwards, over everything.

signer = SmimeSigner.from_settings(settings)  # token, key file, or None
raw = encode_fields([("From", ...), ("To", ...), ...]) + signer.sign(entity_bytes)
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7

from mailsvc.config import Settings
from mailsvc.errors import ConfigError

log = logging.getLogger(__name__)

SigningKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


class SmimeSigner:
    """Signs notices; :meth:`detached_signature` (DER CMS SignedData) comes from a key
    file (:class:`KeySmimeSigner`) or the organisation's PKCS#11 token
    (:class:`TokenSmimeSigner`), the same key that signs issued documents."""

    def detached_signature(self, entity: bytes) -> bytes:
        raise NotImplementedError

    @classmethod
    def from_files(cls, cert: Path, key: Path, chain: Path | None) -> KeySmimeSigner:
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
        return KeySmimeSigner(certificate, private, intermediates)

    @classmethod
    def from_settings(cls, settings: Settings) -> SmimeSigner | None:
        """The organisation's signer for notices, or None when none is configured.

        - ``[issuing]`` names a PKCS#11 token (``token_label``, ``key_label``): the token
          key signs (a key file in ``[outbound]`` beside it is an error: one seal);
        - ``[issuing] key_file`` (needs ``allow_file_key``): that key file;
        - ``[outbound] smime_cert``/``smime_key``: a key file, allowed only with
          ``[issuing] allow_file_key = true`` (warned about, as for issuing).
        """
        from mailsvc.outgoing.issuing import check_file_key

        out, issuing = settings.outbound, settings.issuing
        token = bool(issuing.token_label and issuing.key_label) and not issuing.key_file
        if out.smime_cert or out.smime_key:
            if token or issuing.key_file:
                raise ConfigError(
                    "outbound.smime_cert/smime_key: the organisation key is configured in "
                    "[issuing]; notices are signed with it, remove smime_cert and smime_key"
                )
            if not out.smime_cert or not out.smime_key:
                raise ConfigError("outbound: smime_cert and smime_key are set together")
            if not issuing.allow_file_key:
                raise ConfigError(
                    "outbound.smime_key is a key file but issuing.allow_file_key is false: "
                    "the organisation key belongs in a PKCS#11 token ([issuing] token_label, "
                    "key_label)"
                )
            log.warning(
                "S/MIME: notices are signed with a key FILE (%s), not a PKCS#11 token",
                settings.path(out.smime_key),
            )
            chain = settings.path(out.smime_chain) if out.smime_chain else None
            return cls.from_files(
                settings.path(out.smime_cert), settings.path(out.smime_key), chain
            )
        if issuing.key_file:
            check_file_key(settings)
            if not issuing.cert:
                raise ConfigError("issuing.key_file needs issuing.cert")
            chain = settings.path(issuing.chain) if issuing.chain else None
            return cls.from_files(
                settings.path(issuing.cert), settings.path(issuing.key_file), chain
            )
        if token:
            return TokenSmimeSigner(settings)
        return None

    def sign(self, entity: bytes) -> bytes:
        """``MIME-Version`` and ``Content-Type: multipart/signed`` fields and the body
        (the entity, CRLF line ends, then the ``smime.p7s`` part)."""
        entity = _crlf(entity)
        signature = base64.encodebytes(self.detached_signature(entity)).replace(b"\n", b"\r\n")
        boundary = f"==============={secrets.token_hex(12)}==".encode()
        return b"".join(
            [
                b"MIME-Version: 1.0\r\n",
                b'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; '
                b'micalg="sha-256"; boundary="' + boundary + b'"\r\n\r\n',
                b"This is an S/MIME signed message\r\n\r\n",
                b"--" + boundary + b"\r\n",
                entity,
                b"\r\n--" + boundary + b"\r\n",
                b'Content-Type: application/pkcs7-signature; name="smime.p7s"\r\n',
                b"Content-Transfer-Encoding: base64\r\n",
                b'Content-Disposition: attachment; filename="smime.p7s"\r\n\r\n',
                signature,
                b"\r\n--" + boundary + b"--\r\n",
            ]
        )


def _crlf(data: bytes) -> bytes:
    """Canonical line ends (RFC 8551 §3.1.1): the signed bytes are the bytes sent."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class KeySmimeSigner(SmimeSigner):
    """A key file (``cryptography``'s PKCS#7 builder; no hand-written CMS)."""

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

    def detached_signature(self, entity: bytes) -> bytes:
        builder = pkcs7.PKCS7SignatureBuilder().set_data(entity)
        builder = builder.add_signer(self.cert, self.key, hashes.SHA256())
        for cert in self.chain:
            builder = builder.add_certificate(cert)
        options = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]
        return builder.sign(serialization.Encoding.DER, options)


class TokenSmimeSigner(SmimeSigner):
    """The organisation key in the PKCS#11 token (``[issuing]``), through pyHanko's
    PKCS11Signer: a CMS SignedData over the entity, detached, SHA-256, with the signing
    certificate and chain. Each signature opens its own token session (and closes it):
    nothing holds the PIN or a session between notices; the PIN is read (from the 0600
    file or the environment) when the signer is made, so a missing PIN fails at start."""

    def __init__(self, settings: Settings) -> None:
        from mailsvc.outgoing.issuing import read_pin

        read_pin(settings)
        self.settings = settings

    def detached_signature(self, entity: bytes) -> bytes:
        from mailsvc.outgoing.issuing import organisation_signer

        async def run() -> bytes:
            with organisation_signer(self.settings) as signer:
                info = await signer.async_sign_general_data(entity, "sha256", detached=True)
                return bytes(info.dump())

        # pyHanko's signer is asynchronous; a thread of its own keeps this callable from
        # inside the server's event loop as from the command line.
        with ThreadPoolExecutor(1, thread_name_prefix="pkcs11") as pool:
            return pool.submit(asyncio.run, run()).result()
