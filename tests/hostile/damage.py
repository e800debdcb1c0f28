"""Random damage to a message for property tests: bytes inserted or cut at random places
(in heads, at delimiters, in bodies). Derandomized, so CI runs the same cases each time."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

Edit = tuple[float, int, bytes]  # where (0..1 of the length), how many bytes cut, what inserted

DAMAGE_SETTINGS = settings(
    max_examples=400,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def edits(pieces: Sequence[bytes]) -> st.SearchStrategy[list[Edit]]:
    """One to six edits, each inserting one of ``pieces``."""
    return st.lists(
        st.tuples(st.floats(0, 1), st.integers(0, 8), st.sampled_from(list(pieces))),
        min_size=1,
        max_size=6,
    )


def damaged(raw: bytes, changes: Sequence[Edit]) -> bytes:
    for where, cut, insert in changes:
        at = int(where * len(raw))
        raw = raw[:at] + insert + raw[at + cut :]
    return raw
