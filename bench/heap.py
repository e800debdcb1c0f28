"""The cyclic collector's part of a signed document's work in a pool worker: the same
documents, one process, rounds alternating between CPython's default collector settings
and the service's (``mailsvc.supervisor.settle_heap``: what the process holds frozen, the
young generation collected after 10,000 allocations instead of 700). Not a test.

    .venv/bin/python bench/heap.py [--documents 20] [--rounds 8]

Each round runs bench/documents.py's necessary work (the service's MIME parse, pyHanko's
validation of both signatures, text extraction) on every document in both settings, in
alternating order, after a warm-up (trust material parsed, caches filled). Alternating
in one process is what makes the comparison hold on this machine, whose speed drifts by a
fifth within minutes. Prints the CPU per document of each round in each setting, the
medians, and in how many rounds the settled heap spent less.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()

    from bench.documents import document_messages, necessary_settings, necessary_work, prepare_home
    from mailsvc.supervisor import settle_heap

    with tempfile.TemporaryDirectory(prefix="mailsvc-bench-") as tmp:
        settings = prepare_home(Path(tmp) / "home")
        policy, validation, version, limits = necessary_settings(settings)
        messages = document_messages(args.documents)

        def one_pass() -> float:
            started = time.process_time()
            for raw in messages:
                necessary_work(raw, policy, validation, version, limits)
            return (time.process_time() - started) / len(messages) * 1000

        one_pass()  # warm-up
        spent: dict[str, list[float]] = {"default": [], "settled": []}
        for turn in range(args.rounds):
            order = ("default", "settled") if turn % 2 == 0 else ("settled", "default")
            for setting in order:
                undo = settle_heap() if setting == "settled" else None
                try:
                    spent[setting].append(one_pass())
                finally:
                    if undo is not None:
                        undo()
            gc.collect()

    for setting, figures in spent.items():
        print(
            f"{setting:8} median {statistics.median(figures):5.2f} ms CPU per document; "
            f"rounds: {', '.join(f'{f:.1f}' for f in figures)}"
        )
    lower = sum(s < d for s, d in zip(spent["settled"], spent["default"], strict=True))
    ratio = statistics.median(spent["settled"]) / statistics.median(spent["default"])
    print(
        f"settled/default: {ratio:.2f} (medians); the settled heap spent less in {lower} "
        f"of {args.rounds} rounds"
    )


if __name__ == "__main__":
    main()
