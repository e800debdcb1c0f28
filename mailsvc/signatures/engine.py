"""The signature engine shared by the pipeline stage and `mailsvc verify`.

It finds what is signed, sends each document to the executor (``verify_document``), and
decides each document's legal value under policies/signature.yaml.
"""

from __future__ import annotations

import asyncio
import os
import time
import unicodedata
from collections.abc import Iterable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from pathlib import Path

from mailsvc.documents.extract import MessageView
from mailsvc.interfaces import AgencyInfo
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import (
    CertificateKind,
    DocumentOutcome,
    DocumentSignatureReport,
    Indication,
    SignatureResult,
)
from mailsvc.signatures.smime import (
    DocumentJob,
    jobs_for_files,
    jobs_for_message,
    jobs_for_parsed,
)
from mailsvc.signatures.sources import all_crl_sources
from mailsvc.signatures.trust import TrustConfig
from mailsvc.signatures.validation import ValidationSettings
from mailsvc.signatures.worker import DocumentResult, verify_document


def trust_config(policy: SignaturePolicy, anchor_dirs: Sequence[Path], home: Path) -> TrustConfig:
    """The TrustConfig for a home directory: CRL files from the policy, cache in HOME/crl."""
    crl_files = tuple(
        (p if p.is_absolute() else home / p)
        for p in (
            Path(s)
            for s in all_crl_sources(policy.crl_sources, home)
            if not s.startswith(("http://", "https://"))
        )
    )
    return TrustConfig(
        anchor_dirs=tuple(anchor_dirs),
        crl_files=crl_files,
        crl_cache_dir=home / "crl",
        revocation_mode=policy.revocation_mode,
        allow_fetching=policy.allow_fetching,
    )


def home_trust_config(policy: SignaturePolicy, home: Path, policies: Path) -> TrustConfig:
    """Anchors from ``policies/trust`` and ``HOME/trust``; CRLs from the policy and HOME/crl."""
    return trust_config(policy, (policies / "trust", home / "trust"), home)


def home_gnupg(home: Path) -> Path | None:
    """The admin-managed OpenPGP keyring, ``HOME/openpgp``, when it exists."""
    path = home / "openpgp"
    return path if path.is_dir() else None


def _norm(text: str) -> str:
    return " ".join(unicodedata.normalize("NFC", text).casefold().split())


def organisation_matches(organisation: str, agency: AgencyInfo) -> bool:
    """The certificate's O names the agency (its name or its code), ignoring case and spacing."""
    org = _norm(organisation)
    return bool(org) and org in (_norm(agency.name), _norm(agency.code))


@dataclass(frozen=True)
class Sender:
    """Where a document came from, for the signer↔agency check.

    ``agency`` is the sender's agency in the directory (None: the sender's domain is in
    no entry). ``internal`` marks mail between our own mailboxes (an official of ours
    submitted it): forwarding a document signed by another agency to a colleague is
    ordinary work, so no mismatch is judged. ``agencies`` names the agency a signing
    organisation belongs to in the finding's detail.
    """

    address: str
    agency: AgencyInfo | None
    internal: bool = False
    agencies: tuple[AgencyInfo, ...] = ()


def _mismatch_detail(organisation: str, sender: Sender) -> str:
    owner = next((a for a in sender.agencies if organisation_matches(organisation, a)), None)
    signed = f"signed for {organisation!r}"
    signed += f" (agency {owner.code})" if owner is not None else ", which is no agency we know"
    if sender.agency is None:
        return f"{signed}, but the sender {sender.address} belongs to no agency in the directory"
    return f"{signed}, but the sender's agency is {sender.agency.name!r}"


