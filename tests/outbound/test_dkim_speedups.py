"""dkimpy's faster parts against dkimpy's own: OpenSSL's RSA signature is the same bytes;
the whitespace passes and the message split give the same results on every shape of text
(spaces and tabs before line ends, bare LF and lone CR, a message with no blank line or
starting with one); whole signatures made either way are identical and verify with
dkimpy's own code; the outbound queue's signing leaves the event loop free."""

from __future__ import annotations

import base64
import hashlib
import os
import types
from collections.abc import Iterator
from importlib.metadata import version

import dkim
import dkim.canonicalization as canonicalization
import pytest
from dkim.crypto import parse_pem_private_key
from hypothesis import given, settings
from hypothesis import strategies as st

from mailsvc.outbound.dkim import DkimSigner, generate_private_key, public_key_value
from mailsvc.pipeline import dkim_speedups

# text made of the characters the three functions look at, and a little else
PIECES = st.lists(
    st.sampled_from([b"a", b"Z", b" ", b"\t", b"\r", b"\n", b"\r\n", b":", b"X-H: v", b"From "]),
    max_size=40,
).map(b"".join)


@pytest.fixture(scope="module")
def key_pem(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return generate_private_key(tmp_path_factory.mktemp("dkim") / "private.pem")


@pytest.fixture
def own_functions() -> Iterator[None]:
    """dkimpy's own functions for the test's duration, the speed-ups again after it."""
    dkim_speedups.uninstall()
    try:
        yield
    finally:
        assert dkim_speedups.install()


def _outcome(function: object, *args: object) -> tuple[str, object]:
    try:
        return ("value", function(*args))  # type: ignore[operator]
    except Exception as exc:  # compared, type and words, with dkimpy's
        return ("error", (type(exc), str(exc)))


def test_installed_for_the_checked_release() -> None:
    assert version("dkimpy") in dkim_speedups.CHECKED_RELEASES["dkimpy"]
    assert dkim_speedups.install()
    assert dkim.RSASSA_PKCS1_v1_5_sign is dkim_speedups.rsa_sign
    assert dkim.rfc822_parse is dkim_speedups.rfc822_parse
    assert canonicalization.compress_whitespace is dkim_speedups.compress_whitespace
    assert canonicalization.strip_trailing_whitespace is dkim_speedups.strip_trailing_whitespace


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_rsa_signature_is_dkimpys_bytes(key_pem: bytes, digest: str) -> None:
    numbers = parse_pem_private_key(key_pem)
    for data in (b"", b"header fields\r\n", os.urandom(500)):
        ours = dkim_speedups.rsa_sign(hashlib.new(digest, data), numbers)
        theirs = dkim_speedups._DKIM_SIGN(hashlib.new(digest, data), numbers)
        assert bytes(ours) == bytes(theirs)
        assert len(ours) == 256


def test_rsa_signature_with_numbers_openssl_refuses_is_dkimpys(key_pem: bytes) -> None:
    """A key whose CRT numbers do not belong together: OpenSSL will not build it, so the
    result (here a wrong signature, as dkimpy computes it) is dkimpy's own, even right
    after the right key with the same modulus was used (the kept keys are per set of
    numbers)."""
    numbers = dict(parse_pem_private_key(key_pem))
    dkim_speedups.rsa_sign(hashlib.sha256(b"x"), numbers)
    numbers["coefficient"] += 1
    h1, h2 = hashlib.sha256(b"x"), hashlib.sha256(b"x")
    assert _outcome(dkim_speedups.rsa_sign, h1, numbers) == _outcome(
        dkim_speedups._DKIM_SIGN, h2, numbers
    )


def test_other_digest_goes_to_dkimpy(key_pem: bytes) -> None:
    numbers = parse_pem_private_key(key_pem)
    theirs = _outcome(dkim_speedups._DKIM_SIGN, hashlib.sha512(b"x"), numbers)
    assert _outcome(dkim_speedups.rsa_sign, hashlib.sha512(b"x"), numbers) == theirs


@settings(max_examples=400, deadline=None)
@given(PIECES)
def test_whitespace_passes_are_dkimpys(text: bytes) -> None:
    assert dkim_speedups.strip_trailing_whitespace(text) == dkim_speedups._DKIM_STRIP(text)
    assert dkim_speedups.compress_whitespace(text) == dkim_speedups._DKIM_COMPRESS(text)


@settings(max_examples=600, deadline=None)
@given(PIECES, PIECES, PIECES)
def test_message_split_is_dkimpys(head: bytes, middle: bytes, body: bytes) -> None:
    for message in (
        head + middle + body,
        b"X-A: 1\r\n" + head + b"\r\n\r\n" + body,
        head + b"\r\n\r\n" + middle + b"\r\n\r\n" + body,
    ):
        assert _outcome(dkim_speedups.rfc822_parse, message) == _outcome(
            dkim_speedups._DKIM_PARSE, message
        )


@pytest.mark.parametrize(
    "message",
    [
        b"\r\nFrom: a@b\r\n\r\nbody\r\n",  # a blank first line: no header fields at all
        b"From: a@b\r\nSubject: x",  # no blank line: no body
        b"From: a@b\r\n\r\n",  # empty body
        b"From: a@b\r\n\r\nline\nbare LF\r\n",  # bare LF in the body
        b"From: a@b\r\n continued\r\n\tfolded\r\n\r\nbody \t \r\n\r\n\r\n",
        b"From a@b Mon Dec  7 10:00:00 2026\r\nFrom: a@b\r\n\r\nx\r\n",  # mbox line
        b"From: a@b\r\nbroken header line\r\n\r\nx\r\n",  # dkimpy's error, word for word
        b"From: a@b\r\r\n\r\nlone CR\r\r\n",
    ],
)
def test_message_split_edge_cases(message: bytes) -> None:
    assert _outcome(dkim_speedups.rfc822_parse, message) == _outcome(
        dkim_speedups._DKIM_PARSE, message
    )


def _messages() -> list[bytes]:
    pdf = base64.encodebytes(os.urandom(150_000)).replace(b"\n", b"\r\n")
    head = (
        "From: Văn thư <vanthu@sotttt.example.vn>\r\n"
        "To: vanthu@stp.example.vn\r\n"
        "Subject: =?utf-8?q?Th=C3=B4ng_b=C3=A1o?=\r\n"
        "Date: Mon, 07 Dec 2026 09:00:00 +0700\r\n"
        "Message-ID: <r-1@sotttt.example.vn>\r\n"
        "MIME-Version: 1.0\r\n"
    ).encode()
    return [
        head + b"Content-Type: text/plain; charset=utf-8\r\n\r\n" + "Kính gửi.\r\n".encode(),
        head + b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n" + pdf,
        head + b"Content-Type: text/plain\r\n\r\ntrailing  spaces \t\r\n\ttabbed\r\n\r\n\r\n",
        head.replace(b"\r\n", b"\n") + b"\nLF only  \n",
        head + b"\r\n",
    ]


@pytest.mark.parametrize("canonicalize", [("relaxed", "relaxed"), ("simple", "simple")])
def test_signatures_identical_and_verified_by_dkimpy(
    key_pem: bytes, monkeypatch: pytest.MonkeyPatch, canonicalize: tuple[str, str]
) -> None:
    # the signature's t= tag is the clock's second: one second for both signings
    monkeypatch.setattr(dkim, "time", types.SimpleNamespace(time=lambda: 1_796_600_000.0))
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn", canonicalize=canonicalize)
    txt = public_key_value(key_pem).encode()
    for message in _messages():
        ours = signer.sign(message)
        dkim_speedups.uninstall()
        try:
            theirs = signer.sign(message)
            assert ours == theirs
            assert dkim.verify(ours, dnsfunc=lambda name, timeout=5: txt)
            tampered = ours.replace(b"vanthu@stp", b"vanthu@stq", 1)
            assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: txt)
        finally:
            assert dkim_speedups.install()
        # and the faster verification agrees with dkimpy's own
        assert dkim.verify(ours, dnsfunc=lambda name, timeout=5: txt)
        assert not dkim.verify(tampered, dnsfunc=lambda name, timeout=5: txt)


