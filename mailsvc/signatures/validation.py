"""CMS and PDF signature validation with pyHanko, mapped to ETSI EN 319 102-1 results.

Runs inside a worker (process or thread). The ValidationContext is built per
verification from trust material parsed once per process and cached by the
material's version, so a `mailsvc trust add` or a CRL refresh is seen at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from io import BytesIO
from typing import Any

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.pdf_utils.xref import XRefSectionType, read_object_header
from pyhanko.sign.ades.report import AdESFailure, AdESIndeterminate, AdESSubIndic
from pyhanko.sign.diff_analysis import ModificationLevel, SuspiciousModification
from pyhanko.sign.fields import MDPPerm
from pyhanko.sign.validation import (
    KeyUsageConstraints,
    PdfSignatureStatus,
    StandardCMSSignatureStatus,
    async_validate_detached_cms,
    async_validate_pdf_signature,
    read_certification_data,
)
from pyhanko.sign.validation.errors import SignatureValidationError
from pyhanko_certvalidator import ValidationContext

from mailsvc.errors import MailsvcError
from mailsvc.signatures import speedups
from mailsvc.signatures.identity import identify
from mailsvc.signatures.policy import OrganisationRule
from mailsvc.signatures.report import Indication, SignatureFormat, SignatureResult
from mailsvc.signatures.trust import TrustConfig, load_trust_material

log = logging.getLogger(__name__)

# pyHanko's hex strings and signer look-up, faster (same results): see the module.
speedups.install()


@dataclass(frozen=True)
class ValidationSettings:
    """Everything a worker needs to validate; picklable, built by the engine from policy."""

    trust: TrustConfig
    key_usage: tuple[str, ...] = ("digital_signature", "non_repudiation")
    key_usage_match_all: bool = False
    extended_key_usage: tuple[str, ...] | None = None
    organisation_rule: OrganisationRule = field(default_factory=OrganisationRule)
    gnupg_home: str | None = None
    # certificate kinds ("organisation", "personal") that must name a CRL or OCSP source
    revocation_source_required: tuple[str, ...] = ("organisation",)

    def key_usage_constraints(self) -> KeyUsageConstraints:
        return KeyUsageConstraints(
            key_usage=set(self.key_usage),
            match_all_key_usages=self.key_usage_match_all,
            extd_key_usage=(
                set(self.extended_key_usage) if self.extended_key_usage is not None else None
            ),
        )


@dataclass(frozen=True)
class _Parsed:
    roots: tuple[asn1_x509.Certificate, ...]
    crls: tuple[asn1_crl.CertificateList, ...]


class _ThreadCache(threading.local):
    """The parsed trust material, one copy per thread. asn1crypto parses lazily and builds
    a structure's list of fields in place the first time one is read: two threads
    validating with the same parsed root or CRL at once (``pipeline.workers = 0``, or
    ``mailsvc verify`` of several files) read a half-built list, and a valid signature
    came out "malformed: No field numbered 2 is present". A worker process validates in
    one thread: one copy, as before."""

    def __init__(self) -> None:
        self.entries: dict[tuple[TrustConfig, str], _Parsed] = {}


_cache = _ThreadCache()


def _parsed_material(trust: TrustConfig, version: str) -> _Parsed:
    key = (trust, version)
    entries = _cache.entries
    found = entries.get(key)
    if found is not None:
        return found
    material = load_trust_material(trust)
    parsed = _Parsed(
        roots=tuple(asn1_x509.Certificate.load(d) for d in material.anchors),
        crls=tuple(asn1_crl.CertificateList.load(d) for d in material.crls),
    )
    entries.clear()  # one version per thread is enough
    entries[(trust, material.version)] = parsed
    entries[key] = parsed
    return parsed


def new_context(
    trust: TrustConfig, version: str, moment: datetime | None = None
) -> ValidationContext:
    """A fresh ValidationContext over the cached, parsed trust roots and CRLs."""
    parsed = _parsed_material(trust, version)
    return ValidationContext(
        trust_roots=list(parsed.roots),
        crls=list(parsed.crls),
        allow_fetching=trust.allow_fetching,
        revocation_mode=trust.revocation_mode,
        moment=moment,
        retroactive_revinfo=moment is not None,
    )


ContextFactory = Callable[[datetime | None], ValidationContext]


def _format_failure(fmt: SignatureFormat, detail: str, field_name: str = "") -> SignatureResult:
    return SignatureResult(
        format=fmt,
        indication=Indication.TOTAL_FAILED,
        subindication=AdESFailure.FORMAT_FAILURE.name,
        field_name=field_name,
        detail=detail,
    )


def _from_subindic(sub: AdESSubIndic) -> Indication:
    if isinstance(sub, AdESFailure):
        return Indication.TOTAL_FAILED
    return Indication.INDETERMINATE


_DETAILS = {
    "HASH_FAILURE": "the signed content was changed after signing",
    "SIG_CRYPTO_FAILURE": "the signature value does not verify with the signer's key",
    "REVOKED": "the signing certificate was revoked before the signature was proven to exist",
    "REVOKED_NO_POE": "the signing certificate is revoked",
    "REVOKED_CA_NO_POE": "a CA certificate in the chain is revoked",
    "NO_CERTIFICATE_CHAIN_FOUND": "no path from the signing certificate to a trust anchor",
    "OUT_OF_BOUNDS_NO_POE": "the signing certificate has expired (or is not yet valid) "
    "and no trusted timestamp proves the signature was made in time",
    "CHAIN_CONSTRAINTS_FAILURE": "the certificate does not meet the constraints "
    "(key usage or path constraints)",
    "TRY_LATER": "revocation information is missing or stale; refresh the CRLs",
    "CERTIFICATE_CHAIN_GENERAL_FAILURE": "the certificate chain could not be validated "
    "(often: no CRL held for a certificate that names one)",
    "FORMAT_FAILURE": "the signature is malformed",
}
_NO_REVOCATION_SOURCE = (
    "the {kind} certificate names no revocation source (no CRL distribution point, no OCSP "
    "responder), so its revocation cannot be checked; the policy requires one "
    "(require_revocation_source)"
)


def _result_from_status(
    fmt: SignatureFormat,
    status: StandardCMSSignatureStatus,
    settings: ValidationSettings,
    field_name: str = "",
) -> SignatureResult:
    who = identify(status.signing_cert, settings.organisation_rule)
    ts = status.timestamp_validity
    ts_time = ts.timestamp if ts is not None and ts.trusted else None
    revoked_at = status.revocation_details.revocation_date if status.revocation_details else None
    modification = ""
    no_source = False
    sub: str | None
    if not status.intact:
        indication, sub = Indication.TOTAL_FAILED, AdESFailure.HASH_FAILURE.name
    elif not status.valid:
        indication, sub = Indication.TOTAL_FAILED, AdESFailure.SIG_CRYPTO_FAILURE.name
    elif status.trust_problem_indic is not None:
        problem = status.trust_problem_indic
        indication, sub = _from_subindic(problem), problem.standard_name
        if problem is AdESIndeterminate.REVOKED_NO_POE and (
            ts_time is None or revoked_at is None or ts_time >= revoked_at
        ):
            # ETSI §5.5: no proof the signature existed before the revocation.
            indication, sub = Indication.TOTAL_FAILED, AdESFailure.REVOKED.name
    elif status.validation_path is None:
        indication, sub = Indication.INDETERMINATE, "NO_CERTIFICATE_CHAIN_FOUND"
    elif ts is not None and not (ts.intact and ts.valid and ts.trusted):
        indication, sub = Indication.INDETERMINATE, AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name
    elif who.kind.value in settings.revocation_source_required and not _names_revocation_source(
        status.signing_cert
    ):
        # hard-fail has nothing to check for such a certificate: a revoked key would pass
        indication, sub = Indication.INDETERMINATE, AdESIndeterminate.CHAIN_CONSTRAINTS_FAILURE.name
        no_source = True
    else:
        indication, sub = Indication.TOTAL_PASSED, None
    detail = "the signature is valid" if sub is None else _DETAILS.get(sub, sub.lower())
    if no_source:
        detail = _NO_REVOCATION_SOURCE.format(kind=who.kind.value)
    if ts is not None and not (ts.intact and ts.valid and ts.trusted) and sub is not None:
        detail += "; the timestamp token is not trusted"
    if isinstance(status, PdfSignatureStatus):
        level = status.modification_level
        modification = level.name.lower() if level is not None else ""
        if indication is Indication.TOTAL_PASSED and (
            isinstance(status.diff_result, SuspiciousModification)
            or level is ModificationLevel.OTHER
            or status.docmdp_ok is False
        ):
            indication, sub = Indication.TOTAL_FAILED, AdESFailure.HASH_FAILURE.name
            modification = "other"
            detail = "the document was changed after this signature in a way it does not permit"
    path = status.validation_path
    anchor = ""
    if path is not None:
        anchor = path.trust_anchor.authority.name.human_friendly
    return SignatureResult(
        format=fmt,
        indication=indication,
        subindication=sub,
        signer_name=who.signer_name,
        organisation=who.organisation,
        kind=who.kind,
        serial=who.serial,
        issuer=who.issuer,
        subject=who.subject,
        fingerprint=who.fingerprint,
        signing_time=status.signer_reported_dt,
        timestamp_time=ts_time,
        trust_anchor=anchor,
        revoked_at=revoked_at,
        field_name=field_name,
        modification=modification,
        detail=detail,
    )


def _names_revocation_source(cert: asn1_x509.Certificate) -> bool:
    """A CRL distribution point (full or delta) or an OCSP responder in the certificate."""
    return bool(
        cert.crl_distribution_points or cert.delta_crl_distribution_points or cert.ocsp_urls
    )


def _needs_time_revalidation(result: SignatureResult) -> bool:
    """A trusted timestamp may prove the signature existed while the cert was good."""
    return result.timestamp_time is not None and result.subindication in (
        "OUT_OF_BOUNDS_NO_POE",
        "REVOKED",
        "REVOKED_NO_POE",
    )


def _split_signers(signed_data: cms.SignedData) -> list[cms.SignedData]:
    """One SignedData per SignerInfo, so every signer is validated (not only the first)."""
    infos = list(signed_data["signer_infos"])
    if len(infos) <= 1:
        return [signed_data]
    out = []
    for info in infos:
        copy = signed_data.copy()
        copy["signer_infos"] = cms.SignerInfos([info])
        out.append(copy)
    return out


def parse_signed_data(data: bytes) -> cms.SignedData:
    """ContentInfo(SignedData) from DER, PEM or base64 (as in .p7s/.p7m files)."""
    raw = data
    if data[:1] != b"\x30":  # not DER: PEM or bare base64 (never strip DER: 0x20 is data)
        text = data.strip()
        lines = [ln for ln in text.splitlines() if ln and not ln.startswith(b"-----")]
        raw = base64.b64decode(b"".join(lines), validate=False)
    info = cms.ContentInfo.load(raw)
    if info["content_type"].native != "signed_data":
        raise ValueError(f"CMS content type is {info['content_type'].native}, not signed_data")
    sd = info["content"]
    assert isinstance(sd, cms.SignedData)
    return sd


async def _validate_detached_one(
    content: bytes,
    signed_data: cms.SignedData,
    settings: ValidationSettings,
    version: str,
    fmt: SignatureFormat,
) -> SignatureResult:
    try:
        status = await async_validate_detached_cms(
            content,
            signed_data,
            signer_validation_context=new_context(settings.trust, version),
            key_usage_settings=settings.key_usage_constraints(),
        )
    except (SignatureValidationError, ValueError) as exc:
        sub = getattr(exc, "ades_subindication", None) or AdESFailure.FORMAT_FAILURE
        return SignatureResult(
            format=fmt,
            indication=_from_subindic(sub),
            subindication=sub.standard_name,
            detail=f"the signature could not be validated: {exc}",
        )
    result = _result_from_status(fmt, status, settings)
    if _needs_time_revalidation(result):
        assert result.timestamp_time is not None
        status = await async_validate_detached_cms(
            content,
            signed_data,
            signer_validation_context=new_context(settings.trust, version, result.timestamp_time),
            key_usage_settings=settings.key_usage_constraints(),
        )
        again = _result_from_status(fmt, status, settings)
        if again.passed:
            return _with_detail(again, "valid at the time of its trusted timestamp")
    return result


def _with_detail(result: SignatureResult, detail: str) -> SignatureResult:
    return replace(result, detail=detail)


async def validate_detached_cms(
    content: bytes,
    signature: bytes,
    settings: ValidationSettings,
    version: str,
    fmt: SignatureFormat = SignatureFormat.CMS,
) -> list[SignatureResult]:
    """Validate a detached CMS signature (x.pdf.p7s, S/MIME multipart/signed) over ``content``."""
    try:
        signed_data = parse_signed_data(signature)
    except (ValueError, TypeError) as exc:
        return [_format_failure(fmt, f"the signature is not CMS SignedData: {exc}")]
    if signed_data["encap_content_info"]["content"].native is not None:
        return [_format_failure(fmt, "a detached signature must not enclose content")]
    return [
        await _validate_detached_one(content, sd, settings, version, fmt)
        for sd in _split_signers(signed_data)
    ]


async def validate_enveloping_cms(
    signature: bytes,
    settings: ValidationSettings,
    version: str,
    fmt: SignatureFormat = SignatureFormat.CMS,
) -> tuple[list[SignatureResult], bytes | None]:
    """Validate an enveloping CMS (x.pdf.p7m, pkcs7-mime signed-data); return its content too."""
    try:
        signed_data = parse_signed_data(signature)
        eci = signed_data["encap_content_info"]
        content = eci["content"].native
        if content is None:
            return [_format_failure(fmt, "the signed data encloses no content")], None
        content_bytes = bytes(content)
    except (ValueError, TypeError) as exc:
        return [_format_failure(fmt, f"not CMS SignedData: {exc}")], None
    detached = signed_data.copy()
    detached["encap_content_info"] = cms.ContentInfo({"content_type": eci["content_type"]})
    results = [
        await _validate_detached_one(content_bytes, sd, settings, version, fmt)
        for sd in _split_signers(detached)
    ]
    return results, content_bytes


async def validate_pdf(
    data: bytes, settings: ValidationSettings, version: str
) -> list[SignatureResult]:
    """Every signature embedded in a PDF, with pyHanko's difference analysis (never skipped)."""
    fmt = SignatureFormat.PDF
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        embedded = list(reader.embedded_regular_signatures)
    except Exception as exc:  # pyHanko raises many parser exception types on broken files
        return [_format_failure(fmt, f"the PDF cannot be read: {exc}")]
    results: list[SignatureResult] = []
    last_revision = max((sig.signed_revision for sig in embedded), default=-1)
    tail: ModificationLevel | None = None  # what changed after the last signature
    for sig in embedded:
        # A plain str: pyHanko's field name is a TextStringObject that keeps a reference
        # to its container, and pickling it (the result goes back to the SMTP process)
        # carried the whole parsed PDF along: 0.5 MB per signature.
        name = str.__str__(sig.field_name or "")
        try:
            status = await async_validate_pdf_signature(
                sig,
                signer_validation_context=new_context(settings.trust, version),
                key_usage_settings=settings.key_usage_constraints(),
            )
            result = _result_from_status(fmt, status, settings, name)
            if _needs_time_revalidation(result) and result.timestamp_time is not None:
                status = await async_validate_pdf_signature(
                    sig,
                    signer_validation_context=new_context(
                        settings.trust, version, result.timestamp_time
                    ),
                    key_usage_settings=settings.key_usage_constraints(),
                )
                again = _result_from_status(fmt, status, settings, name)
                if again.passed:
                    result = _with_detail(again, "valid at the time of its trusted timestamp")
            if sig.signed_revision == last_revision:
                tail = status.modification_level
        except SignatureValidationError as exc:
            sub = exc.ades_subindication or AdESFailure.FORMAT_FAILURE
            result = SignatureResult(
                format=fmt,
                indication=_from_subindic(sub),
                subindication=sub.standard_name,
                field_name=name,
                detail=f"the signature could not be validated: {exc.failure_message}",
            )
        except MailsvcError:
            raise  # trust material unusable: validation cannot run (the stage reports error)
        except Exception as exc:  # malformed signature dictionaries, broken byte ranges
            log.debug("PDF signature %s failed to parse", name, exc_info=True)
            result = _format_failure(fmt, f"the signature is malformed: {exc}", name)
        results.append(result)
    if tail is not None and tail > _permitted_after_last_signature(reader):
        results = [_unsigned_tail(r, tail) if r.passed else r for r in results]
    unaccounted = _unaccounted_bytes(data, reader, embedded)
    if unaccounted:
        results = [_unaccounted(r, unaccounted) if r.passed else r for r in results]
    return results


