"""Look-alike domain names (IDN homographs): ``hаnoi.gov.vn`` with a Cyrillic ``а``.

A domain label is suspicious when it mixes Latin letters with letters of a script that is
not normally written beside Latin (Cyrillic, Greek, Armenian, Cherokee, ...), or when it
is written wholly in Cyrillic or Greek with letters that all look like Latin ones
(``аррӏе``: whole-script confusables). Latin with diacritics (Vietnamese domains) is one
script; Latin beside Han, Hiragana, Katakana, Hangul or Bopomofo is allowed, as Unicode's
"highly restrictive" identifier profile (UTS #39, 5.2) allows it for Japanese, Chinese and
Korean names. A label in Punycode (``xn--…``) is decoded first.

The look-alike letters are the Cyrillic and Greek letters that Unicode's confusables data
(UTS #39, confusables.txt) maps to a single Latin letter; the list is short and stable, so
it is written here rather than taken from a package.
"""

from __future__ import annotations

import unicodedata

# Cyrillic and Greek letters confusable with one Latin letter (lower and upper case).
_LATIN_LOOKALIKES = frozenset(
    "аеорсухіјѕԁһӏԛԝүәɡьвкмнтгԍ"  # Cyrillic small
    "АВЕКМНОРСТХІЈЅԌԚԜҮӀЗБ"  # Cyrillic capital
    "αοορτνικυχγεϲϳ"  # Greek small
    "ΑΒΕΗΙΚΜΝΟΡΤΥΧΖϹ"  # Greek capital
)
# Scripts written beside Latin in the allowed profiles (CJK names), by Unicode name prefix.
_WITH_LATIN = frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA", "HANGUL", "BOPOMOFO"})


def _script(char: str) -> str:
    """The script of a letter, from its Unicode name ("LATIN SMALL LETTER A" → LATIN)."""
    name = unicodedata.name(char, "")
    if name.startswith(("HALFWIDTH KATAKANA", "KATAKANA-HIRAGANA")):
        return "KATAKANA"
    if name.startswith(("FULLWIDTH LATIN",)):
        return "LATIN"
    return name.split(" ", 1)[0] or "UNKNOWN"


def _unicode_label(label: str) -> str:
    if label[:4].lower() == "xn--":
        try:
            return label[4:].encode("ascii").decode("punycode")
        except (UnicodeError, ValueError):
            return label
    return label


def lookalike_problem(domain: str) -> str:
    """Why ``domain`` looks like another one ("" when it does not): the first label that
    mixes Latin with another script, or spells Latin-looking letters in another script."""
    if domain.isascii() and "xn--" not in domain.lower():
        return ""  # ASCII letters only, no A-label to decode: Latin alone
    for raw_label in domain.strip().rstrip(".").split("."):
        label = unicodedata.normalize("NFC", _unicode_label(raw_label))
        letters = [c for c in label if c.isalpha()]
        if not letters:
            continue
        scripts = {_script(c) for c in letters}
        if "LATIN" in scripts and not scripts <= _WITH_LATIN:
            others = ", ".join(sorted(scripts - _WITH_LATIN))
            return f"label {label!r} mixes Latin letters with {others} ones"
        if scripts <= {"CYRILLIC", "GREEK"} and all(c in _LATIN_LOOKALIKES for c in letters):
            return f"label {label!r} spells Latin-looking letters in {', '.join(sorted(scripts))}"
    return ""
