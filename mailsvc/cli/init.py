"""``mailsvc init``: a home directory ready to serve — config with every key commented,
database, Maildir root, self-signed TLS certificate and DKIM key. Idempotent: anything
that exists is kept."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import os
import secrets
import textwrap
from pathlib import Path
from typing import Any, get_args, get_origin

import click
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from mailsvc import accounts, directory
from mailsvc.backup.manifest import KEY_NAME, ensure_backup_key
from mailsvc.cli import Context
from mailsvc.cli.console import actor, open_session
from mailsvc.config import CONFIG_NAME, Settings, host_name, load_settings
from mailsvc.db.models import Mailbox
from mailsvc.db.session import migrate
from mailsvc.errors import ConfigError
from mailsvc.passwords import generate_one_time_password, verify_password
from mailsvc.permissions import private_umask, restrict_home, restrict_secrets
from mailsvc.register.demo import seed_demo_register
from mailsvc.store.blobs import BlobStore

# Comments for keys whose Field has no description yet (config.py is the lead's; these
# should move into Field(description=...) there — the generator prefers those).
DESCRIPTIONS: dict[str, str] = {
    "server": "This server's identity.",
    "server.hostname": "Host name in SMTP greetings, Received: headers and the TLS certificate.",
    "server.domain": "The main mail domain served here (mailboxes are <name>@domain).",
    "server.timezone": "Zone for times shown to people (ISO 8601, +07:00).",
    "listen": "Listener addresses as HOST:PORT; port 0 picks a free port. "
    "Each can be overridden on the `mailsvc serve` command line.",
    "listen.smtp": "Inbound SMTP from other servers (production: 0.0.0.0:25).",
    "listen.submission": "Submission with STARTTLS and AUTH (production: 0.0.0.0:587).",
    "listen.submissions": "Submission over implicit TLS (production: 0.0.0.0:465).",
    "listen.imap": "IMAP with STARTTLS, served by Dovecot (production: 0.0.0.0:143).",
    "listen.imaps": "IMAP over implicit TLS, served by Dovecot (production: 0.0.0.0:993).",
    "listen.http": "HTTPS: the password page (/password).",
    "database": "The database.",
    "database.url": "SQLAlchemy URL, e.g. postgresql://mailsvc@127.0.0.1/mailsvc; "
    "empty: SQLite file mailsvc.sqlite3 in the home directory.",
    "tls": "TLS certificate and key (PEM), relative to the home directory unless absolute.",
    "tls.cert": "Certificate chain file.",
    "tls.key": "Private key file (keep it readable by the service only).",
    "smtp": "SMTP limits and authentication.",
    "smtp.max_message_size": "Largest accepted message in bytes (advertised with SIZE).",
    "smtp.allow_plain_auth_on_loopback": "Allow AUTH without TLS from 127.0.0.1 (testing only).",
    "smtp.max_connections_per_ip": "Simultaneous connections per client address.",
    "smtp.max_messages_per_ip_per_minute": "Messages per client address per minute.",
    "smtp.max_recipients": "Recipients per message.",
    "smtp.auth_lockout_threshold": "Failed logins per account and address before a lock-out.",
    "smtp.auth_lockout_base_seconds": "First lock-out length; it doubles with each lock-out.",
    "smtp.auth_lockout_max_seconds": "Longest lock-out.",
    "smtp.data_timeout_seconds": "Time allowed for a client to send a message's DATA.",
    "password": "Mailbox passwords (Argon2id).",
    "password.one_time_valid_hours": "Hours a one-time password (new or reset) stays valid.",
    "password.min_length": "Minimum length of a password chosen by a user or admin.",
    "password.argon2_time_cost": "Argon2id iterations.",
    "password.argon2_memory_kib": "Argon2id memory in KiB.",
    "password.argon2_parallelism": "Argon2id lanes.",
    "dovecot": "Dovecot, which serves IMAP.",
    "dovecot.mode": "managed: run Dovecot as our child process; system: use a system instance.",
    "dovecot.binary": "Path of the dovecot program (managed mode).",
    "dovecot.lmtp_socket": "System mode: path of Dovecot's LMTP unix socket.",
    "dovecot.auth_workers": "Dovecot auth worker processes.",
    "clamav": "Virus scanning with clamd.",
    "clamav.mode": "managed: run clamd as our child; system: use a running clamd; off: no scan "
    "(mail then fails closed unless the policy says otherwise).",
    "clamav.binary": "Path of the clamd program (managed mode).",
    "clamav.socket": "Unix socket path or HOST:PORT of clamd; empty: the managed socket.",
    "clamav.database_dir": "Signature database directory; empty: clamav/db in the home.",
    "clamav.timeout_seconds": "Time allowed for one scan.",
    "clamav.max_scan_bytes": "Largest message scanned.",
    "pipeline": "The checks every message goes through.",
    "pipeline.stages": "Stage names in order.",
    "pipeline.workers": "Process pool size for CPU-heavy stages; 0 runs them in threads.",
    "paths": "Data directories, relative to the home directory unless absolute.",
    "paths.maildir_root": "Maildirs, as <root>/<domain>/<name>.",
    "paths.blob_root": "Stored copies of accepted messages.",
    "paths.policies": "Policy directory; empty: the packaged defaults.",
    "paths.templates": "Template directory; empty: the packaged defaults.",
    "dkim": "DKIM signing of outgoing mail.",
    "outgoing": "The outgoing register (sổ văn bản đi): receipts, recalls.",
    "issuing": "Issuing documents with the organisation's signature (phát hành).",
    "dkim.selector": "Selector: the DNS record is <selector>._domainkey.<domain>.",
    "dkim.key": "RSA private key (PEM).",
    "dns": "DNS lookups for SPF, DKIM and DMARC.",
    "dns.mode": "system: the resolvers in /etc/resolv.conf; servers: the name servers listed "
    "below; off: closed network, only keys and senders pinned in the agency directory.",
    "dns.servers": 'Name servers as HOST or HOST:PORT, e.g. ["10.0.0.53"] (mode servers).',
    "dns.timeout_seconds": "Time allowed for one DNS query.",
}


# --------------------------------------------------------------------------- config file


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} to TOML")


def _choices(annotation: Any) -> tuple[Any, ...]:
    if get_origin(annotation) is not None and str(get_origin(annotation)).endswith("Literal"):
        return get_args(annotation)
    return ()


def describe(key: str, description: str | None, annotation: Any = None) -> str:
    """The Field's description, else ours, else (for a key added since) its type."""
    text = description or DESCRIPTIONS.get(key, "")
    if not text and annotation is not None:
        text = f"{key} ({getattr(annotation, '__name__', None) or annotation})."
    return text


