"""Issuing a document with the organisation's signature (phát hành, seed 004 Điều 8.4-8.5).

1. An official or leader sends a personally-signed draft to the dispatch address
   (``[issuing] dispatch_address``, default ``phathanh@<domain>``), naming the recipient
   agencies in To/Cc (their addresses) or by agency code (mã định danh) in the text.
   Nothing leaves: the submission becomes a ``draft`` entry of the outgoing register.
2. The clerk approves it (``mailsvc outgoing approve ID``). Refused first: a draft with
   no valid personal signature, or from someone not of the issuing agency (the local
   agency owning the dispatch address's domain). Then, in one transaction: the next
   outgoing number of the year (gapless: the counter row is locked and only commits with
   the rest; a failed signature rolls it back), the number and date written into the PDF
   as a visible stamp in the organisation signature's appearance (an incremental update
   after the personal signature, which stays valid), the organisation's PAdES signature,
   the register entry, and one outbound-queue row per recipient. The server sends it.

The organisation key lives in a PKCS#11 token (pyHanko's PKCS11Signer; tested with
softhsm2), like the seal. A key file is accepted only with ``allow_file_key = true``
(a warning at every start). The PIN comes from a mode-0600 file or the environment,
never from the configuration, and neither is written to logs or backups.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
from collections.abc import Callable, Iterator, Sequence
from datetime import date, datetime
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, getaddresses, make_msgid
from io import BytesIO
from pathlib import Path
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.config import Settings
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, Mailbox
from mailsvc.documents.formats import decode_text
from mailsvc.errors import ConfigError
from mailsvc.interfaces import Directory
from mailsvc.message import InboundMessage
from mailsvc.outbound.models import SUBMISSION, OutboundMessage
from mailsvc.outbound.queue import enqueue
from mailsvc.outgoing.models import OutgoingCounter, OutgoingDocument
from mailsvc.outgoing.register import OutgoingError
from mailsvc.register.numbering import insert_ignore
from mailsvc.register.recorder import attachments_of
from mailsvc.signatures.report import CertificateKind, DocumentSignatureReport
from mailsvc.store.blobs import BlobStore
from mailsvc.time import VIETNAM, vn_datetime

log = logging.getLogger(__name__)

PIN_ENV = "MAILSVC_ISSUING_PIN"
FIELD_NAME = "ChuKyToChuc"  # the organisation signature's field
STAMP_FIELD = "SoNgayBanHanh"  # the number/date stamp when the draft has no form field
FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
_CODE = re.compile(r"\b\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}\b")


# --------------------------------------------------------------------------- drafts


def _addresses(fields: Sequence[str]) -> list[tuple[str, str]]:
    """The (name, address) pairs of address fields as written, field by field, and entry
    by entry in a field that does not parse as a whole (getaddresses gives up on all of
    its input at the first inconsistency)."""
    pairs: list[tuple[str, str]] = []
    for value in fields:
        found = getaddresses([value])
        if found == [("", "")]:
            found = [p for part in value.split(",") for p in getaddresses([part])]
        pairs += found
    return pairs


def draft_recipients(
    msg: InboundMessage,
    envelope: Sequence[str],
    *,
    dispatch: str,
    is_local_domain: Any,
    directory: Directory | None,
) -> list[str]:
    """The agencies a draft is for: remote envelope recipients, To/Cc addresses at other
    domains, and agencies named by code in the text (their first known address)."""
    found: list[str] = [r for r in envelope if r != dispatch]
    # The fields as written: the email package's parser raises on some hostile values
    # ("To: <"), and this runs in the acceptance's transaction (an exception is a 451).
    fields = [v for name, v in msg.headers.raw_items() if name.lower() in ("to", "cc")]
    for _, address in _addresses(fields):
        address = address.strip().lower()
        if "@" in address and address != dispatch:
            if not is_local_domain(address.rpartition("@")[2]):
                found.append(address)
    if directory is not None:
        body = msg.parsed.get_body(("plain",))
        # Not get_content(): it raises on some declared charsets (see decode_text).
        payload = body.get_payload(decode=True) if body is not None else None
        text = (
            decode_text(payload, body.get_content_charset())
            if body is not None and isinstance(payload, bytes)
            else ""
        )
        for code in _CODE.findall(f"{msg.subject}\n{text}"):
            info = directory.agency_by_code(code) if hasattr(directory, "agency_by_code") else None
            if info is None:
                log.warning("%s: draft names unknown agency %s", msg.queue_id, code)
            elif info.known_addresses:
                found.append(info.known_addresses[0])
            elif info.domains:
                found.append(f"vanthu@{info.domains[0]}")
    return list(dict.fromkeys(found))


# --------------------------------------------------------------------------- the signer


def read_pin(settings: Settings) -> str:
    """The token PIN: from ``pin_file`` (must be mode 0600 or stricter) or the environment."""
    issuing = settings.issuing
    if issuing.pin_file:
        path = settings.path(issuing.pin_file)
        try:
            info = path.stat()
        except OSError as exc:
            raise ConfigError(f"issuing.pin_file: cannot read {path}: {exc.strerror}") from exc
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(
                f"issuing.pin_file: {path} is readable by others (mode "
                f"{stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
            )
        return path.read_text(encoding="utf-8").strip()
    pin = os.environ.get(PIN_ENV, "")
    if not pin:
        raise ConfigError(f"issuing: no PIN (set issuing.pin_file or {PIN_ENV})")
    return pin


def check_file_key(settings: Settings) -> None:
    """At start: a key file needs ``allow_file_key`` and always earns a warning."""
    issuing = settings.issuing
    if not issuing.key_file:
        return
    if not issuing.allow_file_key:
        raise ConfigError(
            "issuing.key_file is set but issuing.allow_file_key is false: the organisation "
            "key belongs in a PKCS#11 token"
        )
    log.warning(
        "issuing: the organisation key is a FILE (%s), not a PKCS#11 token; keep it like the "
        "seal or move it to a token",
        settings.path(issuing.key_file),
    )


@contextlib.contextmanager
def organisation_signer(settings: Settings) -> Iterator[Any]:
    """pyHanko's signer for the organisation key (PKCS#11 token, or the allowed key file)."""
    from asn1crypto import pem
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign import signers

    issuing = settings.issuing
    chain: list[Any] = []
    if issuing.chain:
        for _, _, der in pem.unarmor(settings.path(issuing.chain).read_bytes(), multiple=True):
            chain.append(asn1_x509.Certificate.load(der))
    if issuing.key_file:
        check_file_key(settings)
        signer = signers.SimpleSigner.load(
            str(settings.path(issuing.key_file)),
            str(settings.path(issuing.cert)),
            ca_chain_files=(str(settings.path(issuing.chain)),) if issuing.chain else None,
        )
        if signer is None:
            raise ConfigError("issuing: cannot load key_file / cert")
        yield signer
        return
    from pyhanko.config.pkcs11 import TokenCriteria
    from pyhanko.sign import pkcs11

    if not issuing.token_label or not issuing.key_label:
        raise ConfigError("issuing: token_label and key_label are needed (or allow_file_key)")
    cert = None
    if issuing.cert:
        _, _, der = pem.unarmor(settings.path(issuing.cert).read_bytes())
        cert = asn1_x509.Certificate.load(der)
    try:
        session = pkcs11.open_pkcs11_session(
            issuing.pkcs11_module,
            token_criteria=TokenCriteria(label=issuing.token_label),
            user_pin=read_pin(settings),
        )
    except Exception as exc:  # adapter boundary: the token library's own errors
        raise ConfigError(f"issuing: cannot open token {issuing.token_label!r}: {exc}") from exc
    try:
        yield pkcs11.PKCS11Signer(
            session,
            key_label=issuing.key_label,
            cert_label=None if cert is not None else issuing.key_label,
            signing_cert=cert,
            ca_chain=chain,
        )
    finally:
        session.close()