_END_OF_LINE = b"\r\n\t \x00\x0c"


def _unaccounted_bytes(data: bytes, reader: PdfFileReader, embedded: list[Any]) -> str:
    """Why the file holds bytes that no revision pyHanko analysed accounts for ("" when
    none). pyHanko reads a PDF from its last ``%%EOF`` backwards through the revisions;
    a reader that rebuilds its cross-reference table by scanning the file (PDFium, when
    the last ``startxref`` is unusable; most viewers) sees objects appended elsewhere and
    takes the last definition of each: a forged page after a valid signature."""
    eof = data.rfind(b"%%EOF")
    if eof == -1:
        return "the file has no %%EOF marker"
    after = data[eof + len(b"%%EOF") :]
    if after.strip(_END_OF_LINE):
        return f"{len(after)} bytes after the final %%EOF that no revision accounts for"
    if not embedded:
        return ""
    last = max(embedded, key=lambda sig: sig.signed_revision)
    start, length = last.byte_range[2], last.byte_range[3]
    if last.signed_revision < reader.xrefs.total_revisions - 1:
        # Later revisions: pyHanko's difference analysis judged the objects their
        # cross-reference sections list; every other byte after the signed end is
        # accounted for here.
        return _unlisted_in_later_revisions(data, reader, last.signed_revision, start + length)
    rest = data[start + length :]
    if rest.strip(_END_OF_LINE):
        return f"{len(rest)} bytes after the last signed revision that no revision accounts for"
    return ""


