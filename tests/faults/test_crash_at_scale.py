"""The crash test at scale: 10 clients sending plain mail and documents (each retried
until it gets a 250, as a real MTA would), `kill -9` of `mailsvc serve` five times during
the run, on the test pass's database (SQLite, or PostgreSQL). Afterwards: every
acknowledged message is in Dovecot and in the database exactly once, register numbers are
gapless, the audit chain verifies, and no process of any of the six serves is left.

Bounded: each cycle waits for a few more acknowledgements, then kills; the whole test
takes tens of seconds per database."""

from __future__ import annotations

import functools
import json
import multiprocessing
import shutil
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.engine import Engine

from mailsvc.db.models import Agency, MessageRecord
from mailsvc.db.session import migrate
from mailsvc.register.models import RegisterDocument
from tests.conftest import PG_ADMIN_URL
from tests.e2e.conftest import PASSWORD, prepare_home, seed
from tests.faults.conftest import (
    CLERK,
    SENDER,
    PgCluster,
    Serve,
    clamds,
    clerk,
    dovecot_masters,
    imap_message_ids,
    marked,
    message,
    send,
    wait_until,
)
from tests.signatures.pki import (
    AGENCY_CODE,
    AGENCY_DOMAIN,
    AGENCY_NAME,
    make_pdf,
    session_pki,
    signed_pdf,
)

AGENCY_SENDER = f"vanthu@{AGENCY_DOMAIN}"
CLIENTS = 10
KILLS = 5
ACKS_PER_CYCLE = 8
DOCUMENTS = 5


class Client(threading.Thread):
    """Sends numbered messages; retries one message (same bytes) until it gets a 250."""

    def __init__(
        self, number: int, serve: Serve, stop: threading.Event, documents: list[bytes]
    ) -> None:
        super().__init__(daemon=True, name=f"client-{number}")
        self.documents = documents  # shared; each signed PDF is sent once
        self.number = number
        self.serve = serve
        self.stop_event = stop
        self.acknowledged: list[str] = []
        self.attempts = 0
        self.error: BaseException | None = None

    def _next_document(self) -> bytes | None:
        try:
            return self.documents.pop()  # list.pop is atomic under the GIL
        except IndexError:
            return None

    def run(self) -> None:
        try:
            n = 0
            while not self.stop_event.is_set():
                n += 1
                mid = f"<crash-{self.number}-{n}@sender.example.vn>"
                # Every third message is a signed document from another agency: it gets
                # a number in the incoming register.
                pdf = self._next_document() if n % 4 == 0 else None
                document = pdf is not None
                if document:
                    data = message(sender=AGENCY_SENDER, message_id=mid, pdf=pdf,
                                   subject=f"Công văn {self.number}-{n}")  # fmt: skip
                else:
                    data = message(message_id=mid, subject=f"Thư {self.number}-{n}")
                sender = AGENCY_SENDER if document else SENDER
                while True:
                    self.attempts += 1
                    try:
                        reply = send(self.serve.addresses["smtp"], data, timeout=30, sender=sender)
                    except OSError:
                        reply = "connection failed"
                    if reply.startswith("250"):
                        self.acknowledged.append(mid)
                        break
                    assert reply[:1] in "4c", reply  # only "try later" or a dead server
                    self.stop_event.wait(0.05)
        except BaseException as exc:  # read by the test
            self.error = exc


def _sign(n: int) -> bytes:
    pki = session_pki()  # inherited from the parent by fork
    return signed_pdf(make_pdf(f"Cong van so {n}/2026"), pki.personal, pki.organisation)


@functools.cache
def signed_documents(count: int) -> tuple[bytes, ...]:
    """``count`` distinct signed PDFs (personal + organisation signature), made once per
    session in two forked processes (pyHanko signing costs ~0.7 s each on a busy machine).
    Each database gets its own, empty register: the same documents number from 1 again."""
    session_pki()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(2, mp_context=context) as pool:
        return tuple(pool.map(_sign, range(count)))


def _engine(url: str) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return create_engine(url)


# The pass's database only (the suite runs once per database): on SQLite, or on a
# PostgreSQL cluster of the test's own when the pass is PostgreSQL's. Both passes together
# crash both, each once.
_DIALECT = "postgresql" if PG_ADMIN_URL.startswith("postgresql") else "sqlite"


