"""The bodies Outlook shows that were not read: the compressed RTF body of a "Rich Text
Format" message in its winmail.dat (PR_RTF_COMPRESSED), and the RTF and HTML bodies of a
message saved from Outlook as a .msg file and attached (PR_RTF_COMPRESSED, PR_HTML).

Outlook shows the RTF (or HTML) body; other readers the plain one. Before, only the plain
bodies were read: a message whose plain body says "Kính gửi" and whose RTF body, the one
an Outlook recipient reads, says TỐI MẬT went out as clean. Attacked here: a wrong CRC, a
declared size past the bound, an unknown kind, damage; inflating stops at the bound.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import (
    CORRUPT,
    ENCRYPTED,
    MAX_RTF_BODY,
    TOO_LARGE,
    UnreadableDocument,
    outlook_rtf,
)
from tests.documents.cfb import outlook_msg
from tests.documents.reading import read_parts
from tests.documents.samples import mail_with_file, make_rtf
from tests.documents.tnef import rtf_compressed, winmail_dat
from tests.hostile.damage import DAMAGE_SETTINGS, damaged, edits

SECRET_RTF = make_rtf("CÔNG AN TỈNH\nTỐI MẬT\nSố: 122/BC-CAT-PA03")
PLAIN = "Kính gửi các đơn vị."
# MS-OXRTFCP 3.1.1, the specification's first example: "{\rtf1\ansi\ansicpg1252\pard hello
# world}" and a line end, compressed
SPEC_EXAMPLE = bytes.fromhex(
    "2d0000002b0000004c5a4675f1c5c7a703000a00726370673132354232"
    "0af32068656c090020627705b06c647d0a800fa0"
)


def winmail(data: bytes) -> bytes:
    return mail_with_file(data, "winmail.dat", ("application", "ms-tnef"))


def marked(raw: bytes) -> list[tuple[str, str]]:
    return [(loc, name) for loc, name, text in read_parts(raw) if "TỐI MẬT" in text]


def failures(raw: bytes) -> list[tuple[str, str]]:
    text = extract_message_bytes(raw, ExtractionLimits())
    return [(f.kind, f.location) for f in text.failures]


def test_the_specifications_example_inflates() -> None:
    assert outlook_rtf(SPEC_EXAMPLE) == b"{\\rtf1\\ansi\\ansicpg1252\\pard hello world}\r\n"


def test_a_stored_body_is_read_as_it_is() -> None:
    """ "MELA": the body stored without compression."""
    body = b"{\\rtf1 T\\u7888?I M\\u7853?T}"
    stored = struct.pack("<II4sI", len(body) + 12, len(body), b"MELA", 0) + body
    assert outlook_rtf(stored) == body


def test_the_rtf_body_of_a_winmail_dat_is_read() -> None:
    tnef = winmail_dat([], body=PLAIN, codepage=65001, rtf=SECRET_RTF)
    assert marked(winmail(tnef)) == [("attachment 1 > rtf body", "")]


@pytest.mark.parametrize("which", ["rtf", "html"])
def test_the_rtf_and_html_bodies_of_an_attached_msg_are_read(which: str) -> None:
    html = "<html><body><p>CÔNG AN TỈNH</p><p>TỐI MẬT</p></body></html>".encode()
    saved = outlook_msg(
        "Báo cáo", PLAIN, [], **({"rtf": SECRET_RTF} if which == "rtf" else {"html": html})
    )
    found = marked(mail_with_file(saved, "bao-cao.msg", ("application", "vnd.ms-outlook")))
    assert found == [("attachment 1 > embedded 1", f"body.{which}")]


def test_an_attached_msgs_rtf_body_with_a_wrong_crc_is_corrupt() -> None:
    packed = bytearray(rtf_compressed(SECRET_RTF))
    packed[12] ^= 0xFF  # the CRC
    with pytest.raises(UnreadableDocument) as caught:
        outlook_rtf(bytes(packed))
    assert caught.value.kind == CORRUPT
    tnef = winmail_dat([], body=PLAIN, codepage=65001, rtf=SECRET_RTF)
    broken = tnef.replace(rtf_compressed(SECRET_RTF), bytes(packed))
    assert broken != tnef
    assert failures(winmail(broken)) == [(CORRUPT, "attachment 1")]


@pytest.mark.parametrize(
    "header",
    [
        struct.pack("<II4sI", 64, MAX_RTF_BODY + 1, b"LZFu", 0),  # declared past the bound
        struct.pack("<II4sI", 64, 40, b"ABCD", 0),  # an unknown kind
        b"LZFu",  # cut short
    ],
    ids=["declared-too-large", "unknown-kind", "cut-short"],
)
def test_a_body_that_cannot_be_read_says_why(header: bytes) -> None:
    with pytest.raises(UnreadableDocument) as caught:
        outlook_rtf(header + b"\0" * 52)
    assert caught.value.kind in (TOO_LARGE, CORRUPT)
    if b"ABCD" in header or len(header) < 16:
        assert caught.value.kind == CORRUPT
    else:
        assert caught.value.kind == TOO_LARGE


def test_a_compressed_body_over_a_megabyte_is_too_large() -> None:
    """Whatever it declares: a megabyte of LZFu can inflate to eight."""
    body = b"{\\rtf1 " + bytes(range(32, 127)) * 12_000 + b"}"  # 1.1 MB
    stored = struct.pack("<II4sI", len(body) + 12, 1000, b"MELA", 0) + body
    with pytest.raises(UnreadableDocument) as caught:
        outlook_rtf(stored)
    assert caught.value.kind == TOO_LARGE


def test_a_body_that_inflates_past_the_bound_is_too_large() -> None:
    """A size declared small does not let the body inflate past the bound."""
    long_body = b"{\\rtf1 " + b"Kinh gui cac don vi. " * 20_000 + b"}"  # 420 KB
    packed = bytearray(rtf_compressed(long_body))
    packed[4:8] = struct.pack("<I", 100)  # the declared raw size lies
    with pytest.raises(UnreadableDocument) as caught:
        outlook_rtf(bytes(packed), max_bytes=100_000)
    assert caught.value.kind == TOO_LARGE


DAMAGEABLE = winmail_dat([], body=PLAIN, codepage=65001, rtf=SECRET_RTF)


@DAMAGE_SETTINGS
@given(edits([b"\x00", b"\xff" * 4, b"LZFu", b"MELA"]))
def test_a_damaged_rtf_body_gives_text_or_a_failure(
    changes: list[tuple[float, int, bytes]],
) -> None:
    data = damaged(DAMAGEABLE, changes)
    text = extract_message_bytes(winmail(data), ExtractionLimits())
    assert {f.kind for f in text.failures} <= {CORRUPT, ENCRYPTED, TOO_LARGE}
