"""clamd scans/s and MB/s through our asyncio INSTREAM client, beside baselines from the
same run. Not a test.

    python bench/clamd.py [--seconds 3] [--concurrency 8]

A private clamd (managed mode, generated test database) is started under /tmp. Payloads:
a message carrying a 200 KB attachment and one carrying 5 MB (random bytes, base64, so
clamd decodes the MIME part and scans both forms). Figures:

- ours:        ClamdClient.scan, one scan after another (median / p99 ms, scans/s, MB/s),
               and N concurrent scans (scans/s). Each scan sends different bytes (a
               counter header in front): clamd caches clean results by hash, so
               repeating the same bytes (shown once, "same bytes") measures its cache.
               The client passes the data as a file descriptor (zFILDES, its default on
               a unix socket); "streamed" is the same client with zINSTREAM, and the
               line after them gives clamd's CPU per scan for each (/proc)
- transport:   the same bytes framed as INSTREAM, written with a blocking socket to a
               discard server on a unix socket that answers "stream: OK" without
               scanning: the ceiling of the socket path itself
- clamdscan:   ``clamdscan --stream`` (one process per scan), the reference tool
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mailsvc.adapters.clamd import ClamdClient
from mailsvc.adapters.clamd_daemon import ClamdDaemon, ClamdLimits

MB = 1_000_000
SIZES = (20_000, 200_000, 5_000_000)


def payload(size: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = "bench@partner.example.vn"
    msg["To"] = "clerk@example.vn"
    msg["Subject"] = f"bench {size}"
    msg.set_content("Kính gửi.\n")
    msg.add_attachment(random.Random(size).randbytes(size), maintype="application",
                       subtype="pdf", filename="cong-van.pdf")  # fmt: skip
    return msg.as_bytes()


def clamd_cpu(daemon: ClamdDaemon) -> float:
    """clamd's user + system CPU seconds so far (/proc/PID/stat)."""
    assert daemon.process is not None and daemon.process.pid is not None
    fields = Path(f"/proc/{daemon.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(fn: Callable[[], Awaitable[object]], seconds: float) -> list[float]:
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 5:
        t0 = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t0)
    return times


def summary(name: str, size: int, times: list[float]) -> dict[str, float]:
    times = sorted(times)
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    row = {"median_ms": median * 1000, "p99_ms": p99 * 1000, "per_s": 1 / median,
           "mb_s": size / median / MB}  # fmt: skip
    print(f"  {name:<22} median {row['median_ms']:8.2f} ms  p99 {row['p99_ms']:8.2f} ms  "
          f"{row['per_s']:9.1f}/s  {row['mb_s']:8.1f} MB/s  (n={len(times)})")  # fmt: skip
    return row


