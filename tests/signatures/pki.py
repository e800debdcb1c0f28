"""A throw-away PKI and signed samples, built at test time with real tools.

Importable by other tests (``from tests.signatures.pki import session_pki, signed_pdf, ...``; the
repository root is on sys.path: pyproject sets pythonpath). Certificates
are made with ``cryptography``; PDFs are signed with pyHanko's signer, detached CMS and
S/MIME with ``openssl cms``, OpenPGP with ``gpg`` in a temporary GNUPGHOME. No private
key is ever committed.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from mailsvc.signatures.trust import TrustConfig

AGENCY_NAME = "Sở Thông tin và Truyền thông Thử nghiệm"
AGENCY_CODE = "000.00.01.H99"
AGENCY_DOMAIN = "stttt.thunghiem.gov.vn"
OTHER_AGENCY_NAME = "Sở Tài chính Thử nghiệm"
CRL_BASE = "http://crl.thunghiem.invalid"


@dataclass
class Identity:
    """A certificate with its key, and PEM files on disk for the signing tools."""

    name: str
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    cert_path: Path
    key_path: Path
    chain_path: Path  # intermediate (and root) certificates, PEM


@dataclass
class SamplePki:
    directory: Path
    root: Identity
    intermediate: Identity
    personal: Identity  # Nguyễn Văn An, digitalSignature + nonRepudiation
    organisation: Identity  # the agency's seal certificate (CN = O)
    digsig_only: Identity  # digitalSignature only
    expired: Identity
    revoked: Identity
    wrong_usage: Identity  # keyEncipherment only
    other_agency: Identity  # organisation certificate of another agency
    untrusted_root: Identity
    untrusted: Identity  # issued by the untrusted root
    trust_dir: Path  # holds root.pem only
    crl_dir: Path  # CRLs of root and intermediate (the intermediate's lists `revoked`)
    tsa: Identity | None = None  # time-stamping authority (EKU timeStamping)
    seal_without_crl: Identity | None = None  # organisation certificate, no CRL/OCSP source
    personal_without_crl: Identity | None = None  # personal certificate, no CRL/OCSP source
    gpg: OpenPgpKeys | None = None
    extra: dict[str, Path] = field(default_factory=dict)

    def trust_config(self, revocation_mode: str = "hard-fail") -> TrustConfig:
        return TrustConfig(
            anchor_dirs=(self.trust_dir,),
            crl_files=tuple(sorted(self.crl_dir.glob("*.crl"))),
            revocation_mode=revocation_mode,
        )


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "VN")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _usage(**flags: bool) -> x509.KeyUsage:
    names = (
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    )
    return x509.KeyUsage(**{n: flags.get(n, False) for n in names})


def _write(
    directory: Path,
    label: str,
    cert: x509.Certificate,
    key: rsa.RSAPrivateKey,
    chain: list[x509.Certificate],
) -> Identity:
    cert_path = directory / f"{label}.pem"
    key_path = directory / f"{label}.key"
    chain_path = directory / f"{label}-chain.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chmod(key_path, 0o600)
    chain_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
    cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    return Identity(str(cn), key, cert, cert_path, key_path, chain_path)


def _issue(
    subject: x509.Name,
    key: rsa.RSAPrivateKey,
    issuer: x509.Certificate | None,
    issuer_key: rsa.RSAPrivateKey,
    *,
    ca: bool,
    usage: x509.KeyUsage,
    not_before: datetime,
    not_after: datetime,
    crl_url: str | None,
    time_stamping: bool = False,
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    if time_stamping:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
        )
    if crl_url:
        builder = builder.add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        [x509.UniformResourceIdentifier(crl_url)], None, None, None
                    )
                ]
            ),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _crl(
    issuer: x509.Certificate, key: rsa.RSAPrivateKey, revoked: list[x509.Certificate], now: datetime
) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now - timedelta(hours=1))
        .next_update(now + timedelta(days=7))
        .add_extension(x509.CRLNumber(1), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    )
    for cert in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(cert.serial_number)
            .revocation_date(now - timedelta(minutes=30))
            .build()
        )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def build_pki(directory: Path, *, with_gpg: bool = True) -> SamplePki:
    """Root → intermediate → leaf certificates of every kind the tests need, plus CRLs."""
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    long_ago, far = now - timedelta(days=30), now + timedelta(days=365)
    ca_since = now - timedelta(days=3650)
    ca_usage = _usage(key_cert_sign=True, crl_sign=True, digital_signature=True)
    sign_usage = _usage(digital_signature=True, content_commitment=True)

    root_key = _key()
    root_cert = _issue(
        _name("Test Root CA (mailsvc)", "Ban Cơ yếu Thử nghiệm"),
        root_key,
        None,
        root_key,
        ca=True,
        usage=ca_usage,
        not_before=ca_since,
        not_after=now + timedelta(days=3650),
        crl_url=None,
    )
    root = _write(directory, "root", root_cert, root_key, [])
    inter_key = _key()
    inter_cert = _issue(
        _name("Test Issuing CA (mailsvc)", "Ban Cơ yếu Thử nghiệm"),
        inter_key,
        root_cert,
        root_key,
        ca=True,
        usage=ca_usage,
        not_before=ca_since,
        not_after=now + timedelta(days=1825),
        crl_url=f"{CRL_BASE}/root.crl",
    )
    intermediate = _write(directory, "intermediate", inter_cert, inter_key, [root_cert])

    def leaf(
        label: str,
        subject: x509.Name,
        usage: x509.KeyUsage = sign_usage,
        not_before: datetime = long_ago,
        not_after: datetime = far,
        issuer: Identity = intermediate,
        tsa: bool = False,
        crl: bool = True,
    ) -> Identity:
        key = _key()
        cert = _issue(
            subject,
            key,
            issuer.cert,
            issuer.key,
            ca=False,
            usage=usage,
            not_before=not_before,
            not_after=not_after,
            crl_url=f"{CRL_BASE}/intermediate.crl" if issuer is intermediate and crl else None,
            time_stamping=tsa,
        )
        chain = [issuer.cert] + ([root_cert] if issuer is intermediate else [])
        return _write(directory, label, cert, key, chain)

    personal = leaf("personal", _name("Nguyễn Văn An", AGENCY_NAME))
    organisation = leaf("organisation", _name(AGENCY_NAME, AGENCY_NAME))
    digsig_only = leaf(
        "digsig-only", _name("Trần Thị Bình", AGENCY_NAME), usage=_usage(digital_signature=True)
    )
    expired = leaf(
        "expired",
        _name("Lê Văn Cường", AGENCY_NAME),
        not_before=now - timedelta(days=800),
        not_after=now - timedelta(days=400),
    )
    revoked = leaf("revoked", _name("Phạm Thị Dung", AGENCY_NAME))
    wrong_usage = leaf(
        "wrong-usage", _name("Hoàng Văn Em", AGENCY_NAME), usage=_usage(key_encipherment=True)
    )
    other_agency = leaf("other-agency", _name(OTHER_AGENCY_NAME, OTHER_AGENCY_NAME))
    # no CRL distribution point and no OCSP responder: nothing for hard-fail to check
    seal_without_crl = leaf("seal-without-crl", _name(AGENCY_NAME, AGENCY_NAME), crl=False)
    personal_without_crl = leaf(
        "personal-without-crl", _name("Vũ Thị Giang", AGENCY_NAME), crl=False
    )
    tsa = leaf(
        "tsa",
        _name("Test Time Stamping Authority", "Ban Cơ yếu Thử nghiệm"),
        usage=_usage(digital_signature=True),
        not_before=ca_since,
        tsa=True,
    )

    untrusted_root_key = _key()
    untrusted_root_cert = _issue(
        _name("Untrusted Root", "Nobody"),
        untrusted_root_key,
        None,
        untrusted_root_key,
        ca=True,
        usage=ca_usage,
        not_before=long_ago,
        not_after=far,
        crl_url=None,
    )
    untrusted_root = _write(
        directory, "untrusted-root", untrusted_root_cert, untrusted_root_key, []
    )
    untrusted = leaf("untrusted", _name("Kẻ Mạo Danh", AGENCY_NAME), issuer=untrusted_root)

    trust_dir = directory / "trust"
    trust_dir.mkdir(exist_ok=True)
    (trust_dir / "root.pem").write_bytes(root_cert.public_bytes(serialization.Encoding.PEM))
    crl_dir = directory / "crl"
    crl_dir.mkdir(exist_ok=True)
    (crl_dir / "root.crl").write_bytes(_crl(root_cert, root_key, [], now))
    (crl_dir / "intermediate.crl").write_bytes(_crl(inter_cert, inter_key, [revoked.cert], now))
    pki = SamplePki(
        directory,
        root,
        intermediate,
        personal,
        organisation,
        digsig_only,
        expired,
        revoked,
        wrong_usage,
        other_agency,
        untrusted_root,
        untrusted,
        trust_dir,
        crl_dir,
        tsa=tsa,
        seal_without_crl=seal_without_crl,
        personal_without_crl=personal_without_crl,
    )
    if with_gpg:
        pki.gpg = build_openpgp(directory / "gpg")
    return pki


# --- documents ------------------------------------------------------------------------


def make_pdf(text: str = "Quyết định số 35/2024/QĐ-UBND", size: int = 0) -> bytes:
    """A small valid one-page PDF; ``size`` pads it (an incompressible stream) to ~size bytes."""
    content = f"BT /F1 18 Tf 72 720 Td ({text.encode('ascii', 'replace').decode()}) Tj ET".encode()
    pad = max(0, size - 1200)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    if pad:
        blob = os.urandom(pad)
        objects.append(b"<< /Length %d >>\nstream\n" % len(blob) + blob + b"\nendstream")
        objects[0] = b"<< /Type /Catalog /Pages 2 0 R /PieceInfo << /Pad 6 0 R >> >>"
    return pdf_from_objects(objects)


PDF_HEADER = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


def pdf_from_objects(objects: list[bytes], header: bytes = PDF_HEADER) -> bytes:
    """A PDF file of ``objects`` (numbered from 1, the catalog first) with its xref table."""
    out = BytesIO()
    out.write(header)
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(b"%d 0 obj\n" % number + body + b"\nendobj\n")
    xref = out.tell()
    out.write(b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1))
    for offset in offsets:
        out.write(b"%010d 00000 n \n" % offset)
    out.write(
        b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    )
    return out.getvalue()


def signed_pdf(pdf: bytes, *signers: Identity, timestamper: object | None = None) -> bytes:
    """Sign with pyHanko's signer, one incremental signature per identity (personal, then org)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers as pyhanko_signers

    data = pdf
    for number, who in enumerate(signers, start=1):
        signer = pyhanko_signers.SimpleSigner.load(
            str(who.key_path), str(who.cert_path), ca_chain_files=(str(who.chain_path),)
        )
        assert signer is not None
        writer = IncrementalPdfFileWriter(BytesIO(data), strict=False)
        out = BytesIO()
        pdf_signer = pyhanko_signers.PdfSigner(
            pyhanko_signers.PdfSignatureMetadata(field_name=f"Signature{number}"),
            signer=signer,
            timestamper=timestamper,  # type: ignore[arg-type]
        )
        # a thread of its own, so this also works from async tests (pyHanko runs a loop)
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, pdf_signer.async_sign_pdf(writer, output=out)).result()
        data = out.getvalue()
    return data


