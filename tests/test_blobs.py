"""The blob store's durability: every directory entry a stored blob depends on is fsynced."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from mailsvc.store.blobs import BlobStore


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The paths the process fsyncs, read from the descriptor at the time of the call."""
    seen: list[Path] = []
    real_fsync = os.fsync

    def recording_fsync(fd: int) -> None:
        seen.append(Path(os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    return seen


def test_a_new_blob_fsyncs_its_file_and_every_directory_it_created(
    tmp_path: Path, fsynced: list[Path]
) -> None:
    store = BlobStore(tmp_path / "blobs")
    assert fsynced == [tmp_path]  # the store's root is new: its entry in the parent
    fsynced.clear()

    data = b"official document"
    digest = store.put(data)

    assert digest == hashlib.sha256(data).hexdigest()
    target = store.path_for(digest)
    assert store.get(digest) == data
    # The file (before its rename), its entry in its directory, then the new fan-out
    # directory's entry in the root: all before put returns.
    assert target == store.root / digest[:2] / digest
    assert len(fsynced) == 3
    assert fsynced[0].parent == target.parent and fsynced[0] != target
    assert fsynced[1:] == [target.parent, store.root]


def test_a_blob_in_existing_directories_fsyncs_only_the_file_and_its_directory(
    tmp_path: Path, fsynced: list[Path]
) -> None:
    store = BlobStore(tmp_path / "blobs")
    first = store.put(b"a")
    fsynced.clear()

    again = store.put(b"a")  # already stored: nothing written
    assert again == first and fsynced == []

    other = _blob_in_same_directory(first)
    store.put(other)
    target = store.path_for(hashlib.sha256(other).hexdigest())
    assert fsynced[-1] == target.parent
    assert len(fsynced) == 2


def _blob_in_same_directory(digest: str, skip: frozenset[bytes] = frozenset()) -> bytes:
    """Some bytes whose SHA-256 shares ``digest``'s fan-out directory (found by counting)."""
    n = 0
    while True:
        candidate = n.to_bytes(4, "big")
        if (
            candidate != b"a"
            and candidate not in skip
            and hashlib.sha256(candidate).hexdigest()[:2] == digest[:2]
        ):
            return candidate
        n += 1


def test_a_directory_made_by_someone_else_is_made_durable_by_the_put_that_uses_it(
    tmp_path: Path, fsynced: list[Path]
) -> None:
    """Another thread's mkdir a moment ago, or a store from before a restart: the put does
    not trust the other to have fsynced the entry, it does so itself, once."""
    first = BlobStore(tmp_path / "blobs")
    digest = first.put(b"before the restart")
    other = _blob_in_same_directory(digest)
    store = BlobStore(tmp_path / "blobs")  # a new process: nothing known durable yet
    target = store.path_for(hashlib.sha256(other).hexdigest())
    assert target.parent.is_dir()
    fsynced.clear()

    store.put(other)
    assert fsynced[1:] == [target.parent, store.root]
    fsynced.clear()

    store.put(_blob_in_same_directory(digest, skip=frozenset({other})))
    assert fsynced[1:] == [target.parent]  # now known durable: the file's entry only


def test_blobs_of_the_earlier_two_level_layout_are_found_where_they_are(
    tmp_path: Path, fsynced: list[Path]
) -> None:
    """A store written before the one-level layout keeps its blobs in <aa>/<bb>/: they
    are read, found, not written again, and removed where they are; new blobs go to
    <aa>/ beside them."""
    root = tmp_path / "blobs"
    old = b"stored by the two-level layout"
    digest = hashlib.sha256(old).hexdigest()
    earlier = root / digest[:2] / digest[2:4] / digest
    earlier.parent.mkdir(parents=True)
    earlier.write_bytes(old)
    store = BlobStore(root)
    assert store.exists(digest) and store.get(digest) == old
    assert store.path_for(digest) == earlier
    fsynced.clear()
    assert store.put(old) == digest and fsynced == []  # already stored: nothing written
    assert not (root / digest[:2] / digest).exists()

    new = _blob_in_same_directory(digest)
    new_digest = store.put(new)
    assert store.path_for(new_digest) == root / digest[:2] / new_digest
    assert store.get(new_digest) == new and store.get(digest) == old
    store.path_for(digest).unlink()
    assert not store.exists(digest) and store.exists(new_digest)


def test_a_young_store_makes_one_directory_per_two_hex_digits_at_most(tmp_path: Path) -> None:
    store = BlobStore(tmp_path / "blobs")
    for n in range(600):
        store.put(n.to_bytes(4, "big"))
    tops = [p for p in store.root.iterdir()]
    assert all(p.is_dir() and len(p.name) == 2 for p in tops) and len(tops) <= 256
    assert not [p for top in tops for p in top.iterdir() if p.is_dir()]
    assert sum(1 for top in tops for _ in top.iterdir()) == 600
