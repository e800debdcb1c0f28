"""Argon2id password hashes in the form Dovecot reads (``{ARGON2ID}$argon2id$...``),
strength rules and one-time password generation."""

from __future__ import annotations

import functools
import secrets
import string

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from mailsvc.config import PasswordSection
from mailsvc.errors import MailsvcError

SCHEME = "{ARGON2ID}"
_ALPHABET = string.ascii_letters + string.digits


class WeakPasswordError(MailsvcError):
    """The password does not meet the strength rules."""


def hasher(cfg: PasswordSection) -> PasswordHasher:
    return PasswordHasher(
        time_cost=cfg.argon2_time_cost,
        memory_cost=cfg.argon2_memory_kib,
        parallelism=cfg.argon2_parallelism,
    )


def hash_password(password: str, cfg: PasswordSection) -> str:
    return SCHEME + hasher(cfg).hash(password)


@functools.lru_cache(maxsize=4)
def dummy_hash(cfg: PasswordSection) -> str:
    """A real hash with ``cfg``'s cost to verify against for unknown addresses, so a
    login for an address that does not exist costs the same time as a wrong password."""
    return hash_password(generate_one_time_password(), cfg)


def verify_password(stored: str, password: str) -> bool:
    if not stored.startswith(SCHEME):
        return False
    try:
        return PasswordHasher().verify(stored[len(SCHEME) :], password)
    except (VerificationError, InvalidHashError):
        return False


def generate_one_time_password(length: int = 16) -> str:
    """A random password with letters and digits, grouped for dictation: xxxx-xxxx-xxxx-xxxx."""
    raw = "".join(secrets.choice(_ALPHABET) for _ in range(length))
    return "-".join(raw[i : i + 4] for i in range(0, length, 4))


def check_strength(password: str, cfg: PasswordSection, *, address: str = "") -> None:
    """Raise WeakPasswordError naming the first rule the password breaks."""
    if len(password) < cfg.min_length:
        raise WeakPasswordError(f"password must have at least {cfg.min_length} characters")
    classes = sum(
        any(pred(c) for c in password)
        for pred in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    if classes < 3:
        raise WeakPasswordError(
            "password must mix at least three of: lower case, upper case, digits, symbols"
        )
    local = address.partition("@")[0].lower()
    if local and local in password.lower():
        raise WeakPasswordError("password must not contain the mailbox name")
    if len(set(password)) < 6:
        raise WeakPasswordError("password has too few distinct characters")
