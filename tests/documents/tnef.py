"""A small writer of TNEF streams (Outlook's ``winmail.dat``, MS-OXTNEF), for tests: the
attributes Outlook writes for a message body and for attachments given by file name and
bytes (attAttachRendData, attAttachTitle, attAttachData), each with its checksum."""

from __future__ import annotations

import struct

import compressed_rtf

SIGNATURE = 0x223E9F78
MESSAGE, ATTACHMENT = 1, 2
# (attribute id, type) as MS-OXTNEF numbers them
TNEF_VERSION = (0x9006, 0x0008)
OEM_CODEPAGE = (0x9007, 0x0006)
BODY = (0x800C, 0x0002)
MAPI_PROPS = (0x9003, 0x0006)
PR_RTF_COMPRESSED = 0x1009
PT_BINARY = 0x0102
ATTACH_REND_DATA = (0x9002, 0x0006)
ATTACH_TITLE = (0x8010, 0x0001)
ATTACH_DATA = (0x800F, 0x0006)


def attribute(level: int, which: tuple[int, int], data: bytes) -> bytes:
    name, kind = which
    checksum = sum(data) & 0xFFFF
    return struct.pack("<BHHI", level, name, kind, len(data)) + data + struct.pack("<H", checksum)


def winmail_dat(
    files: list[tuple[str, bytes]], body: str = "", codepage: int = 1258, *, rtf: bytes = b""
) -> bytes:
    """A TNEF stream with ``body`` (the message's plain text, in ``codepage``) and
    ``files`` as attachments (their titles in ``codepage`` too). Code page 1258 holds
    few of Vietnamese letters precomposed (Windows writes them with combining tone marks):
    the tests give names it holds ("báo cáo") or 65001 (UTF-8). ``rtf``: the body Outlook
    shows, as it sends a "Rich Text Format" message (PR_RTF_COMPRESSED in attMAPIProps)."""
    out = struct.pack("<IH", SIGNATURE, 0x0001)
    out += attribute(MESSAGE, TNEF_VERSION, struct.pack("<I", 0x00010000))
    out += attribute(MESSAGE, OEM_CODEPAGE, struct.pack("<II", codepage, 0))
    if body:
        out += attribute(MESSAGE, BODY, body.encode(_codec(codepage)))
    if rtf:
        out += attribute(MESSAGE, MAPI_PROPS, mapi_binary(PR_RTF_COMPRESSED, rtf_compressed(rtf)))
    for name, data in files:
        out += attribute(ATTACHMENT, ATTACH_REND_DATA, b"\x01\x00\xff\xff\xff\xff" + b"\0" * 8)
        out += attribute(ATTACHMENT, ATTACH_TITLE, name.encode(_codec(codepage)) + b"\0")
        out += attribute(ATTACHMENT, ATTACH_DATA, data)
    return out


def _codec(codepage: int) -> str:
    return "utf-8" if codepage == 65001 else f"cp{codepage}"


def rtf_compressed(rtf: bytes) -> bytes:
    """``rtf`` as Outlook stores it: LZFu-compressed with its header (MS-OXRTFCP)."""
    return bytes(compressed_rtf.compress(rtf))


def mapi_binary(tag: int, value: bytes) -> bytes:
    """An attMAPIProps list of one binary property (MS-OXTNEF 2.1.3.4): count, type and
    id, one value, its length, the bytes padded to four."""
    padding = b"\0" * (-len(value) % 4)
    return struct.pack("<IHHII", 1, PT_BINARY, tag, 1, len(value)) + value + padding
