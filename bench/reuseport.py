"""Several SMTP processes sharing the port (SO_REUSEPORT) vs one process and a wider pool.

    python bench/reuseport.py [--messages 1000] [--size 20000] [--sessions 10]
                              [--documents 200] [--pg postgresql://postgres@127.0.0.1:5432/test]
                              [--skip-sqlite] [--rounds 1]

The question: on this machine, does the message path go faster with N
SMTP-receiving processes bound to the same port with SO_REUSEPORT (the kernel spreads the
client's connections) than with one process and a wider worker pool? Each variant, in
the same run and on the same messages, once per round:

- ``1 process, pool 2`` (the service as it is), ``1 process, pool 3``;
- ``2 processes, pools 1+1`` and ``2+1``: the whole service (bench/smtp.py's home, with
  ``smtp.reuse_port``), plus a second, receiving-only node: an ``App`` of its own home whose
  database, blob store and Maildirs are the first one's, which uses the first one's Dovecot
  (LMTP, IMAP) and clamd as system daemons, runs no scheduled jobs and listens on the
  same SMTP port with SO_REUSEPORT. Its pool is its share of the total.

The load: bench/smtp.py's plain 20 KB mails, or with ``--documents N`` bench/documents.py's
signed 200 KB PDFs from a pinned agency (each gets a register number), from bench/smtp.py's
client process (``--sessions`` connections, spread by the kernel). On SQLite (the file in
the first home) and, with ``--pg ADMIN_URL``, on a fresh PostgreSQL database per variant.

After every run the bench checks and prints, instead of assuming:

- delivery: every message has exactly one row, ``delivered``, and exactly one copy in the
  clerk's Maildir (by Message-ID);
- numbering (documents): the register numbers are 1..N, no gap, no duplicate;
- write order: every write transaction of every process is stamped (CLOCK_MONOTONIC,
  one clock for all processes) when it asks for the database's write lock and when it gets
  it (SQLite: ``BEGIN IMMEDIATE``, after the process's first-come-first-served queue;
  PostgreSQL: the register row's ``SELECT ... FOR UPDATE``). "Overtaken" counts the
  transactions whose lock went first to a request made at least 1 ms later: 0 means the
  writes were served in arrival order (FIFO);
- the split: how many copies each process delivered (the kernel spreads connections, not
  messages, so 10 long sessions rarely split evenly).

Prints msgs/s, p50/p99 latency, the ratio to the first variant and the CPU per message by
process group (the second node and its pool are "other").
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import email.parser
import email.policy
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import statistics
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, Table, create_engine, event, func, insert, select, text

from bench.service import release_memory
from bench.smtp import DOMAIN, RCPT, blast_monitored, make_messages, save_messages
from bench.smtp import prepare_home as prepare_plain_home
from mailsvc.adapters.clamd_daemon import clamd_address
from mailsvc.app import App
from mailsvc.config import Settings
from mailsvc.db.models import Agency, Mailbox, MessageRecord
from mailsvc.db.session import READ_ONLY, make_engine, migrate
from mailsvc.register.models import RegisterDocument

# (name, pool size of each process): the first process is the whole service.
VARIANTS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("1 process, pool 2", (2,)),
    ("1 process, pool 3", (3,)),
    ("2 processes, pools 1+1", (1, 1)),
    ("2 processes, pools 2+1", (2, 1)),
)
PLAIN_SENDER = "cv@sender.example.vn"
OVERTAKE_S = 0.001  # a request this much later that got the lock first "overtook"


# --------------------------------------------------------------------- write-order stamps


@dataclass
class WriteStamps:
    """(asked, got) CLOCK_MONOTONIC pairs of this process's write-lock waits.

    The listeners are the Engine class's, installed before the service makes its engine:
    they run before the engine's own ``begin`` listener (its queue and BEGIN IMMEDIATE), and
    nothing is added to a listener list that another thread may be walking."""

    pairs: list[tuple[float, float]] = field(default_factory=list)
    _asked: dict[int, float] = field(default_factory=dict)

    def install(self) -> None:
        event.listen(Engine, "begin", self._begin)
        event.listen(Engine, "before_cursor_execute", self._before)
        event.listen(Engine, "after_cursor_execute", self._after)

    def uninstall(self) -> None:
        event.remove(Engine, "begin", self._begin)
        event.remove(Engine, "before_cursor_execute", self._before)
        event.remove(Engine, "after_cursor_execute", self._after)

    def _begin(self, conn: Any) -> None:
        # SQLite: the write lock is asked for here (the queue, then BEGIN IMMEDIATE).
        sqlite = conn.engine.dialect.name == "sqlite"
        if sqlite and not conn.get_execution_options().get(READ_ONLY):
            self._asked[id(conn)] = time.monotonic()

    def _before(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        # PostgreSQL: the register's row lock.
        if statement.rstrip().endswith("FOR UPDATE") and conn.engine.dialect.name != "sqlite":
            self._asked[id(conn)] = time.monotonic()

    def _after(self, conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if statement == "BEGIN IMMEDIATE" or statement.rstrip().endswith("FOR UPDATE"):
            asked = self._asked.pop(id(conn), None)
            if asked is not None:
                self.pairs.append((asked, time.monotonic()))


STAMPS = WriteStamps()


def quiet() -> None:
    """The receipts to the sending agency have no route here (closed network, no
    smarthost): one outbound warning per document, in every process, is left out."""
    logging.getLogger("mailsvc.outbound.mailer").setLevel(logging.ERROR)


def delivered_here(app: App) -> int:
    """Copies this process delivered over LMTP (its own counter, not the database)."""
    return int(
        sum(
            sample.value
            for metric in app.registry.collect()
            if metric.name == "mailsvc_deliveries"
            for sample in metric.samples
            if sample.name.endswith("_total") and sample.labels.get("result") == "delivered"
        )
    )


def write_order(pairs: list[tuple[float, float]]) -> str:
    """How many lock requests were overtaken by a later one, and the longest waits."""
    if not pairs:
        return "write lock: none taken (PostgreSQL: only a registration locks its register)"
    pairs = sorted(pairs)
    overtaken = 0
    later_got: list[float] = []  # lock times of requests made >= OVERTAKE_S later (sorted)
    j = len(pairs)
    for i in range(len(pairs) - 1, -1, -1):
        asked, got = pairs[i]
        while j > 0 and pairs[j - 1][0] >= asked + OVERTAKE_S:
            j -= 1
            bisect.insort(later_got, pairs[j][1])
        if later_got and later_got[0] < got:
            overtaken += 1
    waits = sorted(got - asked for asked, got in pairs)
    p99 = waits[max(0, int(len(waits) * 0.99) - 1)] * 1000
    return (
        f"write lock: {len(pairs)} waits, p50 {statistics.median(waits) * 1000:.1f} ms, "
        f"p99 {p99:.1f} ms, max {waits[-1] * 1000:.0f} ms; overtaken (not FIFO): {overtaken}"
    )


# --------------------------------------------------------------------- the second node


def node_settings(main: App, home: Path, workers: int) -> Settings:
    """A receiving-only node sharing ``main``'s database, stores, daemons and SMTP port."""
    s = main.settings
    home.mkdir()
    for shared in ("trust", "crl", "openpgp", "policies"):
        if (s.home / shared).is_dir():
            shutil.copytree(s.home / shared, home / shared)
    # Dovecot in "system" mode: the master user's secret opens mailboxes (flags, checks).
    (home / "dovecot").mkdir()
    shutil.copy(main.dovecot.master_secret_path, home / "dovecot" / "master-secret")
    _, smtp_port = main.addresses["smtp"]
    imap, imaps = main.dovecot.imap_address, main.dovecot.imaps_address
    return s.model_copy(
        update={
            "home": home,
            "database": s.database.model_copy(update={"url": s.database_url}),
            "paths": s.paths.model_copy(
                update={
                    "blob_root": str(s.path(s.paths.blob_root)),
                    "maildir_root": str(s.path(s.paths.maildir_root)),
                }
            ),
            "tls": s.tls.model_copy(
                update={"cert": str(s.path(s.tls.cert)), "key": str(s.path(s.tls.key))}
            ),
            "listen": s.listen.model_copy(
                update={
                    "smtp": f"127.0.0.1:{smtp_port}",
                    "imap": f"{imap[0]}:{imap[1]}",
                    "imaps": f"{imaps[0]}:{imaps[1]}",
                }
            ),
            "dovecot": s.dovecot.model_copy(
                update={"mode": "system", "lmtp_socket": str(main.dovecot.lmtp_path)}
            ),
            "clamav": s.clamav.model_copy(
                update={"mode": "system", "socket": clamd_address(s), "update": "off"}
            ),
            "jobs": s.jobs.model_copy(update={"enabled": False, "node": home.name}),
            "pipeline": s.pipeline.model_copy(update={"workers": workers}),
        }
    )