def render_config(overrides: dict[str, dict[str, Any]] | None = None) -> str:
    """The full mailsvc.toml: every section and key of Settings, each with its comment,
    default values except for ``overrides`` ({section: {key: value}})."""
    overrides = overrides or {}
    lines = [
        "# mailsvc configuration. Every key is listed with its default; edit as needed.",
        "# Environment variables override keys: MAILSVC_<SECTION>__<KEY>, e.g.",
        "# MAILSVC_DATABASE__URL=postgresql://mailsvc@127.0.0.1/mailsvc",
        "",
    ]
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue  # home: given by --home / MAILSVC_HOME, not by the file
        text = describe(section, field.description or model.__doc__)
        lines += [f"# {part}" for part in textwrap.wrap(text, 96)]
        lines.append(f"[{section}]")
        for key, sub in model.model_fields.items():
            value = overrides.get(section, {}).get(key, sub.default)
            comment = describe(f"{section}.{key}", sub.description, sub.annotation)
            choices = _choices(sub.annotation)
            if choices:
                comment += f" One of: {', '.join(map(str, choices))}."
            lines += [f"# {part}" for part in textwrap.wrap(comment, 96)]
            lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    lines += [
        "# External mailboxes: an agency's official mailbox on another IMAP server, fetched",
        "# into a local mailbox through the same checks (one [[external]] table each), e.g.",
        "# [[external]]",
        '# name = "so-noi-vu"',
        '# host = "mail.snv.example.gov.vn"',
        "# port = 993",
        '# tls = "implicit"',
        '# username = "vanthu@snv.example.gov.vn"',
        '# password_file = "secrets/so-noi-vu.password"',
        '# deliver_to = "vanthu.snv@example.gov.vn"',
        "",
    ]
    return "\n".join(lines)


def missing_keys(text: str) -> list[str]:
    """Keys of Settings that an existing config file does not set."""
    import tomllib

    data = tomllib.loads(text)
    missing = []
    for section, field in Settings.model_fields.items():
        model = field.annotation
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        for key in model.model_fields:
            if key not in data.get(section, {}):
                missing.append(f"{section}.{key}")
    return missing


# --------------------------------------------------------------------------- keys


def _write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def ensure_tls_certificate(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """Create a self-signed certificate (SAN: hostname, localhost, 127.0.0.1, ::1) unless
    both files exist. Returns True if created."""
    if cert_path.exists() and key_path.exists():
        return False
    if cert_path.exists() or key_path.exists():
        raise ConfigError(
            f"only one of {cert_path} and {key_path} exists; remove it or supply the other"
        )
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = dt.datetime.now(dt.UTC)
    names: list[x509.GeneralName] = [x509.DNSName(hostname)]
    if hostname != "localhost":
        names.append(x509.DNSName("localhost"))
    names += [
        x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
        x509.IPAddress(ipaddress.ip_address("::1")),
    ]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_encipherment=True,
                key_cert_sign=True,
                content_commitment=False,
                data_encipherment=False,
                key_agreement=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return True


def ensure_dkim_key(key_path: Path) -> bool:
    """Create an RSA 2048 DKIM key (PKCS#1 PEM, which dkimpy reads) unless it exists."""
    if key_path.exists():
        return False
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    _write_private(
        key_path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ),
    )
    return True