_WHITESPACE = b"\x00\t\n\x0c\r "
# What may stand between the objects and cross-reference sections of a revision besides
# whitespace: the end of each revision ("startxref N %%EOF").
_WS = rb"[\x00\t\n\x0c\r ]"
_REVISION_END = re.compile(_WS + rb"*startxref" + _WS + rb"+\d+" + _WS + rb"+%%EOF")
_MAX_LISTED_OBJECTS = 100_000


def _unlisted_in_later_revisions(
    data: bytes, reader: PdfFileReader, last_signed: int, signed_end: int
) -> str:
    """Why the revisions after the last signature hold bytes that their cross-reference
    sections do not account for ("" when none). A viewer that cannot use a revision's
    cross-reference section (a ``startxref`` pointing a few bytes off, which pyHanko
    corrects and PDFium does not) rebuilds it by scanning the file, and objects placed
    between the revisions without being listed (a forged page under the signed page's
    object numbers) are then what it shows, while pyHanko judges the listed objects
    only: an added validation-data revision looked harmless. So each later revision must
    be where its ``startxref`` says, list only objects found where it says, and nothing
    else may lie after the signed end: the objects, the sections and their trailers,
    ``startxref N %%EOF`` and whitespace."""
    stream = BytesIO(data)
    covered: list[tuple[int, int]] = []
    listed = 0
    try:
        for revision in range(last_signed + 1, reader.xrefs.total_revisions):
            info = reader.xrefs.get_xref_container_info(revision)
            section = reader.xrefs.get_xref_data(revision)
            where = f"revision {revision + 1}"
            if info.xref_section_type in (XRefSectionType.STANDARD, XRefSectionType.HYBRID_MAIN):
                # pyHanko has read the keyword and the byte after it
                keyword = data.rfind(b"xref", info.declared_startxref, info.start_location)
                if keyword == -1 or data[info.declared_startxref : keyword].strip(_WHITESPACE):
                    return f"the cross-reference table of {where} is not where the file says"
                # the table's end as pyHanko reads it: after the keyword "trailer"
                if data.rfind(b"trailer", keyword, info.end_location) == -1:
                    return f"the cross-reference table of {where} has no trailer"
                stream.seek(info.end_location)
                generic.DictionaryObject.read_from_stream(stream, generic.TrailerReference(reader))
                covered.append((keyword, stream.tell()))
                sections = [section] + ([section.hybrid.xref_data] if section.hybrid else [])
                if section.hybrid is not None:
                    covered.append(
                        _object_span(stream, reader, section.hybrid.meta_info.start_location, None)
                    )
            else:
                if info.declared_startxref != info.start_location:
                    return f"the cross-reference stream of {where} is not where the file says"
                covered.append(_object_span(stream, reader, info.start_location, None))
                sections = [section]
            for part in sections:
                for idnum, (generation, offset) in part.standard_xrefs.items():
                    listed += 1
                    if listed > _MAX_LISTED_OBJECTS:
                        return f"more than {_MAX_LISTED_OBJECTS} objects in later revisions"
                    span = _object_span(stream, reader, offset, (idnum, generation))
                    if offset >= signed_end:  # an earlier, signed definition: judged by pyHanko
                        covered.append(span)
    except _NotThere as exc:
        return str(exc)
    except Exception as exc:  # pyHanko's parser raises many types on broken objects
        return f"a later revision cannot be read: {exc}"
    position = signed_end
    for begin, end in sorted(covered):
        if begin > position and not _is_filler(data, position, begin):
            return f"{begin - position} bytes at offset {position} that no revision lists"
        position = max(position, end)
    if position < len(data) and not _is_filler(data, position, len(data)):
        return f"{len(data) - position} bytes at offset {position} that no revision lists"
    return ""


