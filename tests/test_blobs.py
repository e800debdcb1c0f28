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
    # The file (before its rename), its entry in its directory, then each new fan-out
    # directory's entry in its parent, deepest first: all before put returns.
    assert len(fsynced) == 4
    assert fsynced[0].parent == target.parent and fsynced[0] != target
    assert fsynced[1:] == [target.parent, store.root / digest[:2], store.root]


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
    """Some bytes whose SHA-256 shares ``digest``'s two fan-out levels (found by counting)."""
    n = 0
    while True:
        candidate = n.to_bytes(4, "big")
        if (
            candidate != b"a"
            and candidate not in skip
            and hashlib.sha256(candidate).hexdigest()[:4] == digest[:4]
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
    assert fsynced[1:] == [target.parent, target.parent.parent, store.root]
    fsynced.clear()

    store.put(_blob_in_same_directory(digest, skip=frozenset({other})))
    assert fsynced[1:] == [target.parent]  # now known durable: the file's entry only
