"""The signature report of a registered document, in plain Vietnamese.

The register keeps the document's outcome; the per-signature details were stored with
the message (``message_signature`` rows, from the signatures stage's typed reports). They
are read back here, and each signature is explained for the clerk:
who signed, personal or organisation certificate, the ETSI indication, and what that
means for the document's legal value.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from mailsvc.signatures.records import signatures_of
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


def stored_signatures(session: Session, message_record_id: int | None) -> list[StoredSignature]:
    """Every signature recorded for the message row that brought a document."""
    if message_record_id is None:
        return []
    return [
        StoredSignature(
            document=row.document,
            format=row.format,
            indication=row.indication,
            subindication=row.subindication,
            signer=row.signer,
            organisation=row.organisation,
            kind=row.kind,
            serial=row.serial,
        )
        for row in signatures_of(session, message_record_id)
    ]
