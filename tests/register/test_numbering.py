"""Incoming numbers: one unbroken sequence per register and year, under concurrency."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from mailsvc.register.models import Register, RegisterDocument
from mailsvc.register.numbering import last_number
from mailsvc.register.registers import ensure_register
from mailsvc.register.registration import register_document
from tests.register.builders import document

THREADS = 20
PER_THREAD = 50


def test_concurrent_registrations_are_gapless_and_unique(
    sessions: sessionmaker[Session], register: Register
) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work() -> None:
        try:
            start.wait()
            for _ in range(PER_THREAD):
                with sessions.begin() as session:
                    register_document(session, register, document())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with sessions() as session:
        numbers = sorted(
            session.scalars(
                select(RegisterDocument.incoming_number).where(
                    RegisterDocument.register_id == register.id
                )
            )
        )
        assert numbers == list(range(1, THREADS * PER_THREAD + 1))
        assert last_number(session, register.id, 2026) == THREADS * PER_THREAD


def test_year_rolls_over_at_midnight_in_vietnam(
    sessions: sessionmaker[Session], register: Register
) -> None:
    # 2025-12-31 23:59:59 +07:00 and 2026-01-01 00:00:00 +07:00
    before = datetime(2025, 12, 31, 16, 59, 59, tzinfo=UTC)
    after = datetime(2025, 12, 31, 17, 0, 0, tzinfo=UTC)
    with sessions.begin() as session:
        a = register_document(session, register, document(received_at=before))
        b = register_document(session, register, document(received_at=before))
        c = register_document(session, register, document(received_at=after))
        d = register_document(session, register, document(received_at=after))
    assert (a.year, a.incoming_number) == (2025, 1)
    assert (b.year, b.incoming_number) == (2025, 2)
    assert (c.year, c.incoming_number) == (2026, 1)
    assert (d.year, d.incoming_number) == (2026, 2)


def test_registers_have_separate_sequences(
    sessions: sessionmaker[Session], register: Register
) -> None:
    with sessions.begin() as session:
        other = ensure_register(session, "000.00.32.H56", "Sổ đăng ký văn bản đến - STC")
        first = register_document(session, register, document())
        second = register_document(session, other, document())
        third = register_document(session, register, document())
    assert (first.incoming_number, second.incoming_number, third.incoming_number) == (1, 1, 2)


def test_a_rolled_back_registration_returns_its_number(
    sessions: sessionmaker[Session], register: Register
) -> None:
    with sessions.begin() as session:
        assert register_document(session, register, document()).incoming_number == 1
    session = sessions()
    with session.begin():
        assert register_document(session, register, document()).incoming_number == 2
        session.rollback()
    session.close()
    with sessions.begin() as session:
        assert register_document(session, register, document()).incoming_number == 2
        count = session.scalar(select(func.count()).select_from(RegisterDocument))
    assert count == 2


def test_the_unique_constraint_backs_up_the_counter(
    sessions: sessionmaker[Session], register: Register
) -> None:
    with sessions.begin() as session:
        result = register_document(session, register, document())
    with pytest.raises(IntegrityError), sessions.begin() as session:
        row = session.get(RegisterDocument, result.document_id)
        assert row is not None
        clone = RegisterDocument(
            register_id=register.id,
            incoming_number=row.incoming_number,
            year=row.year,
            received_at=row.received_at,
            signature_outcome="valid",
            status="registered",
        )
        session.add(clone)
        session.flush()