def test_signing_a_document_is_faster(key_pem: bytes, own_functions: None) -> None:
    """Not a timing test: the work dkimpy's own code does (Python's ``pow`` on the private
    key, the regular expressions over every body byte) shows in the number of calls a
    profile counts; the speed-ups make none of them for a base64 body."""
    import cProfile
    import pstats

    message = _messages()[1]
    signer = DkimSigner(key_pem, "mailsvc", "sotttt.example.vn")

    def calls() -> dict[str, int]:
        profile = cProfile.Profile()
        profile.runcall(signer.sign, message)
        stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
        counted = {"pow": 0, "whitespace regex": 0}
        for (filename, _, function), row in stats.items():
            if function == "<built-in method builtins.pow>":
                counted["pow"] += row[1]
            if filename.endswith("canonicalization.py") and function.endswith("whitespace"):
                counted["whitespace regex"] += row[1]
        return counted

    before = calls()
    assert before["pow"] == 2 and before["whitespace regex"] >= 2  # body, and each field
    assert dkim_speedups.install()
    assert calls() == {"pow": 0, "whitespace regex": 0}
    dkim_speedups.uninstall()


def test_bench_prints_both_figures_for_each_row() -> None:
    """bench/dkim_cost.py runs as the README shows it (a short measurement) and prints a
    row per operation and message, each verification checked to pass by the bench."""
    import re
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "bench/dkim_cost.py", "--seconds", "0.05"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = re.findall(
        r"^\| (sign|verify) \| (.+?) \| ([\d.]+) .*\| ([\d.]+) \|$", done.stdout, re.M
    )
    assert [(op, message) for op, message, _, _ in rows] == [
        ("sign", "20 KB text"),
        ("verify", "20 KB text"),
        ("sign", "307 KB document"),
        ("verify", "307 KB document"),
    ]
    assert all(float(ours) > 0 and float(ratio) > 0 for _, _, ours, ratio in rows)
