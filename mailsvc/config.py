"""Settings: one frozen, typed object loaded from ``HOME/mailsvc.toml`` plus environment overrides.

Nobody else parses configuration files. Environment overrides use
``MAILSVC_<SECTION>__<KEY>`` (e.g. ``MAILSVC_DATABASE__URL``).
"""

from __future__ import annotations

import importlib.resources
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from mailsvc.errors import ConfigError

CONFIG_NAME = "mailsvc.toml"

# The packaged defaults: policies/*.yaml and templates/**/*.j2 are package data of
# ``mailsvc`` (in a checkout, mailsvc/policies and mailsvc/templates link to the top-level
# directories), so a wheel install finds them too. HOME/policies or [paths] override them.
PACKAGE_DATA = Path(str(importlib.resources.files("mailsvc")))
PACKAGED_POLICIES = PACKAGE_DATA / "policies"
PACKAGED_TEMPLATES = PACKAGE_DATA / "templates"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# A setting restore must not change unconfirmed (``mailsvc restore --accept-commands``):
# "runs" names a program mailsvc runs, a library it loads or where it sends alerts;
# "writes" a path it creates, writes, chowns or chmods (possibly outside the home).
RESTORE_GUARD = "restore_guard"


def _runs(**field: Any) -> Any:
    """A Field whose value mailsvc executes or loads (see RESTORE_GUARD)."""
    return Field(json_schema_extra={RESTORE_GUARD: "runs"}, **field)


def _writes(**field: Any) -> Any:
    """A Field naming a path mailsvc writes to or changes the owner/mode of."""
    return Field(json_schema_extra={RESTORE_GUARD: "writes"}, **field)


def restore_guarded() -> dict[tuple[str, str], str]:
    """(section, key) -> "runs" | "writes" for every setting marked with RESTORE_GUARD."""
    found = {}
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not isinstance(model, type) or not issubclass(model, BaseModel):
            continue
        for key, sub in model.model_fields.items():
            extra = sub.json_schema_extra
            if isinstance(extra, dict) and RESTORE_GUARD in extra:
                found[(section, key)] = str(extra[RESTORE_GUARD])
    return found


def one_line_path(value: Any) -> Any:
    """A path that goes into a daemon's configuration file (dovecot.conf, clamd.conf,
    freshclam.conf) as the rest of one line: a line break or another control character
    in it would end the directive and let the text after it add directives of its own."""
    if any(ord(c) < 32 or ord(c) == 127 for c in str(value)):
        raise ValueError("a path without line breaks or other control characters")
    return value


_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_HOST_LABEL}(?:\.{_HOST_LABEL})*")


def host_name(value: str) -> str:
    """A host or domain name, lower case, IDN in its A-label form, no final dot. It goes
    into the SMTP greeting and EHLO reply, trace headers, Message-IDs, addresses and the
    daemons' configuration: a space or a line break in it would break each of them."""
    text = value.strip().lower().rstrip(".")
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        text = ""
    if not _HOST_NAME.fullmatch(text):
        raise ValueError(
            f"{value!r} is not a host name (letters, digits and hyphens, dot-separated)"
        )
    return text


_SELECTOR = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})")
_LOCAL_PART = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}")


def _dkim_selector(value: str) -> str:
    # it names <selector>._domainkey.<domain> and goes into every DKIM-Signature (s=)
    if not _SELECTOR.fullmatch(value):
        raise ValueError(f"{value!r} is not a DKIM selector (letters, digits, '.', '_', '-')")
    return value


def _time_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{value!r} is not a time zone of the tz database") from exc
    return value


def _mailbox_address(value: str) -> str:
    """An address we send to or as: ``local@host-name``, lower case; empty stays empty."""
    value = value.strip()
    if not value:
        return value
    local, at, domain = value.rpartition("@")
    if not at or not _LOCAL_PART.fullmatch(local) or ".." in local:
        raise ValueError(f"{value!r} is not a mailbox address (local@domain)")
    return f"{local.lower()}@{host_name(domain)}"


def _check_hostport(value: str) -> str:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"expected HOST:PORT, got {value!r}")
    return value