def _font() -> Path:
    for directory in FONT_DIRS:
        candidate = directory / "DejaVuSans.ttf"
        if candidate.exists():
            return candidate
    raise ConfigError("DejaVuSans.ttf not found; install fonts-dejavu-core")


def issue_date_text(day: date) -> str:
    """The date line of an issued document (Nghị định 30/2020/NĐ-CP, Phụ lục I): a day
    below 10 and the months 1 and 2 get a leading zero: ``ngày 05 tháng 02 năm 2026``,
    ``ngày 21 tháng 11 năm 2026``."""
    month = f"{day.month:02d}" if day.month < 3 else str(day.month)
    return f"ngày {day.day:02d} tháng {month} năm {day.year}"


def _text_style(font_size: int) -> Any:
    from pyhanko.pdf_utils.font.opentype import GlyphAccumulatorFactory
    from pyhanko.pdf_utils.text import TextBoxStyle

    logging.getLogger("fontTools").setLevel(logging.ERROR)  # font subsetting chatter
    return TextBoxStyle(font=GlyphAccumulatorFactory(str(_font())), font_size=font_size)


def _appearance(writer: Any, text: str, width: float, height: float, font_size: int) -> Any:
    """A form XObject showing ``text`` (DejaVu Sans subset with a ToUnicode map, so the
    words can be read back out of the PDF), no background, no border."""
    from pyhanko.pdf_utils.layout import BoxConstraints
    from pyhanko.stamp import TextStamp, TextStampStyle

    style = TextStampStyle(
        stamp_text="%(text)s",
        text_box_style=_text_style(font_size),
        border_width=0,
        background=None,
    )
    box = BoxConstraints(width=max(1, round(width)), height=max(1, round(height)))
    return TextStamp(writer, style, {"text": text}, box=box)


