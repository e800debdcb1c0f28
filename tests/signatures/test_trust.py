"""Trust store, material versions and the CRL refresh (from a file and over real HTTP)."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from mailsvc.errors import ConflictError, NotFoundError
from mailsvc.signatures.crl import refresh_crls
from mailsvc.signatures.engine import SignatureEngine
from mailsvc.signatures.policy import SignaturePolicy
from mailsvc.signatures.report import DocumentOutcome
from mailsvc.signatures.trust import TrustConfig, TrustStore, load_trust_material

from .pki import SamplePki, cms_detached


def pem(identity: object) -> bytes:
    return identity.cert.public_bytes(serialization.Encoding.PEM)  # type: ignore[attr-defined]


def test_add_list_remove(tmp_path: Path, pki: SamplePki) -> None:
    store = TrustStore(tmp_path / "trust", readonly_dirs=(pki.trust_dir,))
    (added,) = store.add(pem(pki.untrusted_root), "untrusted-root.pem")
    assert added.managed and added.is_ca
    listed = {a.fingerprint: a for a in store.anchors()}
    assert set(listed) == {added.fingerprint, store.anchors()[0].fingerprint}
    assert not next(a for a in listed.values() if a.path.parent == pki.trust_dir).managed
    with pytest.raises(ConflictError):
        store.add(pem(pki.untrusted_root))
    with pytest.raises(ConflictError, match="read-only"):
        store.remove(next(a for a in listed.values() if not a.managed).fingerprint[:12])
    assert store.remove(added.fingerprint[:10]).fingerprint == added.fingerprint
    with pytest.raises(NotFoundError):
        store.remove(added.fingerprint[:10])


async def test_added_anchor_is_used_at_once(tmp_path: Path, pki: SamplePki, pdf: bytes) -> None:
    home_trust = tmp_path / "trust"
    config = TrustConfig(
        anchor_dirs=(pki.trust_dir, home_trust), crl_files=tuple(sorted(pki.crl_dir.glob("*.crl")))
    )
    engine = SignatureEngine(SignaturePolicy(require_organisation_signature=False), config)
    p7s = cms_detached(pdf, pki.untrusted, tmp_path / "w")
    before = config.version()
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.signatures[0].subindication == "NO_CERTIFICATE_CHAIN_FOUND"
    TrustStore(home_trust).add(pem(pki.untrusted_root))
    assert config.version() != before
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.outcome is DocumentOutcome.VALID


def test_material_reads_pem_and_der(pki: SamplePki) -> None:
    material = load_trust_material(pki.trust_config())
    assert len(material.anchors) == 1 and len(material.crls) == 2


@pytest.fixture
def crl_server(pki: SamplePki) -> Iterator[str]:
    data = (pki.crl_dir / "intermediate.crl").read_bytes()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/intermediate.crl":
                self.send_response(200)
                self.send_header("Content-Type", "application/pkix-crl")
                self.end_headers()
                self.wfile.write(data)
            else:
                self.send_error(404)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


async def test_refresh_crls_fills_the_cache_used_by_validation(
    tmp_path: Path, pki: SamplePki, pdf: bytes, crl_server: str
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(pki.crl_dir / "root.crl", home / "root.crl")
    cache = home / "crl"
    results = refresh_crls(
        [f"{crl_server}/intermediate.crl", "root.crl", f"{crl_server}/missing.crl"],
        cache,
        home=home,
        timeout=5,
    )
    assert [r.ok for r in results] == [True, True, False]
    assert "Test Issuing CA" in results[0].issuer
    assert results[0].next_update is not None
    assert "404" in results[2].error
    config = TrustConfig(anchor_dirs=(pki.trust_dir,), crl_cache_dir=cache)
    engine = SignatureEngine(SignaturePolicy(), config)
    p7s = cms_detached(pdf, pki.revoked, tmp_path / "w")
    (report,) = await engine.verify_files([("cv.pdf", pdf), ("cv.pdf.p7s", p7s)])
    assert report.signatures[0].subindication == "REVOKED"
