"""Quarantine records and outbreak detection on a real (migrated) database."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from mailsvc.db.session import make_engine, make_sessionmaker
from mailsvc.quarantine.models import VirusDetection
from mailsvc.quarantine.service import (
    count_detections,
    detect_outbreak,
    recent_detections,
    record_detection,
)

NOW = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


@pytest.fixture
def session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    with make_sessionmaker(engine)() as session:
        yield session
    engine.dispose()


def detect(session: Session, *, ip: str = "198.51.100.7", sender: str = "bad@evil.example",
           minutes_ago: float = 0, queue_id: str = "Q1") -> VirusDetection:  # fmt: skip
    return record_detection(
        session,
        queue_id=queue_id,
        sha256="ab" * 32,
        mail_from=sender,
        client_ip=ip,
        recipients=["Clerk@Example.vn", "head@example.vn"],
        signature="Eicar-Test-Signature.UNOFFICIAL",
        size=1234,
        detected_at=NOW - timedelta(minutes=minutes_ago),
    )


def test_record_keeps_hash_envelope_and_signature_never_content(session: Session) -> None:
    detect(session, sender="Bad@Evil.example")
    session.commit()
    row = session.scalars(select(VirusDetection)).one()
    assert (row.sha256, row.mail_from, row.client_ip) == ("ab" * 32, "bad@evil.example",
                                                         "198.51.100.7")  # fmt: skip
    assert row.recipients == ["clerk@example.vn", "head@example.vn"]
    assert row.signature == "Eicar-Test-Signature.UNOFFICIAL"
    assert row.detected_at == NOW and row.detected_at.tzinfo is not None
    columns = {c["name"] for c in inspect(session.connection()).get_columns("virus_detection")}
    assert not columns & {"raw", "content", "body", "message"}


def test_outbreak_by_client_address_within_the_window(session: Session) -> None:
    for minutes in (1, 5, 9):
        detect(session, minutes_ago=minutes)
    detect(session, minutes_ago=30)  # outside the window
    detect(session, ip="203.0.113.9", minutes_ago=2)  # another source
    window = timedelta(minutes=10)
    assert detect_outbreak(session, client_ip="198.51.100.7", window=window, threshold=3, now=NOW)
    assert not detect_outbreak(
        session, client_ip="198.51.100.7", window=window, threshold=4, now=NOW
    )
    assert not detect_outbreak(
        session, client_ip="203.0.113.9", window=window, threshold=2, now=NOW
    )
    assert detect_outbreak(
        session, client_ip="198.51.100.7", window=timedelta(hours=1), threshold=4, now=NOW
    )


def test_outbreak_by_sender_across_addresses(session: Session) -> None:
    for i, ip in enumerate(("192.0.2.1", "192.0.2.2", "192.0.2.3")):
        detect(session, ip=ip, minutes_ago=i)
    window = timedelta(minutes=15)
    assert detect_outbreak(session, sender="BAD@evil.example", window=window, threshold=3, now=NOW)
    assert not detect_outbreak(session, client_ip="192.0.2.1", window=window, threshold=2, now=NOW)
    since = NOW - window
    assert count_detections(session, since=since, sender="bad@evil.example",
                            client_ip="192.0.2.2") == 1  # fmt: skip


def test_arguments_are_checked(session: Session) -> None:
    with pytest.raises(ValueError):
        count_detections(session, since=NOW)
    with pytest.raises(ValueError):
        detect_outbreak(session, client_ip="192.0.2.1", window=timedelta(minutes=1), threshold=0)


def test_recent_detections_newest_first(session: Session) -> None:
    for minutes, qid in ((3, "Q3"), (1, "Q1"), (2, "Q2"), (90, "Q90")):
        detect(session, minutes_ago=minutes, queue_id=qid)
    rows = recent_detections(session, since=NOW - timedelta(hours=1))
    assert [r.queue_id for r in rows] == ["Q1", "Q2", "Q3"]
