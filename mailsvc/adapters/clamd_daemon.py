"""clamd as a supervised child ("managed" mode) with a generated configuration.

Files under ``HOME/clamav/``: ``clamd.conf`` (generated at every start), ``clamd.sock``
(in the home's short runtime directory instead when the path would not fit a unix socket,
see mailsvc/runtime.py), ``clamd.pid``, ``clamd.log``, ``tmp/`` and, unless configured
elsewhere, ``db/``. When the database directory holds no signature file, a tiny test
database is written (freshclam cannot download here): the EICAR MD5 signature and our own body
signatures (see
:data:`TEST_BODY_SIGNATURES`). In production point ``[clamav] database_dir`` at the
directory freshclam updates (``/var/lib/clamav``) and nothing is written there.

"system" mode runs nothing: the client connects to ``[clamav] socket``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from mailsvc.adapters.clamd import ClamdAddress, ClamdClient
from mailsvc.config import Settings
from mailsvc.errors import ConfigError
from mailsvc.runtime import UNIX_SOCKET_MAX, make_runtime_dir, runtime_dir
from mailsvc.supervisor import FailureHook, ReadyHook, SupervisedProcess, stop_leftovers

log = logging.getLogger(__name__)

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
EICAR_HDB = "44d88612fea8a8f36de82e1278abb02f:68:Eicar-Test-Signature\n"

# Our own body (.ndb) signatures, "Name:TargetType:Offset:HexSignature" with target
# type 0 (any file, after clamd has unpacked MIME parts and archives) at any offset.
#   Mailsvc.Test.Eicar-Body   the 68-byte EICAR string anywhere in a part, e.g. pasted
#                             into a text body where a trailing newline breaks the MD5.
#   Mailsvc.Test.Marker       the ASCII marker below; lets tests and the demo send a
#                             "virus" that is not EICAR (which other scanners may strip).
TEST_MARKER = b"MAILSVC-TEST-VIRUS-7F3C9A2E"
TEST_BODY_SIGNATURES: Mapping[str, bytes] = {
    "Mailsvc.Test.Eicar-Body": EICAR,
    "Mailsvc.Test.Marker": TEST_MARKER,
}

# Files clamd loads from a database directory (clamd refuses to start without one).
SIGNATURE_SUFFIXES = (
    ".cvd", ".cld", ".cud", ".hdb", ".hsb", ".mdb", ".msb", ".ndb", ".ldb", ".cdb",
    ".ndu", ".ldu", ".hdu", ".hsu", ".mdu", ".msu", ".yar", ".yara", ".cbc", ".idb",
)  # fmt: skip


def socket_path(home: Path) -> Path:
    """``HOME/clamav/clamd.sock``, or ``RUNTIME/clamd.sock`` when that is too long."""
    path = Path(home) / "clamav" / "clamd.sock"
    if len(str(path)) <= UNIX_SOCKET_MAX:
        return path
    return runtime_dir(home) / "clamd.sock"


@dataclass(frozen=True)
class ClamdLimits:
    """clamd's scan limits. ``stream_max_bytes`` must equal the client's ``max_stream_bytes``.

    With ``alert_exceeds_max`` clamd reports ``Heuristics.Limits.Exceeded.*`` instead of
    silently passing content it stopped scanning: we fail closed.
    """

    stream_max_bytes: int = 100 * 1024 * 1024
    max_scan_bytes: int = 400 * 1024 * 1024  # all data scanned for one stream, unpacked
    max_file_bytes: int = 400 * 1024 * 1024  # one file (part, member); larger: skipped silently
    max_recursion: int = 16  # archive / MIME nesting clamd follows
    max_files: int = 10_000  # files unpacked from one stream
    max_scan_time_ms: int = 120_000
    alert_exceeds_max: bool = True

    @classmethod
    def for_stream(cls, stream_max_bytes: int) -> ClamdLimits:
        """Limits sized so that any stream clamd accepts is scanned completely.

        clamd skips an archive member above MaxFileSize *without* an alert (only
        MaxScanSize, MaxFiles and MaxRecursion alert), so MaxFileSize is as large as
        MaxScanSize: 4x the stream, above the limits stage's archive total (200 MiB
        by default) for the default 100 MiB stream.
        """
        total = min(4 * stream_max_bytes, 4000 * 1024 * 1024)
        return cls(stream_max_bytes=stream_max_bytes, max_scan_bytes=total, max_file_bytes=total)


def has_signatures(database_dir: Path) -> bool:
    return database_dir.is_dir() and any(
        p.suffix in SIGNATURE_SUFFIXES for p in database_dir.iterdir() if p.is_file()
    )


def write_test_database(database_dir: Path) -> list[Path]:
    """Write the test signature database if ``database_dir`` holds no signatures.

    Returns the files written (none when signatures are already there).
    """
    database_dir.mkdir(parents=True, exist_ok=True)
    if has_signatures(database_dir):
        return []
    hdb = database_dir / "mailsvc-test.hdb"
    ndb = database_dir / "mailsvc-test.ndb"
    hdb.write_text(EICAR_HDB, encoding="ascii")
    ndb.write_text(
        "".join(f"{name}:0:*:{body.hex()}\n" for name, body in TEST_BODY_SIGNATURES.items()),
        encoding="ascii",
    )
    log.warning("clamd: no signatures in %s; wrote the test database (EICAR only)", database_dir)
    return [hdb, ndb]


def render_config(
    *,
    socket_path: Path,
    database_dir: Path,
    temp_dir: Path,
    pid_file: Path,
    limits: ClamdLimits,
    tcp: ClamdAddress | None = None,
) -> str:
    """The clamd.conf text. clamd runs as the invoking user (no ``User`` line)."""
    lines = [
        "# Generated by mailsvc at every start; edits are overwritten.",
        f"LocalSocket {socket_path}",
        "LocalSocketMode 660",
        "FixStaleSocket yes",
        "Foreground yes",
        f"PidFile {pid_file}",
        f"DatabaseDirectory {database_dir}",
        f"TemporaryDirectory {temp_dir}",
        "LogTime yes",
        "LogClean no",
        "ExtendedDetectionInfo no",
        "SelfCheck 600",
        "MaxThreads 10",
        "MaxConnectionQueueLength 100",
        "CommandReadTimeout 30",
        "ReadTimeout 60",
        "IdleTimeout 30",
        # What we scan: a whole RFC 5322 message, which clamd splits into MIME parts,
        # nested message/rfc822 parts and archive members itself.
        "ScanMail yes",
        "ScanArchive yes",
        "ScanPDF yes",
        "ScanOLE2 yes",
        "ScanHTML yes",
        "ScanPE yes",
        "ScanELF yes",
        "PhishingSignatures no",
        f"StreamMaxLength {limits.stream_max_bytes}",
        f"MaxScanSize {limits.max_scan_bytes}",
        f"MaxFileSize {limits.max_file_bytes}",
        f"MaxRecursion {limits.max_recursion}",
        f"MaxFiles {limits.max_files}",
        f"MaxScanTime {limits.max_scan_time_ms}",
        f"AlertExceedsMax {'yes' if limits.alert_exceeds_max else 'no'}",
    ]
    if tcp is not None:
        lines += [f"TCPSocket {tcp.port}", f"TCPAddr {tcp.host}"]
    return "\n".join(lines) + "\n"


class ClamdDaemon:
    """A clamd child process kept running by :class:`SupervisedProcess`.

    ``home``: the service home; everything lives under ``home/clamav``.
    ``database_dir``: signature directory (default ``home/clamav/db``; test database
    written there when empty). ``tcp``: optional extra ``HOST:PORT`` listener.
    ``start_timeout``: seconds to wait for PONG (a full official database loads in
    ~20–60 s; the test database in ~0.1 s).
    """

    def __init__(
        self,
        home: Path,
        *,
        binary: str = "/usr/sbin/clamd",
        database_dir: Path | None = None,
        limits: ClamdLimits | None = None,
        tcp: str | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        self.root = Path(home) / "clamav"
        self.binary = binary
        self.database_dir = database_dir or self.root / "db"
        self.limits = limits or ClamdLimits()
        self.tcp = ClamdAddress.parse(tcp) if tcp else None
        if self.tcp is not None and not self.tcp.is_tcp:
            raise ConfigError(f"clamd: tcp listener must be HOST:PORT, got {tcp!r}")
        self.start_timeout = start_timeout
        self.home = Path(home)
        self.socket_path = socket_path(self.home)
        self.config_path = self.root / "clamd.conf"
        self.log_path = self.root / "clamd.log"
        self.pid_path = self.root / "clamd.pid"
        self.on_failures: FailureHook | None = None
        self.on_ready: ReadyHook | None = None
        self.stable_seconds = 60.0
        self.alert_after = 5
        self._process: SupervisedProcess | None = None

    @property
    def address(self) -> str:
        """What a :class:`ClamdClient` connects to."""
        return str(self.socket_path)

    @property
    def process(self) -> SupervisedProcess | None:
        return self._process

    @property
    def state(self) -> str:
        """The supervisor's state: ``up``, ``down`` (being restarted), ``stopped``..."""
        return self._process.state if self._process is not None else "stopped"

    def client(self, *, timeout: float = 30.0) -> ClamdClient:
        return ClamdClient(
            self.address, timeout=timeout, max_stream_bytes=self.limits.stream_max_bytes
        )

    def prepare(self) -> Path:
        """Create directories, the test database if needed, and clamd.conf."""
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)
        if self.root not in self.socket_path.parents:
            make_runtime_dir(self.home)
        write_test_database(self.database_dir)
        self.config_path.write_text(
            render_config(
                socket_path=self.socket_path,
                database_dir=self.database_dir,
                temp_dir=self.root / "tmp",
                pid_file=self.pid_path,
                limits=self.limits,
                tcp=self.tcp,
            ),
            encoding="utf-8",
        )
        return self.config_path

    async def start(self) -> None:
        """Start clamd and return once it answers PING; raise DependencyError otherwise.

        May be called again after :meth:`stop` (a new supervisor is made each time).
        """
        if self._process is not None:
            return
        self.prepare()
        # A clamd left by a killed serve: stop it rather than run a second one beside it.
        await asyncio.to_thread(
            stop_leftovers, "clamd", self.binary, self.config_path, pid_file=self.pid_path
        )
        probe = ClamdClient(self.address, timeout=2.0, connect_timeout=1.0)
        process = SupervisedProcess(
            "clamd",
            [self.binary, "-c", str(self.config_path)],
            probe.is_alive,
            start_timeout=self.start_timeout,
            log_path=str(self.log_path),
            stable_seconds=self.stable_seconds,
            alert_after=self.alert_after,
            on_failures=self.on_failures,
            on_ready=self.on_ready,
        )
        # A socket left by a killed clamd would answer nothing; FixStaleSocket handles
        # it, but our readiness probe must not see a previous instance either.
        self.socket_path.unlink(missing_ok=True)
        await process.start()
        self._process = process

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None:
            await process.stop()


