"""Registers (sổ): one default incoming register per local agency, or per mail domain
for mailboxes that belong to no agency. Services here never commit."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from sqlalchemy import Table, bindparam, select
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.db.models import Agency, Mailbox
from mailsvc.errors import NotFoundError
from mailsvc.register.models import Register
from mailsvc.register.numbering import insert_ignore

INCOMING_NAME = "Sổ đăng ký văn bản đến"


def ensure_register(
    session: Session, code: str, name: str, *, agency_id: int | None = None, domain: str = ""
) -> Register:
    """The register with ``code``, created if missing (safe under concurrency)."""
    existing = session.scalars(select(Register).where(Register.code == code)).one_or_none()
    if existing is not None:
        return existing
    table = Register.__table__
    assert isinstance(table, Table)
    insert_ignore(
        session,
        table,
        {
            "code": code,
            "name": name,
            "kind": "incoming",
            "agency_id": agency_id,
            "domain": domain,
            "created_at": utcnow(),
        },
        ["code"],
    )
    return session.scalars(select(Register).where(Register.code == code)).one()


def register_for_recipient(session: Session, recipient: str) -> tuple[Register, Mailbox | None]:
    """The incoming register that a copy delivered to ``recipient`` belongs to."""
    address = recipient.strip().lower()
    # One query for the mailbox, its agency and that agency's register (the register is
    # made below when it does not exist yet).
    found = session.execute(
        select(Mailbox, Agency, Register)
        .outerjoin(Agency, Agency.id == Mailbox.agency_id)
        .outerjoin(Register, Register.code == Agency.code)
        .where(Mailbox.address == address)
    ).one_or_none()
    mailbox, agency, register = found if found is not None else (None, None, None)
    if agency is not None:
        if register is None:
            register = _agency_register(session, agency.id, agency.code, agency.name)
    else:
        register = _domain_register(session, address)
    return register, mailbox


def _agency_register(session: Session, agency_id: int, code: str, name: str) -> Register:
    """An agency's default incoming register, made on its first use."""
    return ensure_register(session, code, f"{INCOMING_NAME} - {name}", agency_id=agency_id)


def _domain_register(session: Session, address: str) -> Register:
    """The incoming register of ``address``'s mail domain (mailboxes of no agency)."""
    domain = address.rpartition("@")[2]
    return ensure_register(session, domain, f"{INCOMING_NAME} - {domain}", domain=domain)


@dataclass(frozen=True)
class RegisterRef:
    """What registering a copy needs of its register (see :func:`recipient_register`)."""

    id: int
    code: str
    agency_id: int | None
    domain: str


_MAILBOXES = cast(Table, Mailbox.__table__)
_AGENCIES = cast(Table, Agency.__table__)
_REGISTERS = cast(Table, Register.__table__)
_REF_COLUMNS = (_REGISTERS.c.id, _REGISTERS.c.code, _REGISTERS.c.agency_id, _REGISTERS.c.domain)
_BY_MAILBOX = (
    select(_MAILBOXES.c.role, _AGENCIES.c.id, _AGENCIES.c.code, _AGENCIES.c.name, *_REF_COLUMNS)
    .select_from(
        _MAILBOXES.outerjoin(_AGENCIES, _AGENCIES.c.id == _MAILBOXES.c.agency_id).outerjoin(
            _REGISTERS, _REGISTERS.c.code == _AGENCIES.c.code
        )
    )
    .where(_MAILBOXES.c.address == bindparam("address"))
)
_BY_CODE = select(*_REF_COLUMNS).where(_REGISTERS.c.code == bindparam("code"))


def recipient_register(session: Session, recipient: str) -> tuple[RegisterRef, str | None]:
    """:func:`register_for_recipient` for the acceptance transaction: the same register
    (made when missing), read with Core statements into plain values, and the recipient's
    mailbox role (None: no mailbox). The ORM's loading of three objects cost most of the
    look-up's time there, once per registered copy."""
    address = recipient.strip().lower()
    conn = session.connection()
    row = conn.execute(_BY_MAILBOX, {"address": address}).first()
    role: str | None = None
    if row is not None:
        role, agency_id, agency_code, agency_name = row[0], row[1], row[2], row[3]
        if agency_id is not None:
            if row[4] is not None:
                return RegisterRef(row[4], row[5], row[6], row[7]), role
            return _ref(_agency_register(session, agency_id, agency_code, agency_name)), role
    found = conn.execute(_BY_CODE, {"code": address.rpartition("@")[2]}).first()
    if found is not None:
        return RegisterRef(found[0], found[1], found[2], found[3]), role
    return _ref(_domain_register(session, address)), role


def _ref(register: Register) -> RegisterRef:
    return RegisterRef(register.id, register.code, register.agency_id, register.domain)


def get_register(session: Session, code: str) -> Register:
    register = session.scalars(select(Register).where(Register.code == code)).one_or_none()
    if register is None:
        known = ", ".join(r.code for r in list_registers(session)) or "none yet"
        raise NotFoundError(f"no register {code!r} (registers: {known})")
    return register


def list_registers(session: Session) -> list[Register]:
    return list(session.scalars(select(Register).order_by(Register.code)))