class ServerSection(_Section):
    hostname: str = "mail.example.vn"
    domain: str = "example.vn"
    timezone: str = "Asia/Ho_Chi_Minh"
    shutdown_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On SIGTERM, how long a session in the middle of DATA may take to finish "
        "and get its answer; after that it is told 421 and closed",
    )
    restart_alert_after: int = Field(
        default=5,
        ge=1,
        description="Failed starts in a row of Dovecot or clamd before the administrators "
        "are alerted",
    )
    min_free_megabytes: int = Field(
        default=256,
        ge=0,
        description="Free space kept on the blob and Maildir file systems: a message that "
        "would leave less is answered 452 4.3.1 (try later) before anything is written",
    )
    restart_stable_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A restarted Dovecot or clamd must stay up this long before its failure "
        "count and back-off are reset",
    )

    _names = field_validator("hostname", "domain")(host_name)
    _zone = field_validator("timezone")(_time_zone)


class ListenSection(_Section):
    smtp: str = "127.0.0.1:2525"
    submission: str = "127.0.0.1:5870"
    submissions: str = "127.0.0.1:4650"
    imap: str = "127.0.0.1:1430"
    imaps: str = "127.0.0.1:9930"
    http: str = "127.0.0.1:8080"
    metrics: str = Field(
        default="127.0.0.1:9180",
        description="Plain HTTP for monitoring: /healthz and /metrics (keep it on loopback or "
        "a management network; the password page stays on the HTTPS listener)",
    )

    _hostport = field_validator(
        "smtp", "submission", "submissions", "imap", "imaps", "http", "metrics"
    )(_check_hostport)


class DatabaseSection(_Section):
    url: str = ""  # empty: sqlite:///HOME/mailsvc.sqlite3
    busy_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="SQLite: how long a write waits for a lock held by another process "
        "before the message is answered 451 (try later)",
    )


class TlsSection(_Section):
    cert: str = "tls/cert.pem"
    key: str = "tls/key.pem"

    _paths = field_validator("cert", "key")(one_line_path)


class SmtpSection(_Section):
    max_message_size: int = Field(default=25 * 1024 * 1024, gt=0)
    allow_plain_auth_on_loopback: bool = False
    max_connections_per_ip: int = Field(default=20, gt=0)
    max_messages_per_ip_per_minute: int = Field(default=120, gt=0)
    max_recipients: int = Field(default=100, gt=0)
    auth_lockout_threshold: int = Field(default=5, gt=0)
    auth_lockout_base_seconds: int = Field(default=60, ge=0)
    auth_lockout_max_seconds: int = Field(default=3600, ge=0)
    data_timeout_seconds: float = Field(default=300.0, gt=0)
    reuse_port: bool = Field(
        default=False,
        description="Bind the SMTP listeners with SO_REUSEPORT, so that several processes "
        "(a second node on the same host) can share a port and the kernel spreads the "
        "connections; every process bound to the port must set it",
    )


class PasswordSection(_Section):
    one_time_valid_hours: int = Field(default=72, gt=0)
    min_length: int = Field(default=12, ge=8)
    argon2_time_cost: int = Field(default=2, ge=1)
    argon2_memory_kib: int = Field(default=19456, ge=8192)
    argon2_parallelism: int = Field(default=1, ge=1)


class DovecotSection(_Section):
    mode: Literal["managed", "system"] = "managed"
    binary: str = _runs(default="/usr/sbin/dovecot")
    lmtp_socket: str = ""  # system mode: path of Dovecot's LMTP unix socket
    auth_workers: int = Field(default=2, ge=1)


class ClamavSection(_Section):
    mode: Literal["managed", "system", "off"] = "managed"
    binary: str = _runs(default="/usr/sbin/clamd")
    # unix socket path, or HOST:PORT for TCP; empty: managed socket (clamd creates it)
    socket: str = _writes(default="")
    database_dir: str = _writes(default="")  # empty: HOME/clamav/db (freshclam writes it)
    timeout_seconds: float = Field(default=30.0, gt=0)
    max_scan_bytes: int = Field(default=100 * 1024 * 1024, gt=0)
    max_signature_age_days: float = Field(
        default=3.0,
        gt=0,
        description="Signatures older than this make /healthz 'degraded' and raise an alert",
    )
    update: Literal["auto", "off"] = Field(
        default="auto",
        description="auto: the clamav-update job runs freshclam into database_dir (managed "
        "mode); off: signatures are updated by other means",
    )
    update_mirror: str = Field(
        default="",
        description="Closed network: URL of a private mirror (cvdupdate or a web server "
        "holding main/daily/bytecode .cvd); empty: ClamAV's public mirrors",
    )
    update_attempts: int = Field(
        default=3,
        ge=1,
        le=10,
        description="Tries per mirror in one freshclam run (5 s apart; freshclam's MaxAttempts)",
    )
    freshclam_binary: str = _runs(
        default="/usr/bin/freshclam", description="Path of the freshclam program"
    )
    update_hours: float = Field(
        default=4.0, gt=0, description="How often the clamav-update job runs freshclam"
    )

    _paths = field_validator("database_dir", "socket")(one_line_path)

    @field_validator("update_mirror")
    @classmethod
    def _mirror_url(cls, value: str) -> str:
        # written into freshclam.conf as one line: a line break would add directives
        value = value.strip()
        if value and (
            not value.startswith(("http://", "https://"))
            or any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in value)
        ):
            raise ValueError("an http:// or https:// URL without spaces or control characters")
        return value


