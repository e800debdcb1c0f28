"""Organisational domains (RFC 7489 3.2) and DMARC alignment, from the Public Suffix List.

Its own module, apart from the authentication stage, because the spam rules use it in the
worker pool: importing it costs the Public Suffix List only, not DKIM, SPF, DNS or the
database (mailsvc.documents.pool.PRELOAD). mailsvc.pipeline.authentication re-exports it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

from publicsuffixlist import PublicSuffixList


@functools.cache
def public_suffix_list() -> PublicSuffixList:
    """The Public Suffix List as shipped in the publicsuffixlist package (no network),
    read once per process (~80 ms: stages load it when they are built, not on the event
    loop at the first message)."""
    return PublicSuffixList()


def organisational_domain(domain: str, extra_suffixes: Iterable[str] = ()) -> str:
    """The organisational domain (RFC 7489 3.2): the public suffix plus one label.

    The public suffix is the longest of the Public Suffix List's match (ICANN and private
    sections; an unknown TLD counts as one) and ``extra_suffixes`` (policy
    ``public_suffixes``: private suffixes of a closed network). A domain that is itself
    a public suffix is its own organisational domain.
    """
    return _organisational(domain.strip().rstrip(".").lower(), tuple(extra_suffixes))


@functools.lru_cache(maxsize=4096)  # a few agencies' domains, asked several times per message
def _organisational(name: str, extra_suffixes: tuple[str, ...]) -> str:
    suffix = public_suffix_list().publicsuffix(name) or name
    for extra in extra_suffixes:
        extra = extra.strip().strip(".").lower()
        if extra and name.endswith("." + extra) and len(extra) > len(suffix):
            suffix = extra
    if name == suffix:
        return name
    label = name[: -len(suffix) - 1].rpartition(".")[2]
    return f"{label}.{suffix}"


def is_aligned(a: str, b: str, mode: str, suffixes: Iterable[str] = ()) -> bool:
    """DMARC identifier alignment (RFC 7489 3.1): ``s`` strict, ``r`` relaxed."""
    a, b = a.lower().rstrip("."), b.lower().rstrip(".")
    if mode == "s":
        return a == b
    return organisational_domain(a, suffixes) == organisational_domain(b, suffixes)
