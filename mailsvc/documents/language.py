"""The language of a document's text, for the register (Decree 30 Appendix VI: ngôn ngữ).

A cheap rule, not a model: Vietnamese is written in Latin letters with many letters no
other language uses (ă, ơ, ư, đ and the tone-marked vowels). Text whose letters carry enough
of them is "vi"; text of plain Latin letters is "en" (the other language official mail
here uses); anything else (too short, other scripts) is "".
"""

from __future__ import annotations

import unicodedata

# Letters (lower case, NFC) that mark Vietnamese: đ, ă, â, ê, ô, ơ, ư and every vowel
# with a tone mark.
_VIETNAMESE = frozenset("đăâêôơưàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọồốổỗộờớởỡợùúủũụừứửữựỳýỷỹỵ")
_MIN_LETTERS = 40


def detect_language(text: str, sample: int = 20_000) -> str:
    """ "vi", "en" or "" for ``text`` (its first ``sample`` characters)."""
    letters = [c for c in unicodedata.normalize("NFC", text[:sample]).lower() if c.isalpha()]
    if len(letters) < _MIN_LETTERS:
        return ""
    marked = sum(1 for c in letters if c in _VIETNAMESE)
    if marked / len(letters) >= 0.04:
        return "vi"
    if sum(1 for c in letters if "a" <= c <= "z") / len(letters) >= 0.95:
        return "en"
    return ""