class LogSection(_Section):
    format: Literal["text", "json"] = Field(
        default="text",
        description="text: one readable line per record; json: one JSON object per line "
        "(time ISO 8601 +07:00, level, logger, message, queue_id)",
    )


class RetentionSection(_Section):
    junk_days: int = Field(
        default=30,
        ge=1,
        description="Days spam stays in the Junk folder before the retention job deletes it",
    )


class PipelineSection(_Section):
    stages: tuple[str, ...] = (
        "limits",
        "authentication",
        "antivirus",
        "spam",
        "classification",
        "signatures",
        "metadata",
    )
    workers: int = Field(default=2, ge=0)  # process pool for CPU-bound stages; 0 = threads


class OcrSection(_Section):
    """OCR (Tesseract) of scanned PDF pages and image attachments, in the worker pool."""

    enabled: bool = Field(
        default=True,
        description="Read scanned PDF pages and PNG/JPEG/TIFF attachments with tesseract "
        "(packages tesseract-ocr, tesseract-ocr-vie)",
    )
    languages: str = Field(
        default="vie",
        pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$",
        description='Tesseract languages, e.g. "vie" or "vie+eng"',
    )
    dpi: int = Field(
        default=300, ge=100, le=600, description="Resolution scanned PDF pages are rendered at"
    )
    max_pages: int = Field(
        default=20,
        ge=1,
        description='Pages and images read by OCR per message; more is "too-large"',
    )
    page_timeout_seconds: float = Field(
        default=30.0, gt=0, description='Time for one page; over it is "too-large"'
    )
    timeout_seconds: float = Field(
        default=120.0,
        gt=0,
        description="Time for all OCR of one message (added to the 10 s text bound)",
    )


class PathsSection(_Section):
    maildir_root: str = _writes(default="mail")
    blob_root: str = _writes(default="blobs")
    policies: str = ""  # empty: policies/ in HOME, else the packaged defaults
    templates: str = ""

    _paths = field_validator("maildir_root", "blob_root", "policies", "templates")(one_line_path)


class DnsSection(_Section):
    mode: Literal["system", "servers", "off"] = Field(
        default="system",
        description='DNS for DKIM/SPF/DMARC: "system" (/etc/resolv.conf), "servers" (the list '
        'below) or "off" (closed network: only keys and senders pinned in the agency directory)',
    )
    servers: tuple[str, ...] = Field(
        default=(), description='Name servers as "HOST" or "HOST:PORT" when mode = "servers"'
    )
    timeout_seconds: float = Field(
        default=3.0, gt=0, description="Budget of one DNS lookup, retries included (seconds)"
    )
    cache_entries: int = Field(
        default=10_000,
        ge=0,
        description="Answers kept in memory (least recently used dropped first), positive "
        "and negative (NXDOMAIN for the SOA's negative TTL); 0: no cache",
    )
    cache_min_ttl_seconds: float = Field(
        default=5.0, ge=0, description="An answer is kept at least this long, whatever its TTL"
    )
    cache_max_ttl_seconds: float = Field(
        default=3600.0, gt=0, description="An answer is kept at most this long, whatever its TTL"
    )


class SpamdSection(_Section):
    address: str = Field(
        default="",
        description='SpamAssassin spamd as "HOST:PORT" or a unix socket path; used when '
        '"spamd" is in pipeline.stages',
    )
    timeout_seconds: float = Field(default=30.0, gt=0, description="Budget of one spamd check")