def _get(dictionary: Any, key: str) -> Any:
    """``dictionary[key]`` resolved (pyHanko's ``get`` leaves indirect references), or None."""
    return dictionary[key] if key in dictionary else None


def _terminal_fields(fields: Any, parent: str = "") -> Iterator[tuple[str, Any]]:
    """(fully qualified name, field dictionary) of every terminal form field."""
    for ref in fields:
        field = ref.get_object()
        partial = str(field.get("/T", ""))
        name = f"{parent}.{partial}" if parent and partial else partial or parent
        kids = _get(field, "/Kids")
        if kids is not None and any("/T" in kid.get_object() for kid in kids):
            yield from _terminal_fields(kids, name)
        else:
            yield name, field


def _field_type(field: Any) -> str:
    while field is not None:
        if "/FT" in field:
            return str(field["/FT"])
        field = _get(field, "/Parent")
    return ""


def _fill_text_field(writer: Any, field: Any, value: str) -> None:
    """Set a text field's value and draw it into every widget (its /AP), so it shows
    without the viewer regenerating appearances (no /NeedAppearances: that would be a
    change to the form dictionary after the personal signature)."""
    from pyhanko.pdf_utils import generic

    field[generic.NameObject("/V")] = generic.TextStringObject(value)
    widgets = [field] if "/Rect" in field else [k.get_object() for k in _get(field, "/Kids") or ()]
    for widget in widgets:
        x1, y1, x2, y2 = (float(v) for v in widget["/Rect"])
        width, height = abs(x2 - x1), abs(y2 - y1)
        size = max(6, min(13, round(height * 0.6)))
        _appearance(writer, value, width, height, size).apply_appearance(widget)
        if widget is not field:
            writer.update_container(widget)
    writer.update_container(field)


def write_number_and_date(pdf: bytes, settings: Settings, number: str, day: date) -> bytes:
    """Number and date written into the document as ONE incremental update after what
    the draft carries (the personal signature stays valid: pyHanko's difference analysis
    sees form filling). The draft's text fields ``number_field``/``date_field`` are
    filled when it has them; otherwise a stamp is drawn at ``stamp_page``/``stamp_box``.

    The stamp is the widget of a read-only, unsigned signature field with the text as its
    appearance: of everything visible an incremental update can add, a new signature field
    is what pyHanko (0.38) accepts after a signature; a free annotation (FreeText, Stamp)
    is an unexplained change and would break the personal signature on every receiver
    that runs pyHanko's analysis, ours included."""
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields

    issuing = settings.issuing
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    date_text = issue_date_text(day)
    wanted = {issuing.number_field: number, issuing.date_field: date_text}
    form = _get(writer.root, "/AcroForm")
    found = {
        name: field
        for name, field in (_terminal_fields(form["/Fields"]) if form is not None else ())
        if name in wanted and _field_type(field) == "/Tx"
    }
    if found:
        for name, field in found.items():
            _fill_text_field(writer, field, wanted[name])
    else:
        x1, y1, x2, y2 = issuing.stamp_box
        fields.append_signature_field(
            writer,
            fields.SigFieldSpec(STAMP_FIELD, on_page=issuing.stamp_page, box=issuing.stamp_box),
        )
        stamp = next(
            f
            for name, f in _terminal_fields(writer.root["/AcroForm"]["/Fields"])
            if name == STAMP_FIELD
        )
        stamp[generic.NameObject("/Ff")] = generic.NumberObject(1)  # read-only: not to sign
        stamp[generic.NameObject("/TU")] = generic.TextStringObject(
            f"Số và ngày ban hành: {number}, {date_text}"
        )
        text = f"Số: {number}\n{date_text[0].upper()}{date_text[1:]}"
        _appearance(writer, text, abs(x2 - x1), abs(y2 - y1), 11).apply_appearance(stamp)
        writer.update_container(stamp)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def sign_organisation(pdf: bytes, signer: Any, settings: Settings, values: dict[str, str]) -> bytes:
    """The organisation's PAdES signature, an incremental update of its own, visible at
    ``signature_box`` on ``stamp_page`` (who signed, when; the number is in the stamp)."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers
    from pyhanko.stamp import TextStampStyle

    issuing = settings.issuing
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    style = TextStampStyle(
        stamp_text="Ký bởi: %(signer)s\nThời gian ký: %(time)s",
        text_box_style=_text_style(9),
        background=None,
    )
    pdf_signer = signers.PdfSigner(
        signers.PdfSignatureMetadata(
            field_name=FIELD_NAME,
            subfilter=fields.SigSeedSubFilter.PADES,
            reason=f"Phát hành văn bản số {values['number']}",
        ),
        signer=signer,
        stamp_style=style,
        new_field_spec=fields.SigFieldSpec(
            sig_field_name=FIELD_NAME, on_page=issuing.stamp_page, box=issuing.signature_box
        ),
    )
    out = BytesIO()
    pdf_signer.sign_pdf(writer, output=out, appearance_text_params=values)
    return out.getvalue()


def stamp_and_sign(
    pdf: bytes, signer: Any, settings: Settings, *, number: str, moment: datetime, signer_name: str
) -> bytes:
    """The issued PDF: the draft's revisions, then number and date (one incremental
    update), then the organisation's signature (another), in that order."""
    local = moment.astimezone(VIETNAM)
    stamped = write_number_and_date(pdf, settings, number, local.date())
    return sign_organisation(
        stamped,
        signer,
        settings,
        {"number": number, "signer": signer_name, "time": vn_datetime(moment)},
    )


