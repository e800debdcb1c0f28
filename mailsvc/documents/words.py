"""Words folded for search (tìm kiếm không dấu): NFD, combining marks dropped, đ → d,
case folded, reduced to runs of letters and digits. "Quyết định" → "quyet dinh".

Kept apart from the register's search module (SQLAlchemy, the models) so that the
worker pool can fold a document's text where it reads it (mailsvc.pipeline.metadata),
off the SMTP process and its acceptance transaction.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import chain

_WORD = re.compile(r"[^\W_]+")


def fold(value: str) -> str:
    """ "Quyết định" → "quyet dinh", "Đắk Nông" → "dak nong"."""
    decomposed = unicodedata.normalize("NFD", value.replace("đ", "d").replace("Đ", "D"))
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped).casefold()


def _fold_table() -> dict[int, str | None]:
    """:func:`fold` of each Latin letter, combining mark and punctuation mark a Vietnamese
    text is written with, character by character, for ``str.translate``: deleted (a mark
    the fold drops), a space (a character that is no part of a word, before or after the
    fold) or the folded ASCII letters. Characters whose fold is neither are left out."""
    table: dict[int, str | None] = {}
    for code in chain(range(0x80, 0x250), range(0x300, 0x370), range(0x1E00, 0x2070)):
        folded = fold(chr(code))
        if not folded:
            table[code] = None
        elif not _WORD.search(folded) and not _WORD.search(chr(code)):
            table[code] = " "
        elif folded.isascii() and folded.isalnum():
            table[code] = folded
    return table


_FOLD_TABLE = _fold_table()
# ASCII characters that are no part of a word ("_" included, as in _WORD): spaces.
_ASCII_SEPARATORS = str.maketrans(
    {c: " " for c in map(chr, range(128)) if not (c.isascii() and c.isalnum())}
)


def plain_words(value: str) -> list[str]:
    """The folded words of ``value``, as ``_WORD.findall(fold(value))``. Text made only of
    the characters ``_FOLD_TABLE`` knows (Vietnamese, as it is written) is folded a
    character at a time by ``str.translate`` and split at what is left of ASCII
    punctuation (a 60,000-character document: about a quarter of the time); any other
    text is folded whole."""
    folded = value.translate(_FOLD_TABLE)
    if folded.isascii():
        return folded.lower().translate(_ASCII_SEPARATORS).split()
    return _WORD.findall(fold(value))


def search_words(text: str) -> str:
    """``text``'s folded words, one space between them: what the search index stores
    (:func:`plain_words` reads it back as the same words)."""
    return " ".join(plain_words(text))
