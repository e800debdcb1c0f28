"""Mailbox accounts: naming convention, provisioning and passwords.

Functions take a SQLAlchemy Session and never commit: the CLI command or the web
handler that opened the session commits, together with the audit entry each
change writes. Passwords are never logged or audited.
"""

from __future__ import annotations

import logging
import re
import shutil
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc import audit
from mailsvc.config import PasswordSection
from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, Mailbox
from mailsvc.errors import ConflictError, MailsvcError, NotFoundError
from mailsvc.passwords import (
    WeakPasswordError,
    check_strength,
    dummy_hash,
    generate_one_time_password,
    hash_password,
    verify_password,
)

log = logging.getLogger(__name__)

ADMIN_ROLE = "admin"  # the server's operators: no documents, every technical alert
ROLES = ("official", "clerk", "leader", ADMIN_ROLE)

_LOCAL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9])?$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


class InvalidAddressError(MailsvcError):
    """An address or name that cannot become a mailbox."""


class PasswordRejectedError(MailsvcError):
    """The current (or one-time) password is wrong, expired, or the account cannot log in.

    ``reason`` is ``wrong`` (unknown address or wrong password: counts as a failed
    login), ``expired`` or ``disabled`` (the password was right)."""

    def __init__(self, message: str, reason: str = "wrong") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class NewMailbox:
    mailbox: Mailbox
    one_time_password: str
    expires_at: datetime


# --------------------------------------------------------------------------- naming