# --------------------------------------------------------------------------- approval


def next_outgoing_number(session: Session, year: int) -> int:
    """Take the next outgoing number (số đi) of ``year``; gapless (the row stays locked,
    and a rollback returns the number)."""
    bump = (
        update(OutgoingCounter)
        .where(OutgoingCounter.year == year)
        .values(last_number=OutgoingCounter.last_number + 1, updated_at=utcnow())
        .returning(OutgoingCounter.last_number)
        .execution_options(synchronize_session=False)
    )
    number = session.execute(bump).scalar_one_or_none()
    if number is None:
        table = OutgoingCounter.__table__
        assert isinstance(table, Table)
        insert_ignore(
            session, table, {"year": year, "last_number": 0, "updated_at": utcnow()}, ["year"]
        )
        number = session.execute(bump).scalar_one()
    return int(number)


def issuing_agency(session: Session, settings: Settings) -> Agency | None:
    """The agency this server issues for: the local agency that owns the dispatch
    address's domain (the organisation key and its seal are that agency's)."""
    domain = settings.dispatch_address.rpartition("@")[2].lower()
    for agency in session.scalars(select(Agency).where(Agency.local.is_(True))):
        if domain in {d.lower() for d in agency.domains}:
            return agency
    return None


def _check_sender(
    session: Session, document: OutgoingDocument, agency: Agency | None, settings: Settings
) -> None:
    """Only the issuing agency's own people may have a draft sealed with its signature:
    on a server hosting several agencies, another agency's official can reach the
    dispatch address too."""
    sender = document.sender.strip().lower()
    domain = sender.rpartition("@")[2]
    box = session.scalars(select(Mailbox).where(Mailbox.address == sender)).one_or_none()
    if agency is None:
        ours = domain == settings.dispatch_address.rpartition("@")[2].lower()
    elif box is not None and box.agency_id is not None:
        ours = box.agency_id == agency.id
    else:
        ours = domain in {d.lower() for d in agency.domains}
    if not ours:
        issuer = f"{agency.name} ({agency.code})" if agency else settings.server.domain
        raise OutgoingError(
            f"draft {document.id} was sent by {document.sender}, who is not of {issuer}, the "
            f"agency this server issues for: it cannot be sealed with that agency's signature"
        )


