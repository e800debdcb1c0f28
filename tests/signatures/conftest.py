"""Session-wide test PKI and signed samples (see pki.py; other test directories use
``from tests.signatures.pki import session_pki``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy

from .pki import SamplePki, make_pdf, session_pki


@pytest.fixture(scope="session")
def pki() -> SamplePki:
    return session_pki()


@pytest.fixture(scope="session")
def pdf() -> bytes:
    return make_pdf()


@pytest.fixture
def engine(pki: SamplePki) -> SignatureEngine:
    assert pki.gpg is not None
    return SignatureEngine(SignaturePolicy(), pki.trust_config(), gnupg_home=pki.gpg.keyring_home)


def make_engine(pki: SamplePki, **policy: object) -> SignatureEngine:
    assert pki.gpg is not None
    return SignatureEngine(
        SignaturePolicy.model_validate(policy), pki.trust_config(), gnupg_home=pki.gpg.keyring_home
    )


@pytest.fixture
def work(tmp_path: Path) -> Path:
    return tmp_path / "work"
