"""The signature report of a registered document, in plain Vietnamese.

The register keeps the document's outcome; the per-signature details were stored with
the message's verdict (the ``signatures`` stage's findings). They are read back here,
in this one place, into typed values, and each signature is explained for the clerk:
who signed, personal or organisation certificate, the ETSI indication, and what that
means for the document's legal value.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mailsvc.signatures.report import CertificateKind, Indication

KIND_LABELS = {
    CertificateKind.PERSONAL.value: "Chữ ký số cá nhân (thay chữ ký tay)",
    CertificateKind.ORGANISATION.value: "Chữ ký số cơ quan, tổ chức (thay con dấu)",
    CertificateKind.UNKNOWN.value: "Không đọc được chứng thư số",
}
INDICATION_LABELS = {
    Indication.TOTAL_PASSED.value: "Hợp lệ",
    Indication.INDETERMINATE.value: "Chưa xác định được",
    Indication.TOTAL_FAILED.value: "Không hợp lệ",
}
MEANING = {
    Indication.TOTAL_PASSED.value: (
        "Chữ ký còn nguyên vẹn, chứng thư số tin cậy và còn hiệu lực khi ký: văn bản có "
        "giá trị pháp lý như bản giấy có chữ ký và dấu."
    ),
    Indication.INDETERMINATE.value: (
        "Không xác minh được đủ (chuỗi chứng thư, thu hồi hoặc thay đổi sau khi ký): văn bản "
        "chỉ có giá trị tham khảo cho đến khi xác minh lại."
    ),
    Indication.TOTAL_FAILED.value: (
        "Chữ ký không khớp nội dung hoặc chứng thư số bị thu hồi: văn bản không có giá trị pháp lý."
    ),
}
FORMAT_LABELS = {
    "pdf": "Ký trong tệp PDF (PAdES)",
    "cms": "Tệp chữ ký rời (CMS/CAdES)",
    "smime": "Ký cả thư (S/MIME)",
    "openpgp": "OpenPGP",
}


@dataclass(frozen=True)
class StoredSignature:
    document: str
    format: str
    indication: str
    subindication: str
    signer: str
    organisation: str
    kind: str
    serial: str

    def as_view(self) -> dict[str, str]:
        return {
            "document": self.document,
            "format": FORMAT_LABELS.get(self.format, self.format),
            "indication": self.indication,
            "indication_label": INDICATION_LABELS.get(self.indication, self.indication),
            "subindication": self.subindication,
            "signer": self.signer or "(không rõ)",
            "organisation": self.organisation,
            "kind": KIND_LABELS.get(self.kind, self.kind),
            "serial": self.serial,
            "meaning": MEANING.get(self.indication, ""),
            "passed": "yes" if self.indication == Indication.TOTAL_PASSED.value else "",
        }


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def stored_signatures(verdict: Mapping[str, Any]) -> list[StoredSignature]:
    """Every signature recorded in a stored verdict (``MessageRecord.verdict``)."""
    found: list[StoredSignature] = []
    findings = verdict.get("findings")
    if not isinstance(findings, Sequence):
        return found
    for finding in findings:
        if not isinstance(finding, Mapping) or finding.get("stage") != "signatures":
            continue
        evidence = finding.get("evidence")
        if not isinstance(evidence, Mapping):
            continue
        signatures = evidence.get("signatures")
        if not isinstance(signatures, Sequence):
            continue
        for item in signatures:
            if not isinstance(item, Mapping):
                continue
            found.append(
                StoredSignature(
                    document=_text(evidence.get("document")),
                    format=_text(item.get("format")),
                    indication=_text(item.get("indication")),
                    subindication=_text(item.get("subindication")),
                    signer=_text(item.get("signer")),
                    organisation=_text(item.get("organisation")),
                    kind=_text(item.get("kind")),
                    serial=_text(item.get("serial")),
                )
            )
    return found