class OutboundSection(_Section):
    relay: str = Field(
        default="",
        description='Smarthost "HOST:PORT" for notices to remote senders; empty: notices go '
        "to local senders only",
    )
    retry_minutes: tuple[float, ...] = Field(
        default=(1.0, 5.0, 15.0, 60.0),
        min_length=1,
        description="Waits between delivery attempts of queued mail (minutes); the last one "
        "repeats until give_up_hours",
    )
    give_up_hours: float = Field(
        default=48.0,
        gt=0,
        description="A message still undelivered this long after it was queued is marked "
        "failed and the administrators are alerted (a 5xx answer fails it at once)",
    )
    poll_seconds: float = Field(
        default=5.0,
        gt=0,
        description="How often the queue is read for rows queued by other processes "
        "(status notices from `mailsvc register`)",
    )
    relay_timeout_seconds: float = Field(
        default=60.0, gt=0, description="Budget of one SMTP conversation with the relay"
    )
    smime_cert: str = Field(
        default="",
        description="The agency's organisation certificate (PEM) that S/MIME-signs notices "
        "to senders; empty: notices are not S/MIME-signed",
    )
    smime_key: str = Field(
        default="",
        description="Private key (PEM, unencrypted, mode 0600) of smime_cert; a key file is "
        "used only with [issuing] allow_file_key = true (with [issuing] token settings, "
        "notices are signed by the token's key and these must stay empty)",
    )
    smime_chain: str = Field(
        default="",
        description="Intermediate CA certificates (PEM) sent with the signature; may be empty",
    )
    relay_starttls: bool = Field(
        default=True,
        description="Require STARTTLS, with a verified certificate, towards the smarthost "
        "(relay); set false only for a relay on the same host or a trusted link",
    )
    tls_ca_file: str = Field(
        default="",
        description="CA bundle (PEM) that other servers' certificates are verified "
        "against; empty: the system's CAs",
    )
    mx_port: int = Field(
        default=25, gt=0, lt=65536, description="Port of other servers found through MX records"
    )
    max_lifetime_hours: float = Field(
        default=120.0,
        gt=0,
        description="Mail from officials still undelivered this long after it was queued "
        "is given up and bounced to the sender (default 5 days)",
    )
    delay_warning_hours: float = Field(
        default=4.0,
        gt=0,
        description="The sender is warned (a delay notice) when mail is still queued after "
        "this long",
    )
    first_retry_minutes: float = Field(
        default=5.0,
        gt=0,
        description="First wait before retrying mail from officials; it doubles up to "
        "max_retry_minutes",
    )
    max_retry_minutes: float = Field(
        default=60.0, gt=0, description="Longest wait between two attempts of mail from officials"
    )
    max_remote_recipients_per_hour: int = Field(
        default=300,
        gt=0,
        description="Recipients at other servers one account may send to per hour (a stolen "
        "password cannot spam); more get 451 until the hour has passed",
    )

    @field_validator("retry_minutes")
    @classmethod
    def _positive_waits(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if any(v <= 0 for v in value):
            raise ValueError("every wait must be more than 0 minutes")
        return value

    @field_validator("relay")
    @classmethod
    def _relay(cls, value: str) -> str:
        return _check_hostport(value) if value.strip() else ""


class OutgoingSection(_Section):
    recall_requests: Literal["auto", "clerk"] = Field(
        default="auto",
        description='A recall (status 13) from the sending agency: "auto" voids our copies '
        'in every folder and confirms (15) at once, the receiver\'s duty; "clerk" waits for '
        "`mailsvc register set-status N recalled` (refusing needs --admin-override)",
    )
    unanswered_hours: float = Field(
        default=48.0,
        gt=0,
        description="A sent document with no status message back (receipt 01/03, refusal "
        "02) from a recipient after this long is listed by `mailsvc outgoing list "
        "--unanswered` and reported by the overdue job",
    )


class IssuingSection(_Section):
    dispatch_address: str = Field(
        default="",
        description="Where officials send a personally-signed draft to be issued with the "
        'organisation\'s signature (phát hành); empty: "phathanh@<server.domain>"',
    )
    pkcs11_module: str = _runs(
        default="/usr/lib/softhsm/libsofthsm2.so",
        description="PKCS#11 library of the token holding the organisation key",
    )
    token_label: str = Field(default="", description="Label of the PKCS#11 token")
    key_label: str = Field(default="", description="Label of the organisation key on the token")
    cert: str = Field(
        default="",
        description="The organisation certificate (PEM); empty: read from the token "
        "(same label as the key)",
    )
    chain: str = Field(default="", description="Intermediate CA certificates (PEM), may be empty")
    pin_file: str = Field(
        default="",
        description="File holding the token PIN (one line, mode 0600, never backed up); "
        "else the environment variable MAILSVC_ISSUING_PIN",
    )
    allow_file_key: bool = Field(
        default=False,
        description="Allow key_file instead of a token (weaker: the key is a file); a "
        "warning is logged at every start",
    )
    key_file: str = Field(
        default="",
        description="Organisation private key (PEM, mode 0600) when allow_file_key = true; "
        "never backed up",
    )
    number_field: str = Field(
        default="SoKyHieu",
        description="Text form field of the draft that receives the outgoing number (số); "
        "when the draft has it (or date_field), the fields are filled instead of a stamp",
    )
    date_field: str = Field(
        default="NgayBanHanh",
        description='Text form field of the draft that receives the date ("ngày 05 tháng 3 '
        'năm 2026")',
    )
    stamp_page: int = Field(
        default=0,
        description="Page of the number/date stamp when the draft has no such form field "
        "(0 = first, -1 = last)",
    )
    stamp_box: tuple[int, int, int, int] = Field(
        default=(330, 700, 570, 790),
        description="Stamp rectangle in PDF points (x1, y1, x2, y2; origin bottom left)",
    )
    signature_box: tuple[int, int, int, int] = Field(
        default=(330, 620, 570, 690),
        description="Rectangle of the organisation signature's appearance on stamp_page "
        "(PDF points, as stamp_box)",
    )

    _dispatch = field_validator("dispatch_address")(_mailbox_address)


class DkimSection(_Section):
    selector: str = "mailsvc"
    key: str = "dkim/private.pem"

    _selector = field_validator("selector")(_dkim_selector)


class ChecksSection(_Section):
    retention_days: int = Field(
        default=1825,
        ge=1,
        description="Mailbox-check records and IMAP login rows older than this are purged",
    )
    poll_interval_seconds: float = Field(
        default=0.5, gt=0, description="How often Dovecot's event log is read for new checks"
    )


class AlertsSection(_Section):
    webhook_url: str = _runs(
        default="",
        description="POST each alert as JSON to this URL (an SMS gateway, a chat bot); "
        "empty: no webhook",
    )
    command: str = _runs(
        default="",
        description="Run this command (split like a shell, no shell) with the alert as JSON "
        "on standard input; empty: no command",
    )
    timeout_seconds: float = Field(
        default=10.0, gt=0, description="Budget of one webhook call or command"
    )


class BackupSection(_Section):
    directory: str = _writes(
        default="backups", description="Where `mailsvc backup` and the daily job write archives"
    )
    keep: int = Field(
        default=14, ge=1, description="Archives kept by the daily job; older ones are deleted"
    )
    daily_at: str = Field(
        default="01:30", description="Local time (HH:MM, +07:00) of the daily backup job"
    )


class JobsSection(_Section):
    enabled: bool = Field(default=True, description="Run the scheduler in `mailsvc serve`")
    node: str = Field(
        default="",
        description="This node's name in the job-run table; empty: the host name and process id",
    )
    run_retention_days: int = Field(
        default=400,
        ge=1,
        description="Job runs and overdue-reminder records older than this are purged",
    )
    auth_failure_retention_days: int = Field(
        default=30,
        ge=1,
        description="Failed-login rows untouched for this long (and not locked) are purged",
    )
    stop_grace_seconds: float = Field(
        default=30.0,
        ge=0,
        description="On stop, how long running jobs may take to finish; a job still running "
        "after that is cut off and recorded as interrupted",
    )
    heartbeat_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How often a node refreshes the claims (job_run) of the jobs it is running",
    )
    stale_after_seconds: float = Field(
        default=300.0,
        gt=0,
        description="A running claim not refreshed for this long belongs to a node that died "
        "(killed, host lost): the other nodes record it as interrupted",
    )

    @model_validator(mode="after")
    def _stale_after_heartbeats(self) -> JobsSection:
        if self.stale_after_seconds < 3 * self.heartbeat_seconds:
            raise ValueError(
                "stale_after_seconds must be at least 3 heartbeat_seconds (a live node may "
                "miss a heartbeat or two)"
            )
        return self


