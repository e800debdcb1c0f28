"""Count the transactions begun on an engine: look-ups (``db.session.reading``) apart from
the others (on SQLite, ``BEGIN IMMEDIATE``: the database's write lock)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, event

from mailsvc.db.session import READ_ONLY


@dataclass
class Transactions:
    reads: int = 0
    writes: int = 0


def count_transactions(engine: Engine) -> Transactions:
    seen = Transactions()

    def begin(conn: Any) -> None:
        if conn.get_execution_options().get(READ_ONLY):
            seen.reads += 1
        else:
            seen.writes += 1

    event.listen(engine, "begin", begin)
    return seen
