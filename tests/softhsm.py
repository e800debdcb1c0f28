"""A softhsm2 token holding a test organisation key (Debian's softhsm2, real PKCS#11).

softhsm2 reads SOFTHSM2_CONF once, when the library is first initialised in a process,
so one token directory serves the whole test session."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.signatures.pki import Identity

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
TOKEN = "mailsvc-org"
KEY_LABEL = "to-chuc"
PIN = "24681357"


@dataclass(frozen=True)
class Token:
    module: str
    label: str
    key_label: str
    pin: str


def make_token(directory: Path, identity: Identity) -> Token:
    """Initialise a token in ``directory`` and import ``identity``'s private key."""
    directory.mkdir(parents=True, exist_ok=True)
    tokens = directory / "tokens"
    tokens.mkdir(exist_ok=True)
    conf = directory / "softhsm2.conf"
    conf.write_text(
        f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n",
        encoding="utf-8",
    )
    os.environ["SOFTHSM2_CONF"] = str(conf)
    key = directory / "org-key.p8"
    key.write_bytes(
        identity.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    key.chmod(0o600)
    for args in (
        ["--init-token", "--free", "--label", TOKEN, "--pin", PIN, "--so-pin", "97531864"],
        ["--import", str(key), "--token", TOKEN, "--label", KEY_LABEL, "--id", "01", "--pin", PIN],
    ):
        subprocess.run(["softhsm2-util", *args], check=True, capture_output=True, timeout=60)
    key.unlink()  # the key now lives only in the token
    return Token(MODULE, TOKEN, KEY_LABEL, PIN)
