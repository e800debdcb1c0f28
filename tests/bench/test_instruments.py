"""The benches' measuring instruments: bench/service.py (CPU by process group, peak RSS from
/proc) on real child processes, and bench/flame.py's reading of py-spy's raw output."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from bench.flame import bucket, read_stacks, split_frames, svg, table
from bench.service import ServiceMonitor, group_of_command, smtp_budget

# Allocates and touches ~60 MB, burns 0.4 s of CPU, says "done" and waits for stdin to close.
BURNER = """
import sys, time
held = b"x" * 60_000_000
while time.process_time() < 0.4:
    pass
print("done", flush=True)
sys.stdin.read()
"""


def burner() -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def finish(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=30)


def test_monitor_counts_the_services_children_and_leaves_the_excluded_out() -> None:
    with ServiceMonitor(profile=False, interval=0.05) as monitor:
        ours, client = burner(), burner()
        monitor.exclude(client.pid)
        for proc in (ours, client):
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "done"
    try:
        cpu = monitor.cpu_by_group()
        # ours burnt at least 0.4 s; the excluded one as much again, which must not count
        assert 0.35 <= cpu["other"] < 0.75, cpu  # /proc counts in 10 ms ticks
        peak = {pid: resident for pid, _group, _label, resident in monitor.peak_rows}
        assert peak[ours.pid] >= 60_000_000
        assert client.pid not in peak
        assert monitor.peak >= sum(peak.values()) > 60_000_000
        assert ours.pid in monitor.after and client.pid not in monitor.after
        assert monitor.pss_end > 0
    finally:
        finish(ours)
        finish(client)


def test_the_services_daemons_and_pool_are_grouped_by_their_command() -> None:
    assert group_of_command("/usr/sbin/clamd -c /srv/home/clamav/clamd.conf", "clamd") == "clamd"
    assert group_of_command("/usr/sbin/dovecot -F -c /srv/dovecot.conf", "dovecot") == "Dovecot"
    forkserver = "python -B -c from multiprocessing.forkserver import main; main(5, 6)"
    assert group_of_command(forkserver, "python") == "worker pool"
    tracker = "python -B -c from multiprocessing.resource_tracker import main;main(11)"
    assert group_of_command(tracker, "python") == "worker pool"
    assert group_of_command("/usr/bin/gpg-agent --daemon", "gpg-agent") == "other"


ROOT = 'process 100:"python bench/smtp.py"'
FORKSERVER = 'process 101:"python -c from multiprocessing.forkserver import main; main(5, 6)"'
WORKER = 'process 102:"python -c from multiprocessing.forkserver import main; main(5, 6)"'
CLIENT = 'process 103:"python -c from multiprocessing.spawn import spawn_main"'
SITE = "/venv/lib/python3.11/site-packages"
RAW = "\n".join(
    [
        # the SMTP process: a commit by our delivery code, inside SQLAlchemy
        f"{ROOT};Acceptance.commit (/srv/mailsvc/delivery.py);"
        f"Session.commit ({SITE}/sqlalchemy/orm/session.py) 30",
        # ... a regex inside our spam stage counts for the stage
        f"{ROOT};SpamStage.inspect (/srv/mailsvc/pipeline/spam.py);"
        "search (/usr/lib/python3.11/re/__init__.py) 10",
        # a wait and the bench's sampler: left out
        f"{ROOT};Thread.run (/usr/lib/python3.11/threading.py);"
        "Condition.wait (/usr/lib/python3.11/threading.py) 50",
        f"{ROOT};ServiceMonitor._sample (/srv/bench/service.py);rss_sum (/srv/bench/service.py) 5",
        # a pool worker validating a signature
        f"{ROOT};{FORKSERVER};{WORKER};verify_document (/srv/mailsvc/signatures/worker.py);"
        f"validate_pdf_signature ({SITE}/pyhanko/sign/validation/pdf_embedded.py) 60",
        # the load generator: left out
        f"{ROOT};{CLIENT};blast (/srv/bench/smtp.py) 99",
    ]
)


def test_flame_reads_the_services_stacks_from_pyspy_raw_output(tmp_path: Path) -> None:
    raw = tmp_path / "smtp.txt"
    raw.write_text(RAW + "\n")
    raw.with_suffix(".json").write_text('{"root": 100, "excluded": [103]}')
    assert split_frames(f"{ROOT};{FORKSERVER};f (x.py)") == [ROOT, FORKSERVER, "f (x.py)"]

    stacks = list(read_stacks(raw))
    assert [(s.group, s.count) for s in stacks] == [
        ("SMTP process", 30),
        ("SMTP process", 10),
        ("worker pool", 60),
    ]
    assert [bucket(s.frames) for s in stacks] == ["sqlalchemy", "mailsvc.pipeline.spam", "pyhanko"]
    assert sum(s.count for s in read_stacks(raw, waits=True)) == 155

    text = table(raw)
    assert "100 samples of running threads" in text
    assert "55 samples of threads waiting" in text
    assert "| pyhanko | 60.0 % | 0.0 % | 60.0 % | mailsvc.signatures.worker 60.0 % |" in text
    assert "| sqlalchemy | 30.0 % | 30.0 % | 0.0 % | mailsvc.delivery 30.0 % |" in text

    drawing = ET.fromstring(svg(raw, "bench/smtp.py"))
    titles = [t.text or "" for t in drawing.iter("{http://www.w3.org/2000/svg}title")]
    assert "Session.commit (sqlalchemy/orm/session.py) — 30 samples, 30.00 %" in titles
    assert not any("blast" in t or "Condition.wait" in t for t in titles)


def test_the_load_clients_data_is_what_a_client_library_writes() -> None:
    """bench.smtp.data_payload, prepared before the load, matches aiosmtplib's encoding of
    the same message (line endings, dot-stuffing, end of data)."""
    from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings

    from bench.smtp import data_payload

    cases = [
        b"Subject: a\r\n\r\n.leading dot\r\n..two\r\nlast line without end",
        b"bare\nnewlines\n.\nand\rcarriage returns\r",
        b".\r\n",
        b"",
    ]
    for message in cases:
        expected = PERIOD_REGEX.sub(b"..", normalize_message_line_endings(message)) + b".\r\n"
        assert data_payload(message) == expected


def test_the_load_client_delivers_each_message_intact_and_raises_on_a_refusal() -> None:
    """bench.smtp.blast against a real aiosmtpd server: every message arrives byte for byte
    (dot lines undone by the server), and a 550 stops the run with the server's text."""
    import asyncio

    import pytest
    from aiosmtpd.smtp import SMTP

    from bench.smtp import SmtpReplyError, blast

    received: list[bytes] = []

    class Handler:
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            content = envelope.original_content  # type: ignore[attr-defined]
            if b"refuse me" in content:
                return "550 5.7.1 refused by the test"
            received.append(content)
            return "250 OK"

    messages = [f"Subject: {i}\r\n\r\n.dot line {i}\r\nbody\r\n".encode() for i in range(7)]

    async def run(batch: list[bytes]) -> tuple[float, list[float]]:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Handler()), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await blast("127.0.0.1", port, batch, 3)
        finally:
            server.close()

    elapsed, latencies = asyncio.run(run(messages))
    assert sorted(received) == sorted(messages)
    assert len(latencies) == len(messages) and elapsed > 0
    with pytest.raises(SmtpReplyError, match=r"550 5\.7\.1 refused by the test"):
        asyncio.run(run([b"Subject: x\r\n\r\nrefuse me\r\n"]))


