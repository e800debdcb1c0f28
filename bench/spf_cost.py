"""SPF per-message cost: pyspf fed by our resolver, three ways, beside pyspf alone.

    python bench/spf_cost.py [--checks 2000] [--latency-ms 2] [--concurrent 200]

Zone: a typical agency setup (hanoi.gov.vn: include of a record with ip4/ip6 ranges, then
a and mx; 6 DNS lookups for a client at the end of the list). Three measurements:

1. CPU per check with an in-memory resolver (no waiting on DNS), client passing at the
   last mechanism, sequentially:
   * baseline: pyspf's own ``query.check()`` with its module DNS function pointed at the
     same zone (synchronous: what the library costs by itself);
   * chosen: ``check_spf`` (pyspf re-run on the event loop, each missing lookup fetched
     through the async resolver, see mailsvc/pipeline/authentication.py);
   * thread: pyspf in a thread pool, its DNS method waiting on the event loop for each
     lookup (``run_coroutine_threadsafe``);
   * own: the RFC 7208 implementation this replaced (loaded from git history when the
     repository has it; it failed 31 of the 203 RFC 7208 suite tests).
2. Throughput with ``--concurrent`` checks at once and ``--latency-ms`` per DNS answer
   (a resolver that sleeps): chosen vs thread. Threads block on DNS; the loop does not.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import spf

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailsvc.adapters.dns import OriginResolver
from mailsvc.pipeline.authentication import check_spf
from tests.spf_zone import ZoneResolver

ROOT = Path(__file__).resolve().parent.parent

CLIENT = "203.0.113.25"
SENDER = "vanthu@hanoi.gov.vn"
ZONE: dict[str, list[Any]] = {
    "hanoi.gov.vn": [
        {"TXT": "v=spf1 include:_spf.hanoi.gov.vn a mx -all"},
        {"A": "192.0.2.10"},
        {"MX": [10, "mx1.hanoi.gov.vn"]},
        {"MX": [20, "mx2.hanoi.gov.vn"]},
    ],
    "_spf.hanoi.gov.vn": [
        {"TXT": "v=spf1 ip4:192.0.2.0/26 ip4:198.51.100.0/24 ip6:2001:db8:25::/48 ~all"}
    ],
    "mx1.hanoi.gov.vn": [{"A": "192.0.2.20"}],
    "mx2.hanoi.gov.vn": [{"A": CLIENT}],
}
OLD_COMMIT = "694bbdd"  # the last commit with our own RFC 7208 implementation


class SlowResolver:
    """The zone, answered after ``latency`` seconds (a DNS round trip)."""

    def __init__(self, zone: ZoneResolver, latency: float) -> None:
        self._zone = zone
        self._latency = latency

    async def _wait(self) -> None:
        await asyncio.sleep(self._latency)

    async def txt(self, name: str) -> Sequence[str]:
        await self._wait()
        return await self._zone.txt(name)

    async def a(self, name: str) -> Sequence[str]:
        await self._wait()
        return await self._zone.a(name)

    async def aaaa(self, name: str) -> Sequence[str]:
        await self._wait()
        return await self._zone.aaaa(name)

    async def mx(self, name: str) -> Sequence[str]:
        await self._wait()
        return await self._zone.mx(name)

    async def ptr(self, address: str) -> Sequence[str]:
        await self._wait()
        return await self._zone.ptr(address)


# -- baseline: pyspf alone, its module DNS function on the zone ---------------------------


def _pyspf_dnslookup(name: str, qtype: str, strict: object = True, timeout: object = None) -> list:
    entries = ZONE.get(name.lower().rstrip("."), [])
    out: list[tuple[tuple[str, str], object]] = []
    for entry in entries:
        ((kind, value),) = entry.items()
        if kind != qtype:
            continue
        if kind == "TXT":
            value = (value.encode(),)
        elif kind == "MX":
            value = tuple(value)
        out.append(((name, qtype), value))
    return out


def pyspf_alone() -> str:
    original = spf.DNSLookup
    spf.DNSLookup = _pyspf_dnslookup
    try:
        result, _, _ = spf.query(i=CLIENT, s=SENDER, h="mx2.hanoi.gov.vn").check()
    finally:
        spf.DNSLookup = original
    return str(result)


# -- the thread alternative ---------------------------------------------------------------


class _ThreadQuery(spf.query):
    """pyspf's query whose DNS waits on the event loop's resolver (from a worker thread)."""

    def __init__(self, resolver: OriginResolver, loop: asyncio.AbstractEventLoop, **kw: Any):
        super().__init__(**kw)
        self._resolver = resolver
        self._loop = loop

    def dns(self, name: str, qtype: str, cnames: object = None, ignore_void: bool = False):
        name = name.rstrip(".").lower()
        method = {"TXT": "txt", "A": "a", "AAAA": "aaaa", "MX": "mx"}.get(qtype)
        if method is None:
            return []
        future = asyncio.run_coroutine_threadsafe(getattr(self._resolver, method)(name), self._loop)
        answer = list(future.result(timeout=10))
        if qtype == "TXT":
            return [(r.encode(),) for r in answer]
        if qtype == "MX":
            return list(enumerate(answer))
        return answer


async def thread_check(resolver: OriginResolver, pool: ThreadPoolExecutor) -> str:
    loop = asyncio.get_running_loop()

    def run() -> str:
        query = _ThreadQuery(resolver, loop, i=CLIENT, s=SENDER, h="mx2.hanoi.gov.vn")
        return str(query.check()[0])

    return await loop.run_in_executor(pool, run)


# -- our former implementation, from git history ------------------------------------------


def load_own() -> ModuleType | None:
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{OLD_COMMIT}:mailsvc/pipeline/authentication.py"],
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    path = Path("/tmp") / "mailsvc_bench_spf_own.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("mailsvc_bench_spf_own", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# -- measuring ----------------------------------------------------------------------------


async def per_check(label: str, checks: int, one: Callable[[], Awaitable[str]]) -> float:
    assert await one() == "pass", label
    started = time.perf_counter()
    for _ in range(checks):
        await one()
    return (time.perf_counter() - started) / checks * 1e6  # µs


async def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--checks", type=int, default=2000)
    parser.add_argument("--latency-ms", type=float, default=2.0)
    parser.add_argument("--concurrent", type=int, default=200)
    args = parser.parse_args()
    zone = ZoneResolver(ZONE)
    pool = ThreadPoolExecutor()  # the default size, as run_in_executor(None) would use

    async def alone() -> str:
        return pyspf_alone()

    async def chosen() -> str:
        return (await check_spf(zone, CLIENT, SENDER, "mx2.hanoi.gov.vn")).result.value

    async def threaded() -> str:
        return await thread_check(zone, pool)

    print(f"1. CPU per check, in-memory DNS, {args.checks} checks, client at the last term")
    base = await per_check("pyspf alone", args.checks, alone)
    print(f"   baseline pyspf alone (sync)        {base:8.1f} µs   1.00")
    rows = [("chosen: re-run on the event loop", chosen), ("thread: pyspf in a pool", threaded)]
    own = load_own()
    if own is not None:

        async def former() -> str:
            outcome = await own.check_spf(zone, CLIENT, SENDER, "mx2.hanoi.gov.vn")
            return str(outcome.result.value)

        rows.append((f"own RFC 7208 code ({OLD_COMMIT})", former))
    for label, run in rows:
        cost = await per_check(label, args.checks, run)
        print(f"   {label:35s}{cost:8.1f} µs   {cost / base:4.2f}")

    latency = args.latency_ms / 1000
    slow = SlowResolver(zone, latency)
    n = args.concurrent
    print(f"2. {n} checks at once, {args.latency_ms:g} ms per DNS answer (6 lookups each)")
    started = time.perf_counter()
    results = await asyncio.gather(
        *(check_spf(slow, CLIENT, SENDER, "mx2.hanoi.gov.vn") for _ in range(n))
    )
    loop_s = time.perf_counter() - started
    assert {r.result.value for r in results} == {"pass"}
    started = time.perf_counter()
    done = await asyncio.gather(*(thread_check(slow, pool) for _ in range(n)))
    thread_s = time.perf_counter() - started
    assert set(done) == {"pass"}
    print(f"   chosen (event loop)   {n / loop_s:8.0f} checks/s   ({loop_s * 1000:.0f} ms)")
    print(
        f"   thread ({pool._max_workers} workers)   {n / thread_s:8.0f} checks/s   "
        f"({thread_s * 1000:.0f} ms)   chosen/thread {thread_s / loop_s:.1f}x"
    )
    pool.shutdown()


if __name__ == "__main__":
    asyncio.run(main())