def dkim_txt_value(key_path: Path) -> str:
    """The TXT record value for the key: ``v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>``."""
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"


def dkim_dns_record(selector: str, domain: str, txt: str) -> str:
    """A zone-file line, the value split into strings of at most 255 characters."""
    chunks = " ".join(f'"{txt[i : i + 255]}"' for i in range(0, len(txt), 255))
    return f"{selector}._domainkey.{domain}. IN TXT ( {chunks} )"


# --------------------------------------------------------------------------- demo


DEMO_AGENCY_CODE = "000.00.00.D01"
DEMO_LOGIN_FILE = "demo-login.txt"


def ensure_demo(ctx: Context, settings: Settings) -> tuple[str, str | None]:
    """The domain's agency and the clerk mailbox vanthu@DOMAIN with a usable password.

    The password is kept in HOME/demo-login.txt (mode 600) so that re-running prints the
    same login; returns (address, password or None if it is no longer known)."""
    domain = settings.server.domain
    address = f"vanthu@{domain}"
    login_file = settings.home / DEMO_LOGIN_FILE
    with open_session(ctx) as session:
        agency = next((a for a in directory.list_agencies(session) if domain in a.domains), None)
        if agency is None:
            agency = directory.add_agency(
                session,
                actor=actor(),
                code=DEMO_AGENCY_CODE,
                name=f"Cơ quan thử nghiệm ({domain})",
                domains=[domain],
                local=True,
            )
        mailbox = session.scalars(select(Mailbox).where(Mailbox.address == address)).first()
        if mailbox is None:
            accounts.add_mailbox(
                session,
                settings.password,
                actor=actor(),
                address=address,
                full_name="Văn thư",
                role="clerk",
                agency_code=agency.code,
            )
            password = _demo_password()
            accounts.set_password(
                session, settings.password, address, password, actor=actor(), must_change=False
            )
            _demo_people(session, settings, agency.code, password)
            seed_demo_register(
                session,
                address,
                f"{DEMO_PEOPLE[1][0]}@{domain}",
                BlobStore(settings.path(settings.paths.blob_root)),
            )
            session.commit()
            login_file.unlink(missing_ok=True)
            _write_private(login_file, f"{address}\n{password}\n".encode())
            return address, password
        session.commit()
        known = login_file.read_text().split() if login_file.exists() else []
        if len(known) == 2 and verify_password(mailbox.password_hash, known[1]):
            return address, known[1]
        return address, None


# Workspace demo: a leader and an official beside the clerk (same password as the clerk).
DEMO_PEOPLE = (
    ("lanhdao", "Lê Văn Lãnh Đạo", "leader", ""),
    ("annv.vp", "Nguyễn Văn An", "official", "vp"),
)


def _demo_people(session: Session, settings: Settings, agency_code: str, password: str) -> None:
    domain = settings.server.domain
    for local, name, role, unit in DEMO_PEOPLE:
        address = f"{local}@{domain}"
        if session.scalars(select(Mailbox).where(Mailbox.address == address)).first():
            continue
        accounts.add_mailbox(
            session,
            settings.password,
            actor=actor(),
            address=address,
            full_name=name,
            role=role,
            unit=unit,
            agency_code=agency_code,
        )
        accounts.set_password(
            session, settings.password, address, password, actor=actor(), must_change=False
        )


def _demo_password() -> str:
    # One-time passwords are letters and digits; add a symbol-free but mixed-case
    # guarantee so the strength rules always pass.
    while True:
        candidate = generate_one_time_password(16)
        raw = candidate.replace("-", "")
        if (
            any(c.islower() for c in raw)
            and any(c.isupper() for c in raw)
            and any(c.isdigit() for c in raw)
        ):
            return candidate


# --------------------------------------------------------------------------- command