def assess(
    document: str,
    sha256: str,
    signatures: Sequence[SignatureResult],
    policy: SignaturePolicy,
    sender: Sender | None,
    inherited: Iterable[SignatureResult] = (),
    attachment_sha256: str = "",
    whole_message: bool = False,
) -> DocumentSignatureReport:
    """Decide valid / reference_only / invalid for one document (see docs/signatures.md).

    ``sender`` None (``mailsvc verify``): no signer↔agency judgement. ``inherited``: the
    signatures of the message-level signed entities the document lies in (counted only
    under ``message_signature_covers_attachments``).
    """
    extra = (
        [s for s in inherited if s.passed] if policy.message_signature_covers_attachments else []
    )
    considered = list(signatures) + extra
    failed = [s for s in signatures if s.indication is Indication.TOTAL_FAILED]
    undecided = [s for s in signatures if s.indication is Indication.INDETERMINATE]
    if not considered:
        outcome = (
            DocumentOutcome.REFERENCE_ONLY
            if policy.unsigned == "reference_only"
            else DocumentOutcome.INVALID
        )
        reason, detail = "unsigned", "the document carries no digital signature"
    elif failed:
        outcome = (
            DocumentOutcome.INVALID
            if policy.invalid_signature == "refuse"
            else DocumentOutcome.REFERENCE_ONLY
        )
        reason = "signature-invalid"
        detail = f"{failed[0].subindication}: {failed[0].detail}"
    elif undecided:
        outcome = (
            DocumentOutcome.INVALID
            if policy.indeterminate == "refuse"
            else DocumentOutcome.REFERENCE_ONLY
        )
        reason = "signature-indeterminate"
        detail = f"{undecided[0].subindication}: {undecided[0].detail}"
    elif policy.require_organisation_signature and not any(
        s.kind is CertificateKind.ORGANISATION for s in considered
    ):
        outcome, reason = DocumentOutcome.REFERENCE_ONLY, "organisation-signature-missing"
        detail = "no organisation (seal) signature; the policy requires one"
    elif policy.require_personal_signature and not any(
        s.kind is CertificateKind.PERSONAL for s in considered
    ):
        outcome, reason = DocumentOutcome.REFERENCE_ONLY, "personal-signature-missing"
        detail = "no personal signature; the policy requires one"
    else:
        outcome, reason = DocumentOutcome.VALID, "signed"
        detail = "every signature passed"

    matches: bool | None = None
    passed = [s for s in considered if s.passed and s.organisation]
    seals = [s.organisation for s in passed if s.kind is CertificateKind.ORGANISATION]
    orgs = seals or [s.organisation for s in passed]
    if sender is not None and not sender.internal:
        if sender.agency is not None and orgs:
            matches = any(organisation_matches(o, sender.agency) for o in orgs)
        elif sender.agency is None and seals:
            # an organisation's seal from a sender outside every agency: nothing vouches
            # that the organisation sent it (a personal signature alone is judged above)
            matches = False
    if matches is False and outcome is not DocumentOutcome.INVALID:
        if policy.signer_mismatch == "refuse":
            outcome = DocumentOutcome.INVALID
        elif policy.signer_mismatch == "reference_only":
            outcome = DocumentOutcome.REFERENCE_ONLY
        if policy.signer_mismatch != "ignore":
            assert sender is not None
            reason = "signer-mismatch"
            detail = _mismatch_detail(orgs[0], sender)
    return DocumentSignatureReport(
        document=document,
        sha256=sha256,
        outcome=outcome,
        reason=reason,
        signatures=tuple(signatures),
        sender_agency=sender.agency.code if sender is not None and sender.agency else None,
        signer_matches_sender=matches,
        detail=detail,
        attachment_sha256=attachment_sha256 or sha256,
        whole_message=whole_message,
    )


VERSION_TTL = 1.0  # seconds


WorkerArgument = tuple[SignaturePolicy, ValidationSettings, str]


def verify_in_worker(view: MessageView, arg: WorkerArgument) -> list[DocumentResult]:
    """Find and validate every signed document of the message, in the worker that parsed
    it (an analysis task: mailsvc.documents.extract). An opaque S/MIME message encloses
    the real MIME entity: that is walked too."""
    policy, settings, version = arg
    jobs = jobs_for_parsed(view.raw, view.message, policy)
    results = [verify_document(j, settings, version) for j in jobs]
    for r in [r for r in results if r.unwrapped is not None]:
        assert r.unwrapped is not None
        inner = jobs_for_message(r.unwrapped, policy, _enclosing(r))
        results += [verify_document(j, settings, version) for j in inner]
    return results


def _enclosing(result: DocumentResult) -> tuple[str, ...]:
    """The signed entities the content a message-level pkcs7-mime enclosed lies in."""
    return (*result.within, result.sha256)


def _inherited(
    result: DocumentResult, entities: dict[str, list[SignatureResult]]
) -> list[SignatureResult]:
    return [s for entity in result.within for s in entities.get(entity, ())]


