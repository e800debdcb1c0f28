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

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from mailsvc.db.base import table_of, utcnow
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


# Built once, run with parameters on the session's connection: Core statements skip the
# ORM's statement construction and its bulk-update path, which cost more CPU than the
# database's own work for these one-row statements (once per registered document).
_REGISTERS = table_of(Register)
_COUNTERS = table_of(RegisterCounter)
_LOCK = select(_REGISTERS.c.id).where(_REGISTERS.c.id == bindparam("register_id")).with_for_update()
_BUMP = (
    update(_COUNTERS)
    .where(
        _COUNTERS.c.register_id == bindparam("b_register"),
        _COUNTERS.c.year == bindparam("b_year"),
    )
    .values(last_number=_COUNTERS.c.last_number + 1, updated_at=bindparam("b_now"))
    .returning(_COUNTERS.c.last_number)
)


def lock_register(session: Session, register_id: int) -> None:
    """Serialise registrations in one register until the transaction ends (PostgreSQL
    row lock; SQLite holds the database write lock already, and has no row locks: the
    statement would be a plain SELECT there, so it is not sent)."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        connection.execute(_LOCK, {"register_id": register_id})


def next_number(session: Session, register_id: int, year: int) -> int:
    """Take the next incoming number of ``register_id`` for ``year`` (never commits)."""
    params = {"b_register": register_id, "b_year": year, "b_now": utcnow()}
    number = session.connection().execute(_BUMP, params).scalar_one_or_none()
    if number is None:  # first number of the year: create the row, then take it
        insert_ignore(
            session,
            _COUNTERS,
            {"register_id": register_id, "year": year, "last_number": 0, "updated_at": utcnow()},
            ["register_id", "year"],
        )
        number = session.connection().execute(_BUMP, params).scalar_one()
    return int(number)


def last_number(session: Session, register_id: int, year: int) -> int:
    value = session.scalar(
        select(RegisterCounter.last_number).where(
            RegisterCounter.register_id == register_id, RegisterCounter.year == year
        )
    )
    return int(value or 0)
