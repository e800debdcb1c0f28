"""SignaturesStage: the legal value of what arrives.

One finding per document (each attachment; x.pdf with x.pdf.p7s/.sig counts as one) and
one for the message's own S/MIME or PGP/MIME signature. Each carries a
``DocumentSignatureReport`` as its payload. policies/signature.yaml decides the outcome:

- ``valid``          → ``pass`` / ``signed``
- ``reference_only`` → ``none`` / ``unsigned``, ``signature-indeterminate``,
  ``organisation-signature-missing``, ``personal-signature-missing``, ``signer-mismatch``
- ``invalid``        → ``fail`` / ``signature-invalid``, ``signer-mismatch``, ``unsigned``
  (when the policy refuses unsigned documents), ``signature-indeterminate``
- validation could not run (trust material unreadable, gpg missing, worker died)
  → one ``error`` / ``signature-check-unavailable`` finding (the runner tempfails)
- nothing signed and nothing attached → ``none`` / ``no-documents``

CPU work (pyHanko, gpg) runs in the executor given to the constructor.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from pathlib import Path
from typing import Protocol

from mailsvc.directory import owning_agency
from mailsvc.documents.extract import ExtractionError, TextExtractor
from mailsvc.interfaces import AgencyInfo, Directory
from mailsvc.message import Direction, InboundMessage
from mailsvc.signatures.engine import Sender, SignatureEngine, verify_in_worker
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import DocumentOutcome, DocumentSignatureReport
from mailsvc.signatures.trust import TrustConfig
from mailsvc.signatures.worker import DocumentResult
from mailsvc.verdict import Finding, Status

log = logging.getLogger(__name__)

_STATUS = {
    DocumentOutcome.VALID: Status.PASS,
    DocumentOutcome.REFERENCE_ONLY: Status.NONE,
    DocumentOutcome.INVALID: Status.FAIL,
}


class AgencyDirectory(Directory, Protocol):
    """The directory, plus every agency: to name the agency a signing organisation is."""

    def agencies(self) -> list[AgencyInfo]: ...


class SignaturesStage:
    name = "signatures"
    description = "Verifies S/MIME, CMS (.p7s/.p7m), PDF and OpenPGP signatures of documents"

    def __init__(
        self,
        policy: SignaturePolicy,
        trust: TrustConfig,
        directory: AgencyDirectory,
        executor: Executor,
        *,
        gnupg_home: Path | None = None,
        extractor: TextExtractor | None = None,
    ) -> None:
        """``extractor``: validation runs in its worker call, beside the other stages'
        work (None: the engine sends each document to ``executor`` itself)."""
        self._engine = SignatureEngine(policy, trust, executor=executor, gnupg_home=gnupg_home)
        self._directory = directory
        self._extractor = extractor
        if extractor is not None:
            extractor.add_task(
                self.name, verify_in_worker, self._engine.worker_argument, per_call=True
            )

    def _sender(self, msg: InboundMessage) -> Sender:
        """Who sent it. Submitted by a logged-in official of ours (From is checked against
        the login) is mail between our own mailboxes: a forwarded document keeps its
        signer's agency, so no mismatch is judged. Everything else came from another server.
        """
        address = msg.from_address or msg.mail_from
        domain = address.rpartition("@")[2].lower()
        agency = self._directory.agency_for_domain(domain) if domain else None
        internal = (
            msg.direction is Direction.SUBMISSION
            and msg.authenticated_as is not None
            and bool(domain)
            and self._directory.is_local_domain(domain)
            and not self._to_another_hosted_agency(domain, msg.rcpt_tos)
        )
        return Sender(address, agency, internal, tuple(self._directory.agencies()))

    def _to_another_hosted_agency(self, domain: str, recipients: tuple[str, ...]) -> bool:
        """A recipient on this server in another agency than the sender's: that agency's
        register takes the document, so it is judged as mail from another server."""
        owner = owning_agency(self._directory, domain)
        for recipient in recipients:
            theirs = recipient.rpartition("@")[2].lower()
            if theirs == domain or not self._directory.is_local_domain(theirs):
                continue
            other = owning_agency(self._directory, theirs)
            if (other.code if other else theirs) != (owner.code if owner else domain):
                return True
        return False

    async def _reports(self, msg: InboundMessage) -> list[DocumentSignatureReport]:
        if self._extractor is None:
            return await self._engine.verify_message(msg.raw, self._sender(msg))
        results: list[DocumentResult] | None = (await self._extractor.analyse(msg)).result(
            self.name
        )
        if results is None:
            raise ExtractionError("signature validation did not run")
        return self._engine.reports(results, self._sender(msg))

    async def inspect(self, msg: InboundMessage) -> tuple[Finding, ...]:
        try:
            reports = await self._reports(msg)
        except Exception as exc:  # boundary: validation could not run → fail closed
            log.error("signature check unavailable for %s: %s", msg.queue_id, exc, exc_info=True)
            return (
                Finding(
                    stage=self.name,
                    status=Status.ERROR,
                    reason="signature-check-unavailable",
                    detail=f"{type(exc).__name__}: {exc}",
                ),
            )
        if not reports:
            return (Finding(stage=self.name, status=Status.NONE, reason="no-documents"),)
        findings = []
        for report in reports:
            findings.append(
                Finding(
                    stage=self.name,
                    status=_STATUS[report.outcome],
                    reason=report.reason,
                    detail=f"{report.document}: {report.detail}",
                    payload=report,
                )
            )
            log.debug(
                "%s: %s %s (%d signatures)",
                report.document,
                report.outcome.value,
                report.reason,
                len(report.signatures),
            )
        return tuple(findings)