@click.command("init")
@click.option("--domain", required=True, help="Main mail domain, e.g. stttt.example.gov.vn.")
@click.option("--hostname", help="Server host name [default: mail.DOMAIN].")
@click.option("--database-url", default="", help="Write this database.url into the config.")
@click.option(
    "--demo",
    is_flag=True,
    help=(
        "Also create the domain's agency, demo mailboxes (clerk vanthu@DOMAIN, a leader and "
        "an official, one password) and sample entries in its incoming register."
    ),
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of lines.")
@click.pass_obj
def init_cmd(
    ctx: Context, domain: str, hostname: str | None, database_url: str, demo: bool, as_json: bool
) -> None:
    """Prepare the home directory (--home): config, database, Maildir root, TLS certificate,
    DKIM key. Safe to re-run: existing files and keys are kept."""
    with private_umask():  # the config, database and keys are private from the start
        _init(ctx, domain, hostname, database_url, demo, as_json)


def _init(
    ctx: Context, domain: str, hostname: str | None, database_url: str, demo: bool, as_json: bool
) -> None:
    say = (lambda _text: None) if as_json else click.echo
    result: dict[str, Any] = {"home": str(ctx.home)}
    domain = directory.normalise_domain(domain)
    try:  # before anything is written
        hostname = host_name(hostname or f"mail.{domain}")
    except ValueError as exc:
        raise ConfigError(f"--hostname: {exc}") from None
    home = ctx.home
    home.mkdir(parents=True, exist_ok=True)
    restrict_home(home)
    config_path = home / CONFIG_NAME
    if config_path.exists():
        say(f"config: kept {config_path}")
        result["config"] = {"path": str(config_path), "created": False}
        missing = missing_keys(config_path.read_text(encoding="utf-8"))
        if missing:
            say(f"  keys not set there (defaults apply): {', '.join(missing)}")
    else:
        overrides: dict[str, dict[str, Any]] = {"server": {"domain": domain, "hostname": hostname}}
        if database_url:
            overrides["database"] = {"url": database_url}
        if demo:
            # A demo runs anywhere, often without DNS: origin checks then rely only on the
            # agency directory instead of answering every inbound message "try later".
            overrides["dns"] = {"mode": "off"}
        tmp = config_path.with_suffix(f".tmp{secrets.token_hex(4)}")
        tmp.write_text(render_config(overrides), encoding="utf-8")
        tmp.replace(config_path)
        say(f"config: wrote {config_path}")
        result["config"] = {"path": str(config_path), "created": True}
    settings = load_settings(home)
    if settings.server.domain != domain:
        say(f"  note: the config's server.domain is {settings.server.domain}, not {domain}")

    migrate(settings.database_url)
    shown_url = (
        settings.database_url.split("@")[-1]
        if "@" in settings.database_url
        else (settings.database_url)
    )
    say(f"database: up to date ({shown_url})")
    result["database"] = shown_url
    for path in restrict_secrets(settings):
        say(f"permissions: {path} was readable by others; now 0600")

    maildir_root = settings.path(settings.paths.maildir_root)
    maildir_root.mkdir(parents=True, exist_ok=True)
    settings.path(settings.paths.blob_root).mkdir(parents=True, exist_ok=True)
    say(f"maildir root: {maildir_root}")
    result["maildir_root"] = str(maildir_root)

    cert, key = settings.path(settings.tls.cert), settings.path(settings.tls.key)
    created = ensure_tls_certificate(cert, key, settings.server.hostname)
    say(f"tls: {'created self-signed' if created else 'kept'} {cert}")
    result["tls"] = {"cert": str(cert), "created": created}

    dkim_key = settings.path(settings.dkim.key)
    created = ensure_dkim_key(dkim_key)
    txt = dkim_txt_value(dkim_key)
    record = dkim_dns_record(settings.dkim.selector, settings.server.domain, txt)
    (dkim_key.parent / f"{settings.dkim.selector}.txt").write_text(record + "\n")
    say(f"dkim: {'created' if created else 'kept'} {dkim_key}; publish this DNS record:")
    say(f"  {record}")
    result["dkim"] = {"key": str(dkim_key), "created": created, "dns_record": record}

    key = settings.home / KEY_NAME
    existed = key.exists()
    ensure_backup_key(settings.home)
    say(
        f"backup key: {'kept' if existed else 'created'} {key} (authenticates backups; keep a "
        "copy apart from them: a restore on another machine needs it)"
    )
    result["backup_key"] = {"path": str(key), "created": not existed}

    if demo:
        address, password = ensure_demo(ctx, settings)
        say(f"demo mailbox: {address} (role clerk)")
        result["demo"] = {"address": address, "role": "clerk", "password": password}
        if password:
            say(f"  login: {address}  password: {password}")
            people = ", ".join(f"{p[0]}@{settings.server.domain} ({p[2]})" for p in DEMO_PEOPLE)
            say(f"  also, same password: {people}")
            result["demo"]["also"] = [f"{p[0]}@{settings.server.domain}" for p in DEMO_PEOPLE]
        else:
            say(
                "  its password was changed since; set a new one with "
                f"`mailsvc mailbox reset-password {address}`"
            )
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, indent=2))


def register(group: click.Group) -> None:
    group.add_command(init_cmd)