class WorkspaceSection(_Section):
    enabled: bool = Field(
        default=True, description="Serve the web workspace (/w/) on the http listener"
    )
    idle_minutes: int = Field(
        default=30, ge=1, description="A signed-in session ends after this long without a request"
    )
    max_hours: int = Field(
        default=12, ge=1, description="A signed-in session ends after this long in any case"
    )
    page_size: int = Field(default=50, ge=5, le=500, description="Rows per register page")
    preview_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Wall time to draw one page preview; a PDF that takes longer gets none",
    )


class ExternalMailbox(_Section):
    name: str = Field(description="Short name used in logs, checks and the CLI")
    host: str = Field(description="IMAP server host name")
    port: int = Field(default=993, gt=0, lt=65536, description="IMAP server port")
    tls: Literal["implicit", "starttls", "none"] = Field(
        default="implicit", description="TLS on connect (993), STARTTLS, or none (tests only)"
    )
    ca_file: str = Field(
        default="", description="CA bundle for the server's certificate; empty: system CAs"
    )
    username: str = Field(description="IMAP login name")
    password_file: str = Field(description="File holding the password (one line, mode 0600)")
    folder: str = Field(default="INBOX", description="Folder fetched")
    deliver_to: str = Field(description="Local mailbox that receives the fetched messages")
    poll_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Seconds between polls; with IDLE, new mail is fetched at once and a "
        "full poll still runs this often (at most every 29 minutes)",
    )
    idle: bool = Field(default=True, description="Use IMAP IDLE when the server offers it")
    timeout_seconds: float = Field(
        default=60.0,
        gt=0,
        description="Deadline of each IMAP command, a whole message fetch included; "
        "beyond it the connection is dropped and the next poll reconnects",
    )


