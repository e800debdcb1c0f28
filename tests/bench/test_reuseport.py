"""bench/reuseport.py's write-order instrument: what it stamps and how it counts requests
served out of arrival order."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from bench.reuseport import WriteStamps, write_order
from mailsvc.db.session import make_engine, make_sessionmaker, reading


def test_overtaken_counts_requests_served_after_a_later_one() -> None:
    # (asked, got): the first request waits until 10 s, a request 5 ms later got it at 5 s
    assert write_order([(0.0, 10.0), (0.005, 5.0)]).endswith("overtaken (not FIFO): 1")
    # served in arrival order
    fifo = [(0.0, 1.0), (0.005, 2.0), (0.006, 3.0)]
    assert write_order(fifo).endswith("overtaken (not FIFO): 0")
    # a request less than 1 ms later is a tie (threads stamp before they queue)
    assert write_order([(0.0, 10.0), (0.0005, 5.0)]).endswith("overtaken (not FIFO): 0")
    assert write_order([]).startswith("write lock: none taken")


def test_stamps_every_sqlite_write_transaction_and_no_reader(tmp_path: Path) -> None:
    stamps = WriteStamps()
    stamps.install()
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
        for i in range(3):
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": i})
        with reading(make_sessionmaker(engine)) as session:
            assert session.execute(text("SELECT count(*) FROM t")).scalar_one() == 3
    finally:
        stamps.uninstall()
        engine.dispose()
    assert len(stamps.pairs) == 4  # the CREATE and three INSERTs; the reader is not counted
    assert all(asked <= got for asked, got in stamps.pairs)