def timestamper(pki: SamplePki, at: datetime | None = None) -> object:
    """pyHanko's in-process RFC 3161 TSA with our TSA certificate (optionally a fixed time)."""
    from asn1crypto import keys
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.timestamps import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    assert pki.tsa is not None
    der = pki.tsa.key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    chain = [
        asn1_x509.Certificate.load(c.public_bytes(serialization.Encoding.DER))
        for c in (pki.intermediate.cert, pki.root.cert)
    ]
    return DummyTimeStamper(
        tsa_cert=asn1_x509.Certificate.load(pki.tsa.cert.public_bytes(serialization.Encoding.DER)),
        tsa_key=keys.PrivateKeyInfo.load(der),
        certs_to_embed=SimpleCertificateStore.from_certs(chain),
        fixed_dt=at,
    )


def modify_pdf_after_signing(signed: bytes) -> bytes:
    """Append an incremental update that replaces the page content (a forged page)."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(BytesIO(signed), strict=False)
    page_ref, _ = writer.find_page_for_modification(0)
    page = page_ref.get_object()
    forged = generic.StreamObject(stream_data=b"BT /F1 18 Tf 72 720 Td (Forged) Tj ET")
    page["/Contents"] = writer.add_object(forged)
    writer.update_container(page)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def overlay_after_signing(signed: bytes, text: str = "So tien: 900.000.000 dong") -> bytes:
    """The attack of a visible change after signing: an incremental update (pyHanko's
    IncrementalPdfFileWriter) adds an unsigned signature field whose appearance paints a
    white box and a new amount over the page; the page content and text layer are unchanged.
    """
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign.fields import SigFieldSpec, append_signature_field

    def name(value: str) -> generic.NameObject:
        return generic.NameObject(value)

    writer = IncrementalPdfFileWriter(BytesIO(signed), strict=False)
    append_signature_field(writer, SigFieldSpec("Overlay", on_page=0, box=(60, 700, 500, 760)))
    field = writer.root["/AcroForm"]["/Fields"][-1].get_object()
    font = generic.DictionaryObject(
        {name("/Type"): name("/Font"), name("/Subtype"): name("/Type1"),
         name("/BaseFont"): name("/Helvetica")}
    )  # fmt: skip
    paint = b"1 1 1 rg 0 0 440 60 re f 0 0 0 rg BT /F1 18 Tf 12 20 Td (%s) Tj ET" % text.encode()
    appearance = generic.StreamObject(
        {
            name("/Type"): name("/XObject"),
            name("/Subtype"): name("/Form"),
            name("/BBox"): generic.ArrayObject([generic.NumberObject(v) for v in (0, 0, 440, 60)]),
            name("/Resources"): generic.DictionaryObject(
                {name("/Font"): generic.DictionaryObject({name("/F1"): writer.add_object(font)})}
            ),
        },
        stream_data=paint,
    )
    field[name("/AP")] = generic.DictionaryObject({name("/N"): writer.add_object(appearance)})
    writer.update_container(field)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def flip_byte(data: bytes, needle: bytes) -> bytes:
    """Change one byte inside ``needle`` (which must occur in data)."""
    index = data.index(needle) + len(needle) // 2
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def _openssl(*args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(["openssl", *args], input=stdin, capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def cms_detached(data: bytes, who: Identity, workdir: Path) -> bytes:
    """A detached CAdES-BES signature (DER, as in x.pdf.p7s) made by ``openssl cms``."""
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "content.bin"
    src.write_bytes(data)
    return _openssl(
        "cms",
        "-sign",
        "-binary",
        "-cades",
        "-md",
        "sha256",
        "-in",
        str(src),
        "-signer",
        str(who.cert_path),
        "-inkey",
        str(who.key_path),
        "-certfile",
        str(who.chain_path),
        "-outform",
        "DER",
    )


def cms_enveloping(data: bytes, who: Identity, workdir: Path) -> bytes:
    """An enveloping CMS (x.pdf.p7m) that encloses the content."""
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "content.bin"
    src.write_bytes(data)
    return _openssl(
        "cms",
        "-sign",
        "-binary",
        "-nodetach",
        "-cades",
        "-md",
        "sha256",
        "-in",
        str(src),
        "-signer",
        str(who.cert_path),
        "-inkey",
        str(who.key_path),
        "-certfile",
        str(who.chain_path),
        "-outform",
        "DER",
    )


def mime_entity(body: str, attachments: list[tuple[str, bytes]] = ()) -> bytes:  # type: ignore[assignment]
    """The inner MIME entity (no envelope headers) that S/MIME signs."""
    inner = EmailMessage()
    inner.set_content(body)
    for name, data in attachments:
        maintype, subtype = (
            ("application", "pdf") if name.endswith(".pdf") else ("application", "octet-stream")
        )
        inner.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    raw = inner.as_bytes(policy=inner.policy.clone(linesep="\r\n"))
    return raw


def smime_message(
    who: Identity,
    workdir: Path,
    *,
    sender: str = f"vanthu@{AGENCY_DOMAIN}",
    recipient: str = "vanthu@example.vn",
    subject: str = "Công văn số 12/STTTT-VP",
    body: str = "Kính gửi: Văn thư.\r\nĐề nghị xem tệp đính kèm.\r\n",
    attachments: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    opaque: bool = False,
) -> bytes:
    """A complete S/MIME message signed by ``openssl cms`` (multipart/signed or pkcs7-mime)."""
    workdir.mkdir(parents=True, exist_ok=True)
    src = workdir / "entity.eml"
    src.write_bytes(mime_entity(body, list(attachments)))
    args = [
        "cms",
        "-sign",
        "-md",
        "sha256",
        "-in",
        str(src),
        "-signer",
        str(who.cert_path),
        "-inkey",
        str(who.key_path),
        "-certfile",
        str(who.chain_path),
        "-crlfeol",
    ]
    if opaque:
        args.append("-nodetach")
    signed = _openssl(*args)
    headers = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: =?utf-8?b?"
        + __import__("base64").b64encode(subject.encode()).decode()
        + f"?=\r\nDate: {formatdate()}\r\nMessage-ID: {make_msgid(domain=AGENCY_DOMAIN)}\r\n"
    ).encode()
    return headers + signed.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


# --- OpenPGP --------------------------------------------------------------------------


@dataclass
class OpenPgpKeys:
    signing_home: Path  # holds the secret keys (the senders' side)
    keyring_home: Path  # the admin-managed keyring mailsvc verifies with
    personal: str  # fingerprints
    expired: str
    revoked: str
    untrusted: str  # not imported into keyring_home


def _gpg(home: Path, *args: str, stdin: bytes | None = None) -> bytes:
    result = subprocess.run(
        [
            "gpg",
            "--homedir",
            str(home),
            "--batch",
            "--yes",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            *args,
        ],
        input=stdin,
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"gpg {' '.join(args)}: {result.stderr.decode(errors='replace')}")
    return result.stdout


def _fingerprint(home: Path, uid: str) -> str:
    out = _gpg(home, "--with-colons", "--list-keys", uid).decode()
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def build_openpgp(directory: Path) -> OpenPgpKeys:
    signing = directory / "signing"
    keyring = directory / "keyring"
    for home in (signing, keyring):
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
    uids = {
        "personal": f"Nguyen Van An ({AGENCY_NAME}) <annv@{AGENCY_DOMAIN}>",
        "revoked": f"Pham Thi Dung ({AGENCY_NAME}) <dungpt@{AGENCY_DOMAIN}>",
        "untrusted": f"Ke Mao Danh ({AGENCY_NAME}) <kmd@{AGENCY_DOMAIN}>",
    }
    fprs = {}
    for label, uid in uids.items():
        _gpg(signing, "--quick-gen-key", uid, "ed25519", "sign", "1y")
        fprs[label] = _fingerprint(signing, uid)
    expired_uid = f"Le Van Cuong ({AGENCY_NAME}) <cuonglv@{AGENCY_DOMAIN}>"
    _gpg(
        signing,
        "--faked-system-time",
        "20200101T000000",
        "--quick-gen-key",
        expired_uid,
        "ed25519",
        "sign",
        "1y",
    )
    fprs["expired"] = _fingerprint(signing, expired_uid)
    for label in ("personal", "revoked", "expired"):
        _gpg(keyring, "--import", stdin=_gpg(signing, "--export", fprs[label]))
    rev = (signing / "openpgp-revocs.d" / f"{fprs['revoked']}.rev").read_bytes()
    rev = rev.replace(
        b":-----BEGIN PGP PUBLIC KEY BLOCK-----", b"-----BEGIN PGP PUBLIC KEY BLOCK-----"
    )
    _gpg(keyring, "--import", stdin=rev)
    return OpenPgpKeys(
        signing, keyring, fprs["personal"], fprs["expired"], fprs["revoked"], fprs["untrusted"]
    )


def openpgp_detached(
    data: bytes,
    keys: OpenPgpKeys,
    fingerprint: str,
    *,
    armor: bool = False,
    faked_time: str | None = None,
) -> bytes:
    args = ["--local-user", fingerprint, "--detach-sign"]
    if armor:
        args.insert(0, "--armor")
    if faked_time:
        args = ["--faked-system-time", faked_time, *args]
    return _gpg(keys.signing_home, *args, stdin=data)


def pgp_mime_message(
    keys: OpenPgpKeys,
    fingerprint: str,
    *,
    body: str = "Kính gửi.\r\n",
    attachments: list[tuple[str, bytes]] = (),  # type: ignore[assignment]
    sender: str = f"annv@{AGENCY_DOMAIN}",
    recipient: str = "vanthu@example.vn",
) -> bytes:
    """A PGP/MIME (RFC 3156) multipart/signed message."""
    import base64

    entity = mime_entity(body, list(attachments))
    signature = _gpg(
        keys.signing_home, "--armor", "--local-user", fingerprint, "--detach-sign", stdin=entity
    )
    boundary = "mailsvc-pgp-" + base64.b32encode(os.urandom(10)).decode().lower()
    return (
        (
            f"From: {sender}\r\nTo: {recipient}\r\nSubject: PGP/MIME\r\nDate: {formatdate()}\r\n"
            f"Message-ID: {make_msgid(domain=AGENCY_DOMAIN)}\r\nMIME-Version: 1.0\r\n"
            "Content-Type: multipart/signed; micalg=pgp-sha256;"
            ' protocol="application/pgp-signature";'
            f' boundary="{boundary}"\r\n\r\n--{boundary}\r\n'
        ).encode()
        + entity
        + (
            f"\r\n--{boundary}\r\nContent-Type: application/pgp-signature; name=signature.asc\r\n"
            f"Content-Disposition: attachment; filename=signature.asc\r\n\r\n"
        ).encode()
        + signature.replace(b"\n", b"\r\n").replace(b"\r\r\n", b"\r\n")
        + (f"\r\n--{boundary}--\r\n").encode()
    )


def stop_gpg_agents(keys: OpenPgpKeys) -> None:
    for home in (keys.signing_home, keys.keyring_home):
        subprocess.run(
            ["gpgconf", "--homedir", str(home), "--kill", "all"], check=False, capture_output=True
        )


def attach(message: EmailMessage, name: str, data: bytes) -> None:
    maintype, subtype = (
        ("application", "pdf") if name.endswith(".pdf") else ("application", "octet-stream")
    )
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)


def plain_message(
    attachments: list[tuple[str, bytes]],
    *,
    sender: str = f"vanthu@{AGENCY_DOMAIN}",
    recipient: str = "vanthu@example.vn",
    subject: str = "Gửi văn bản",
) -> bytes:
    """An unsigned message with attachments (e.g. x.pdf + x.pdf.p7s)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = recipient
    msg["Subject"] = subject
    msg["Date"] = formatdate()
    msg["Message-ID"] = make_msgid(domain=AGENCY_DOMAIN)
    msg.set_content("Kính gửi: Văn thư.\n")
    for name, data in attachments:
        attach(msg, name, data)
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


_shared: SamplePki | None = None


def session_pki() -> SamplePki:
    """One PKI per test process, in a temporary directory removed at exit (any test dir)."""
    global _shared
    if _shared is None:
        import atexit
        import shutil
        import tempfile

        directory = Path(tempfile.mkdtemp(prefix="mailsvc-pki-"))
        pki = build_pki(directory)

        def cleanup() -> None:
            if pki.gpg is not None:
                stop_gpg_agents(pki.gpg)
            shutil.rmtree(directory, ignore_errors=True)

        atexit.register(cleanup)
        _shared = pki
    return _shared
