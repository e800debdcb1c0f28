"""The only place where objects are built and connected. Reads top to bottom:
settings → database → stores → daemons → pipeline → acceptance → listeners."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import socket
import ssl
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from mailsvc.adapters.clamd import ClamdClient
from mailsvc.adapters.clamd_daemon import client_from_settings, daemon_from_settings
from mailsvc.adapters.dns import (
    ChainedResolver,
    DnsCache,
    DnsResolver,
    OriginResolver,
    PinnedResolver,
)
from mailsvc.adapters.freshclam import database_dir as signature_database_dir
from mailsvc.adapters.freshclam import signature_time
from mailsvc.adapters.spamd import SpamdClient
from mailsvc.checks.alerts import AlertNotifier, PriorityFollower
from mailsvc.checks.policy import load_checking_policy
from mailsvc.checks.records import CURSOR_NAME, CheckRecorder, EventLogReader
from mailsvc.config import PACKAGE_DATA, PACKAGED_POLICIES, PACKAGED_TEMPLATES, Settings
from mailsvc.db.base import utcnow
from mailsvc.db.session import READ_ONLY, make_engine, make_sessionmaker, migrate, reading
from mailsvc.delivery import Acceptance
from mailsvc.directory import DbDirectory
from mailsvc.documents.extract import ExtractionLimits, TextExtractor
from mailsvc.documents.ocr import OcrLimits
from mailsvc.documents.pool import WorkerPool
from mailsvc.errors import ConfigError
from mailsvc.external.poller import ExternalMailboxes
from mailsvc.interfaces import Stage
from mailsvc.jobs.scheduler import JobRunner, JobScheduler, node_name
from mailsvc.lockout import Lockout
from mailsvc.mailboxes.actions import MailboxActions
from mailsvc.mailboxes.auth_policy import AuthPolicyServer
from mailsvc.mailboxes.dovecot import DovecotService
from mailsvc.mailboxes.lmtp import LmtpClient
from mailsvc.metrics import Metrics
from mailsvc.notify.assignment import AssignmentMailer
from mailsvc.notify.exchange import STATUS, status_task
from mailsvc.notify.notices import NoticeComposer, NoticeFollower, RefusalRecorder
from mailsvc.notify.recall import RecallRecorder, StatusNotifier
from mailsvc.outbound.admin import QueueStats
from mailsvc.outbound.admin import stats as queue_stats
from mailsvc.outbound.dkim import DomainSigners
from mailsvc.outbound.dsn import DsnComposer
from mailsvc.outbound.mailer import Mailer, SubmissionPolicy
from mailsvc.outbound.queue import RetryPolicy
from mailsvc.outbound.routing import Route, RouteFinder, SmtpTransport, TlsMode
from mailsvc.outbound.smime import SmimeSigner
from mailsvc.outgoing.issuing import check_file_key
from mailsvc.outgoing.register import settle_outbound
from mailsvc.outgoing.submission import SubmissionQueue
from mailsvc.outgoing.tracking import OutgoingStatusRecorder
from mailsvc.pidfile import PidFile
from mailsvc.pipeline.antivirus import AntivirusStage
from mailsvc.pipeline.authentication import AuthenticationStage
from mailsvc.pipeline.classification import ClassificationStage
from mailsvc.pipeline.limits import LimitsStage
from mailsvc.pipeline.metadata import MetadataStage
from mailsvc.pipeline.runner import PipelineRunner
from mailsvc.pipeline.signatures import SignaturesStage
from mailsvc.pipeline.spam import SpamStage
from mailsvc.pipeline.spamd import SpamdStage
from mailsvc.policy.authentication import load_authentication_policy
from mailsvc.policy.classification import load_classification_policy
from mailsvc.policy.limits import load_limits_policy
from mailsvc.policy.pipeline import load_pipeline_policy
from mailsvc.policy.spam import load_spam_policy
from mailsvc.register.recorder import ATTACHMENTS, RegisterRecorder, attachments_task
from mailsvc.signatures.engine import home_gnupg, home_trust_config
from mailsvc.signatures.policy import load_signature_policy
from mailsvc.signatures.records import SignatureRecorder
from mailsvc.smtp.handler import (
    INBOUND,
    SUBMISSION,
    SUBMISSIONS,
    InflightTracker,
    ListenerMode,
    RateLimiter,
    RemoteRecipientLimiter,
    SmtpHandler,
)
from mailsvc.smtp.lookups import MailboxLookup
from mailsvc.smtp.server import Sessions, SmtpListener, start_listener
from mailsvc.store.blobs import BlobStore
from mailsvc.supervisor import limit_malloc_arenas, settle_heap
from mailsvc.time import VIETNAM
from mailsvc.web.app import make_app, make_monitoring_app, start_http
from mailsvc.web.password import PageLimits
from mailsvc.web.workspace.auth import Authenticator
from mailsvc.web.workspace.pages import Workspace
from mailsvc.web.workspace.previews import PreviewDrawer

log = logging.getLogger(__name__)

# Where the packaged policies/ and templates/ are (the installed package).
PACKAGE_ROOT = PACKAGE_DATA


def policies_dir(settings: Settings) -> Path:
    """``[paths] policies``, else ``HOME/policies/`` when it holds the set (its
    ``pipeline.yaml``), else the packaged policies. A ``HOME/policies/`` with some policy
    files but no ``pipeline.yaml`` is refused: it would be ignored, and an administrator who
    put a changed ``spam.yaml`` there would believe it in force."""
    if settings.paths.policies:
        return settings.path(settings.paths.policies)
    home_policies = settings.home / "policies"
    if (home_policies / "pipeline.yaml").exists():
        return home_policies
    if home_policies.is_dir():
        strays = sorted(p.name for p in home_policies.glob("*.yaml"))
        if strays:
            raise ConfigError(
                f"{home_policies}: {', '.join(strays)} without pipeline.yaml: a policies "
                f"directory replaces the packaged set as a whole; copy the whole packaged "
                f"set there ({PACKAGED_POLICIES}) and change what you need, or remove it"
            )
    return PACKAGED_POLICIES


def templates_dir(settings: Settings) -> Path:
    if settings.paths.templates:
        return settings.path(settings.paths.templates)
    return PACKAGED_TEMPLATES


def extraction_limits(settings: Settings) -> ExtractionLimits:
    """Text extraction bounds, with the [ocr] section; warns when OCR cannot run."""
    ocr = settings.ocr
    if ocr.enabled and shutil.which("tesseract") is None:
        log.warning(
            "OCR is enabled but the tesseract binary is missing: scanned documents will be"
            " answered 451 until tesseract-ocr and tesseract-ocr-vie are installed"
        )
    return ExtractionLimits(
        # text alone is bounded by 10 s; OCR gets its own budget on top
        timeout_s=10.0 + (ocr.timeout_seconds if ocr.enabled else 0.0),
        ocr=OcrLimits(
            enabled=ocr.enabled,
            languages=ocr.languages,
            dpi=ocr.dpi,
            max_pages=ocr.max_pages,
            page_timeout_s=ocr.page_timeout_seconds,
            timeout_s=ocr.timeout_seconds,
        ),
    )


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def server_tls_context(settings: Settings) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.path(settings.tls.cert), settings.path(settings.tls.key))
    return context


@dataclass
class App:
    settings: Settings
    listen: dict[str, str] = field(default_factory=dict)
    addresses: dict[str, tuple[str, int]] = field(default_factory=dict)
    # Test-only knobs for Dovecot (auth_failure_delay, auth_penalty).
    dovecot_options: dict[str, Any] = field(default_factory=dict)
    _closers: list[Any] = field(default_factory=list)

    def _workspace(self, lockout: Lockout) -> Workspace:
        s = self.settings
        self._previews = PreviewDrawer(
            s.path("cache/previews"), timeout_s=s.workspace.preview_timeout_seconds
        )
        self._closers.append(self._previews.close)
        composer = NoticeComposer(
            templates_dir(s) / "notices",
            hostname=s.server.hostname,
            domain=s.server.domain,
            smime=SmimeSigner.from_settings(s),
        )
        return Workspace(
            sessions=self.sessions,
            auth=Authenticator(
                self.sessions, s.password, PageLimits.from_pair(lockout), s.workspace
            ),
            templates=templates_dir(s) / "workspace",
            blobs=self.blobs,
            previews=self._previews,
            notifier=StatusNotifier(composer),
            assignment_mailer=AssignmentMailer(
                templates_dir(s) / "workspace", self.blobs, s.server.hostname
            ),
            wake_mailer=self._wake_mailer,
            checking=self.checking_policy,
            page_size=s.workspace.page_size,
        )

    def _wake_mailer(self) -> None:
        mailer = getattr(self, "mailer", None)  # built after the web app
        if mailer is not None:
            mailer.wake()

    async def start(self) -> Mapping[str, tuple[str, int]]:
        s = self.settings = self.settings.model_copy(
            update={"listen": self.settings.listen.model_copy(update=self.listen)}
        )
        listen = s.listen.model_dump()

        # One serve per home; `mailsvc restore` refuses while this lock is held.
        self.pidfile = PidFile.acquire(s.home, "serve")
        self._closers.append(self.pidfile.release)

        check_file_key(s)  # a file key for issuing: only when allowed, and a warning
        limit_malloc_arenas()  # before the threads and child processes start

        # Database and stores.
        await asyncio.to_thread(migrate, s.database_url)
        self.engine = make_engine(s.database_url, busy_timeout=s.database.busy_timeout_seconds)
        self.sessions = make_sessionmaker(self.engine)
        self.blobs = BlobStore(s.path(s.paths.blob_root))
        s.path(s.paths.maildir_root).mkdir(parents=True, exist_ok=True)
        tls = server_tls_context(s)
        policies = policies_dir(s)

        # CPU-bound stage work runs in worker processes (the GIL rules out threads); the
        # pool can kill a worker stuck on a hostile document.
        self.executor: Executor = (
            WorkerPool(max_workers=s.pipeline.workers)
            if s.pipeline.workers > 0
            else ThreadPoolExecutor(max_workers=2)
        )
        self.directory = DbDirectory(self.sessions, local_domains=(s.server.domain,))
        await self.directory.refresh_async()
        self._refresher = asyncio.create_task(self.directory.run_refresher())
        self._closers.append(self._stop_refresher)

        # Pipeline: every policy file is read and every stage built before anything is
        # started (HTTPS, Dovecot, clamd), so a mistake in them stops serve at once.
        self.scanner = client_from_settings(s)
        stages = self._build_stages(policies)
        self.runner = PipelineRunner(
            stages,
            load_pipeline_policy(policies / "pipeline.yaml"),
            scoring=self.spam_policy,
            analyser=self.extractor,
        )
        # The recorders' readings made in the same worker call as the stages' (one parse).
        self.extractor.add_task(ATTACHMENTS, attachments_task, None)
        self.extractor.add_task(STATUS, status_task, None)
        self.checking_policy = load_checking_policy(policies / "checking.yaml")

        lockout = Lockout(
            s.smtp.auth_lockout_threshold,
            s.smtp.auth_lockout_base_seconds,
            s.smtp.auth_lockout_max_seconds,
        )

        # HTTPS first: the password page's real address goes into Dovecot's refusal text.
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.metrics.watch_database(self.sessions, lambda: s.path(s.backup.directory))
        web_app = make_app(
            sessions=self.sessions,
            password_cfg=s.password,
            lockout=lockout,
            registry=self.registry,
            workspace=self._workspace(lockout) if s.workspace.enabled else None,
        )
        http_host, http_port = split_hostport(listen["http"])
        self.http = await start_http(web_app, http_host, http_port, tls)
        self._closers.append(self.http.close)
        self.addresses["http"] = self.http.address
        # Monitoring: plain HTTP, loopback by default, apart from the people's HTTPS.
        monitor_host, monitor_port = split_hostport(listen["metrics"])
        self.monitor = await start_http(
            make_monitoring_app(
                health=self.health, registry=self.registry, before_scrape=self.health
            ),
            monitor_host,
            monitor_port,
            None,
        )
        self._closers.append(self.monitor.close)
        self.addresses["metrics"] = self.monitor.address
        password_url = f"https://{s.server.hostname}:{self.http.address[1]}/password"

        # Daemons: Dovecot (IMAP + LMTP) and clamd, supervised children. Dovecot asks
        # our auth policy server about every login (the SMTP lock-out rows). A daemon that
        # keeps failing alerts the administrators; Dovecot back means stored rows go out.
        self.auth_policy = AuthPolicyServer(self.sessions, lockout)
        policy_endpoint = await self.auth_policy.start()
        self._closers.append(self.auth_policy.stop)
        self.dovecot = DovecotService(
            s,
            password_page_url=password_url,
            auth_policy=policy_endpoint,
            on_failures=self._daemon_failing,
            on_ready=self._dovecot_ready,
            **self.dovecot_options,
        )
        await self.dovecot.start()
        self._closers.append(self.dovecot.stop)
        self.addresses["imap"] = self.dovecot.imap_address
        self.addresses["imaps"] = self.dovecot.imaps_address

        # Mailbox checks: Dovecot's event log → check records (docs/checks.md).
        # Each node reads its own Dovecot's log, so each keeps its own cursor.
        cursor = f"{CURSOR_NAME}@{s.jobs.node or socket.gethostname()}"[:64]
        self.check_recorder = CheckRecorder(
            EventLogReader(self.sessions, self.dovecot.events_path, name=cursor),
            s.checks.poll_interval_seconds,
        )
        self.check_recorder.start()
        self._closers.append(lambda: self.check_recorder.stop())

        # clamd: supervised child (managed), a system daemon, or off.
        self.clamd = daemon_from_settings(s)
        if self.clamd is not None:
            self.clamd.on_failures = self._daemon_failing
            await self.clamd.start()
            self._closers.append(self.clamd.stop)

        # Acceptance: blob → commit → LMTP → 250.
        self.lmtp = LmtpClient(self.dovecot.lmtp_path)
        self._closers.append(self.lmtp.close)
        mailbox_actions = MailboxActions.for_service(self.dovecot, str(s.path(s.tls.cert)))
        # Outbound: one durable queue and its worker for every mail we send (notices,
        # alerts, recalled copies, and mail from officials to other servers).
        out = s.outbound
        smarthost = (
            Route(
                *split_hostport(out.relay),
                tls=TlsMode.VERIFY if out.relay_starttls else TlsMode.NONE,
                via="smarthost",
            )
            if out.relay
            else None
        )
        if smarthost is not None and smarthost.tls is TlsMode.NONE:
            log.warning("outbound: STARTTLS towards the smarthost %s is disabled", out.relay)
        self.mailer = Mailer(
            self.lmtp,
            is_local_domain=self.directory.is_local_domain,
            signer=self._dkim_signer(),
            sessions=self.sessions,
            retry=RetryPolicy.from_settings(out),
            mover=mailbox_actions,
            router=RouteFinder(
                self.directory,
                None if s.dns.mode == "off" else self._resolver(),
                mx_port=out.mx_port,
                smarthost=smarthost,
            ),
            transport=SmtpTransport(
                helo=s.server.hostname,
                timeout=out.relay_timeout_seconds,
                ca_file=str(s.path(out.tls_ca_file)) if out.tls_ca_file else None,
            ),
            submission=SubmissionPolicy.from_settings(out),
            dsn=DsnComposer(
                templates_dir(s) / "outbound", hostname=s.server.hostname, domain=s.server.domain
            ),
        )
        self.mailer.on_settled = settle_outbound
        self.notices = NoticeFollower(
            self.sessions,
            self.mailer,
            templates_dir(s) / "notices",
            hostname=s.server.hostname,
            domain=s.server.domain,
            smime=SmimeSigner.from_settings(s),
        )
        self.mailer.on_failure = self.notices.alert_undelivered
        recall = RecallRecorder(
            self.notices.composer,
            self.mailer,
            auto_confirm=s.outgoing.recall_requests == "auto",
        )
        # Mailbox checks: a priority message's arrival notifies the clerk at once.
        self.alerts = AlertNotifier(
            self.sessions,
            self.mailer,
            s.alerts,
            templates_dir(s) / "alerts",
            hostname=s.server.hostname,
            domain=s.server.domain,
        )
        self.priority = PriorityFollower(self.sessions, self.alerts, self.checking_policy)
        self.inflight = InflightTracker()
        self.acceptance = Acceptance(
            self.sessions,
            self.blobs,
            self.lmtp,
            hostname=s.server.hostname,
            recorders=[
                RegisterRecorder(self.blobs, directory=self.directory),
                SignatureRecorder(),
                RefusalRecorder(),
                recall,
                OutgoingStatusRecorder(self.directory),
            ],
            followers=[self.notices, recall, self.priority],
            flagger=mailbox_actions,
            submissions=SubmissionQueue(
                self.directory.is_local_domain,
                hostname=s.server.hostname,
                directory=self.directory,
                wake=self.mailer.wake,
                dispatch=s.dispatch_address,
            ),
            receipts=self.notices,
            metrics=self.metrics,
            storage=[self.blobs.root, s.path(s.paths.maildir_root)],
            min_free_bytes=s.server.min_free_megabytes * 1024 * 1024,
            busy=lambda: self.inflight.count,
        )
        await self.acceptance.repair()
        self._repairer = asyncio.create_task(self.acceptance.run_repairer())
        self._closers.append(self._stop_repairer)
        self.mailer.start()
        self._closers.append(self.mailer.stop)

        # Scheduled jobs: schedule in the database, each run claimed once across nodes.
        self.jobs = JobRunner(s, self.sessions, self.mailer, node=node_name(s))
        self.scheduler: JobScheduler | None = None
        if s.jobs.enabled:
            self.scheduler = JobScheduler(self.jobs, s.database_url)
            await self.scheduler.start()
            self._closers.append(self.scheduler.stop)

        # SMTP listeners.
        self.lookup = MailboxLookup(
            self.sessions, (s.server.domain,), lockout, s.password, directory=self.directory
        )
        self.rate = RateLimiter(
            s.smtp.max_connections_per_ip, s.smtp.max_messages_per_ip_per_minute
        )
        self.remote_limit = RemoteRecipientLimiter(s.outbound.max_remote_recipients_per_hour)
        self.smtp_sessions = Sessions()
        self.listeners: list[SmtpListener] = []
        modes: list[ListenerMode] = [INBOUND, SUBMISSION, SUBMISSIONS]
        for mode in modes:
            host, port = split_hostport(listen[mode.name])
            handler = SmtpHandler(
                mode,
                self.lookup,
                self.runner,
                self.acceptance,
                max_recipients=s.smtp.max_recipients,
                rate=self.rate,
                inflight=self.inflight,
                metrics=self.metrics,
                remote=self.remote_limit if mode.direction is SUBMISSION.direction else None,
                dispatch=s.dispatch_address,
            )
            listener = await start_listener(
                mode,
                host,
                port,
                handler,
                lookup=self.lookup,
                rate=self.rate,
                tls=tls,
                hostname=s.server.hostname,
                data_size_limit=s.smtp.max_message_size,
                password_page_url=password_url,
                allow_plain_auth_on_loopback=s.smtp.allow_plain_auth_on_loopback,
                timeout=s.smtp.data_timeout_seconds,
                sessions=self.smtp_sessions,
                reuse_port=s.smtp.reuse_port,
            )
            self.listeners.append(listener)
            self.addresses[mode.name] = listener.address

        # External mailboxes (another server's IMAP): one poller task each.
        self.external = ExternalMailboxes.from_settings(
            s,
            sessions=self.sessions,
            runner=self.runner,
            acceptance=self.acceptance,
            lookup=self.lookup,
            metrics=self.metrics,
        )
        self.external.start()
        # Started: what the process holds now stays for its life (see settle_heap).
        self._closers.append(settle_heap())
        return dict(self.addresses)

    def _resolver(self) -> OriginResolver:
        """One resolver, and so one DNS cache, for SPF, DKIM, DMARC and outbound MX."""
        built: OriginResolver | None = getattr(self, "_origin_resolver", None)
        if built is not None:
            return built
        dns = self.settings.dns
        pinned = PinnedResolver(directory=self.directory)
        if dns.mode == "off":
            built = ChainedResolver(pinned, None)
        else:
            servers = [split_hostport(x) if ":" in x else (x, 53) for x in dns.servers]
            cache = (
                DnsCache(dns.cache_entries, dns.cache_min_ttl_seconds, dns.cache_max_ttl_seconds)
                if dns.cache_entries
                else None
            )
            fallback = DnsResolver(
                nameservers=[h for h, _ in servers],
                port=servers[0][1] if servers else 53,
                timeout=dns.timeout_seconds,
                cache=cache,
            )
            built = ChainedResolver(pinned, fallback)
        self._origin_resolver = built
        return built

    def _build_stages(self, policies: Path) -> list[Stage]:
        """Every stage by name; the configured list decides which run and in what order."""
        s = self.settings
        self.spam_policy = load_spam_policy(policies / "spam.yaml")
        self.extractor = TextExtractor(self.executor, extraction_limits(s))
        signature_policy = self._signature_policy = load_signature_policy(
            policies / "signature.yaml"
        )
        builders: dict[str, Callable[[], Stage]] = {
            "limits": lambda: LimitsStage(load_limits_policy(policies / "limits.yaml")),
            "authentication": lambda: AuthenticationStage(
                self.directory,
                self._resolver(),
                load_authentication_policy(policies / "authentication.yaml"),
                s.server.hostname,
                self.executor,
            ),
            "antivirus": lambda: AntivirusStage(self._require_scanner(), self.extractor),
            "spam": lambda: SpamStage(self.directory, self.spam_policy, self.extractor),
            "classification": lambda: ClassificationStage(
                load_classification_policy(policies / "classification.yaml"),
                self.extractor,
                self.executor,
            ),
            "signatures": lambda: SignaturesStage(
                signature_policy,
                home_trust_config(signature_policy, s.home, policies),
                self.directory,
                self.executor,
                gnupg_home=home_gnupg(s.home),
                extractor=self.extractor,
            ),
            "metadata": lambda: MetadataStage(self.extractor, self.directory, self.executor),
            "spamd": self._spamd_stage,
        }
        unknown = [name for name in s.pipeline.stages if name not in builders]
        if unknown:
            raise ConfigError(
                f"mailsvc.toml: key 'pipeline.stages': unknown stage(s) {', '.join(unknown)}; "
                f"known: {', '.join(builders)}"
            )
        return [builders[name]() for name in s.pipeline.stages]

    async def _stop_refresher(self) -> None:
        self._refresher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._refresher

    async def _stop_repairer(self) -> None:
        self._repairer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._repairer

    async def _daemon_failing(self, name: str, failures: int, reason: str) -> None:
        """A supervised daemon failed ``failures`` times in a row: alert the administrators
        (queued mail: it reaches local mailboxes once Dovecot is back)."""
        notices = getattr(self, "notices", None)
        if notices is not None:
            await notices.alert_daemon_down(name, failures, reason)

    async def _dovecot_ready(self) -> None:
        """Dovecot (re)started: deliver the rows its absence left ``stored``."""
        acceptance = getattr(self, "acceptance", None)
        if acceptance is not None:
            await acceptance.repair()

    def _dkim_signer(self) -> DomainSigners | None:
        """A signer per local domain (the From: domain picks it); None without a key."""
        s = self.settings
        local = [d for a in self.directory.agencies() if a.local for d in a.domains]
        return DomainSigners.from_key_dir(
            s.path(s.dkim.key), s.dkim.selector, s.server.domain, local
        )

    def _spamd_stage(self) -> Stage:
        if not self.settings.spamd.address:
            raise ConfigError(
                "mailsvc.toml: 'spamd' is in pipeline.stages but spamd.address is empty"
            )
        return SpamdStage(
            SpamdClient(self.settings.spamd.address, timeout=self.settings.spamd.timeout_seconds)
        )

    def _require_scanner(self) -> ClamdClient:
        if self.scanner is None:
            raise ConfigError(
                "mailsvc.toml: 'antivirus' is in pipeline.stages but clamav.mode is 'off'"
            )
        return self.scanner

    async def health(self) -> dict[str, Any]:
        """Liveness of each part: database, Dovecot, clamd (and its signatures' age), next
        year's holiday swaps."""
        checks: dict[str, str] = {}
        extra: dict[str, Any] = {}
        try:
            await asyncio.to_thread(self._ping_database)
            checks["database"] = "ok"
        except Exception as exc:  # boundary: report, don't raise
            checks["database"] = f"error: {type(exc).__name__}"
        checks["dovecot"] = _daemon_check(self.dovecot.state, self.dovecot.supervisor)
        if checks["dovecot"] == "ok" and not await asyncio.to_thread(
            Path(self.dovecot.lmtp_path).exists
        ):
            checks["dovecot"] = "error: LMTP socket missing"
        scanner = getattr(self, "scanner", None)
        clamd = getattr(self, "clamd", None)
        if clamd is not None and clamd.state != "up":
            checks["clamd"] = _daemon_check(clamd.state, clamd.process)
        elif scanner is not None:
            try:
                await scanner.ping()
                checks["clamd"] = "ok"
                version = await scanner.version()
            except Exception as exc:  # boundary
                checks["clamd"] = f"error: {type(exc).__name__}"
            else:
                built = signature_time(version, signature_database_dir(self.settings))
                if built is not None:
                    age_days = (datetime.now(UTC) - built).total_seconds() / 86400
                    limit = self.settings.clamav.max_signature_age_days
                    self.metrics.signature_age.set(age_days * 86400)
                    extra["signature_age_days"] = round(age_days, 2)
                    stale = f"stale: {age_days:.1f} days old (limit {limit:g})"
                    checks["clamav_signatures"] = "ok" if age_days <= limit else stale
        checking = getattr(self, "checking_policy", None)
        if checking is not None:
            missing = checking.missing_swaps_year(datetime.now(VIETNAM).date())
            self.metrics.holiday_swaps_missing.set(1 if missing else 0)
            checks["holidays"] = (
                f"missing: {missing}'s announced swaps are not in checking.yaml"
                if missing
                else "ok"
            )
        if checks.get("database") == "ok":
            found = await asyncio.to_thread(self._queue_stats)
            oldest = found.oldest_seconds(utcnow())
            extra["outbound"] = {
                "queued": found.queued,
                "held": found.held,
                "oldest_seconds": round(oldest),
            }
            warn = self.settings.outbound.delay_warning_hours * 3600
            checks["outbound"] = (
                "ok" if oldest < warn else f"error: oldest queued mail is {oldest / 3600:.1f} h old"
            )
        self.metrics.record_health(checks)
        status = "ok" if all(v == "ok" for v in checks.values()) else "degraded"
        if checks.get("database") != "ok":
            status = "error"
        return {"status": status, "checks": checks, "inflight": self.inflight.count, **extra}

    def _queue_stats(self) -> QueueStats:
        with reading(self.sessions) as session:
            return queue_stats(session)

    def _ping_database(self) -> None:
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn:
            conn.exec_driver_sql("SELECT 1")

    async def stop(self) -> None:
        """Stop accepting, finish messages in flight, then stop the children.

        Idle SMTP sessions are told 421 at once; a session in DATA gets up to
        ``server.shutdown_grace_seconds`` to finish and is answered before it is closed.
        """
        for listener in getattr(self, "listeners", []):
            listener.server.close()
        if hasattr(self, "smtp_sessions"):
            await self.smtp_sessions.close(self.settings.server.shutdown_grace_seconds)
        if hasattr(self, "external"):
            await self.external.stop()  # after the message in hand is accepted and recorded
        if hasattr(self, "inflight"):
            await self.inflight.wait_idle()
        if hasattr(self, "acceptance"):
            await self.acceptance.drain()
        for close in reversed(self._closers):
            try:
                result = close()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # boundary: keep stopping the rest
                log.exception("error while stopping")
        if hasattr(self, "executor"):
            self.executor.shutdown(wait=True, cancel_futures=True)
        if hasattr(self, "engine"):
            self.engine.dispose()


def _daemon_check(state: str, process: Any) -> str:
    """``ok``, or what /healthz shows for a daemon that is down (being restarted)."""
    if state == "up":
        return "ok"
    failures = getattr(process, "failures", 0)
    reason = getattr(process, "reason", "")
    text = f"{state}: {failures} failed start(s)" if failures else state
    return f"{text}: {reason}" if reason else text
