"""The search index's words (mailsvc.documents.words.plain_words): the character-table
shortcut for Vietnamese text gives the words folding the whole text gives, for any text."""

from __future__ import annotations

import random
import unicodedata

import pytest

from mailsvc.documents.words import _WORD, fold, plain_words, search_words

VIETNAMESE = (
    "Căn cứ Luật Tổ chức chính quyền địa phương ngày 19/6/2015; QUYẾT ĐỊNH số "
    "35/2018/QĐ-UBND về việc “chuyển đổi số” – Điều 1… Đắk Nông, Thừa Thiên Huế. "
    "Ấp Ổ Ừ Ỵ ỹ Ơ ơ Ư ư Đ đ; snake_case 3,5 %"
)
# Characters around the table's edges: combining marks (with and without a combining
# class), letters of other scripts, compatibility characters, decomposed Hangul, digits
# that are not ASCII, punctuation and symbols outside the table.
ODD = [
    "\u0301", "\u0323", "\u0309", "\u034f", "\u0345", "\u1ab0", "\u20d0",
    "ß", "ẞ", "ǅ", "ﬁ", "½", "²", "ª", "µ", "Ω", "é", "e\u0301", "Å", "ø", "Ł",
    "ά", "й", "中", "\u1100\u1161", "\u1100", "\u1161", "가", "٣", "६",
    "\u00a0", "«", "»", "·", "—", "‘", "’", "…", "€", "\u200b", "\u2060", "\ufeff",
    "_", "-", "/", ".", ",", "'", '"', "\t", "\n", "A", "z", "0", "9",
]  # fmt: skip


def _reference(value: str) -> list[str]:
    return _WORD.findall(fold(value))


def test_a_vietnamese_document_and_each_odd_character() -> None:
    assert plain_words(VIETNAMESE) == _reference(VIETNAMESE)
    assert plain_words(VIETNAMESE)[:6] == ["can", "cu", "luat", "to", "chuc", "chinh"]
    for odd in ODD:
        for text in (odd, f"ab{odd}cd", f"Quyết{odd}định", f"{odd}Ư{odd}"):
            assert plain_words(text) == _reference(text), repr(text)


@pytest.mark.parametrize("seed", range(4))
def test_random_mixtures(seed: int) -> None:
    rng = random.Random(seed)
    latin = [chr(c) for c in range(0x80, 0x250)] + [chr(c) for c in range(0x1E00, 0x1F00)]
    pool = list(VIETNAMESE) + ODD + latin + [chr(c) for c in range(0x300, 0x370)]
    pool += [chr(c) for c in range(0x2000, 0x2070)]
    for _ in range(2000):
        text = "".join(rng.choice(pool) for _ in range(rng.randint(0, 30)))
        assert plain_words(text) == _reference(text), repr(text)
        nfd = unicodedata.normalize("NFD", text)
        assert plain_words(nfd) == _reference(nfd), repr(nfd)
        # what the worker stores reads back as the same words
        assert plain_words(search_words(text)) == plain_words(text), repr(text)