class SignatureEngine:
    """Verify messages or files; CPU work goes to ``executor`` (None: the loop's default)."""

    def __init__(
        self,
        policy: SignaturePolicy,
        trust: TrustConfig,
        *,
        executor: Executor | None = None,
        gnupg_home: Path | None = None,
    ) -> None:
        self.policy = policy
        self.trust = trust
        self.executor = executor
        self.settings = ValidationSettings(
            trust=trust,
            key_usage=tuple(policy.key_usage),
            key_usage_match_all=policy.key_usage_match_all,
            extended_key_usage=policy.extended_key_usage,
            organisation_rule=policy.organisation_rule,
            revocation_source_required=tuple(policy.require_revocation_source),
            gnupg_home=str(gnupg_home) if gnupg_home is not None else None,
        )
        self._version: tuple[str, float, tuple[object, ...]] = ("", -VERSION_TTL, ())

    def _stamp(self) -> tuple[object, ...]:
        """Modification stamps of the material's directories and CRL files (a few stats):
        adding, removing or replacing a file changes its directory's stamp."""
        paths = [*self.trust.anchor_dirs, *self.trust.crl_files]
        if self.trust.crl_cache_dir is not None:
            paths.append(self.trust.crl_cache_dir)
        stamps: list[object] = []
        for path in paths:
            try:
                st = os.stat(path)
            except OSError:
                stamps.append(None)
                continue
            stamps.append((st.st_mtime_ns, st.st_size))
        return tuple(stamps)

    def trust_version(self) -> str:
        """The trust material's fingerprint. Listed again when a directory changed, and
        at least every VERSION_TTL seconds (a file rewritten in place); a burst of
        messages does not list the directories once each."""
        version, at, stamp = self._version
        now, current = time.monotonic(), self._stamp()
        if current != stamp or now - at >= VERSION_TTL:
            version = self.trust.version()
            self._version = (version, now, current)
        return version

    async def _run(self, jobs: Sequence[DocumentJob]) -> list[DocumentResult]:
        loop = asyncio.get_running_loop()
        version = self.trust_version()
        futures = [
            loop.run_in_executor(self.executor, verify_document, job, self.settings, version)
            for job in jobs
        ]
        return list(await asyncio.gather(*futures))

    def worker_argument(self) -> WorkerArgument:
        """What ``verify_in_worker`` needs, with the trust material's current version."""
        return (self.policy, self.settings, self.trust_version())

    async def verify_message(
        self, raw: bytes, sender: Sender | None
    ) -> list[DocumentSignatureReport]:
        """Reports for the message's own signature(s) and for each attached document."""
        jobs = jobs_for_message(raw, self.policy)
        results = await self._run(jobs)
        # an opaque S/MIME message encloses the real MIME entity: walk it too
        for r in [r for r in results if r.unwrapped is not None]:
            assert r.unwrapped is not None
            results += await self._run(jobs_for_message(r.unwrapped, self.policy, _enclosing(r)))
        return self.reports(results, sender)

    def reports(
        self, results: Sequence[DocumentResult], sender: Sender | None
    ) -> list[DocumentSignatureReport]:
        """The policy's judgement of validated documents (``verify_in_worker`` results).
        A message-level signature speaks for the documents inside its signed entity only:
        a part beside it (an unsigned PDF next to a signed text part) inherits nothing."""
        entities: dict[str, list[SignatureResult]] = {}
        for r in results:
            if r.message_level:
                entities.setdefault(r.sha256, []).extend(r.signatures)
        return [
            assess(
                r.name,
                r.sha256,
                r.signatures,
                self.policy,
                sender,
                inherited=() if r.message_level else _inherited(r, entities),
                attachment_sha256=r.attachment_sha256,
                whole_message=r.message_level and r.whole_message,
            )
            for r in results
        ]

    async def verify_files(
        self, files: Sequence[tuple[str, bytes]], sender: Sender | None = None
    ) -> list[DocumentSignatureReport]:
        """Reports for files given by name and content (x.pdf beside x.pdf.p7s pairs up)."""
        jobs = jobs_for_files(files, self.policy)
        results = await self._run(jobs)
        return [
            assess(
                r.name,
                r.sha256,
                r.signatures,
                self.policy,
                sender,
                attachment_sha256=r.attachment_sha256,
            )
            for r in results
        ]
