"""Status messages of the document exchange: their codes, and reading one that arrived.

A status message (ours or another system's) is a mail with a JSON part such as our
``status.json``::

    {"message_id": "<original Message-ID>", "status_code": "13", "time": "...", ...}

Codes follow the national exchange's status messages. A status message is never a
document: the register skips it, and the recall recorder acts on code ``13``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from email.message import Message

log = logging.getLogger(__name__)

STATUS_LABELS = {
    "01": "Đã đến",
    "02": "Từ chối tiếp nhận",
    "03": "Đã tiếp nhận",
    "04": "Đã phân công",
    "05": "Đang xử lý",
    "06": "Đã hoàn thành",
    "13": "Yêu cầu thu hồi",
    "15": "Đã thu hồi",
    "16": "Từ chối thu hồi",
}
HEADINGS = {
    "01": "THÔNG BÁO VĂN BẢN ĐÃ ĐẾN",
    "02": "THÔNG BÁO TỪ CHỐI TIẾP NHẬN VĂN BẢN",
    "03": "THÔNG BÁO ĐÃ TIẾP NHẬN VĂN BẢN",
    "04": "THÔNG BÁO VĂN BẢN ĐÃ ĐƯỢC PHÂN CÔNG XỬ LÝ",
    "05": "THÔNG BÁO VĂN BẢN ĐANG ĐƯỢC XỬ LÝ",
    "06": "THÔNG BÁO VĂN BẢN ĐÃ ĐƯỢC XỬ LÝ XONG",
    "13": "ĐỀ NGHỊ THU HỒI VĂN BẢN",
    "15": "THÔNG BÁO ĐÃ THU HỒI VĂN BẢN",
    "16": "THÔNG BÁO TỪ CHỐI THU HỒI VĂN BẢN",
}
RECALL_REQUESTED = "13"
RECALL_DONE = "15"
RECALL_REFUSED = "16"
MAX_JSON_BYTES = 64 * 1024


@dataclass(frozen=True)
class StatusReport:
    """The machine-readable part of a status message."""

    message_id: str
    status_code: str
    number_notation: str = ""
    incoming_number: str = ""
    time: str = ""
    reason: str = ""


def read_status(message: Message) -> StatusReport | None:
    """The status report a message carries (first JSON part with a known
    ``status_code`` and a ``message_id``), or None for any other message."""
    for part in message.walk():
        if part.is_multipart() or part.get_content_type() != "application/json":
            continue
        try:
            data = part.get_payload(decode=True)
        except (ValueError, TypeError, LookupError):
            continue
        if not isinstance(data, bytes) or len(data) > MAX_JSON_BYTES:
            continue
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            continue
        if not isinstance(value, dict):
            continue
        code = str(value.get("status_code") or "")
        original = str(value.get("message_id") or "").strip()
        if code not in STATUS_LABELS or not original:
            continue
        return StatusReport(
            message_id=original,
            status_code=code,
            number_notation=str(value.get("number_notation") or ""),
            incoming_number=str(value.get("incoming_number") or ""),
            time=str(value.get("time") or ""),
            reason=str(value.get("reason") or ""),
        )
    return None