class _NotThere(Exception):
    """An object is not where a later revision's cross-reference section says."""


def _object_span(
    stream: BytesIO, reader: PdfFileReader, offset: int, expected: tuple[int, int] | None
) -> tuple[int, int]:
    """Where the indirect object at ``offset`` begins and ends (after ``endobj``)."""
    stream.seek(offset)
    try:
        idnum, generation = read_object_header(stream, strict=False)
    except Exception as exc:
        raise _NotThere(f"no object at offset {offset}, where a later revision lists one") from exc
    if expected is not None and (idnum, generation) != expected:
        raise _NotThere(
            f"object {expected[0]} {expected[1]} is listed at offset {offset}, "
            f"where object {idnum} {generation} is"
        )
    generic.read_object(stream, generic.Reference(idnum, generation, reader))
    generic.read_non_whitespace(stream, seek_back=True)
    if stream.read(6) != b"endobj":
        raise _NotThere(f"object {idnum} {generation} at offset {offset} has no endobj")
    return offset, stream.tell()


def _is_filler(data: bytes, begin: int, end: int) -> bool:
    """Whether ``data[begin:end]`` is whitespace and revision ends only."""
    piece = data[begin:end]
    return not _REVISION_END.sub(b"", piece).strip(_WHITESPACE)


def _unaccounted(result: SignatureResult, why: str) -> SignatureResult:
    """At most INDETERMINATE: other readers may show content nobody signed."""
    return replace(
        result,
        indication=Indication.INDETERMINATE,
        subindication=AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name,
        detail=f"the file holds data outside its signed revisions ({why}): "
        "a PDF viewer may show content that nobody signed",
    )


