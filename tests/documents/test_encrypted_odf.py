"""ODF documents saved with a password (LibreOffice: File > Save As > Save with password).

Each XML member is encrypted (AES-256-CBC with a PBKDF2 key; the manifest's
``encryption-data`` says how), or, as ODF 1.4 does it, the whole inner package is one
``encrypted-package`` member and ``content.xml`` is gone. Before, the first read as bad XML
(refused as damaged: the wrong word for the sender) and the second was not recognised as
ODF at all: a zip of unreadable members, delivered with its ciphertext unchecked.
"""

from __future__ import annotations

import pytest

from mailsvc.documents.extract import ExtractionLimits, extract_message_bytes
from mailsvc.documents.formats import ENCRYPTED, ODT, sniff
from tests.documents.reading import read_parts
from tests.documents.samples import encrypt_odt, mail_with_file, make_odt

ODT_FILE = make_odt("SỞ NỘI VỤ\nMẬT\nSố: 51/SNV-TCBC")


@pytest.mark.parametrize("whole_package", [False, True], ids=["members", "whole-package"])
def test_an_odt_saved_with_a_password_is_encrypted(whole_package: bool) -> None:
    locked = encrypt_odt(ODT_FILE, whole_package=whole_package)
    assert sniff(locked, "bao-cao.bin", "application/octet-stream") == ODT
    text = extract_message_bytes(mail_with_file(locked, "bao-cao.odt"), ExtractionLimits())
    assert [(f.kind, f.location) for f in text.failures] == [(ENCRYPTED, "attachment 1")]
    assert text.attachments(top_level=False) == ()


def test_an_odt_without_a_password_is_read_as_before() -> None:
    """odfpy writes a manifest too: no encryption-data, no failure."""
    parts = read_parts(mail_with_file(ODT_FILE, "bao-cao.odt"))
    assert any("MẬT" in text for _, _, text in parts)