def discard_server(path: str) -> socket.socket:
    """A unix socket that reads INSTREAM frames to the end and answers OK, scanning nothing."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(64)

    def serve(conn: socket.socket) -> None:
        with conn:
            buf = conn.makefile("rb")
            buf.read(len(b"zINSTREAM\0"))
            while True:
                (length,) = struct.unpack(">I", buf.read(4))
                if length == 0:
                    break
                buf.read(length)
            conn.sendall(b"stream: OK\0")

    def accept() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return server


def raw_transport(path: str, data: bytes) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(path)
        sock.sendall(b"zINSTREAM\0")
        for i in range(0, len(data), 65536):
            chunk = data[i : i + 65536]
            sock.sendall(struct.pack(">I", len(chunk)) + chunk)
        sock.sendall(b"\0\0\0\0")
        sock.recv(64)


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--concurrency", type=int, default=8)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="clamd-bench-", dir="/tmp"))
    daemon = ClamdDaemon(root, limits=ClamdLimits.for_stream(64 * 1024 * 1024))
    await daemon.start()
    discard_path = str(root / "discard.sock")
    discard = discard_server(discard_path)
    conf = daemon.config_path
    clamdscan = shutil.which("clamdscan")
    try:
        client = daemon.client()
        assert client.pass_descriptor
        streamed = ClamdClient(daemon.address, max_stream_bytes=daemon.limits.stream_max_bytes,
                               pass_descriptor=False)  # fmt: skip
        to_discard = ClamdClient(discard_path, max_stream_bytes=daemon.limits.stream_max_bytes,
                                 pass_descriptor=False)  # fmt: skip
        print(f"{await client.version()}; socket {daemon.address}")
        cases = [(f"message, {n:,} byte attachment (base64)", payload(n)) for n in SIZES] + [
            (f"raw bytes, no MIME: {n:,}", random.Random(n).randbytes(n)) for n in SIZES
        ]
        for label, data in cases:
            assert await client.scan(data) is None
            print(f"\n{label}: {len(data):,} bytes")
            counter = itertools.count()

            def unique(d: bytes = data, counter: itertools.count[int] = counter) -> bytes:
                # clamd caches clean results by hash: every real message differs.
                return b"X-Bench: %d\r\n" % next(counter) + d

            cpu0 = clamd_cpu(daemon)
            times = await timed(lambda: client.scan(unique()), args.seconds)
            passed_cpu = (clamd_cpu(daemon) - cpu0) / len(times)
            ours = summary("ours (asyncio)", len(data), times)
            cpu0 = clamd_cpu(daemon)
            times = await timed(lambda: streamed.scan(unique()), args.seconds)
            streamed_cpu = (clamd_cpu(daemon) - cpu0) / len(times)
            summary("ours, streamed", len(data), times)
            print(f"  -> clamd CPU per scan: file passed {passed_cpu * 1000:.2f} ms, streamed "
                  f"{streamed_cpu * 1000:.2f} ms ({passed_cpu / streamed_cpu:.2f}x)")  # fmt: skip
            summary("ours, same bytes (cache)", len(data),
                    await timed(lambda d=data: client.scan(d), args.seconds))  # fmt: skip

            async def batch() -> None:
                await asyncio.gather(*(client.scan(unique()) for _ in range(args.concurrency)))

            conc = await timed(batch, args.seconds)
            per_s = args.concurrency / statistics.median(conc)
            print(f"  {'ours x' + str(args.concurrency) + ' concurrent':<22} {per_s:9.1f} scans/s  "
                  f"{per_s * len(data) / MB:8.1f} MB/s")  # fmt: skip

            async def transport(d: bytes = data) -> None:
                await asyncio.to_thread(raw_transport, discard_path, d)

            raw = summary("transport (blocking)", len(data), await timed(transport, args.seconds))
            bare = await timed(lambda d=data: to_discard.scan(d), args.seconds)
            mine = summary("ours -> discard", len(data), bare)
            share = mine["median_ms"] / ours["median_ms"] * 100
            print(f"  -> our client on the bare socket: {mine['mb_s'] / raw['mb_s']:.2f}x the "
                  f"blocking baseline; transport is {share:.1f}% of a real scan")  # fmt: skip
            if clamdscan:
                file = root / "payload.eml"
                file.write_bytes(data)
                argv = [clamdscan, f"--config-file={conf}", "--stream", "--no-summary", str(file)]

                async def reference(a: list[str] = argv, f: Path = file) -> None:
                    await asyncio.to_thread(f.write_bytes, unique())  # ~1 ms of the figure
                    await asyncio.to_thread(subprocess.run, a, check=True, capture_output=True)

                ref = summary("clamdscan --stream", len(data),
                              await timed(reference, args.seconds))  # fmt: skip
                ratio = ref["median_ms"] / ours["median_ms"]
                print(f"  -> clamdscan time / our time per scan: {ratio:.2f}x "
                      "(unique bytes, one clamdscan process per scan)")  # fmt: skip
    finally:
        discard.close()
        await daemon.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    asyncio.run(main())
