"""Status messages of the document exchange: their codes, and reading one that arrived.

A status message (ours or another system's) is a mail with a JSON part such as our
``status.json``::

    {"message_id": "<original Message-ID>", "status_code": "13", "time": "...", ...}

or an edXML status message (QCVN 102:2016/BTTTT, the national e-document exchange's
XML), an ``edXMLEnvelope`` whose ``MessageHeader`` answers a document::

    <edXML:edXMLEnvelope xmlns:edXML="http://www.mic.gov.vn/TBT/QCVN_102_2016">
      <edXML:edXMLHeader><edXML:MessageHeader>
        <edXML:From><edXML:OrganId>000.00.02.H99</edXML:OrganId>...</edXML:From>
        <edXML:ResponseFor>
          <edXML:OrganId>000.00.01.H99</edXML:OrganId>   (the document's issuer: us)
          <edXML:Code>7/2026</edXML:Code>                 (its số, ký hiệu)
          <edXML:PromulgationDate>2026/03/05</edXML:PromulgationDate>
          <edXML:DocumentId>...</edXML:DocumentId>
        </edXML:ResponseFor>
        <edXML:StatusCode>03</edXML:StatusCode>
        <edXML:Description>...</edXML:Description>
        <edXML:Timestamp>2026/03/05 10:00:00</edXML:Timestamp>
      </edXML:MessageHeader></edXML:edXMLHeader>
    </edXML:edXMLEnvelope>

Our JSON part wins when both are present. The edXML part is parsed with defusedxml (a
DTD, and so any entity, is refused), at most 64 KB, and strictly: one envelope, one
MessageHeader, a known StatusCode, a ResponseFor with its Code, agency codes in the
national form; anything else is not a status message. It names no Message-ID: the
mail's In-Reply-To stands in when present, else the document is found by its number.

Codes follow the national exchange's status messages. A status message is never a
document: the register skips it, and the recall recorder acts on code ``13``.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
from dataclasses import dataclass
from email.message import Message
from xml.etree.ElementTree import Element, ParseError

import defusedxml.ElementTree as defused_et
from defusedxml import DefusedXmlException

from mailsvc.documents.extract import Analysis, MessageView
from mailsvc.message import InboundMessage
from mailsvc.verdict import Verdict

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
MAX_EDXML_BYTES = 64 * 1024
EDXML_TYPES = ("application/xml", "text/xml", "application/edxml+xml")
_AGENCY_CODE = re.compile(r"^\d{3}\.\d{2}\.\d{2}\.[A-Z]\d{2}$")
_MSG_ID = re.compile(r"<[^<>\s]+>")


@dataclass(frozen=True)
class StatusReport:
    """The machine-readable part of a status message."""

    message_id: str
    status_code: str
    number_notation: str = ""
    incoming_number: str = ""
    time: str = ""
    reason: str = ""
    source: str = "json"  # "json" (our status.json) or "edxml"
    sender_code: str = ""  # edXML From/OrganId: the agency that answers
    promulgation_date: str = ""  # edXML ResponseFor/PromulgationDate (yyyy/mm/dd)


STATUS = "status"  # the analysis task's name (Analysis.results)


def message_status(msg: InboundMessage, verdict: Verdict | None = None) -> StatusReport | None:
    """``read_status`` of an incoming message: None for a plain-text mail, the worker's
    reading when the verdict carries the analysis, else a parse here."""
    if msg.is_plain_text:
        return None
    analysis = verdict.analysis if verdict is not None else None
    if isinstance(analysis, Analysis) and STATUS in analysis.results:
        found: StatusReport | None = analysis.results[STATUS]
        return found
    return read_status(msg.parsed)


def status_task(view: MessageView, _arg: object = None) -> StatusReport | None:
    """``read_status`` as an analysis task, on the worker's parse of the message."""
    return read_status(view.message) if view.message is not None else None


def read_status(message: Message) -> StatusReport | None:
    """The status report a message carries (first JSON part with a known
    ``status_code`` and a ``message_id``; else the first edXML status part), or None for
    any other message."""
    return _read_json_status(message) or read_edxml_status(message)


def _read_json_status(message: Message) -> StatusReport | None:
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


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _one(element: Element, name: str, *, required: bool = True) -> Element | None:
    found = _children(element, name)
    if len(found) > 1 or (required and not found):
        raise ValueError(f"edXML: {len(found)} {name} elements")
    return found[0] if found else None


def _required(element: Element, name: str) -> Element:
    found = _one(element, name)
    if found is None:
        raise ValueError(f"edXML: no {name}")
    return found


def _text(element: Element, name: str, limit: int, *, required: bool = False) -> str:
    child = _one(element, name, required=required)
    if child is None:
        return ""
    if len(child):
        raise ValueError(f"edXML: {name} has child elements")
    text = unicodedata.normalize("NFC", (child.text or "").strip())
    if len(text) > limit or any(unicodedata.category(ch) == "Cc" for ch in text):
        raise ValueError(f"edXML: {name} is not a short line of text")
    if required and not text:
        raise ValueError(f"edXML: {name} is empty")
    return text


def _agency_code(element: Element | None) -> str:
    if element is None:
        return ""
    code = _text(element, "OrganId", 32)
    if code and not _AGENCY_CODE.match(code):
        raise ValueError(f"edXML: OrganId {code!r} is not an agency code")
    return code


def parse_edxml_status(data: bytes, in_reply_to: str = "") -> StatusReport | None:
    """The status an edXML document carries, or None (not a status message, malformed,
    hostile: a DTD or entity declaration is refused, never expanded)."""
    if len(data) > MAX_EDXML_BYTES:
        return None
    try:
        root = defused_et.fromstring(data, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError, LookupError):
        return None
    if _local(root.tag) != "edXMLEnvelope":
        return None
    try:
        header = _required(_required(root, "edXMLHeader"), "MessageHeader")
        code = _text(header, "StatusCode", 2, required=True)
        if code not in STATUS_LABELS:
            return None
        answered = _required(header, "ResponseFor")
        number = _text(answered, "Code", 128, required=True)
        _agency_code(answered)
        return StatusReport(
            message_id=in_reply_to,
            status_code=code,
            number_notation=number,
            time=_text(header, "Timestamp", 64),
            reason=_text(header, "Description", 2000),
            source="edxml",
            sender_code=_agency_code(_one(header, "From", required=False)),
            promulgation_date=_text(answered, "PromulgationDate", 32),
        )
    except ValueError as exc:
        log.info("edXML part is not a usable status message: %s", exc)
        return None


def read_edxml_status(message: Message) -> StatusReport | None:
    """The first edXML status part of a message (see the module docstring)."""
    reply = _MSG_ID.search(str(message.get("In-Reply-To") or ""))
    in_reply_to = reply.group(0) if reply else ""
    for part in message.walk():
        if part.is_multipart():
            continue
        filename = (part.get_filename() or "").lower()
        if part.get_content_type() not in EDXML_TYPES and not filename.endswith((".edxml", ".xml")):
            continue
        try:
            data = part.get_payload(decode=True)
        except (ValueError, TypeError, LookupError):
            continue
        if not isinstance(data, bytes):
            continue
        report = parse_edxml_status(data, in_reply_to)
        if report is not None:
            return report
    return None