def _check_personal_signature(
    document: OutgoingDocument, filename: str, reports: Sequence[DocumentSignatureReport]
) -> None:
    """Decree 30: the competent person signs first (personal signature), then the clerk
    issues with the organisation's. A draft without a valid personal signature is not
    sealed: the organisation's signature would make it legally valid as it stands."""
    signatures = [s for r in reports for s in r.signatures]
    if any(s.kind is CertificateKind.PERSONAL and s.passed for s in signatures):
        return
    found = "; ".join(
        f"{s.kind.value} {s.indication.value}"
        + (f"/{s.subindication}" if s.subindication else "")
        for s in signatures
    )
    raise OutgoingError(
        f"draft {document.id}: {filename} carries no valid personal signature (chữ ký số cá "
        f"nhân of the person who signs it){': ' + found if found else ''}; ask for a signed "
        f"draft, nothing was numbered"
    )


def approve(
    session: Session,
    document: OutgoingDocument,
    *,
    settings: Settings,
    blobs: BlobStore,
    signer: Any,
    actor: str,
    agency: Agency | None,
    verify: Callable[[str, bytes], Sequence[DocumentSignatureReport]],
) -> list[OutboundMessage]:
    """Number, stamp, sign, register and queue a draft (see the module docstring).
    ``agency``: the issuing agency (:func:`issuing_agency`); ``verify``: the signature
    engine's reports for a file, for the draft's personal signature."""
    if document.kind != "issued" or document.state != "draft":
        raise OutgoingError(f"outgoing document {document.id} is not a draft waiting for approval")
    if not document.deliveries:
        raise OutgoingError(f"draft {document.id} names no recipient agency")
    _check_sender(session, document, agency, settings)
    agency_name = agency.name if agency is not None else settings.server.domain
    raw = blobs.get(document.blob_sha256)
    draft = InboundMessage("", "", (), raw, utcnow())
    files = attachments_of(draft)
    main = next((a for a in files if a.role == "main"), None)
    if main is None or main.data is None or not main.filename.lower().endswith(".pdf"):
        raise OutgoingError(f"draft {document.id} has no PDF document to sign")
    _check_personal_signature(document, main.filename, verify(main.filename, main.data))
    now = utcnow()
    local = now.astimezone(VIETNAM)
    year = local.year
    number = next_outgoing_number(session, year)
    number_text = f"{number}/{year}"
    signed = stamp_and_sign(
        main.data, signer, settings, number=number_text, moment=now, signer_name=agency_name
    )
    dispatch = settings.dispatch_address
    recipients = [line.recipient for line in document.deliveries]
    message = EmailMessage(policy=SMTP_POLICY)
    message["From"] = f"{agency_name} <{dispatch}>"
    message["To"] = ", ".join(recipients)
    message["Subject"] = f"Văn bản số {number_text}: {document.abstract or document.subject}"[:200]
    message["Date"] = format_datetime(local)
    message["Message-ID"] = make_msgid(domain=settings.server.hostname)
    message["X-Mailsvc-Outgoing-Number"] = number_text
    message.set_content(
        f"{agency_name} gửi văn bản số {number_text} ngày {local.strftime('%d/%m/%Y')}"
        f"{' (' + document.number_notation + ')' if document.number_notation else ''}.\n"
        f"Trích yếu: {document.abstract or document.subject}\n"
    )
    message.add_attachment(signed, maintype="application", subtype="pdf", filename=main.filename)
    for extra in files:
        if extra is main or extra.role == "signature" or extra.data is None:
            continue
        kind, _, sub = extra.content_type.partition("/")
        message.add_attachment(extra.data, maintype=kind, subtype=sub, filename=extra.filename)
    data = message.as_bytes(policy=SMTP_POLICY)
    sha = hashlib.sha256(data).hexdigest()
    blobs.put(data, sha)
    message_id = str(message["Message-ID"])
    key = hashlib.sha256(f"{message_id}\0{sha}".encode()).hexdigest()
    rows = []
    for line in document.deliveries:
        row = enqueue(
            session,
            data,
            line.recipient,
            kind=SUBMISSION,
            about=message_id,
            # Receipts and bounces go back to the official who drafted it.
            sender=document.sender,
            message_key=key,
        )
        line.outbound_id = row.id
        rows.append(row)
    document.outgoing_number = number
    document.year = year
    document.state = "sent"
    document.sent_at = now
    document.approved_by = actor
    document.message_id = message_id
    document.message_key = key
    document.blob_sha256 = sha
    document.main_sha256 = hashlib.sha256(signed).hexdigest()
    audit.record(
        session,
        actor,
        "outgoing.approve",
        f"outgoing {document.id}",
        {"number": number_text, "message_id": message_id, "recipients": recipients},
    )
    session.flush()
    log.info("outgoing %d issued as %s to %d recipient(s)", document.id, number_text, len(rows))
    return rows
