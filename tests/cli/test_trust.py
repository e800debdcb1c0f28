"""`mailsvc trust add | list | remove`, audited."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.conftest import Invoke
from tests.signatures.pki import session_pki


def test_add_list_remove_audited(admin_cli: Invoke, admin_home: Path) -> None:
    pki = session_pki()
    result = admin_cli("trust", "add", str(pki.root.cert_path))
    assert "trusted" in result.output and "Test Root CA" in result.output
    assert len(list((admin_home / "trust").glob("*.pem"))) == 1

    listed = json.loads(admin_cli("trust", "list", "--json").output)
    (anchor,) = [a for a in listed if a["managed"]]
    assert anchor["is_ca"] and anchor["not_after"].endswith("+07:00")
    assert "Test Root CA" in admin_cli("trust", "list").output

    again = admin_cli("trust", "add", str(pki.root.cert_path), ok=False)
    assert again.exit_code == 1 and "already trusted" in again.output

    admin_cli("trust", "remove", anchor["fingerprint"][:12])
    assert not list((admin_home / "trust").glob("*.pem"))
    missing = admin_cli("trust", "remove", anchor["fingerprint"][:12], ok=False)
    assert missing.exit_code == 1

    audit = json.loads(admin_cli("audit", "list", "--json").output)
    actions = [e["action"] for e in audit]
    assert "trust.add" in actions and "trust.remove" in actions


def test_add_rejects_non_certificates(admin_cli: Invoke, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    result = admin_cli("trust", "add", str(junk), ok=False)
    assert result.exit_code == 1 and "not an X.509 certificate" in result.output
