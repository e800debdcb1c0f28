"""The speed-ups against pyHanko's own functions: the hex-string reader gives the same
object, the same position after it and the same error, on every shape of hex string the
PDF syntax allows and on the malformed ones a hostile file can hold; the signer look-up
gives the same answer for every pair of identifier and certificate; validations of signed
and tampered PDFs come out the same either way."""

from __future__ import annotations

import io
import itertools
import random
from collections.abc import Callable
from importlib.metadata import version
from typing import Any

import pytest
from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.serialization import Encoding
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PdfStreamError
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import general

from mailsvc.signatures import speedups
from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.report import Indication, SignatureResult
from mailsvc.signatures.validation import validate_pdf
from tests.signatures.pki import (
    SamplePki,
    make_pdf,
    modify_pdf_after_signing,
    overlay_after_signing,
    signed_pdf,
)


def _outcome(reader: Callable[[Any], Any], data: bytes, start: int) -> tuple[Any, ...]:
    stream = io.BytesIO(data)
    stream.seek(start)
    try:
        value = reader(stream)
    except Exception as exc:  # compared, type and words, with pyHanko's
        return ("error", type(exc), str(exc), stream.tell())
    return ("value", type(value), bytes(value.original_bytes), stream.tell())


def _cases() -> list[tuple[bytes, int]]:
    """(file bytes, position of the ``<``): before and after text around each string."""
    bodies = [
        b"",
        b"0",
        b"a",
        b"00",
        b"4E6F762073686D6F7A206B6120706F702E",
        b"4e6f76",
        b"901FA3",
        b"901FA",  # odd: the last digit is taken as followed by 0
        b" 90 1F\r\nA3 ",
        b"\t\x0c\x009\n0",
        b"FEFF00540069",  # UTF-16BE with BOM: a text string
        b"EFBBBF41",  # UTF-8 with BOM
        b"30 82 %comment > here\n 01",  # a comment, with a '>' in it
        b"%only a comment\n",
        b"12G4",  # not a hex digit
        b"12<34",
        b"12(34)",
        b"\xff\xfe",
        b"12 34 /Name",
    ]
    out: list[tuple[bytes, int]] = []
    for body, (before, after) in itertools.product(
        bodies, [(b"", b">"), (b"/Contents ", b"> /Type /Sig"), (b"[ ", b" >]"), (b"", b"")]
    ):
        out.append((before + b"<" + body + after, len(before)))
    rng = random.Random(2026)
    alphabet = b"0123456789abcdefABCDEF \r\n\t\x0c\x00%>Gz<"
    for _ in range(2000):
        body = bytes(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        out.append((b"<" + body + rng.choice([b">", b"", b"> trailer"]), 0))
    return out


@pytest.mark.parametrize("chunk", range(8))
def test_the_fast_reader_reads_what_pyhankos_reads_and_fails_where_it_fails(chunk: int) -> None:
    cases = _cases()[chunk::8]
    pyhanko_reader = speedups._PYHANKO_READER
    differences = [
        (data, start, theirs, ours)
        for data, start in cases
        if (theirs := _outcome(pyhanko_reader, data, start))
        != (ours := _outcome(speedups.read_hex_string, data, start))
    ]
    assert differences == []
    assert any(_outcome(pyhanko_reader, d, s)[0] == "error" for d, s in cases)
    assert any(_outcome(pyhanko_reader, d, s)[0] == "value" for d, s in cases)


def test_a_stream_that_is_not_in_memory_is_read_by_pyhanko() -> None:
    class Stream(io.BufferedReader):
        pass

    stream = Stream(io.BytesIO(b"<4142>"))  # type: ignore[arg-type]
    assert bytes(speedups.read_hex_string(stream).original_bytes) == b"AB"
    assert stream.tell() == 6


def test_they_are_installed_for_the_checked_pyhanko_release() -> None:
    # A new pyHanko release keeps its own reader until the differential test above has
    # been run against it and the release added to CHECKED_RELEASES.
    for name, releases in speedups.CHECKED_RELEASES.items():
        assert version(name) in releases, (
            f"{name} {version(name)}: run this file's tests against it, then add it"
        )
    assert speedups.install()
    assert generic.read_hex_string_from_stream is speedups.read_hex_string
    assert general.match_issuer_serial is speedups.match_issuer_serial
    assert asn1_x509.NameTypeAndValue._ldap_string_prep is speedups._cached_string_prep
    stream = io.BytesIO(b"<4142 43> /Type")
    obj = generic.read_object(stream, container_ref=None)  # type: ignore[arg-type]
    assert bytes(obj.original_bytes) == b"ABC" and stream.tell() == 9


async def test_signed_and_tampered_pdfs_validate_alike_with_either_reader(
    engine: SignatureEngine, pki: SamplePki
) -> None:
    signed = signed_pdf(make_pdf(size=50_000), pki.personal, pki.organisation)
    samples = [signed, modify_pdf_after_signing(signed), overlay_after_signing(signed)]
    settings, trust = engine.settings, engine.trust_version()

    async def reports() -> list[list[SignatureResult]]:
        return [await validate_pdf(data, settings, trust) for data in samples]

    def contents() -> list[bytes]:
        reader = PdfFileReader(io.BytesIO(signed))
        return [bytes(sig.pkcs7_content) for sig in reader.embedded_signatures]

    fast, fast_contents = await reports(), contents()
    speedups.uninstall()
    try:
        slow, slow_contents = await reports(), contents()
    finally:
        speedups.install()
    assert fast == slow
    assert fast_contents == slow_contents
    assert len(fast_contents) == 2 and all(len(c) > 1000 for c in fast_contents)
    assert [r.indication for r in fast[0]] == [Indication.TOTAL_PASSED] * 2
    assert all(
        any(r.indication is not Indication.TOTAL_PASSED for r in tampered)
        for tampered in fast[1:]
    )


def test_pyhankos_errors_for_a_truncated_string_are_its_own() -> None:
    stream = io.BytesIO(b"<4142")
    with pytest.raises(PdfStreamError, match="Stream ended prematurely"):
        speedups.read_hex_string(stream)


def _identifiers(pki: SamplePki) -> tuple[list[Any], list[asn1_x509.Certificate]]:
    """Every sample certificate, and identifiers of each (CMS's issuer and serial, the
    ESS attribute's GeneralNames form), plus look-alikes: the right issuer with another
    serial, another issuer with the right serial, two names, a name of another kind."""
    certs = [
        asn1_x509.Certificate.load(identity.cert.public_bytes(Encoding.DER))
        for identity in (
            pki.root, pki.intermediate, pki.personal, pki.organisation, pki.digsig_only,
            pki.expired, pki.revoked, pki.other_agency, pki.untrusted_root, pki.untrusted,
        )
    ]  # fmt: skip
    ids: list[Any] = []
    for cert in certs:
        issuer, serial = cert.issuer, cert.serial_number
        directory = asn1_x509.GeneralName(name="directory_name", value=issuer)
        dns_name = asn1_x509.GeneralName(name="dns_name", value="a.vn")
        ids += [
            cms.IssuerAndSerialNumber({"issuer": issuer, "serial_number": serial}),
            cms.IssuerAndSerialNumber({"issuer": issuer, "serial_number": serial + 1}),
            cms.IssuerAndSerialNumber({"issuer": certs[-1].subject, "serial_number": serial}),
            tsp.IssuerSerial({"issuer": [directory], "serial_number": serial}),
            tsp.IssuerSerial({"issuer": [directory, directory], "serial_number": serial}),
            tsp.IssuerSerial({"issuer": [dns_name], "serial_number": serial}),
        ]
    return ids, certs


def test_the_signer_look_up_answers_as_pyhankos_for_every_pair(pki: SamplePki) -> None:
    ids, certs = _identifiers(pki)
    answers = [
        (speedups._PYHANKO_MATCH(expected, cert), speedups.match_issuer_serial(expected, cert))
        for expected in ids
        for cert in certs
    ]
    assert [theirs for theirs, _ in answers] == [ours for _, ours in answers]
    assert sum(theirs for theirs, _ in answers) >= 2 * len(certs)  # CMS and ESS forms match


_NAMES = [
    "Nguyễn Văn An",
    "Nguye\u0302\u0303n Va\u0306n An",  # the same, decomposed (NFD)
    "  UBND  tỉnh   Bắc Ninh ",
    "Ban Cơ yếu Chính phủ\u00ad",  # soft hyphen: mapped to nothing
    "Cục\tChứng thực\u200bsố",  # tab, zero-width space
    "ＶＧＣＡ ｒｏｏｔ",  # full width: NFKC
    "Straße",  # case folding (table B.2)
    "\u0645\u0631\u062d\u0628\u0627",  # right-to-left only: allowed
    "abc \u0645\u0631\u062d\u0628\u0627",  # mixed directions: refused
    "private \ue000 use",  # refused
    "unassigned \u0378",  # refused
    "replacement \ufffd",  # refused
    "surrogate \ud800",  # refused
    "",
    "a" * 300,
]


@pytest.mark.parametrize("value", [*_NAMES, b"bytes", 42, None])
def test_name_preparation_gives_asn1cryptos_answer_every_time(value: Any) -> None:
    def outcome(prepare: Callable[[Any, Any], Any]) -> tuple[Any, ...]:
        try:
            return ("value", prepare(None, value))
        except Exception as exc:
            return ("error", type(exc), str(exc))

    theirs = outcome(speedups._ASN1_STRING_PREP)
    assert outcome(speedups._cached_string_prep) == theirs
    hits = speedups._prepared.cache_info().hits
    assert outcome(speedups._cached_string_prep) == theirs  # kept, or raised again
    kept = isinstance(value, str) and theirs[0] == "value"
    assert speedups._prepared.cache_info().hits == hits + kept


def test_certificate_names_compare_as_before(pki: SamplePki) -> None:
    """Names of the sample certificates, equal and different, with and without the cache
    (parsed afresh each time: a parsed name keeps its prepared values)."""

    def comparisons() -> list[Any]:
        _, certs = _identifiers(pki)
        names = [cert.subject for cert in certs] + [cert.issuer for cert in certs]
        names += [
            asn1_x509.Name.build({"common_name": "Nguyễn Văn An", "organization_name": "UBND"}),
            asn1_x509.Name.build({"organization_name": "UBND", "common_name": "NGUYỄN VĂN AN"}),
            asn1_x509.Name.build({"common_name": "private \ue000 use"}),
        ]
        answers: list[Any] = []
        for x in names:
            answers.append(_answer(lambda x=x: x.hashable))
            answers.append(x == "not a name")
            for y in names:
                answers.append(_answer(lambda x=x, y=y: (x == y, x != y)))
        return answers

    cached = comparisons()
    speedups.uninstall()
    try:
        plain = comparisons()
    finally:
        speedups.install()
    assert cached == plain
    pairs = [answer for answer in cached if isinstance(answer, tuple) and len(answer) == 2]
    assert (True, False) in pairs and (False, True) in pairs
    assert any(answer[0] == "error" for answer in cached if isinstance(answer, tuple))


def _answer(question: Callable[[], Any]) -> Any:
    try:
        return question()
    except Exception as exc:
        return ("error", type(exc), str(exc))
