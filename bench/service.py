"""The service's processes under load, from /proc: CPU time by process group and peak RSS.

Used by bench/smtp.py and bench/documents.py around the load on our service::

    monitor = ServiceMonitor()
    ... blast_in_process(..., monitor=lambda client: (monitor.exclude(client), monitor)[1])
    monitor.report(count, "document")

(the client process is started and excluded before the monitor's first sample)

The service is this process (the benches run ``App`` in-process) and all its descendants,
less the processes given to :meth:`ServiceMonitor.exclude` (the load generator) and the
monitor's own py-spy. Each descendant belongs to the group of the child of this process it
descends from: ``worker pool`` (the fork server, its workers and multiprocessing's resource
tracker), ``clamd``, ``Dovecot`` (the master and every process it starts); this process is
the ``SMTP process``; anything else is ``other``.

- CPU: user + system time of every process of the service at the start and at the end; for
  every process but this one, the CPU of its children it has reaped counts too (a Dovecot
  LMTP process or a recycled worker that exited during the run still counts). The sampler
  thread's own CPU is taken off the SMTP process's figure.
- RSS: a thread walks the tree every ``interval`` seconds (``/proc/PID/task/*/children``) and
  sums ``VmRSS``; the peak of the sum and the processes at that peak are reported. A sum of
  RSS counts the pages shared between processes (the fork server's preloaded modules in
  every worker) once per process: an upper bound of what the service holds. It sums
  ``Pss`` (``smaps_rollup``, every fifth sample) as well: the peak PSS is what it holds.
- Profile: with ``BENCH_PROFILE=PATH`` in the environment (set by bench/flame.py), py-spy
  samples the service during the load (``--subprocesses``, raw output into PATH; with
  ``BENCH_PROFILE_GIL=1`` only threads holding the GIL, which leaves out threads blocked
  in a system call such as fsync) and
  ``PATH.json`` records which processes were the service's, for bench/flame.py's table.
  With ``BENCH_PERF=PATH``, ``perf record -a -g`` samples the whole machine during the
  load into PATH (kernel and native frames: system calls, SQLite, OpenSSL; ``perf script
  -i PATH`` reads it).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

GROUPS = ("SMTP process", "worker pool", "clamd", "Dovecot", "other")
TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1_000_000


@dataclass(frozen=True)
class Proc:
    pid: int
    group: str
    label: str  # short description: "worker", "dovecot/lmtp", ...
    command: str  # the command line, cut to 70 characters
    cpu: float  # seconds (with reaped children's, but for the root)
    rss: int  # bytes
    system: float = 0.0  # the part of ``cpu`` spent in the kernel


def children(pid: int) -> list[int]:
    """Child pids of ``pid`` (every thread's children: a child belongs to the thread that
    forked it)."""
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                out.extend(int(c) for c in f.read().split())
        except OSError:
            continue
    return out


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def group_of_command(cmdline: str, comm: str) -> str:
    """The group of a direct child of the service's process (its descendants inherit it)."""
    if comm == "clamd" or "clamd" in cmdline.split(" ", 1)[0]:
        return "clamd"
    if comm.startswith("dovecot") or cmdline.startswith("dovecot"):
        return "Dovecot"
    if "multiprocessing.forkserver" in cmdline or "multiprocessing.resource_tracker" in cmdline:
        return "worker pool"
    return "other"


def _label(group: str, depth: int, cmdline: str, comm: str) -> str:
    if depth == 0:
        return "SMTP process (mailsvc, this bench)"
    if group == "worker pool":
        if "resource_tracker" in cmdline:
            return "worker pool: resource tracker"
        return "worker pool: fork server" if depth == 1 else "worker pool: worker"
    if group == "Dovecot":
        return cmdline.split(" ", 1)[0] or comm
    return comm


def walk(root: int, exclude: set[int]) -> Iterator[tuple[int, int, str]]:
    """(pid, depth, group) of ``root`` and its descendants, less ``exclude`` and theirs."""
    stack: list[tuple[int, int, str]] = [(root, 0, "SMTP process")]
    while stack:
        pid, depth, group = stack.pop()
        if pid in exclude:
            continue
        yield pid, depth, group
        for child in children(pid):
            if depth == 0:
                try:
                    cmd = _read(f"/proc/{child}/cmdline").replace(b"\0", b" ").decode()
                    comm = _read(f"/proc/{child}/comm").decode().strip()
                except OSError:
                    continue
                stack.append((child, 1, group_of_command(cmd, comm)))
            else:
                stack.append((child, depth + 1, group))


