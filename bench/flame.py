"""Where the time goes: a bench under py-spy, its flame graph (SVG) and a table by module.

    python bench/flame.py record smtp [ARGS...]       # bench/smtp.py ARGS under py-spy
    python bench/flame.py record documents [ARGS...]  # bench/documents.py ARGS
    python bench/flame.py table docs/perf/smtp.txt    # the table again from the raw file
    python bench/flame.py svg docs/perf/smtp.txt      # the SVG again from the raw file

``record`` runs the bench with BENCH_PROFILE=docs/perf/<bench>.txt: bench/service.py starts
``py-spy record --subprocesses --nolineno --format raw`` on the bench's own process (the
service: the benches run App in-process) when the load on our service starts, and stops it
when the load ends, so the baseline, the ceiling and the setup are not in the profile. py-spy
samples 100 times a second every thread of the Python processes of the tree (the SMTP
process, the fork server and the pool's workers) that is running, not waiting; the load
generator's process is left out (docs/perf/<bench>.json lists it). Then
docs/perf/<bench>.svg is drawn from the raw stacks (frames coloured by the module they
belong to) and the table is printed.

The table gives each sample to the innermost frame that names a place: a module of ours
(``mailsvc.<module>``, ``mailsvc.<package>.<module>``), a library (its top-level package:
aiosmtpd, sqlalchemy, pyhanko, ...) or one of the standard library's packages that do work
of their own (email, asyncio, ssl, json, logging, multiprocessing, imports). Small helpers
of the standard library (re, hashlib, base64, threading, ...) count for their caller.
"called from" names the innermost modules of ours on those samples' stacks.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import subprocess
import sys
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.service import GROUPS, group_of_command

ROOT = Path(__file__).resolve().parent.parent
PERF = ROOT / "docs" / "perf"
RATE = 100  # py-spy's default samples per second
# Standard library packages shown by name; every other stdlib frame counts for its caller.
NAMED_STDLIB = {
    "email": "email",
    "asyncio": "asyncio",
    "selectors": "asyncio",
    "ssl": "ssl",
    "sqlite3": "sqlite3",
    "json": "json",
    "logging": "logging",
    "multiprocessing": "multiprocessing",
    "concurrent": "multiprocessing",
    "pickle": "pickle",
    "zipfile": "zipfile",
    "xml": "xml",
}


@dataclass(frozen=True)
class Stack:
    group: str  # SMTP process, worker pool, ...
    frames: tuple[str, ...]  # outermost first: "function (path)"
    count: int


# Where a thread waits (a lock, a condition, a queue, select): py-spy counts a thread as
# running when the system says it is runnable, which a woken thread is until it has the
# GIL again; on a busy machine that is often. These leaves are no work of ours.
WAITS = {
    ("Condition.wait", "threading.py"),
    ("Event.wait", "threading.py"),
    ("Semaphore.acquire", "threading.py"),
    ("Thread._wait_for_tstate_lock", "threading.py"),
    ("_worker", "concurrent/futures/thread.py"),
    ("EpollSelector.select", "selectors.py"),
    ("PollSelector.select", "selectors.py"),
    ("_PollLikeSelector.select", "selectors.py"),
    ("SelectSelector.select", "selectors.py"),
    ("ThreadedChildWatcher._do_waitpid", "asyncio/unix_events.py"),
}

# The bench's threads in the service's process: not the service's work.
BENCH_THREADS = {"ServiceMonitor._sample", "blast_in_process"}


def normalise(frame: str) -> tuple[str, str]:
    """(function, path) with the path relative to site-packages, the standard library or
    the repository: ``("Session.commit", "sqlalchemy/orm/session.py")``."""
    if not frame.endswith(")") or " (" not in frame:
        return frame, ""
    function, _, path = frame[:-1].rpartition(" (")
    for marker in ("site-packages/", "dist-packages/"):
        if marker in path:
            path = path.rsplit(marker, 1)[1]
    for ours in ("/mailsvc/", "/bench/", "/tests/"):
        if ours in path:
            path = ours[1:] + path.rsplit(ours, 1)[1]
    if path.startswith("/usr/lib/python3") or path.startswith("/usr/local/lib/python3"):
        path = path.split("/", 4)[-1]
    return function, path


def short(frame: str) -> str:
    function, path = normalise(frame)
    return f"{function} ({path})" if path else function


def module_of(frame: str) -> str | None:
    """The place a frame names, or None for a standard-library helper (its caller's)."""
    function, path = normalise(frame)
    if path.startswith("<frozen importlib") or function == "<module>":
        return "imports"
    if path.startswith("<") or not path:
        return None
    parts = path.split("/")
    top = parts[0].removesuffix(".py")
    if top == "mailsvc":  # mailsvc.delivery, mailsvc.documents.metadata
        return ".".join(part.removesuffix(".py") for part in parts[:3]).removesuffix(".__init__")
    if top in sys.stdlib_module_names:
        return NAMED_STDLIB.get(top)
    return top


def bucket(frames: tuple[str, ...]) -> str:
    for frame in reversed(frames):
        name = module_of(frame)
        if name is not None:
            return name
    return "standard library (other)"


def caller(frames: tuple[str, ...]) -> str | None:
    """The innermost module of ours on the stack."""
    for frame in reversed(frames):
        name = module_of(frame)
        if name is not None and name.startswith("mailsvc."):
            return name
    return None


def is_wait(stack: Stack) -> bool:
    """A thread waiting, or one of the bench's own (the RSS sampler, the client's waiter)."""
    if any(normalise(f)[0] in BENCH_THREADS for f in stack.frames):
        return True
    return bool(stack.frames) and normalise(stack.frames[-1]) in WAITS


def split_frames(stack: str) -> list[str]:
    """py-spy's ``;``-joined frames; a process frame, ``process PID:"command line"``, may
    hold ``;`` itself (the fork server's ``-c`` program)."""
    frames: list[str] = []
    for piece in stack.split(";"):
        if frames and frames[-1].startswith("process ") and not frames[-1].endswith('"'):
            frames[-1] += ";" + piece
        else:
            frames.append(piece)
    return frames


def read_stacks(raw: Path, *, waits: bool = False) -> Iterator[Stack]:
    """The service's stacks from py-spy's raw output: the excluded processes dropped, and
    the waits unless ``waits``."""
    meta_path = raw.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    excluded = {str(p) for p in meta.get("excluded", ())}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = split_frames(stack)
        chain = [f for f in frames if f.startswith("process ")]
        pids = [f.split()[1].split(":", 1)[0] for f in chain]
        if any(pid in excluded for pid in pids):
            continue
        if len(chain) <= 1:
            group = "SMTP process"
        else:
            command = chain[1].split(":", 1)[1].strip('"')
            group = group_of_command(command, "")
        found = Stack(group, tuple(f for f in frames if not f.startswith("process ")), int(count))
        if waits or not is_wait(found):
            yield found


def table(raw: Path, *, top: int = 18) -> str:
    stacks = list(read_stacks(raw))
    total = sum(s.count for s in stacks)
    waited = sum(s.count for s in read_stacks(raw, waits=True)) - total
    if not total:
        return f"{raw}: no samples"
    groups = [g for g in GROUPS if any(s.group == g for s in stacks)]
    by_bucket: Counter[str] = Counter()
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    callers: dict[str, Counter[str]] = defaultdict(Counter)
    for s in stacks:
        name = bucket(s.frames)
        by_bucket[name] += s.count
        by_group[name][s.group] += s.count
        who = caller(s.frames) if name != "imports" else None
        if who is not None and who != name:
            callers[name][who] += s.count

    def pct(n: int) -> str:
        return f"{n / total * 100:.1f} %"

    lines = [
        f"{raw.name}: {total:,} samples of running threads ({RATE}/s) of the service's Python "
        "processes: "
        + ", ".join(f"{g} {pct(sum(s.count for s in stacks if s.group == g))}" for g in groups)
        + f"; {waited:,} samples of threads waiting (a lock, a queue, select) or of the "
        "bench's own threads left out",
        "",
        "| where | share | " + " | ".join(groups) + " | called from (ours) |",
        "| --- | ---: | " + " | ".join("---:" for _ in groups) + " | --- |",
    ]
    rows = by_bucket.most_common()
    for name, n in rows[:top]:
        who = ", ".join(f"{c} {pct(k)}" for c, k in callers[name].most_common(3))
        cells = " | ".join(pct(by_group[name][g]) for g in groups)
        lines.append(f"| {name} | {pct(n)} | {cells} | {who} |")
    rest = rows[top:]
    if rest:
        n = sum(k for _, k in rest)
        blank = " | ".join("" for _ in groups)
        lines.append(f"| {len(rest)} others | {pct(n)} | {blank} | |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------- flame graph


@dataclass
class Node:
    name: str
    count: int = 0
    children: dict[str, Node] = field(default_factory=dict)


def colour(name: str | None) -> str:
    if name is None:
        return "hsl(0,0%,78%)"
    if name.startswith("mailsvc."):
        return f"hsl({zlib.crc32(name.encode()) % 50},85%,62%)"  # ours: reds and oranges
    return f"hsl({70 + zlib.crc32(name.encode()) % 200},55%,66%)"


def svg(raw: Path, title: str, width: int = 1200, row: int = 16, min_px: float = 1.0) -> str:
    root = Node("all")
    for s in read_stacks(raw):
        root.count += s.count
        node = root
        for name in (s.group, *map(short, s.frames)):
            node = node.children.setdefault(name, Node(name))
            node.count += s.count
    total = root.count or 1

    def depth(node: Node) -> int:  # of the frames wide enough to be drawn
        if node.count / total * width < min_px:
            return 0
        return 1 + max((depth(c) for c in node.children.values()), default=0)

    levels = depth(root)
    top = 40
    height = top + levels * row + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="DejaVu Sans Mono,monospace" '
        'font-size="11">',
        f'<rect width="{width}" height="{height}" fill="#fdfdf6"/>',
        f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="15">'
        f"{html.escape(title)}</text>",
        f'<text x="10" y="34" fill="#555">{total:,} samples of running threads ({RATE}/s). '
        "Width: share of samples. Colour: module (ours red/orange, libraries green/blue/"
        "violet, standard-library helpers grey); hover: figures.</text>",
    ]

    def draw(node: Node, x: float, level: int) -> None:
        w = node.count / total * width
        if w < min_px:
            return
        y = top + level * row  # icicle: callers above their callees
        label = node.name
        share = node.count / total * 100
        tip = f"{label} — {node.count:,} samples, {share:.2f} %"
        fill = colour(module_of(label)) if level > 1 else "hsl(210,20%,80%)"
        text = ""
        chars = int((w - 4) / 6.7)
        if chars >= 3:
            shown = label if len(label) <= chars else label[: chars - 1] + "…"
            text = f'<text x="{x + 2:.1f}" y="{y + row - 4}">{html.escape(shown)}</text>'
        out.append(
            f"<g><title>{html.escape(tip)}</title>"
            f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="{row - 1}" fill="{fill}" '
            f'rx="2"/>{text}</g>'
        )
        cx = x
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, cx, level + 1)
            cx += child.count / total * width

    draw(root, 0.0, 0)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def record(bench: str, args: list[str]) -> None:
    script = ROOT / "bench" / f"{bench}.py"
    if not script.exists():
        raise SystemExit(f"no bench/{bench}.py")
    PERF.mkdir(parents=True, exist_ok=True)
    raw = PERF / f"{bench}.txt"
    raw.unlink(missing_ok=True)
    env = {**os.environ, "BENCH_PROFILE": str(raw)}
    subprocess.run([sys.executable, str(script), *args], env=env, check=True)
    write_svg(raw)
    text = table(raw)
    raw.with_suffix(".md").write_text(text + "\n")
    print()
    print(text)


def write_svg(raw: Path) -> None:
    meta_path = raw.with_suffix(".json")
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    title = meta.get("command", f"bench/{raw.stem}.py")
    target = raw.with_suffix(".svg")
    target.write_text(svg(raw, f"{title}: where the service's CPU goes (py-spy)"))
    print(f"flame graph: {target.relative_to(ROOT) if target.is_relative_to(ROOT) else target}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    rec = sub.add_parser("record", help="run a bench under py-spy; SVG and table")
    rec.add_argument("bench", help="smtp or documents (bench/<name>.py)")
    rec.add_argument("args", nargs=argparse.REMAINDER, help="the bench's own arguments")
    for name in ("table", "svg"):
        sub.add_parser(name).add_argument("raw", type=Path, help="docs/perf/<bench>.txt")
    args = parser.parse_args()
    if args.command == "record":
        record(args.bench, args.args)
    elif args.command == "table":
        print(table(args.raw))
    else:
        write_svg(args.raw)


if __name__ == "__main__":
    main()