def ascii_fold(text: str) -> str:
    """Vietnamese text without diacritics: 'Nguyễn Đức Ưng' -> 'Nguyen Duc Ung'."""
    text = unicodedata.normalize("NFC", text).replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def conventional_local_part(full_name: str, unit: str = "") -> str:
    """Domain rule §10: given name + initials of family and middle names, then ``.unit``.

    ``Nguyễn Văn An`` with unit ``stttt`` gives ``annv.stttt``.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", ascii_fold(full_name).lower()) if w]
    if not words:
        raise InvalidAddressError(f"cannot derive a mailbox name from {full_name!r}")
    name = words[-1] + "".join(w[0] for w in words[:-1])
    unit_part = normalise_unit(unit)
    return f"{name}.{unit_part}" if unit_part else name


def normalise_unit(unit: str) -> str:
    folded = re.sub(r"[^a-z0-9-]+", "", ascii_fold(unit).lower())
    if unit.strip() and not folded:
        raise InvalidAddressError(f"unit {unit!r} has no usable letters")
    return folded


def split_address(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not _LOCAL_RE.match(local) or ".." in local or not _DOMAIN_RE.match(domain):
        raise InvalidAddressError(
            f"{address!r} is not a valid mailbox address (ASCII letters, digits and . _ + - only)"
        )
    return local, domain


def normalise_address(address: str) -> str:
    local, domain = split_address(address)
    return f"{local}@{domain}"


def _address_taken(session: Session, address: str) -> bool:
    return session.scalar(select(Mailbox.id).where(Mailbox.address == address)) is not None


def suggest_free_address(session: Session, address: str) -> str:
    """The first free variant: annv.stttt@d -> annv2.stttt@d, annv3.stttt@d, ..."""
    local, domain = split_address(address)
    name, dot, unit = local.partition(".")
    for n in range(2, 1000):
        candidate = f"{name}{n}{dot}{unit}@{domain}"
        if not _address_taken(session, candidate):
            return candidate
    raise ConflictError(f"no free variant of {address}")


# --------------------------------------------------------------------------- lookup


def get_mailbox(session: Session, address: str) -> Mailbox:
    normalised = address.strip().lower()
    mailbox = session.scalars(select(Mailbox).where(Mailbox.address == normalised)).one_or_none()
    if mailbox is None:
        raise NotFoundError(f"no mailbox {normalised}")
    return mailbox


def list_mailboxes(
    session: Session,
    *,
    domain: str | None = None,
    agency_code: str | None = None,
    role: str | None = None,
    include_removed: bool = False,
) -> list[Mailbox]:
    query = select(Mailbox).order_by(Mailbox.address)
    if domain:
        query = query.where(Mailbox.address.endswith("@" + domain.lower()))
    if agency_code:
        query = query.join(Agency).where(Agency.code == agency_code)
    if role:
        query = query.where(Mailbox.role == role)
    if not include_removed:
        query = query.where(Mailbox.removed.is_(False))
    return list(session.scalars(query))


def _agency(session: Session, code: str) -> Agency:
    agency = session.scalars(select(Agency).where(Agency.code == code)).one_or_none()
    if agency is None:
        raise NotFoundError(f"no agency with code {code!r} (see: mailsvc agency list)")
    return agency


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise MailsvcError(f"unknown role {role!r}; expected one of: {', '.join(ROLES)}")


# --------------------------------------------------------------------------- changes


def add_mailbox(
    session: Session,
    cfg: PasswordSection,
    *,
    actor: str,
    address: str | None = None,
    full_name: str = "",
    unit: str = "",
    domain: str = "",
    role: str = "official",
    agency_code: str | None = None,
    now: datetime | None = None,
) -> NewMailbox:
    """Create a mailbox with a one-time password (must be changed on the password page).

    Give ``address``, or ``full_name`` (+ ``unit``) and ``domain`` to derive the
    conventional name. A clash raises ConflictError naming a free alternative.
    """
    _check_role(role)
    full_name = unicodedata.normalize("NFC", full_name.strip())
    unit_norm = normalise_unit(unit)
    if address:
        address = normalise_address(address)
    else:
        if not full_name:
            raise InvalidAddressError("give an address, or a full name (and unit) to derive it")
        if not domain:
            raise InvalidAddressError("a domain is needed to derive the address")
        address = normalise_address(f"{conventional_local_part(full_name, unit_norm)}@{domain}")
    existing = session.scalars(select(Mailbox).where(Mailbox.address == address)).one_or_none()
    if existing is not None:
        owner = f" ({existing.full_name})" if existing.full_name else ""
        state = " (removed)" if existing.removed else ""
        free = suggest_free_address(session, address)
        raise ConflictError(
            f"{address} already exists{owner}{state}; free alternative: {free} "
            f"(add it with --address {free})"
        )
    agency = _agency(session, agency_code) if agency_code else None
    now = now or utcnow()
    password = generate_one_time_password()
    expires = now + timedelta(hours=cfg.one_time_valid_hours)
    mailbox = Mailbox(
        address=address,
        full_name=full_name,
        unit=unit_norm,
        role=role,
        agency=agency,
        password_hash=hash_password(password, cfg),
        must_change=True,
        password_expires_at=expires,
        enabled=True,
        removed=False,
        created_at=now,
        password_changed_at=now,
    )
    session.add(mailbox)
    session.flush()
    audit.record(
        session,
        actor,
        "mailbox.add",
        address,
        {"full_name": full_name, "unit": unit_norm, "role": role, "agency": agency_code or ""},
    )
    return NewMailbox(mailbox, password, expires)


def update_mailbox(
    session: Session,
    address: str,
    *,
    actor: str,
    full_name: str | None = None,
    unit: str | None = None,
    role: str | None = None,
    agency_code: str | None = None,
) -> Mailbox:
    mailbox = get_mailbox(session, address)
    changes: dict[str, str] = {}
    if full_name is not None:
        mailbox.full_name = changes["full_name"] = unicodedata.normalize("NFC", full_name.strip())
    if unit is not None:
        mailbox.unit = changes["unit"] = normalise_unit(unit)
    if role is not None:
        _check_role(role)
        mailbox.role = changes["role"] = role
    if agency_code is not None:
        mailbox.agency = _agency(session, agency_code) if agency_code else None
        changes["agency"] = agency_code
    if changes:
        session.flush()
        audit.record(session, actor, "mailbox.update", mailbox.address, changes)
    return mailbox


def set_enabled(session: Session, address: str, enabled: bool, *, actor: str) -> Mailbox:
    mailbox = get_mailbox(session, address)
    if mailbox.removed and enabled:
        raise ConflictError(f"{mailbox.address} was removed; it cannot be enabled again")
    if mailbox.enabled != enabled:
        mailbox.enabled = enabled
        session.flush()
        audit.record(
            session, actor, "mailbox.enable" if enabled else "mailbox.disable", mailbox.address
        )
    return mailbox


def maildir_path(maildir_root: Path, address: str) -> Path:
    local, domain = split_address(address)
    return maildir_root / domain / local


def remove_mailbox(
    session: Session,
    address: str,
    *,
    actor: str,
    maildir_root: Path,
    purge: bool = False,
) -> Path:
    """Disable the mailbox and mark it removed; the address stays reserved and the mail
    is kept. Returns the mailbox's Maildir path. With ``purge`` the audit entry says the
    mail is to be deleted: the caller commits, then calls :func:`purge_maildir`.
    """
    mailbox = get_mailbox(session, address)
    path = maildir_path(maildir_root, mailbox.address)
    mailbox.enabled = False
    mailbox.removed = True
    session.flush()
    audit.record(
        session,
        actor,
        "mailbox.remove",
        mailbox.address,
        {"purge": purge, "maildir": str(path)},
    )
    return path


def purge_maildir(maildir_root: Path, address: str) -> Path | None:
    root = maildir_root.resolve()
    path = maildir_path(root, address).resolve()
    if root not in path.parents:
        raise MailsvcError(f"refusing to delete {path}: not under {root}")
    if not path.exists():
        return None
    shutil.rmtree(path)
    log.info("purged maildir %s", path)
    return path


def reset_password(
    session: Session,
    cfg: PasswordSection,
    address: str,
    *,
    actor: str,
    now: datetime | None = None,
) -> tuple[str, datetime]:
    """Give the mailbox a new one-time password; returns it (show once) and its expiry."""
    mailbox = get_mailbox(session, address)
    if mailbox.removed:
        raise ConflictError(f"{mailbox.address} was removed")
    now = now or utcnow()
    password = generate_one_time_password()
    expires = now + timedelta(hours=cfg.one_time_valid_hours)
    mailbox.password_hash = hash_password(password, cfg)
    mailbox.must_change = True
    mailbox.password_expires_at = expires
    mailbox.password_changed_at = now
    session.flush()
    audit.record(
        session,
        actor,
        "mailbox.reset-password",
        mailbox.address,
        {"expires_at": expires.isoformat()},
    )
    return password, expires


def set_password(
    session: Session,
    cfg: PasswordSection,
    address: str,
    password: str,
    *,
    actor: str,
    must_change: bool = True,
    now: datetime | None = None,
) -> Mailbox:
    """Admin-chosen password. By default the user must change it at first use (§10)."""
    mailbox = get_mailbox(session, address)
    if mailbox.removed:
        raise ConflictError(f"{mailbox.address} was removed")
    check_strength(password, cfg, address=mailbox.address)
    now = now or utcnow()
    mailbox.password_hash = hash_password(password, cfg)
    mailbox.must_change = must_change
    mailbox.password_expires_at = (
        now + timedelta(hours=cfg.one_time_valid_hours) if must_change else None
    )
    mailbox.password_changed_at = now
    session.flush()
    audit.record(
        session, actor, "mailbox.set-password", mailbox.address, {"must_change": must_change}
    )
    return mailbox


def _dummy_hash(cfg: PasswordSection) -> str:
    """A real hash to verify against for unknown addresses, so they cost the same time."""
    return dummy_hash(cfg)


def change_password(
    session: Session,
    cfg: PasswordSection,
    address: str,
    old_password: str,
    new_password: str,
    *,
    actor: str | None = None,
    now: datetime | None = None,
) -> Mailbox:
    """The user's own change (password page): the one-time or current password, then a
    new one. Clears must-change. Raises PasswordRejectedError for any login problem,
    with the same message whether or not the address exists."""
    now = now or utcnow()
    try:
        mailbox: Mailbox | None = get_mailbox(session, address)
    except NotFoundError:
        mailbox = None
    rejected = PasswordRejectedError("wrong address or password")
    if mailbox is None or mailbox.removed or not mailbox.password_hash:
        verify_password(_dummy_hash(cfg), old_password)
        raise rejected
    if not verify_password(mailbox.password_hash, old_password):
        raise rejected
    if not mailbox.enabled:
        raise PasswordRejectedError("this mailbox is disabled; ask the administrator", "disabled")
    if (
        mailbox.must_change
        and mailbox.password_expires_at is not None
        and mailbox.password_expires_at <= now
    ):
        raise PasswordRejectedError(
            "the one-time password has expired; ask the administrator for a new one", "expired"
        )
    if new_password == old_password:
        raise WeakPasswordError("the new password must differ from the old one")
    check_strength(new_password, cfg, address=mailbox.address)
    mailbox.password_hash = hash_password(new_password, cfg)
    mailbox.must_change = False
    mailbox.password_expires_at = None
    mailbox.password_changed_at = now
    session.flush()
    audit.record(session, actor or mailbox.address, "mailbox.change-password", mailbox.address)
    return mailbox


def mailbox_view(mailbox: Mailbox) -> dict[str, object]:
    """Plain values for display and JSON (times as aware datetimes; no password hash)."""
    return {
        "address": mailbox.address,
        "full_name": mailbox.full_name,
        "unit": mailbox.unit,
        "role": mailbox.role,
        "agency": mailbox.agency.code if mailbox.agency else None,
        "enabled": mailbox.enabled,
        "removed": mailbox.removed,
        "must_change": mailbox.must_change,
        "password_expires_at": mailbox.password_expires_at,
        "password_changed_at": mailbox.password_changed_at,
        "created_at": mailbox.created_at,
    }
