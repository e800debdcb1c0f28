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


def test_crl_sources_from_the_command_line_reach_the_refresh_job(
    admin_cli: Invoke, admin_home: Path
) -> None:
    """`mailsvc trust crl add|list|remove FILE|URL`, audited; `jobs run crl-refresh` fetches
    what was added (no YAML copied or edited)."""
    pki = session_pki()
    (crl_file,) = sorted(pki.crl_dir.glob("*.crl"))[:1]
    url = "http://127.0.0.1:9/nothing-listens-here.crl"
    added = admin_cli("trust", "crl", "add", str(crl_file)).output
    assert added.strip() == f"added: {crl_file.resolve()}"
    assert admin_cli("trust", "crl", "add", url).output.strip() == f"added: {url}"
    assert "already listed" in admin_cli("trust", "crl", "add", url).output
    bad = admin_cli("trust", "crl", "add", "ftp://example.vn/x.crl", ok=False)
    assert bad.exit_code == 1 and "only http:// and https://" in bad.output
    listed = json.loads(admin_cli("trust", "crl", "list", "--json").output)
    assert [(r["source"], r["origin"]) for r in listed if r["origin"] == "HOME/trust"] == [
        (str(crl_file.resolve()), "HOME/trust"),
        (url, "HOME/trust"),
    ]

    refreshed = admin_cli("jobs", "run", "crl-refresh").output
    assert "1 of 2 CRL sources refreshed; failed: " + url in refreshed
    assert len(list((admin_home / "crl").glob("*.crl"))) == 1

    admin_cli("trust", "crl", "remove", url)
    missing = admin_cli("trust", "crl", "remove", url, ok=False)
    assert missing.exit_code == 1 and "not a CRL source managed here" in missing.output
    assert "1 of 1 CRL sources refreshed" in admin_cli("jobs", "run", "crl-refresh").output
    actions = [e["action"] for e in json.loads(admin_cli("audit", "list", "--json").output)]
    assert actions.count("trust.crl.add") == 2 and actions.count("trust.crl.remove") == 1