def rss_sum(root: int, exclude: set[int]) -> tuple[int, list[tuple[int, int, str, int]]]:
    """Sum of the tree's RSS in bytes, and (pid, depth, group, bytes) per process."""
    rows: list[tuple[int, int, str, int]] = []
    for pid, depth, group in walk(root, exclude):
        try:
            resident = int(_read(f"/proc/{pid}/statm").split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        rows.append((pid, depth, group, resident))
    return sum(r[3] for r in rows), rows


def describe_process(pid: int, depth: int, group: str) -> tuple[str, str]:
    """(label, command line cut to 70 characters) of a process of the tree."""
    try:
        cmd = _read(f"/proc/{pid}/cmdline").replace(b"\0", b" ").decode().strip()
        comm = _read(f"/proc/{pid}/comm").decode().strip()
    except OSError:
        return "(exited)", ""
    return _label(group, depth, cmd, comm), cmd[:70]


def snapshot(root: int, exclude: set[int]) -> dict[int, Proc]:
    """Every process of the tree with its CPU seconds and RSS now."""
    out: dict[int, Proc] = {}
    for pid, depth, group in walk(root, exclude):
        try:
            stat = _read(f"/proc/{pid}/stat").decode()
            resident = int(_read(f"/proc/{pid}/statm").split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            continue
        label, cmd = describe_process(pid, depth, group)
        fields = stat[stat.rfind(")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12])
        kernel = int(fields[12])
        if depth > 0:  # reaped children's CPU: the root reaps the load generator too
            ticks += int(fields[13]) + int(fields[14])
            kernel += int(fields[14])
        out[pid] = Proc(pid, group, label, cmd, ticks / TICK, resident, kernel / TICK)
    return out


def pss(pid: int) -> int:
    """Proportional set size in bytes (shared pages divided among their processes)."""
    try:
        for line in _read(f"/proc/{pid}/smaps_rollup").splitlines():
            if line.startswith(b"Pss:"):
                return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def pyspy_binary() -> str | None:
    """py-spy from this interpreter's environment, else from PATH."""
    here = Path(sys.executable).parent / "py-spy"
    return str(here) if here.exists() else shutil.which("py-spy")


class ServiceMonitor:
    """CPU by group over the ``with`` block, and the peak RSS sampled during it."""

    def __init__(
        self, root: int | None = None, interval: float = 0.1, *, profile: bool = True
    ) -> None:
        self.root = root if root is not None else os.getpid()
        self.interval = interval
        self.excluded: set[int] = set()
        self.before: dict[int, Proc] = {}
        self.after: dict[int, Proc] = {}
        self.peak = 0
        self.peak_rows: list[tuple[int, str, str, int]] = []  # pid, group, label, bytes
        self.samples = 0
        self.sampler_cpu = 0.0
        self.elapsed = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.pss_end = 0
        self.peak_pss = 0  # bytes: the largest sum of PSS seen
        path = os.environ.get("BENCH_PROFILE") if profile else None
        self._profile = Path(path) if path else None
        self._pyspy: subprocess.Popen[bytes] | None = None
        perf = os.environ.get("BENCH_PERF") if profile else None
        self._perf_path = Path(perf) if perf else None
        self._perf: subprocess.Popen[bytes] | None = None
        self._perf_ctl = -1

    def exclude(self, pid: int) -> None:
        """Leave ``pid`` (and its descendants) out: the load generator, not the service."""
        self.excluded.add(pid)

    def _sample(self) -> None:
        started = time.thread_time()
        while True:
            stopping = self._stop.is_set()  # one last sample once the block has ended
            total, rows = rss_sum(self.root, self.excluded)
            if self.samples % 5 == 0 or stopping:  # smaps_rollup costs more than statm
                self.peak_pss = max(self.peak_pss, sum(pss(row[0]) for row in rows))
            self.samples += 1
            if total > self.peak:
                self.peak = total
                self.peak_rows = [
                    (pid, group, describe_process(pid, depth, group)[0], resident)
                    for pid, depth, group, resident in rows
                ]
            if stopping:
                break
            self._stop.wait(self.interval)
        self.sampler_cpu = time.thread_time() - started

    def __enter__(self) -> ServiceMonitor:
        if self._profile is not None:
            self._start_pyspy(self._profile)
        if self._perf_path is not None:
            self._start_perf(self._perf_path)
        self.before = snapshot(self.root, self.excluded)
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._sample, name="rss-sampler", daemon=True)
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.elapsed = time.perf_counter() - self._started
        self.after = snapshot(self.root, self.excluded)
        self.pss_end = sum(map(pss, self.after))
        if self._pyspy is not None:
            self._stop_pyspy()
        if self._perf is not None:
            self._perf.send_signal(signal.SIGINT)
            self._perf.wait()
            os.close(self._perf_ctl)

    def _start_perf(self, path: Path) -> None:
        """``perf record`` of every process on the machine while the load runs (kernel and
        native stacks: system calls, SQLite, OpenSSL, which py-spy does not see). perf
        starts with its events off and turns them on when told, answering once they are."""
        ctl_read, ctl_write = os.pipe()
        ack_read, ack_write = os.pipe()
        argv = ["perf", "record", "-a", "-g", "-e", "cpu-clock", "-F", "499", "-D", "-1"]
        argv += ["--control", f"fd:{ctl_read},{ack_write}", "-o", str(path)]
        self._perf = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            pass_fds=(ctl_read, ack_write),
        )  # fmt: skip
        os.close(ctl_read)
        os.close(ack_write)
        self.exclude(self._perf.pid)
        os.write(ctl_write, b"enable\n")
        with os.fdopen(ack_read, "rb") as ack:
            if not ack.readline().startswith(b"ack"):
                raise SystemExit(f"perf did not start (exit status {self._perf.wait()})")
        self._perf_ctl = ctl_write  # open while perf runs

    def _start_pyspy(self, path: Path) -> None:
        binary = pyspy_binary()
        if binary is None:
            raise SystemExit("BENCH_PROFILE is set but py-spy is not installed (pip: py-spy)")
        path.parent.mkdir(parents=True, exist_ok=True)
        argv = [binary, "record", "--pid", str(self.root), "--subprocesses", "--nonblocking"]
        argv += ["--nolineno", "--full-filenames"]
        if os.environ.get("BENCH_PROFILE_GIL"):
            argv.append("--gil")  # only the thread holding the GIL: where Python CPU goes
        self._pyspy = subprocess.Popen(
            [*argv, "--format", "raw", "--output", str(path)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        self.exclude(self._pyspy.pid)
        assert self._pyspy.stdout is not None
        for line in self._pyspy.stdout:  # "py-spy> Sampling process 100 times a second"
            if b"Sampling process" in line:
                break
        else:
            raise SystemExit(f"py-spy did not start (exit status {self._pyspy.wait()})")

    def _stop_pyspy(self) -> None:
        assert self._pyspy is not None and self._profile is not None
        self._pyspy.send_signal(signal.SIGINT)
        assert self._pyspy.stdout is not None
        tail = self._pyspy.stdout.read().decode(errors="replace")
        if self._pyspy.wait() != 0 or not self._profile.exists():
            raise SystemExit(f"py-spy failed: {tail}")
        meta = {
            "root": self.root,
            "excluded": sorted(self.excluded),
            "elapsed_seconds": round(self.elapsed, 3),
            "command": " ".join(["bench/" + Path(sys.argv[0]).name, *sys.argv[1:]]),
        }
        self._profile.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")

    # ------------------------------------------------------------------ figures

    def cpu_by_group(self) -> dict[str, float]:
        """CPU seconds each group spent during the block."""
        totals = self._by_group(lambda proc: proc.cpu)
        totals["SMTP process"] -= self.sampler_cpu
        return totals

    def system_by_group(self) -> dict[str, float]:
        """The kernel's part of :meth:`cpu_by_group` (system calls: sockets, files, fsync)."""
        return self._by_group(lambda proc: proc.system)

    def _by_group(self, seconds: Callable[[Proc], float]) -> dict[str, float]:
        totals = dict.fromkeys(GROUPS, 0.0)
        for proc in self.after.values():
            totals[proc.group] += seconds(proc)
        for proc in self.before.values():
            totals[proc.group] -= seconds(proc)
        return totals

    def report_processes(self, count: int, unit: str) -> None:
        """CPU per ``unit`` of each process alive through the block, heaviest first."""
        rows = sorted(
            (
                (
                    proc.cpu - self.before[pid].cpu if pid in self.before else proc.cpu,
                    proc.command + ("" if pid in self.before else " (started during the run)"),
                )
                for pid, proc in self.after.items()
            ),
            reverse=True,
        )
        print(f"CPU per {unit}, by process (alive at the end of the run):")
        for used, cmd in rows[:10]:
            if used > 0.05:
                print(f"  {used / count * 1000:6.1f} ms  {cmd}")

    def report(self, count: int, unit: str) -> None:
        """CPU per ``unit`` by group, and the peak RSS with its processes."""
        by_group = self.cpu_by_group()
        shown = [g for g in GROUPS if g != "other" or abs(by_group[g]) > 0.005]
        parts = ", ".join(f"{g} {by_group[g] / count * 1000:.1f} ms" for g in shown)
        total = sum(by_group.values()) / count * 1000
        print(
            f"CPU per {unit} by process group: {parts}; total {total:.1f} ms "
            f"(the RSS sampler's {self.sampler_cpu * 1000:.0f} ms taken off)"
        )
        kernel = self.system_by_group()
        print(
            "  of which in the kernel: "
            + ", ".join(f"{g} {kernel[g] / count * 1000:.1f} ms" for g in shown)
        )
        print(
            f"peak PSS of the service: {self.peak_pss / MB:.1f} MB (the memory it holds: "
            "each shared page divided among the processes sharing it)"
        )
        print(
            f"peak RSS of the service: {self.peak / MB:.1f} MB "
            f"({len(self.peak_rows)} processes; {self.samples} samples, every "
            f"{self.interval * 1000:.0f} ms; RSS summed, shared pages counted per process)"
        )
        print(
            f"  (at the end of the load: RSS sum {sum(p.rss for p in self.after.values()) / MB:.1f}"
            f" MB, PSS sum {self.pss_end / MB:.1f} MB: shared pages divided among processes)"
        )
        by_group_rss = dict.fromkeys(GROUPS, 0)
        for _pid, group, _label, resident in self.peak_rows:
            by_group_rss[group] += resident
        print(
            "  by group: "
            + ", ".join(f"{g} {by_group_rss[g] / MB:.1f} MB" for g in GROUPS if by_group_rss[g])
        )
        for pid, _group, label, resident in sorted(self.peak_rows, key=lambda r: -r[3]):
            print(f"  {resident / MB:7.1f} MB  pid {pid:<7} {label}")

    def report_budget(self, count: int, unit: str, rate: float, target: str) -> None:
        """What the SMTP process may cost per ``unit`` for ``rate`` units/s (``target``
        says which aim that rate is), with the other groups' CPU as measured, at the
        cores this run kept busy and at all of the machine's cores."""
        cpu = {g: seconds / count * 1000 for g, seconds in self.cpu_by_group().items()}
        busy = sum(cpu.values()) * count / 1000 / self.elapsed if self.elapsed else 0.0
        cores = os.cpu_count() or 1
        ours = cpu["SMTP process"]
        print(
            f"budget for {target} ({rate:.1f} {unit}s/s): the SMTP process may spend "
            f"{smtp_budget(cpu, busy, rate):.1f} ms per {unit} at the {busy:.2f} cores this "
            f"run kept busy, {smtp_budget(cpu, cores, rate):.1f} ms with all {cores} busy "
            f"(it spent {ours:.1f}; the other processes {sum(cpu.values()) - ours:.1f})"
        )


def smtp_budget(cpu_ms: dict[str, float], cores: float, rate: float) -> float:
    """The SMTP process's CPU per unit (ms) at which ``rate`` units/s are reached when
    ``cores`` cores are kept busy and every other group spends what ``cpu_ms`` says (ms
    per unit, by group): what the service's own process may cost for a target. Negative
    when the other processes alone (the pool, clamd, Dovecot) cost more than the target
    leaves, so that no SMTP process, however cheap, reaches it at that load."""
    others = sum(ms for group, ms in cpu_ms.items() if group != "SMTP process")
    return cores * 1000 / rate - others


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc ``malloc_trim``), so that what the
    bench itself held (messages, the baseline's buffers) does not count as the service's."""
    import ctypes
    import gc

    gc.collect()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
