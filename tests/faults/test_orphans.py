"""No orphans: `kill -9` of `mailsvc serve` under load takes Dovecot and clamd with it
(parent-death signal), and a new serve stops daemons an earlier one left running for
this home (here: started without that signal, as by an older version) before its own."""

from __future__ import annotations

import subprocess
import threading
from collections import Counter
from pathlib import Path

from tests.e2e.conftest import PASSWORD, prepare_home, seed
from tests.faults.conftest import (
    CLERK,
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


class Load:
    """One client sending numbered messages until stopped; a message is retried (same
    bytes, same Message-ID) until it gets a 250. Records what was acknowledged."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.acknowledged: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            n = 0
            while not self.stop.is_set():
                n += 1
                mid = f"<load-{n}@sender.example.vn>"
                data = message(message_id=mid, subject=f"Tải {n}")
                while True:
                    try:
                        reply = send(self.serve.addresses["smtp"], data, timeout=20)
                    except OSError:
                        reply = "connection failed"
                    if reply.startswith("250"):
                        self.acknowledged.append(mid)
                        break
                    if self.stop.is_set():
                        return
                    self.stop.wait(0.05)  # serve is down or busy: retry the same message
        except BaseException as exc:  # the test reads it
            self.error = exc


def test_sigkill_under_load_leaves_no_orphans_and_restart_is_clean(
    service_home: Path, db_url: str
) -> None:
    prepare_home(service_home, db_url)
    seed(db_url, clerk())
    serve = Serve(service_home, db_url)
    try:
        serve.start()
        [first_dovecot] = dovecot_masters(service_home)
        [first_clamd] = clamds(service_home)
        load = Load(serve)
        load.thread.start()
        wait_until(lambda: len(load.acknowledged) >= 5, 60, "5 messages acknowledged")

        serve.kill()  # under load
        # The parent-death signal takes Dovecot, clamd and every other child along.
        wait_until(
            lambda: not dovecot_masters(service_home) and not clamds(service_home), 30,
            "Dovecot and clamd gone with serve",
        )  # fmt: skip
        wait_until(lambda: not marked(serve.mark), 30, "no process of the killed serve")

        # Daemons running this home's configuration without that signal (as an older
        # mailsvc left them): the next serve must stop them, not start a second set.
        stray_dovecot = subprocess.Popen(
            ["/usr/sbin/dovecot", "-F", "-c", str(service_home / "dovecot/dovecot.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        stray_clamd = subprocess.Popen(
            ["/usr/sbin/clamd", "-c", str(service_home / "clamav/clamd.conf")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        wait_until(
            lambda: len(dovecot_masters(service_home)) == 1 and len(clamds(service_home)) == 1,
            30, "stray daemons running",
        )  # fmt: skip
        old_imap = serve.addresses["imap"]

        serve.start()
        assert stray_dovecot.wait(timeout=5) is not None  # stopped by the new serve
        assert stray_clamd.wait(timeout=5) is not None
        assert "left running" in serve.log_tail(200)
        masters = dovecot_masters(service_home)
        assert len(masters) == 1 and masters[0] not in (first_dovecot, stray_dovecot.pid)
        daemons = clamds(service_home)
        assert len(daemons) == 1 and daemons[0] not in (first_clamd, stray_clamd.pid)

        count = len(load.acknowledged)
        wait_until(lambda: len(load.acknowledged) >= count + 5, 60, "mail flows again")
        load.stop.set()
        load.thread.join(timeout=60)
        assert load.error is None

        # IMAP answers on the new ports; every acknowledged message is there exactly once.
        assert serve.addresses["imap"] != old_imap
        ids = imap_message_ids(serve.addresses["imap"], CLERK, PASSWORD)
        counts = Counter(ids)
        assert all(n == 1 for n in counts.values()), counts.most_common(3)
        assert set(load.acknowledged) <= set(counts)
        assert serve.terminate() == 0
        wait_until(lambda: not marked(serve.mark), 30, "everything stopped after SIGTERM")
    finally:
        serve.stop_all()
