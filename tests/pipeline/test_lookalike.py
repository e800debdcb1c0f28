"""Look-alike domains: mixed scripts and whole-script Latin look-alikes are found, in
Unicode or Punycode; one script (Vietnamese diacritics included) and the CJK mixtures
that identifiers allow are not."""

from __future__ import annotations

import random

import pytest

from mailsvc.pipeline.lookalike import lookalike_problem


@pytest.mark.parametrize(
    ("domain", "found"),
    [
        ("stp.h\u0430noi.gov.vn", "mixes Latin letters with CYRILLIC"),  # Cyrillic а
        ("stp." + "h\u0430noi".encode("idna").decode() + ".gov.vn", "mixes Latin"),
        ("\u0455tp.hanoi.gov.vn", "mixes Latin"),  # Cyrillic ѕ
        ("g\u03bfv.vn", "mixes Latin letters with GREEK"),  # Greek ο
        ("\u0430\u0440\u0440\u04cf\u0435.com", "Latin-looking letters in CYRILLIC"),  # аррӏе
        ("\u0391\u0392\u0395.gr", "Latin-looking letters in GREEK"),  # ΑΒΕ
        ("xn--80ak6aa92e.com", "Latin-looking letters in CYRILLIC"),
        ("XN--80AK6AA92E.COM", "Latin-looking letters in CYRILLIC"),  # A-labels any case
        ("stp.XN--HNOI-53D.gov.vn", "mixes Latin"),
        ("hanoi.gov.vn", ""),
        ("ủybannhândân.vn", ""),
        ("xn--ybannhndn-g2ac4233g.vn", ""),  # the same in Punycode
        ("почта.рф", ""),  # Cyrillic, but not all look-alikes
        ("ελληνικά.gr", ""),
        ("日本語ドメイン.jp", ""),
        ("abcカタカナ.jp", ""),  # Latin beside Katakana: allowed
        ("한국어abc.kr", ""),
        ("xn--zz.vn", ""),  # not decodable: left to DNS
        ("", ""),
        ("127.0.0.1", ""),
        ("[127.0.0.1]", ""),
    ],
)
def test_lookalike_domains(domain: str, found: str) -> None:
    problem = lookalike_problem(domain)
    if found:
        assert found in problem
    else:
        assert problem == ""


def test_hostile_domains_get_an_answer_not_an_error() -> None:
    """Whatever a sender writes after the @ (lone surrogates, astral and control
    characters, broken or huge Punycode): a reason or "", never an exception."""
    rng = random.Random(2026)
    ranges = [(0, 0x2FF), (0x370, 0x52F), (0xD800, 0xDFFF), (0x3040, 0x30FF), (0x10000, 0x10FFFF)]
    found = 0
    for _ in range(3000):
        label = "".join(
            chr(rng.randint(*rng.choice(ranges))) for _ in range(rng.randint(0, 40))
        )
        for domain in (label, "xn--" + label, f"{label}.xn--{label[:8]}.vn"):
            answer = lookalike_problem(domain)
            assert isinstance(answer, str)
            found += bool(answer)
    assert found  # mixed scripts do turn up among them
    assert lookalike_problem("xn--" + "a" * 100_000 + "-" + "b" * 1_000) == ""
    assert "CYRILLIC" in lookalike_problem(("а" * 60 + ".") * 2_000)
