"""DKIM signing of our own outgoing mail and notices (dkimpy), and the DNS record to publish.

signer = DkimSigner.from_file(Path("dkim/private.pem"), selector="mailsvc",
                              domain="sotttt.example.vn")
signed = signer.sign(raw_message)          # the message with DKIM-Signature on top
print(dns_txt_record(public_key_value(pem), "mailsvc", "sotttt.example.vn"))
"""

from __future__ import annotations

import base64
import email.policy
import os
from collections.abc import Sequence
from email.parser import BytesParser
from pathlib import Path

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mailsvc.errors import ConfigError, MailsvcError
from mailsvc.pipeline import dkim_speedups

dkim_speedups.install()  # OpenSSL's RSA and the canonicalization's shortcuts, same bytes

# Signed header fields: RFC 6376 5.4.1's list, trimmed to what our mail carries. From,
# Subject, Date, To, Cc, Message-ID and the MIME fields are also signed once more than
# they occur ("oversigned") so nobody can add a second copy without breaking the signature.
SIGNED_HEADERS: tuple[str, ...] = (
    "from",
    "sender",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "to",
    "cc",
    "in-reply-to",
    "references",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
    "content-disposition",
)
OVERSIGNED: frozenset[str] = frozenset(
    {"from", "subject", "date", "to", "cc", "message-id", "reply-to", "content-type"}
)


class DkimSigningError(MailsvcError):
    """The message or key could not be signed with (malformed message, unusable key)."""


def generate_private_key(path: Path, bits: int = 2048) -> bytes:
    """Create an RSA key (PKCS#1 PEM, mode 0600) at ``path``; an existing file is kept.

    Returns the PEM. ``mailsvc init`` calls this, then prints :func:`dns_txt_record`.
    """
    if path.exists():
        return path.read_bytes()
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    return pem


def _load_private_key(pem: bytes, source: str) -> rsa.RSAPrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{source}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(f"{source}: DKIM signing needs an RSA key")
    if key.key_size < 1024:
        raise ConfigError(f"{source}: RSA key of {key.key_size} bits is too short for DKIM")
    return key


def public_key_value(private_pem: bytes) -> str:
    """The DKIM key record value ``v=DKIM1; k=rsa; p=...`` for a private key.

    The same text goes into DNS (as one TXT record) or into the agency directory's pinned
    ``dkim_keys`` for closed networks.
    """
    key = _load_private_key(private_pem, "DKIM key")
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode("ascii")


def dns_txt_record(value: str, selector: str, domain: str, ttl: int = 3600) -> str:
    """A zone-file line publishing ``value`` at ``<selector>._domainkey.<domain>``.

    The value is split into character-strings of at most 255 octets (RFC 1035), which
    resolvers join back into one record.
    """
    chunks = [value[i : i + 255] for i in range(0, len(value), 255)]
    strings = " ".join(f'"{c}"' for c in chunks)
    name = f"{selector}._domainkey.{domain.rstrip('.')}."
    return f"{name} {ttl} IN TXT ( {strings} )"


class DkimSigner:
    """Signs messages for one domain with one selector (rsa-sha256, relaxed/relaxed)."""

    def __init__(
        self,
        private_pem: bytes,
        selector: str,
        domain: str,
        *,
        signed_headers: Sequence[str] = SIGNED_HEADERS,
        body_length: bool = False,
        canonicalize: tuple[str, str] = ("relaxed", "relaxed"),
    ) -> None:
        key = _load_private_key(private_pem, f"DKIM key for {domain}")
        # dkimpy reads PKCS#1 ("RSA PRIVATE KEY") only; normalise whatever we were given.
        self._pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        self.selector = selector
        self.domain = domain.rstrip(".").lower()
        self.signed_headers = tuple(h.lower() for h in signed_headers)
        self.body_length = body_length
        self.canonicalize = canonicalize

    @classmethod
    def from_file(cls, path: Path, selector: str, domain: str) -> DkimSigner:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read DKIM key: {exc.strerror or exc}") from exc
        return cls(pem, selector, domain)

    def txt_value(self) -> str:
        return public_key_value(self._pem)

    def header(self, raw: bytes) -> bytes:
        """The ``DKIM-Signature:`` header field (CRLF-terminated) for a message."""
        present = _header_names(raw)
        if "from" not in present:
            raise DkimSigningError("message has no From header field")
        include: list[bytes] = []
        for name in self.signed_headers:
            count = present.count(name)
            if name in OVERSIGNED:
                count += 1
            include.extend([name.encode("ascii")] * count)
        try:
            signature: bytes = dkim.DKIM(raw, linesep=b"\r\n").sign(
                self.selector.encode("ascii"),
                self.domain.encode("ascii"),
                self._pem,
                canonicalize=tuple(c.encode("ascii") for c in self.canonicalize),
                include_headers=include,
                length=self.body_length,
            )
        except dkim.DKIMException as exc:
            raise DkimSigningError(f"cannot sign for {self.domain}: {exc}") from exc
        return signature

    def sign(self, raw: bytes) -> bytes:
        """The message with its DKIM-Signature prepended (line endings as given)."""
        header = self.header(raw)
        if b"\r\n" not in raw:
            header = header.replace(b"\r\n", b"\n")
        return header + raw


def _header_names(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    names = []
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t") or b":" not in line:
            continue
        names.append(line.split(b":", 1)[0].strip().decode("ascii", "replace").lower())
    return names


class DomainSigners:
    """One DKIM signer per local domain; a message is signed for its From: domain.

    The key of ``<domain>`` is ``dkim/<domain>.pem`` beside the main key when it exists,
    else the main key (then the same public key is published under each domain). Mail
    whose From: domain is not ours is left unsigned (we would not be its signer).
    """

    def __init__(self, signers: dict[str, DkimSigner], default: DkimSigner | None) -> None:
        self.signers = {d.lower(): s for d, s in signers.items()}
        self.default = default  # for a message without a usable From: (never for others)

    @classmethod
    def from_key_dir(
        cls, main_key: Path, selector: str, primary: str, domains: Sequence[str]
    ) -> DomainSigners | None:
        """None when the main key does not exist (DKIM signing is off)."""
        if not main_key.exists():
            return None
        main_pem = main_key.read_bytes()
        signers: dict[str, DkimSigner] = {}
        for domain in dict.fromkeys([primary.lower(), *(d.lower() for d in domains)]):
            own = main_key.parent / f"{domain}.pem"
            pem = own.read_bytes() if own.exists() else main_pem
            signers[domain] = DkimSigner(pem, selector, domain)
        return cls(signers, signers[primary.lower()])

    def for_domain(self, domain: str) -> DkimSigner | None:
        return self.signers.get(domain.strip().lower().rstrip("."))

    def sign(self, raw: bytes) -> bytes:
        domain = _from_domain(raw)
        signer = self.for_domain(domain) if domain else None
        if signer is None:
            return raw
        return signer.sign(raw)

    def dns_records(self) -> list[str]:
        """One zone-file line per domain (``mailsvc dkim show-dns``)."""
        return [dns_txt_record(s.txt_value(), s.selector, s.domain) for s in self.signers.values()]


def _from_domain(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0] if b"\r\n\r\n" in raw else raw.split(b"\n\n", 1)[0]
    try:
        parsed = BytesParser(policy=email.policy.default).parsebytes(head, headersonly=True)
        addresses = getattr(parsed["From"], "addresses", ()) if parsed["From"] else ()
    except (ValueError, IndexError, TypeError):
        return ""
    if not addresses:
        return ""
    return str(addresses[0].domain).lower()
