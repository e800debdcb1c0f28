"""SQLite transactions of one process take turns in arrival order."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from mailsvc.db.session import WriteQueue, make_engine


def _wait_until(predicate: object, event: threading.Event) -> None:
    assert callable(predicate)
    while not predicate():
        event.wait(0.001)


def test_waiters_are_served_first_come_first_served() -> None:
    queue = WriteQueue()
    assert queue.acquire()
    order: list[int] = []
    threads = []
    idle = threading.Event()
    for i in range(6):

        def take(n: int = i) -> None:
            assert queue.acquire()
            order.append(n)
            queue.release()

        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=i: len(queue._waiting) == n + 1, idle)
    queue.release()
    for thread in threads:
        thread.join(10)
    assert order == [0, 1, 2, 3, 4, 5]


def _switches(native_id: int) -> int:
    """How many times the thread has gone to sleep and been woken (Linux)."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def _wait_asleep(native_ids: list[int], event: threading.Event) -> None:
    """Until each thread sleeps and stays asleep while this one lets go of the GIL.

    A waiter is in ``WriteQueue._waiting`` a moment before it blocks on its turn, and a
    thread that still wants the GIL also sleeps: both would count one more switch later.
    Their counts must hold still over three waits that hand the GIL over."""
    steady = 0
    last = {tid: _switches(tid) for tid in native_ids}
    while steady < 3:
        event.wait(0.005)
        now = {tid: _switches(tid) for tid in native_ids}
        states = {
            Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()[0]
            for tid in native_ids
        }
        steady = steady + 1 if now == last and states == {"S"} else 0
        last = now


def test_a_release_wakes_the_next_waiter_only() -> None:
    """Each release hands the turn to the first waiter; the others sleep on. (With a
    condition and ``notify_all``, every waiter woke at every release to look whose turn it
    was: as many futile wake-ups, each taking the GIL, as threads waiting.)"""
    queue = WriteQueue()
    assert queue.acquire()
    ids: list[int] = []
    served = threading.Event()
    finish = threading.Event()
    idle = threading.Event()
    threads = []
    for i in range(4):

        def take(first: bool = i == 0) -> None:
            ids.append(threading.get_native_id())
            assert queue.acquire()
            if first:
                served.set()
                finish.wait(10)
            queue.release()

        thread = threading.Thread(target=take)
        thread.start()
        threads.append(thread)
        _wait_until(lambda n=i: len(queue._waiting) == n + 1, idle)
    _wait_asleep(ids[1:], idle)
    before = {tid: _switches(tid) for tid in ids[1:]}
    queue.release()
    assert served.wait(10)
    after = {tid: _switches(tid) for tid in ids[1:]}
    finish.set()
    for thread in threads:
        thread.join(10)
    assert after == before  # the three behind the first were not woken
    assert not queue._waiting and queue.acquire()  # every turn was given back


def test_a_waiter_gives_up_after_its_timeout() -> None:
    queue = WriteQueue(timeout=0.05)
    assert queue.acquire()
    assert queue.acquire() is False  # goes ahead on SQLite's own lock
    queue.release()
    assert queue.acquire()


def test_concurrent_sqlite_writers_all_commit(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            for k in range(20):
                with engine.begin() as conn:
                    conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n * 100 + k})
                with engine.connect() as conn:  # a rollback also gives the turn back
                    conn.execute(text("SELECT count(*) FROM t"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(DISTINCT n) FROM t")).scalar_one() == 200
    engine.dispose()


def test_a_reader_neither_queues_nor_waits_for_a_writer(tmp_path: Path) -> None:
    """``reading``: a look-up while another transaction holds the write lock returns the
    last committed state at once (it would otherwise wait for the writer's turn)."""
    from sqlalchemy import event

    from mailsvc.db.session import READ_ONLY, make_sessionmaker, reading

    engine = make_engine(f"sqlite:///{tmp_path / 'r.sqlite3'}", busy_timeout=30)
    sessions = make_sessionmaker(engine)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    begins: list[bool] = []
    event.listen(
        engine,
        "begin",
        lambda conn: begins.append(bool(conn.get_execution_options().get(READ_ONLY))),
    )
    writer = engine.connect()
    writer.begin()
    writer.execute(text("INSERT INTO t VALUES (2)"))  # holds the write lock, uncommitted
    try:
        result: list[int] = []
        done = threading.Event()

        def look() -> None:
            with reading(sessions) as session:
                result.extend(session.scalars(text("SELECT n FROM t ORDER BY n")))
            done.set()

        thread = threading.Thread(target=look)
        thread.start()
        assert done.wait(10), "the reader waited for the writer"
        thread.join(10)
        assert result == [1]
        assert begins == [False, True]  # the writer's BEGIN IMMEDIATE, then the reader's
    finally:
        writer.rollback()
        writer.close()
        engine.dispose()
