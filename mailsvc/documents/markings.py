"""Finding classification markings (Mật, Tối mật, Tuyệt mật, configured extras) in text.

A marking is a stamp or a marking line, never a substring. The rules, each
with a stable name that goes into findings and the audit:

``stamp``        a line that is only the marking, in capitals as printed ("MẬT",
                 "TỐI MẬT", "T U Y Ệ T  M Ậ T"), or in brackets in any case ("[Mật]"). A lone
                 "MẬT" that merely continues the previous line ("... BẢO VỆ BÍ" / "MẬT") is
                 prose: see ``ordinary_before``.
``stamp-column`` the marking in capitals as one column of a line whose columns are set apart
                 by a tab or two or more spaces (table cells, header blocks).
``label``        an "Độ mật:" label whose value is a security level ("Độ mật: Tối mật",
                 "ĐỘ MẬT: MẬT", "Do mat: mat"), on one line or with the value on the next.
``subject``      a subject or document title starting with the marking in brackets, before
                 ":"/"-", or in capitals before a word that does not make it prose
                 ("[MẬT] V/v ...", "Mật - Báo cáo", "TỐI MẬT Kế hoạch ..."), or ending with
                 it in brackets or after a dash ("... (Mật)", "... - MẬT").
``keyword``      a document keyword (PDF/DOCX/ODT properties) equal to the marking.
``filename``     the marking's words in a file name or archive path, compared without
                 diacritics on whole words ("TOI_MAT.pdf", "tuyet-mat"); the plain one-word
                 marking ("mat") only in brackets or as the first or last word, and not
                 next to a word that makes it prose ("mat_khau", "bi_mat", "matran" pass).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from mailsvc.documents.extract import DocumentPart, ExtractedText, Source
from mailsvc.policy.classification import Category, ClassificationPolicy

# Invisible format characters (Unicode category Cf) a stamp could be split with and still
# read as one word: soft hyphen, zero-width space and joiners, directional marks and
# embeddings, word joiner and invisible operators, byte order mark, interlinear marks, tags.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u180e\ufeff\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f]"
)
# Greek and Cyrillic (with its supplement): where letters that look Latin come from
_GREEK_CYRILLIC = re.compile("[\u0370-\u03ff\u0400-\u052f]")
# Either of the two above: one pass over a text that has neither (a Vietnamese text),
# instead of one per class (each some 3 ns a character).
_INVISIBLE_OR_LOOKALIKE = re.compile(
    "[\u00ad\u061c\u180e\ufeff\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufff9-\ufffb\U000e0001\U000e0020-\U000e007f\u0370-\u03ff\u0400-\u052f]"
)
# Cyrillic and Greek letters printed like one Latin letter (Unicode's confusables data,
# UTS #39): "ТỐI МẬТ" with Cyrillic Т and М reads TỐI MẬT. Mapped on the decomposed text,
# so a Vietnamese diacritic on a Cyrillic base letter stays on the Latin one.
_LATIN_LOOKALIKE = str.maketrans(
    "АВЕКМНОРСТХІЈЅУҮӀԌԚԜаеорсухіјѕԁһӏԛԝүɡΑΒΕΗΙΚΜΝΟΡΤΥΧΖϹαοριτνκυχϲϳ",
    "ABEKMHOPCTXIJSYYIGQWaeopcyxijsdhlqwygABEHIKMNOPTYXZCaopitvkuxcj",
)


def visible(text: str) -> str:
    """``text`` as a reader sees it, for matching markings: invisible format characters
    dropped, compatibility forms folded (NFKC: full-width ＭẬＴ is MẬT), and Cyrillic or
    Greek letters that look Latin written as the Latin ones. Each step only when the text
    needs it (a Vietnamese text needs none: a few C-level scans)."""
    if _INVISIBLE_OR_LOOKALIKE.search(text) is None and unicodedata.is_normalized("NFKC", text):
        return text  # nothing to do: one scan and a normalization check
    if _INVISIBLE.search(text) is not None:
        text = _INVISIBLE.sub("", text)
    if not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)
    if _GREEK_CYRILLIC.search(text) is None:
        return text
    mapped = unicodedata.normalize("NFD", text).translate(_LATIN_LOOKALIKE)
    return unicodedata.normalize("NFC", mapped)


def fold(text: str) -> str:
    """Lower case without diacritics: "Tối Mật" → "toi mat", "Đơn" → "don"."""
    decomposed = unicodedata.normalize("NFD", text)
    stripped = "".join(c for c in decomposed if unicodedata.category(c) != "Mn")
    return stripped.replace("đ", "d").replace("Đ", "D").lower()


@dataclass(frozen=True)
class MarkingMatch:
    """Where a marking was found. Holds no content: rule, category, location, hashes."""

    category: str  # policy code: "mat", "toi-mat", "tuyet-mat", "khieu-nai-to-cao"
    title: str  # "Tối mật"
    rank: int
    rule: str  # stamp, stamp-column, label, subject, keyword, filename
    source: str  # DocumentPart.source
    location: str  # "attachment 2 > member 1"
    content_type: str
    part_sha256: str
    line: int | None = None  # 1-based line of the part's text, when line-based

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "rule": self.rule,
            "level": self.category,
            "title": self.title,
            "source": self.source,
            "where": self.location,
            "content_type": self.content_type,
            "part_sha256": self.part_sha256,
        }
        if self.line is not None:
            out["line"] = self.line
        return out


_OPEN = "[({【「<"
_CLOSE = "])}】」>"
# Characters that frame a stamp or a line without being part of it.
_DECOR = (
    " \t\u00a0\u3000*_=|~#+•·.,:;!?\"'“”‘’«»-–—"
    + _OPEN
    + _CLOSE
    + "".join(chr(c) for c in range(0x2500, 0x2580))  # box drawing
)
_SENTENCE_END = '.:;!?)]»”"'
_CoreAt = Callable[[int], tuple[str, bool]]
_COLUMNS = re.compile(r"\t|\s{2,}")
_WORD = re.compile(r"[^\W\d_]+|\d+")
_REPLY_PREFIX = re.compile(
    r"^\s*(?:re|fw|fwd|tl|tr|aw|wg|trả lời|chuyển tiếp|phúc đáp)\s*(?:\[\d+\])?\s*:\s*",
    re.IGNORECASE,
)


def _strip(line: str) -> tuple[str, bool]:
    """The line without framing characters, whitespace collapsed; and whether it was bracketed."""
    s = line.strip()
    while s.startswith(">"):  # quoted mail
        s = s[1:].lstrip()
    bracketed = len(s) > 2 and s[0] in _OPEN and s[-1] in _CLOSE
    core = " ".join(s.strip(_DECOR).split())
    return core, bracketed


@dataclass(frozen=True)
class _Marking:
    code: str
    category: Category
    printed: str  # "TỐI MẬT"
    compact: str  # "TỐIMẬT"
    lower: str  # casefold: "tối mật"
    folded: str  # "toi mat"
    words: tuple[str, ...]  # folded words: ("toi", "mat")
    spellings: frozenset[str]  # the category's words as printed, casefolded: "tối", "mật"

    @property
    def ambiguous_word(self) -> bool:
        """A one-word marking that is also an ordinary syllable without diacritics ("mat")."""
        return len(self.words) == 1


def _marking(code: str, category: Category, printed: str) -> _Marking:
    originals = _WORD.findall(printed)
    words = tuple(fold(w) for w in originals)
    spellings = frozenset(w.casefold() for p in category.markings for w in _WORD.findall(p))
    return _Marking(
        code=code,
        category=category,
        printed=printed,
        compact=printed.replace(" ", ""),
        lower=printed.casefold(),
        folded=fold(printed),
        words=words,
        spellings=spellings,
    )


class MarkingDetector:
    """Scans extracted text with the rules above; built once from the policy."""

    def __init__(self, policy: ClassificationPolicy) -> None:
        self.policy = policy
        self.markings: list[_Marking] = [
            _marking(code, cat, printed)
            for code, cat in policy.enabled()
            for printed in sorted(cat.markings, key=len, reverse=True)
        ]
        levels = [m for m in self.markings if m.category.security_level]
        self._label: re.Pattern[str] | None = None
        self._label_folded: re.Pattern[str] | None = None
        self._label_bare: re.Pattern[str] | None = None
        self._label_bare_folded: re.Pattern[str] | None = None
        if levels:
            alt = "|".join(re.escape(m.lower).replace(r"\ ", r"\s+") for m in levels)
            alt_folded = "|".join(re.escape(m.folded).replace(r"\ ", r"\s+") for m in levels)
            self._label = _label_regex("độ", "mật", alt)
            self._label_folded = _label_regex("do", "mat", alt_folded)
            self._label_bare = _label_bare_regex("độ", "mật", alt)
            self._label_bare_folded = _label_bare_regex("do", "mat", alt_folded)
        self._label_alone = re.compile(r"^\W*(?:độ|do)\s*(?:mật|mat)\s*[:：]?\W*$", re.IGNORECASE)
        self._by_level = {m.lower: m for m in levels} | {m.folded: m for m in levels}
        # a line can only hold a marking if it contains the last word of one (spaces
        # removed, case folded; with or without diacritics): a cheap filter before the rules
        last_words = {_WORD.findall(m.printed)[-1].casefold() for m in self.markings}
        self._triggers = tuple(sorted(last_words | {fold(w) for w in last_words}))
        self._filename_phrases: list[tuple[_Marking, tuple[str, ...]]] = [
            (m, tuple(phrase.split()))
            for m in self.markings
            if m.printed == _longest(m.category.markings)
            for phrase in m.category.filename_words
        ]

    # ------------------------------------------------------------ entry points

    def scan(self, text: ExtractedText) -> list[MarkingMatch]:
        found: list[MarkingMatch] = []
        for part in text.parts:
            found.extend(self.scan_part(part))
        return found

    def strongest(self, matches: Sequence[MarkingMatch]) -> MarkingMatch | None:
        return max(matches, key=lambda m: m.rank, default=None)

    def scan_part(self, part: DocumentPart) -> list[MarkingMatch]:
        seen = visible(part.text)
        if seen != part.text:
            part = dataclasses.replace(part, text=seen)
        if part.source == Source.FILENAME:
            return self._scan_filename(part)
        if part.source in (Source.PDF_METADATA, Source.DOC_METADATA):
            return self._scan_properties(part)
        found: list[MarkingMatch] = []
        if part.source == Source.SUBJECT:
            hit = self._subject(part.text)
            if hit:
                found.append(self._match(hit[0], hit[1], part, 1))
        found.extend(self._scan_lines(part))
        return found

    # ------------------------------------------------------------ line rules

    def _match(self, m: _Marking, rule: str, part: DocumentPart, line: int | None) -> MarkingMatch:
        return MarkingMatch(
            category=m.code,
            title=m.category.title,
            rank=m.category.rank,
            rule=rule,
            source=part.source,
            location=part.location,
            content_type=part.content_type,
            part_sha256=part.sha256,
            line=line,
        )

    def _scan_lines(self, part: DocumentPart) -> list[MarkingMatch]:
        found: list[MarkingMatch] = []
        # Every line rule needs a trigger in the line (case folded, spaces removed); case
        # folding goes a character at a time, so a text without one anywhere has none in
        # any line: one pass instead of one per line.
        squeezed_text = part.text.casefold().replace(" ", "")
        if not any(t in squeezed_text for t in self._triggers):
            return found
        lines = part.text.split("\n")
        cores: list[tuple[str, bool] | None] = [None] * len(lines)

        def core_at(i: int) -> tuple[str, bool]:
            cached = cores[i]
            if cached is None:
                cached = cores[i] = _strip(lines[i])
            return cached

        for i, line in enumerate(lines):
            if not line.strip():
                continue
            lower = line.casefold()
            squeezed = lower.replace(" ", "")
            if not any(t in squeezed for t in self._triggers):
                continue
            if len(line) <= 200:
                core, bracketed = core_at(i)
                if core and len(core) <= 60:
                    m = self._stamp(core, bracketed)
                    if m and not (not bracketed and self._continues_prose(m, lines, i, core_at)):
                        m = self._joined(m, core, lines, i, core_at)
                        found.append(self._match(m, "stamp", part, i + 1))
                        continue
                if "\t" in line or "  " in line.strip():
                    m = self._column(line)
                    if m:
                        found.append(self._match(m, "stamp-column", part, i + 1))
                        continue
            if ("mật" in lower or "mat" in lower) and self._label is not None:
                m = self._label_on_line(line, lines, i, core_at)
                if m:
                    found.append(self._match(m, "label", part, i + 1))
        return found

    def _stamp(self, core: str, bracketed: bool) -> _Marking | None:
        compact = core.replace(" ", "")
        # a stamp typed without diacritics ("TOI MAT", "T U Y E T  M A T"): capitals only
        plain = fold(compact) if compact.isupper() else None
        for m in self.markings:
            if core == m.printed or compact == m.compact:
                return m
            if plain is not None and plain == fold(m.compact):
                return m
            if bracketed and (core.casefold() == m.lower or fold(core) == m.folded):
                return m
        return None

    def _joined(
        self, m: _Marking, core: str, lines: list[str], i: int, core_at: _CoreAt
    ) -> _Marking:
        """A two-word stamp set on two lines ("TỐI" / "MẬT", "TUYỆT" / "MẬT"): the whole one."""
        for j in range(i - 1, max(-1, i - 3), -1):
            if not lines[j].strip():
                continue
            # the line above may hold other columns too ("TUYỆT <TAB> Hà Nội, ngày ...")
            for cell in _COLUMNS.split(lines[j].strip()):
                prev, bracketed = _strip(cell)
                longer = self._stamp(prev + " " + core, bracketed) if prev else None
                if longer is not None and longer.category.rank > m.category.rank:
                    return longer
            break
        return m

    def _continues_prose(self, m: _Marking, lines: list[str], i: int, core_at: _CoreAt) -> bool:
        """A lone marking word that completes the line before ("BÍ" / "MẬT") or starts the next."""
        cat = m.category
        if not (cat.ordinary_before or cat.ordinary_after):
            return False
        for j in range(i - 1, max(-1, i - 4), -1):
            prev = lines[j].rstrip()
            core, _ = core_at(j)
            if not core:
                continue
            if prev[-1:] not in _SENTENCE_END:
                words = _WORD.findall(core)
                # prose broken before the word keeps its case: "BẢO VỆ BÍ" / "MẬT", while a
                # stamp under "V/v ... nhà nước" or "Số: 12/SNV-VP" is in capitals alone
                if words and fold(words[-1]) in cat.ordinary_before and words[-1].isupper():
                    return True
            break
        for j in range(i + 1, min(len(lines), i + 4)):
            core, _ = core_at(j)
            if not core:
                continue
            words = _WORD.findall(core)
            if words and words[0][:1].islower() and fold(words[0]) in cat.ordinary_after:
                return True
            break
        return False

    def _column(self, line: str) -> _Marking | None:
        cells = [c for c in _COLUMNS.split(line.strip()) if c.strip()]
        if len(cells) < 2:
            return None
        for cell in cells:
            core, _ = _strip(cell)
            if core and len(core) <= 40:
                m = self._stamp(core, False)
                if m is not None:
                    return m
        return None

    def _label_on_line(
        self, line: str, lines: list[str], i: int, core_at: _CoreAt
    ) -> _Marking | None:
        assert self._label is not None and self._label_folded is not None
        assert self._label_bare is not None and self._label_bare_folded is not None
        folded = fold(line)
        hit = (
            self._label.search(line)
            or self._label_folded.search(folded)
            or self._label_bare.search(line)
            or self._label_bare_folded.search(folded)
        )
        if hit is not None:
            return self._by_level.get(" ".join(hit.group("level").casefold().split()))
        if self._label_alone.match(line):
            for j in range(i + 1, min(len(lines), i + 3)):
                core, _ = core_at(j)
                if not core:
                    continue
                return self._by_level.get(core.casefold()) or self._by_level.get(fold(core))
        return None

    # ------------------------------------------------------------ subjects and properties

    def _subject(self, subject: str) -> tuple[_Marking, str] | None:
        s = " ".join(subject.split())
        while True:
            stripped = _REPLY_PREFIX.sub("", s, count=1)
            if stripped == s:
                break
            s = stripped
        if not s:
            return None
        lower, folded = s.casefold(), fold(s)
        whole = _strip(s)[0].casefold()
        for m in self.markings:
            if whole in (m.lower, m.folded) and (whole == m.lower or s.isupper()):
                return m, "subject"
            for text, word in ((lower, m.lower), (folded, m.folded)):
                if _bracketed_at(text, word, start=True) or _bracketed_at(text, word, start=False):
                    return m, "subject"
            for text, word in ((lower, m.lower), (folded, m.folded)):
                if not text.startswith(word):
                    continue
                head, rest = s[: len(word)], s[len(word) :]
                if text is folded and not head.isupper():
                    continue  # "Mat ..." without diacritics is too ambiguous
                if rest[:1].isalnum():
                    continue  # not a word boundary: "Mậtx", "matran"
                after = rest.lstrip()
                if after[:1] and after[:1] in ":-–—|/" + _OPEN:
                    return m, "subject"
                words = _WORD.findall(after)
                if words and (head.isupper() or m.category.prefix_any_case):
                    if fold(words[0]) not in m.category.ordinary_after:
                        return m, "subject"
            # at the end after a dash, in capitals: "Báo cáo ... - MẬT"
            tail = re.search(r"[-–—|]\s*([^-–—|]+)$", s)
            if tail and tail.group(1).strip(_DECOR) == m.printed:
                return m, "subject"
        return None

    def _scan_properties(self, part: DocumentPart) -> list[MarkingMatch]:
        found: list[MarkingMatch] = []
        for index, (name, value) in enumerate(part.properties, start=1):
            hit: tuple[_Marking, str] | None = None
            if name in ("title", "subject"):
                hit = self._subject(value)
            if hit is None and name in ("keywords", "category"):
                for item in re.split(r"[,;]", value):
                    core, _ = _strip(item)
                    for m in self.markings:
                        upper_folded = core.isupper() and fold(core) == m.folded
                        if core.casefold() == m.lower or upper_folded:
                            hit = (m, "keyword")
                            break
                    if hit:
                        break
            if hit:
                found.append(self._match(hit[0], hit[1], part, index))
                continue
            sub = DocumentPart(
                part.source, part.filename, part.content_type, part.sha256, value, part.location
            )
            for match in self._scan_lines(sub):
                found.append(dataclasses.replace(match, line=index))  # the property's index
        return found

    # ------------------------------------------------------------ file names

    def _scan_filename(self, part: DocumentPart) -> list[MarkingMatch]:
        name = part.text
        components = [c for c in re.split(r"[/\\]", name) if c]
        for index, component in enumerate(components):
            stem = component
            if index == len(components) - 1:
                stem = re.sub(r"(\.[A-Za-z0-9]{1,5}){1,2}$", "", component) or component
            m = self._filename_component(stem)
            if m:
                return [self._match(m, "filename", part, None)]
        return []

    def _filename_component(self, stem: str) -> _Marking | None:
        spans = [(t.group(), t.start(), t.end()) for t in _WORD.finditer(stem)]
        tokens = [fold(t) for t, _, _ in spans]
        originals = [t.casefold() for t, _, _ in spans]
        for m, phrase in self._filename_phrases:
            n = len(phrase)
            for k in range(len(tokens) - n + 1):
                if tuple(tokens[k : k + n]) != phrase:
                    continue
                if not _spelled_as(m, phrase, originals[k : k + n]):
                    continue
                if phrase != m.words or not m.ambiguous_word:
                    return m
                # the plain one-word marking: brackets, or first/last word, not prose
                if _framed(stem, spans[k][1], spans[k][2]):
                    return m
                cat = m.category
                prev = next((t for t in reversed(tokens[:k]) if not t.isdigit()), None)
                nxt = tokens[k + 1] if k + 1 < len(tokens) else None
                if prev is not None and prev in cat.ordinary_before:
                    continue
                if nxt is not None and nxt in cat.ordinary_after:
                    continue
                original = spans[k][0]
                if k == 0 and (original.isupper() or fold(original) != original.casefold()):
                    return m
                if k == len(tokens) - 1 and k > 0:
                    return m
        return None


def _label_regex(do: str, mat: str, levels: str) -> re.Pattern[str]:
    """ "Độ mật: <level>" at the start of a line or of a field (after a tab, 2 spaces, | ; ,),
    not followed by a list of further levels ("độ mật: mật, tối mật, tuyệt mật" is prose)."""
    return re.compile(
        rf"(?:^\W*|(?<=\t)|(?<=\s\s)|(?<=[|;,(\[])\s*){do}\s*{mat}\s*[:：]\s*"
        rf"[\"“'«(\[*]?\s*(?P<level>{levels})(?![^\W\d_])"
        rf"(?![\"”'»)\]*]?\s*(?:[,;/]|và|hoặc|hay|va|hoac)\s*(?:{levels}))",
        re.IGNORECASE,
    )


def _label_bare_regex(do: str, mat: str, levels: str) -> re.Pattern[str]:
    """ "Độ mật <level>" without a colon: only as a whole line."""
    return re.compile(rf"^\W*{do}\s*{mat}\s+(?P<level>{levels})\W*$", re.IGNORECASE)


def _longest(values: Iterable[str]) -> str:
    return max(values, key=len)


def _bracketed_at(text: str, word: str, *, start: bool) -> bool:
    w = re.escape(word).replace(r"\ ", r"\s+")
    pattern = rf"^\s*[\[(【{{]\s*{w}\s*[\])】}}]" if start else rf"[\[(【{{]\s*{w}\s*[\])】}}]\s*$"
    return re.search(pattern, text) is not None


def _framed(stem: str, start: int, end: int) -> bool:
    before = stem[:start].rstrip(" _-")
    after = stem[end:].lstrip(" _-")
    return before[-1:] in _OPEN and after[:1] in _CLOSE


def _spelled_as(m: _Marking, phrase: tuple[str, ...], originals: Sequence[str]) -> bool:
    """Each word is written without diacritics or as in a marking ("mặt", "tôi" are not)."""
    return all(o.isascii() or o in m.spellings for o in originals)