@pytest.fixture(params=[_DIALECT])
def database(request: pytest.FixtureRequest, service_home: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{service_home.parent / 'crash.sqlite3'}"
    else:
        cluster: PgCluster = request.getfixturevalue("pg_cluster")
        url = cluster.create_database()
    migrate(url)
    yield url


@pytest.mark.long(20)
def test_kill_9_five_times_under_load_loses_and_duplicates_nothing(
    service_home: Path, database: str
) -> None:
    prepare_home(service_home, database)
    pki = session_pki()
    # The other agency: trusted CA and CRLs in the home, its host pinned (SPF pass).
    for name, source in (("trust", pki.trust_dir), ("crl", pki.crl_dir)):
        (service_home / name).mkdir()
        for path in source.iterdir():
            shutil.copy(path, service_home / name / path.name)
    agency = Agency(code=AGENCY_CODE, name=AGENCY_NAME, domains=[AGENCY_DOMAIN],
                    allowed_senders=["127.0.0.1"])  # fmt: skip
    seed(database, clerk(), agency)
    serve = Serve(service_home, database)
    documents = list(signed_documents(DOCUMENTS))
    stop = threading.Event()
    clients: list[Client] = []
    try:
        serve.start()
        clients = [Client(i, serve, stop, documents) for i in range(CLIENTS)]
        for client in clients:
            client.start()

        def acknowledged() -> int:
            return sum(len(c.acknowledged) for c in clients)

        for _ in range(KILLS):
            target = acknowledged() + ACKS_PER_CYCLE
            wait_until(lambda t=target: acknowledged() >= t, 120, "acknowledgements")
            serve.kill()
            # Restart at once: the new serve must cope with whatever is still stopping.
            serve.start()
            assert len(dovecot_masters(service_home)) == 1
            assert len(clamds(service_home)) == 1

        target = acknowledged() + ACKS_PER_CYCLE
        wait_until(lambda: acknowledged() >= target, 120, "acknowledgements after the last kill")
        stop.set()
        for client in clients:
            client.join(timeout=120)
            assert client.error is None, client.error
        assert serve.starts == KILLS + 1

        acked = [mid for c in clients for mid in c.acknowledged]
        assert len(acked) == len(set(acked)) >= (KILLS + 1) * ACKS_PER_CYCLE

        # Dovecot: every acknowledged message exactly once, and nothing twice.
        ids = Counter(imap_message_ids(serve.addresses["imap"], CLERK, PASSWORD))
        assert [m for m, n in ids.items() if n > 1] == []
        assert set(acked) <= set(ids)

        engine = _engine(database)
        try:

            def undelivered() -> int:
                with engine.connect() as conn:
                    count = select(func.count()).where(MessageRecord.state != "delivered")
                    return int(conn.execute(count).scalar_one())

            # every row is marked: the last copies' marks follow their 250 (group commit)
            wait_until(lambda: undelivered() == 0, 30, "every row marked delivered")
            undelivered_after = undelivered()
            with engine.connect() as conn:
                per_message = Counter(
                    conn.execute(select(MessageRecord.message_id)).scalars().all()
                )
                numbers = sorted(
                    n
                    for n in conn.execute(select(RegisterDocument.incoming_number)).scalars()
                    if n is not None
                )
        finally:
            engine.dispose()
        assert [m for m, n in per_message.items() if n > 1] == []
        assert set(acked) <= set(per_message)
        assert undelivered_after == 0
        # Register numbers: one per registered document, gapless from 1.
        sent_documents = DOCUMENTS - len(documents)
        assert numbers == list(range(1, len(numbers) + 1))
        assert len(numbers) == sent_documents > 0

        audit = subprocess.run(
            [sys.executable, "-m", "mailsvc", "audit", "verify", "--json"],
            env=serve.env(), capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert json.loads(audit.stdout)["ok"] is True

        assert serve.terminate() == 0
        wait_until(lambda: not marked(serve.mark), 30, "no process left by any serve")
        print(
            f"crash test: {len(acked)} messages acknowledged ({sent_documents} documents, "
            f"numbers 1..{len(numbers)}) in {sum(c.attempts for c in clients)} attempts, "
            f"{serve.starts} serves, {KILLS} kill -9"
        )
        assert dovecot_masters(service_home) == [] and clamds(service_home) == []
    finally:
        stop.set()
        serve.stop_all()