class Settings(_Section):
    home: Path
    server: ServerSection = ServerSection()
    listen: ListenSection = ListenSection()
    database: DatabaseSection = DatabaseSection()
    tls: TlsSection = TlsSection()
    smtp: SmtpSection = SmtpSection()
    password: PasswordSection = PasswordSection()
    dovecot: DovecotSection = DovecotSection()
    clamav: ClamavSection = ClamavSection()
    pipeline: PipelineSection = PipelineSection()
    ocr: OcrSection = OcrSection()
    paths: PathsSection = PathsSection()
    dkim: DkimSection = DkimSection()
    dns: DnsSection = DnsSection()
    outbound: OutboundSection = OutboundSection()
    outgoing: OutgoingSection = OutgoingSection()
    issuing: IssuingSection = IssuingSection()
    spamd: SpamdSection = SpamdSection()
    checks: ChecksSection = ChecksSection()
    alerts: AlertsSection = AlertsSection()
    backup: BackupSection = BackupSection()
    jobs: JobsSection = JobsSection()
    log: LogSection = LogSection()
    retention: RetentionSection = RetentionSection()
    workspace: WorkspaceSection = WorkspaceSection()
    external: tuple[ExternalMailbox, ...] = ()

    _home = field_validator("home")(one_line_path)

    def path(self, value: str) -> Path:
        """Resolve a configured path relative to the home directory."""
        p = Path(value)
        return p if p.is_absolute() else self.home / p

    @property
    def dispatch_address(self) -> str:
        return (self.issuing.dispatch_address or f"phathanh@{self.server.domain}").lower()

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.home / 'mailsvc.sqlite3'}"


def _env_overrides(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith("MAILSVC_") or "__" not in name:
            continue
        section, _, key = name[len("MAILSVC_") :].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _describe(error: ValidationError, source: str) -> str:
    first = error.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    return f"{source}: key '{key}': {first['msg']}"


def load_settings(home: Path | str, environ: dict[str, str] | None = None) -> Settings:
    """Load ``home/mailsvc.toml``; a missing file means all defaults."""
    home = Path(home).resolve()
    path = home / CONFIG_NAME
    data: dict[str, Any] = {}
    if path.exists():
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8: {exc}") from exc
    for section, values in _env_overrides(dict(os.environ if environ is None else environ)).items():
        data.setdefault(section, {}).update(values)
    data["home"] = home
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        source = str(path) if str(path).isprintable() else repr(str(path))
        raise ConfigError(_describe(exc, source)) from exc