_DOCMDP_LEVELS = {
    MDPPerm.NO_CHANGES: ModificationLevel.LTA_UPDATES,
    MDPPerm.FILL_FORMS: ModificationLevel.FORM_FILLING,
    MDPPerm.ANNOTATE: ModificationLevel.ANNOTATIONS,
}


def _permitted_after_last_signature(reader: PdfFileReader) -> ModificationLevel:
    """What may change after the last signature without anyone signing it: validation
    material and document timestamps (LTV), or what a certification signature's DocMDP
    permission allows. Form filling and annotations are not harmless by themselves: a
    widget or annotation appearance can paint a white box and a new amount over the page
    while the text layer (and so the register's metadata) keeps the signed one."""
    try:
        certification = read_certification_data(reader)
    except Exception:  # a broken /Perms dictionary grants nothing
        log.debug("unreadable certification (DocMDP) data", exc_info=True)
        certification = None
    if certification is None:
        return ModificationLevel.LTA_UPDATES
    return _DOCMDP_LEVELS.get(certification.permission, ModificationLevel.LTA_UPDATES)


def _unsigned_tail(result: SignatureResult, level: ModificationLevel) -> SignatureResult:
    """At most INDETERMINATE: the document as shown is not the document as signed."""
    return replace(
        result,
        indication=Indication.INDETERMINATE,
        subindication=AdESIndeterminate.SIG_CONSTRAINTS_FAILURE.name,
        modification=level.name.lower(),
        detail=(
            f"the document was changed after the last signature ({level.name.lower()}): "
            "unsigned fields, annotations or appearances may be drawn over the signed pages"
        ),
    )


def run(coro_factory: Callable[[], object]) -> object:
    """Run a coroutine to completion in this (worker) thread."""
    return asyncio.run(coro_factory())  # type: ignore[arg-type]