def clamd_address(settings: Settings) -> str:
    """The socket the client connects to: ``[clamav] socket`` in system mode, else ours."""
    if settings.clamav.mode == "system":
        if not settings.clamav.socket:
            raise ConfigError("mailsvc.toml: key 'clamav.socket': required when mode = 'system'")
        return settings.clamav.socket
    return str(socket_path(settings.home))


def daemon_from_settings(settings: Settings) -> ClamdDaemon | None:
    """The managed clamd for ``[clamav] mode = "managed"``; None for system/off."""
    if settings.clamav.mode != "managed":
        return None
    db = settings.clamav.database_dir
    daemon = ClamdDaemon(
        settings.home,
        binary=settings.clamav.binary,
        database_dir=settings.path(db) if db else None,
        limits=ClamdLimits.for_stream(settings.clamav.max_scan_bytes),
    )
    daemon.stable_seconds = settings.server.restart_stable_seconds
    daemon.alert_after = settings.server.restart_alert_after
    return daemon


def client_from_settings(settings: Settings) -> ClamdClient | None:
    """The scanner for ``[clamav]``; None when mode = "off"."""
    if settings.clamav.mode == "off":
        return None
    return ClamdClient(
        clamd_address(settings),
        timeout=settings.clamav.timeout_seconds,
        max_stream_bytes=settings.clamav.max_scan_bytes,
    )
