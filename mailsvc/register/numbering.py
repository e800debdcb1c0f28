"""Incoming numbers (số đến): one unbroken sequence per register and year.

The counter row (register, year) is created if missing (INSERT ... ON CONFLICT DO
NOTHING) and then bumped with ``UPDATE ... SET last_number = last_number + 1
RETURNING last_number``. The UPDATE takes the row's write lock until the enclosing
transaction ends, so on PostgreSQL concurrent registrations queue on it; on SQLite the
whole write transaction already holds the database lock (our engine begins with BEGIN
IMMEDIATE). The number and the document are written in the same transaction: a
rollback returns the number, so there are no gaps, and the unique constraint on
(register, year, number) backs this up.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailsvc.db.base import utcnow
from mailsvc.errors import MailsvcError
from mailsvc.register.models import Register, RegisterCounter


def insert_ignore(
    session: Session, table: Table, values: dict[str, Any], conflict: list[str]
) -> None:
    """INSERT a row unless one with the same ``conflict`` columns exists (any backend)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        pg = (
            postgresql.insert(table)
            .values(**values)
            .on_conflict_do_nothing(index_elements=conflict)
        )
        session.execute(pg)
    elif dialect == "sqlite":
        lite = sqlite.insert(table).values(**values).on_conflict_do_nothing(index_elements=conflict)
        session.execute(lite)
    else:  # pragma: no cover - only SQLite and PostgreSQL are supported
        raise MailsvcError(f"unsupported database {dialect!r}")


def register_year(at: datetime, zone: tzinfo) -> int:
    """The register year of a moment: the calendar year in the agency's time zone."""
    return at.astimezone(zone).year


def lock_register(session: Session, register_id: int) -> None:
    """Serialise registrations in one register until the transaction ends (PostgreSQL
    row lock; SQLite holds the database write lock already)."""
    session.execute(select(Register.id).where(Register.id == register_id).with_for_update())


def next_number(session: Session, register_id: int, year: int) -> int:
    """Take the next incoming number of ``register_id`` for ``year`` (never commits)."""
    bump = (
        update(RegisterCounter)
        .where(RegisterCounter.register_id == register_id, RegisterCounter.year == year)
        .values(last_number=RegisterCounter.last_number + 1, updated_at=utcnow())
        .returning(RegisterCounter.last_number)
        .execution_options(synchronize_session=False)
    )
    number = session.execute(bump).scalar_one_or_none()
    if number is None:  # first number of the year: create the row, then take it
        table = RegisterCounter.__table__
        assert isinstance(table, Table)
        insert_ignore(
            session,
            table,
            {"register_id": register_id, "year": year, "last_number": 0, "updated_at": utcnow()},
            ["register_id", "year"],
        )
        number = session.execute(bump).scalar_one()
    return int(number)


def last_number(session: Session, register_id: int, year: int) -> int:
    value = session.scalar(
        select(RegisterCounter.last_number).where(
            RegisterCounter.register_id == register_id, RegisterCounter.year == year
        )
    )
    return int(value or 0)