def test_phases_times_methods_where_they_are_called() -> None:
    """bench/phases.py's wrappers record each call's wall time (and a thread's CPU) under
    its label, return what the method returns and let its exception through."""
    from bench import phases

    class Probe:
        def work(self, n: int) -> int:
            if n < 0:
                raise ValueError(n)
            return sum(range(n))

        async def wait(self, label: str, seconds: float) -> str:
            await asyncio.sleep(seconds)
            return label

    phases.WALL.clear()
    phases.CPU.clear()
    phases.timed_function(Probe, "work", "work")
    phases.timed_coroutine(Probe, "wait", lambda label, _seconds: f"wait {label}")
    probe = Probe()
    assert probe.work(200_000) == sum(range(200_000))
    with pytest.raises(ValueError):
        probe.work(-1)
    assert asyncio.run(probe.wait("a", 0.02)) == "a"
    assert len(phases.WALL["work"]) == 2 and len(phases.CPU["work"]) == 2
    assert phases.CPU["work"][0] > 0 and phases.WALL["work"][0] > 0
    [waited] = phases.WALL["wait a"]
    assert waited >= 0.02 and "wait a" not in phases.CPU  # a coroutine's CPU is the loop's
    phases.WALL.clear()
    phases.CPU.clear()


def test_the_smtp_budget_is_what_the_other_processes_leave_of_the_aim() -> None:
    cpu = {"SMTP process": 5.0, "worker pool": 2.0, "clamd": 2.0, "Dovecot": 3.0, "other": 0.0}
    # 250 messages/s on two cores: 8 ms of CPU per message, 7 of them the other processes'
    assert smtp_budget(cpu, 2.0, 250.0) == pytest.approx(1.0)
    # 400/s leaves 5 ms: less than the other processes alone spend
    assert smtp_budget(cpu, 2.0, 400.0) == pytest.approx(-2.0)
    # what the SMTP process spends itself does not change its budget
    assert smtp_budget({**cpu, "SMTP process": 50.0}, 2.0, 250.0) == pytest.approx(1.0)


def test_the_budget_line_reads_the_runs_own_figures(capsys: pytest.CaptureFixture[str]) -> None:
    with ServiceMonitor(profile=False, interval=0.05) as monitor:
        child = burner()
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "done"
    try:
        monitor.report_budget(10, "message", 1000.0, "an aim")
    finally:
        finish(child)
    line = capsys.readouterr().out
    assert line.startswith("budget for an aim (1000.0 messages/s): the SMTP process may spend ")
    # the child's 0.4 s over 10 messages: some 40 ms each of "other", all of it outside
    # the SMTP process, so the budget at 1,000/s is far below zero
    spent = float(line.split("the other processes ")[1].rstrip(")\n"))
    assert spent >= 35.0
    budget = float(line.split("may spend ")[1].split(" ms")[0])
    assert budget < -30.0