def _node_main(settings: Settings, conn: multiprocessing.connection.Connection) -> None:
    """In the second node's process: start, warm the pool, say "ready", wait for "stop",
    stop and send back the write-lock stamps."""

    async def run() -> None:
        STAMPS.install()
        quiet()
        app = App(settings)
        delivered = 0
        try:
            await app.start()
            loop = asyncio.get_running_loop()
            await asyncio.gather(*(loop.run_in_executor(app.executor, os.getpid) for _ in range(8)))
            conn.send(("ready", os.getpid()))
            STAMPS.pairs.clear()
            await loop.run_in_executor(None, conn.recv)
            delivered = delivered_here(app)
        finally:
            await app.stop()
        conn.send(("stopped", STAMPS.pairs, delivered))

    try:
        asyncio.run(run())
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        raise


@dataclass
class NodeReport:
    """What a second node sends back when it stops."""

    stamps: list[tuple[float, float]] = field(default_factory=list)
    delivered: int = 0


@contextlib.contextmanager
def second_node(settings: Settings) -> Iterator[NodeReport]:
    """Run a node of ``settings`` in a process of its own while the block runs; the report
    given is filled in (write-lock stamps, copies delivered) when the block ends."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_node_main, args=(settings, theirs), name="second-node")
    proc.start()
    got = ours.recv()
    if got[0] != "ready":
        proc.join()
        raise SystemExit(f"the second node did not start:\n{got[1]}")
    report = NodeReport()
    try:
        yield report
    finally:
        ours.send("stop")
        got = ours.recv()
        proc.join(60)
        if got[0] != "stopped":
            raise SystemExit(f"the second node failed:\n{got[1]}")
        report.stamps, report.delivered = got[1], got[2]


# --------------------------------------------------------------------- databases


def prepare_database(
    settings: Settings, pg_admin: str | None
) -> tuple[Settings, Callable[[], None]]:
    """SQLite: the home's file, as prepared. PostgreSQL: a fresh database, migrated, with the
    home's seed rows (agencies, mailboxes) copied from its SQLite file; returns the settings
    pointing at it and a function that drops it."""
    if pg_admin is None:
        return settings, lambda: None
    name = f"mailsvc_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(
        pg_admin.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'"))
    url = f"{pg_admin.rsplit('/', 1)[0]}/{name}"
    migrate(url)
    seeded, target = make_engine(settings.database_url), make_engine(url)
    with seeded.connect() as src, target.begin() as dst:
        for model in (Agency, Mailbox):
            table = cast(Table, model.__table__)
            rows = [dict(r._mapping) for r in src.execute(select(table))]
            dst.execute(insert(table), rows)
            dst.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                     f"(SELECT max(id) FROM {table.name}))")
            )  # fmt: skip
    seeded.dispose()
    target.dispose()

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return settings.model_copy(
        update={"database": settings.database.model_copy(update={"url": url})}
    ), drop


# --------------------------------------------------------------------- checks


def message_ids(messages: Path) -> list[str]:
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    out = []
    for path in sorted(messages.glob("*.eml")):
        with path.open("rb") as f:
            out.append(str(parser.parse(f)["Message-ID"]).strip())
    return out


def check_delivery(app: App, expected: list[str], documents: bool) -> list[str]:
    """Lines saying what the database and the Maildir hold; raises SystemExit when wrong."""
    lines, problems = [], []
    want = set(expected)
    with app.sessions() as session:
        rows = session.execute(select(MessageRecord.message_id, MessageRecord.state)).all()
        numbers = session.scalars(select(RegisterDocument.incoming_number)).all()
        distinct = session.scalar(
            select(func.count(func.distinct(RegisterDocument.incoming_number)))
        )
    ids = [m for m, _ in rows]
    delivered = sum(1 for _, state in rows if state == "delivered")
    if len(rows) != len(expected) or set(ids) != want or delivered != len(expected):
        problems.append(f"rows {len(rows)}, delivered {delivered}, distinct {len(set(ids))}")
    s = app.settings
    maildir = s.path(s.paths.maildir_root) / DOMAIN / RCPT.split("@")[0] / "Maildir"
    parser = email.parser.BytesHeaderParser(policy=email.policy.compat32)
    copies: list[str] = []
    for sub in ("new", "cur"):
        for path in (maildir / sub).iterdir():
            with path.open("rb") as f:
                copies.append(str(parser.parse(f)["Message-ID"]).strip())
    if len(copies) != len(expected) or set(copies) != want:
        problems.append(f"Maildir copies {len(copies)}, distinct {len(set(copies))}")
    lines.append(
        f"delivery: {len(expected)} sent, {len(rows)} rows ({delivered} delivered), "
        f"{len(copies)} Maildir copies, {len(set(copies))} distinct: "
        + ("each exactly once" if not problems[:2] else "WRONG")
    )
    if documents:
        numbered = sorted(n for n in numbers if n is not None)
        ok = numbered == list(range(1, len(expected) + 1)) and distinct == len(expected)
        lines.append(
            f"register: {len(numbered)} numbers, {distinct} distinct, "
            f"{numbered[0] if numbered else '-'}..{numbered[-1] if numbered else '-'}: "
            + ("gapless, unique" if ok else "WRONG")
        )
        if not ok:
            problems.append("register numbering")
    if problems:
        raise SystemExit("check failed: " + "; ".join(problems) + "\n" + "\n".join(lines))
    return lines


# --------------------------------------------------------------------- one variant


@dataclass
class Result:
    database: str
    variant: str
    rate: float
    p50: float
    p99: float
    cpu: dict[str, float]
    lines: list[str]


async def run_variant(
    workdir: Path,
    variant: tuple[str, tuple[int, ...]],
    messages: Path,
    expected: list[str],
    args: argparse.Namespace,
    pg_admin: str | None,
) -> Result:
    name, pools = variant
    release_memory()
    if args.documents:
        from bench.documents import prepare_home as prepare_documents_home

        settings = prepare_documents_home(workdir / "home")
        sender, unit = DOCUMENT_SENDER, "document"
    else:
        settings = prepare_plain_home(workdir / "home")
        sender, unit = PLAIN_SENDER, "message"
    settings, drop = prepare_database(settings, pg_admin)
    settings = settings.model_copy(
        update={
            "smtp": settings.smtp.model_copy(update={"reuse_port": True}),
            "pipeline": settings.pipeline.model_copy(update={"workers": pools[0]}),
        }
    )
    app = App(settings)
    reports: list[NodeReport] = []
    try:
        await app.start()
        async with contextlib.AsyncExitStack() as nodes:
            for i, workers in enumerate(pools[1:], start=2):
                node = node_settings(app, workdir / f"node{i}", workers)
                reports.append(nodes.enter_context(second_node(node)))
            STAMPS.pairs.clear()
            elapsed, latencies, monitor = await blast_monitored(
                app, messages, args.sessions, sender, RCPT
            )
            ours = list(STAMPS.pairs)
            first = delivered_here(app)
        lines = check_delivery(app, expected, bool(args.documents))
        lines.append(write_order(ours + [p for r in reports for p in r.stamps]))
        if reports:
            split = [first] + [r.delivered for r in reports]
            lines.append(
                "split (copies delivered by each process; the kernel spreads connections, "
                f"not messages): {' + '.join(map(str, split))}"
            )
    finally:
        await app.stop()
        drop()
    count = len(expected)
    ordered = sorted(latencies)
    by_group = {g: cpu / count * 1000 for g, cpu in monitor.cpu_by_group().items()}
    del unit
    return Result(
        "PostgreSQL" if pg_admin else "SQLite",
        name,
        count / elapsed,
        statistics.median(latencies) * 1000,
        ordered[max(0, int(len(ordered) * 0.99) - 1)] * 1000,
        by_group,
        lines,
    )


DOCUMENT_SENDER = ""  # set in main() for --documents (bench.documents imports the PKI)


def report(result: Result, baseline: float, unit: str) -> None:
    cpu = ", ".join(
        f"{g} {ms:.1f}" for g, ms in result.cpu.items() if g != "other" or abs(ms) > 0.05
    )
    print(
        f"{result.database:<10} {result.variant:<24} {result.rate:7.1f} {unit}s/s  "
        f"x{result.rate / baseline:4.2f}  p50 {result.p50:6.1f} ms  p99 {result.p99:7.1f} ms"
    )
    print(f"    CPU ms per {unit}: {cpu}; total {sum(result.cpu.values()):.1f}")
    for line in result.lines:
        print(f"    {line}")


async def main() -> None:
    global DOCUMENT_SENDER
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000, help="plain mails")
    parser.add_argument("--size", type=int, default=20_000)
    parser.add_argument("--documents", type=int, default=0, help="signed documents instead")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument(
        "--pg", help="PostgreSQL admin URL, e.g. postgresql://postgres@127.0.0.1/test"
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--rounds", type=int, default=1, help="times each variant runs")
    parser.add_argument(
        "--variants", help="comma-separated indexes into the variant list (default: all)"
    )
    args = parser.parse_args()
    STAMPS.install()
    quiet()
    variants = (
        [VARIANTS[int(i)] for i in args.variants.split(",")] if args.variants else list(VARIANTS)
    )
    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        root = Path(tmp)
        os.chmod(root, 0o755)
        if args.documents:
            from bench.documents import SENDER, document_messages

            DOCUMENT_SENDER = SENDER
            generated = document_messages(args.documents)
            unit = "doc"
            what = f"{args.documents} signed documents"
        else:
            generated = make_messages(args.messages, args.size)
            unit = "msg"
            what = f"{args.messages} plain messages of {args.size} bytes"
        messages = save_messages(root / "messages", generated)
        del generated
        expected = message_ids(messages)
        databases = ([] if args.skip_sqlite else [None]) + ([args.pg] if args.pg else [])
        print(f"{what}, {args.sessions} SMTP sessions, {os.cpu_count()} cores")
        results: list[Result] = []
        for round_ in range(args.rounds):
            for pg in databases:
                baseline = 0.0
                for n, variant in enumerate(variants):
                    workdir = root / f"r{round_}-{'pg' if pg else 'lite'}-{n}"
                    workdir.mkdir()
                    os.chmod(workdir, 0o755)
                    result = await run_variant(workdir, variant, messages, expected, args, pg)
                    baseline = baseline or result.rate
                    report(result, baseline, unit)
                    results.append(result)
                    shutil.rmtree(workdir, ignore_errors=True)
    if args.rounds > 1:
        print("mean over rounds:")
        for pg in databases:
            db = "PostgreSQL" if pg else "SQLite"
            base = 0.0
            for name, _ in variants:
                rates = [r.rate for r in results if r.database == db and r.variant == name]
                mean = statistics.mean(rates)
                base = base or mean
                print(
                    f"{db:<10} {name:<24} {mean:7.1f} {unit}s/s  x{mean / base:4.2f}  "
                    f"({', '.join(f'{r:.1f}' for r in rates)})"
                )


if __name__ == "__main__":
    asyncio.run(main())
