"""Registers (sổ): one default incoming register per local agency, or per mail domain
for mailboxes that belong to no agency. Services here never commit."""

from __future__ import annotations

from sqlalchemy import Table, select
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
            register = ensure_register(
                session, agency.code, f"{INCOMING_NAME} - {agency.name}", agency_id=agency.id
            )
    else:
        domain = address.rpartition("@")[2]
        register = ensure_register(session, domain, f"{INCOMING_NAME} - {domain}", domain=domain)
    return register, mailbox


def get_register(session: Session, code: str) -> Register:
    register = session.scalars(select(Register).where(Register.code == code)).one_or_none()
    if register is None:
        known = ", ".join(r.code for r in list_registers(session)) or "none yet"
        raise NotFoundError(f"no register {code!r} (registers: {known})")
    return register


def list_registers(session: Session) -> list[Register]:
    return list(session.scalars(select(Register).order_by(Register.code)))
