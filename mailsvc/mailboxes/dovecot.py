"""Dovecot as a supervised child: generated configuration, start, stop, addresses.

Everything Dovecot needs lives under ``HOME/dovecot/``; nothing is read from
``/etc/dovecot``. Layout::

    HOME/dovecot/dovecot.conf        generated on every start (0600)
    HOME/dovecot/dovecot-sql.conf.ext  passdb/userdb on our database (0600)
    HOME/dovecot/master-users        master passdb (passwd-file, 0600)
    HOME/dovecot/master-secret       the master user's password (0600)
    RUNTIME/dovecot/                 base_dir: sockets (lmtp, 0600) and master.pid, where
                                     RUNTIME is the home's short runtime directory
                                     (``/run/mailsvc/<id>``, see mailsvc/runtime.py): unix
                                     socket paths must fit in 107 bytes, home paths need not
    HOME/dovecot/state/              state_dir
    HOME/dovecot/dovecot.log         Dovecot's log (warnings, errors, logins)
    HOME/dovecot/events.log          login, SELECT/EXAMINE and ID events (see events.py)

Dovecot dies with ``serve`` (parent-death signal, see mailsvc/supervisor.py); before a
start, a Dovecot still running this home's ``dovecot.conf`` (left by a killed ``serve``) is
stopped.

When mailsvc runs as root, mail processes run as the dedicated system user
``vmail`` (created with ``useradd --system`` when missing) which owns the
Maildir root; Dovecot's own ``dovecot``/``dovenull`` users (from the Debian
package) run the auth and login processes. When mailsvc runs unprivileged,
every Dovecot process runs as that user.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import grp
import hashlib
import ipaddress
import logging
import os
import pwd
import secrets
import shutil
import socket
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from mailsvc.config import Settings
from mailsvc.errors import ConfigError, DependencyError
from mailsvc.mailboxes.auth_policy import AuthPolicyEndpoint
from mailsvc.mailboxes.passdb import ITERATE_QUERY, USER_QUERY, password_query, sql_source
from mailsvc.permissions import restrict_home
from mailsvc.runtime import make_runtime_dir, runtime_dir
from mailsvc.supervisor import FailureHook, ReadyHook, SupervisedProcess, stop_leftovers

log = logging.getLogger(__name__)

MASTER_USER = "mailsvc"
# Starts tried when a port chosen for port 0 is taken before Dovecot binds it.
PORT_ATTEMPTS = 3
MASTER_SEPARATOR = "*"
DEFAULT_MAIL_USER = "vmail"
SPECIAL_FOLDERS = (
    ("Drafts", "\\Drafts"),
    ("Sent", "\\Sent"),
    ("Junk", "\\Junk"),
    ("Trash", "\\Trash"),
)
RECIPIENT_DELIMITER = "+"


def parse_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    return host, int(port)


def resolve_port(host: str, port: int) -> int:
    """Port 0 means "any free port": ask the kernel for one on that address."""
    if port:
        return port
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def connect_host(host: str) -> str:
    """The address a local client uses to reach a listener bound to ``host``."""
    if host in ("", "0.0.0.0", "*"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host


@dataclass(frozen=True)
class Accounts:
    """System users Dovecot runs as."""

    mail_user: str
    mail_uid: int
    mail_gid: int
    internal_user: str
    login_user: str
    privileged: bool


def ensure_mail_user(name: str = DEFAULT_MAIL_USER) -> tuple[int, int]:
    """Return (uid, gid) of the mail user, creating it as a system user when missing (root only)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if os.geteuid() != 0:
            raise DependencyError(
                f"system user {name!r} does not exist and only root can create it"
            ) from None
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        proc = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "mailsvc mail storage",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0 and "already exists" not in proc.stderr:
            raise DependencyError(
                f"cannot create system user {name!r}: {proc.stderr.strip()}"
            ) from None
        log.warning("created system user %s for Maildir storage", name)
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def _accounts(mail_user: str) -> Accounts:
    if os.geteuid() == 0:
        uid, gid = ensure_mail_user(mail_user)
        for needed in ("dovecot", "dovenull"):
            try:
                pwd.getpwnam(needed)
            except KeyError:
                raise DependencyError(
                    f"system user {needed!r} missing: install Debian's dovecot-core"
                ) from None
        return Accounts(mail_user, uid, gid, "dovecot", "dovenull", True)
    me = pwd.getpwuid(os.geteuid())
    return Accounts(me.pw_name, me.pw_uid, me.pw_gid, me.pw_name, me.pw_name, False)


class DovecotService:
    """Generates the configuration, runs Dovecot under SupervisedProcess, exposes addresses.

    ``auth_failure_delay`` (seconds) and ``auth_penalty`` (anvil's 4/8/15 s back-off per
    IP after failed logins) keep Dovecot's defaults unless overridden; tests turn both off.
    In ``system`` mode nothing is started: the addresses come from the settings and
    LMTP goes to ``dovecot.lmtp_socket``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        password_page_url: str | None = None,
        mail_user: str = DEFAULT_MAIL_USER,
        auth_failure_delay: float | None = None,
        auth_penalty: bool = True,
        restart_min_backoff: float = 0.2,
        auth_policy: AuthPolicyEndpoint | None = None,
        on_failures: FailureHook | None = None,
        on_ready: ReadyHook | None = None,
    ) -> None:
        self.settings = settings
        self.auth_policy = auth_policy
        self.mode = settings.dovecot.mode
        self.dir = settings.home / "dovecot"
        self.config_path = self.dir / "dovecot.conf"
        self.sql_path = self.dir / "dovecot-sql.conf.ext"
        self.master_users_path = self.dir / "master-users"
        self.master_secret_path = self.dir / "master-secret"
        self.runtime_dir = runtime_dir(settings.home)
        self.base_dir = self.runtime_dir / "dovecot"
        self.state_dir = self.dir / "state"
        self.log_path = self.dir / "dovecot.log"
        self.events_path = self.dir / "events.log"
        self.maildir_root = settings.path(settings.paths.maildir_root)
        self.password_page_url = password_page_url or _default_password_page(settings)
        self.mail_user = mail_user
        self.auth_failure_delay = auth_failure_delay
        self.auth_penalty = auth_penalty
        self._restart_min_backoff = restart_min_backoff
        self.on_failures = on_failures
        self.on_ready = on_ready
        self.instance_name = (
            "mailsvc-" + hashlib.sha256(str(settings.home).encode()).hexdigest()[:10]
        )
        imap_host, imap_port = parse_hostport(settings.listen.imap)
        imaps_host, imaps_port = parse_hostport(settings.listen.imaps)
        self._listen_imap = (imap_host, imap_port)
        self._listen_imaps = (imaps_host, imaps_port)
        # Where local clients connect (a wildcard bind is reached on loopback) ...
        self.imap_address: tuple[str, int] = (connect_host(imap_host), imap_port)
        self.imaps_address: tuple[str, int] = (connect_host(imaps_host), imaps_port)
        # ... and the host Dovecot binds, as configured (what `serve` reports).
        self.bind_hosts = {"imap": imap_host, "imaps": imaps_host}
        if self.mode == "system":
            if not settings.dovecot.lmtp_socket:
                raise ConfigError("dovecot.lmtp_socket: required when dovecot.mode is 'system'")
            self.lmtp_path = Path(settings.dovecot.lmtp_socket)
        else:
            self.lmtp_path = self.base_dir / "lmtp"
        self.supervisor: SupervisedProcess | None = None

    # ----------------------------------------------------------------- secrets
    @property
    def master_login_user(self) -> str:
        return MASTER_USER

    def master_secret(self) -> str:
        """The master user's password (generated on first start, kept in HOME/dovecot/)."""
        return self.master_secret_path.read_text(encoding="ascii").strip()

    def master_login(self, address: str) -> str:
        """The login name that opens ``address``'s mailbox as the service."""
        return f"{address}{MASTER_SEPARATOR}{MASTER_USER}"

    # ------------------------------------------------------------------ start
    async def start(self) -> None:
        if self.mode == "system":
            log.info("dovecot: system mode, LMTP at %s", self.lmtp_path)
            return
        binary = self.settings.dovecot.binary
        await asyncio.to_thread(self.write_config)
        # A Dovecot left by a killed serve would hold base_dir (the new one exits at once:
        # "already running") and keep serving the old configuration.
        await asyncio.to_thread(
            stop_leftovers,
            "dovecot",
            binary,
            self.config_path,
            pid_file=self.base_dir / "master.pid",
        )
        self.supervisor = SupervisedProcess(
            "dovecot",
            [binary, "-F", "-c", str(self.config_path)],
            self._ready,
            min_backoff=self._restart_min_backoff,
            log_path=str(self.dir / "dovecot.stdout"),
            logs=[str(self.log_path)],
            stable_seconds=self.settings.server.restart_stable_seconds,
            alert_after=self.settings.server.restart_alert_after,
            on_failures=self.on_failures,
            on_ready=self.on_ready,
        )
        for attempt in range(1, PORT_ATTEMPTS + 1):
            log_start = _size(self.log_path)
            try:
                await self.supervisor.start()
                break
            except DependencyError as exc:
                # A port chosen for port 0 was free when chosen; another program can bind
                # it before Dovecot does. Choose again rather than fail the start.
                if attempt < PORT_ATTEMPTS and self._port_taken_since(log_start):
                    log.warning("dovecot: a chosen port was taken meanwhile; choosing again")
                    self._forget_chosen_ports()
                    await asyncio.to_thread(self.write_config)
                    continue
                raise DependencyError(f"{exc}; Dovecot log: {self._log_tail()}") from exc
        log.info(
            "dovecot ready: imap %s:%d, imaps %s:%d, lmtp %s",
            *self.imap_address,
            *self.imaps_address,
            self.lmtp_path,
        )

    async def stop(self) -> None:
        if self.supervisor is not None:
            await self.supervisor.stop()
            await asyncio.to_thread(self._remove_runtime)

    def _remove_runtime(self) -> None:
        shutil.rmtree(self.base_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.runtime_dir.rmdir()  # only when clamd has no socket there

    @property
    def state(self) -> str:
        """``up``, ``down`` (being restarted), ``starting``, ``stopped``; system mode: ``up``."""
        if self.mode == "system":
            return "up"
        return self.supervisor.state if self.supervisor is not None else "stopped"

    async def _ready(self) -> bool:
        """Ready when the LMTP socket greets and the IMAP port greets."""
        reader, writer = await asyncio.open_unix_connection(str(self.lmtp_path))
        try:
            line = await asyncio.wait_for(reader.readline(), 2)
        finally:
            writer.close()
        if not line.startswith(b"220"):
            return False
        reader, writer = await asyncio.open_connection(*self.imap_address)
        try:
            line = await asyncio.wait_for(reader.readline(), 2)
        finally:
            writer.close()
        return line.startswith(b"* OK")

    def _port_taken_since(self, offset: int) -> bool:
        """Whether Dovecot logged, after ``offset``, that a port it chose for 0 was in use."""
        chosen = [
            address[1]
            for address, listen in (
                (self.imap_address, self._listen_imap),
                (self.imaps_address, self._listen_imaps),
            )
            if listen[1] == 0
        ]
        if not chosen:
            return False
        try:
            with open(self.log_path, "rb") as handle:
                handle.seek(offset)
                text = handle.read(64 * 1024).decode("utf-8", "replace")
        except OSError:
            return False
        return any(
            "Address already in use" in line and f", {port})" in line
            for line in text.splitlines()
            for port in chosen
        )

    def _forget_chosen_ports(self) -> None:
        """Forget the ports chosen for port 0, so that write_config chooses new ones."""
        self.imap_address = (self.imap_address[0], self._listen_imap[1])
        self.imaps_address = (self.imaps_address[0], self._listen_imaps[1])

    def _log_tail(self, lines: int = 5) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])

    # ----------------------------------------------------------------- config
    def write_config(self) -> None:
        """Create directories, secrets and files; resolve port 0; write dovecot.conf."""
        binary = self.settings.dovecot.binary
        if not os.path.exists(binary):
            raise DependencyError(f"dovecot.binary: {binary} not found (install dovecot-imapd)")
        accounts = _accounts(self.mail_user)
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.state_dir.mkdir(exist_ok=True)
        make_runtime_dir(self.settings.home)
        self.base_dir.mkdir(exist_ok=True)
        # HOME stays 0750; as root, its group is the mail group (see mailsvc.permissions)
        restrict_home(self.settings.home, accounts.mail_gid if accounts.privileged else None)
        self._prepare_maildir_root(accounts)
        cert = self.settings.path(self.settings.tls.cert)
        key = self.settings.path(self.settings.tls.key)
        for p, name in ((cert, "tls.cert"), (key, "tls.key")):
            if not p.is_file():
                raise ConfigError(f"{name}: {p} does not exist")
        # Port 0 is resolved once: a restart of this service keeps its ports.
        imap_port = self.imap_address[1] or resolve_port(*self._listen_imap)
        imaps_port = self.imaps_address[1] or resolve_port(*self._listen_imaps)
        self.imap_address = (self.imap_address[0], imap_port)
        self.imaps_address = (self.imaps_address[0], imaps_port)
        self._write_master_passdb(accounts)
        source = sql_source(self.settings.database_url)
        _write_private(
            self.sql_path,
            "\n".join(
                [
                    "# Generated by mailsvc; rewritten on every start.",
                    f"driver = {source.driver}",
                    f"connect = {source.connect}",
                    f"password_query = {password_query(self.password_page_url)}",
                    f"user_query = {USER_QUERY}",
                    f"iterate_query = {ITERATE_QUERY}",
                    "",
                ]
            ),
        )
        text = render_config(
            self,
            accounts,
            imap=(self._listen_imap[0], imap_port),
            imaps=(self._listen_imaps[0], imaps_port),
            cert=cert,
            key=key,
        )
        _write_private(self.config_path, text)

    def _prepare_maildir_root(self, accounts: Accounts) -> None:
        root = self.maildir_root
        root.mkdir(parents=True, exist_ok=True)
        if accounts.privileged:
            os.chown(root, accounts.mail_uid, accounts.mail_gid)
            os.chmod(root, 0o750)
            # The mail user must be able to walk down to the root.
            for parent in root.parents:
                st = parent.stat()
                if st.st_mode & stat.S_IXOTH or st.st_uid == accounts.mail_uid:
                    continue
                if st.st_gid == accounts.mail_gid and st.st_mode & stat.S_IXGRP:
                    continue  # HOME: 0750 with the mail group
                if parent == self.settings.home or self.settings.home in parent.parents:
                    os.chmod(parent, stat.S_IMODE(st.st_mode) | stat.S_IXOTH)
                    log.info(
                        "dovecot: chmod o+x %s so %s can reach the Maildirs",
                        parent,
                        accounts.mail_user,
                    )
                else:
                    raise ConfigError(
                        f"paths.maildir_root: {accounts.mail_user} cannot enter {parent}; "
                        f"run: chmod o+x {parent}"
                    )

    def _write_master_passdb(self, accounts: Accounts) -> None:
        if not self.master_secret_path.exists():
            _write_private(self.master_secret_path, secrets.token_urlsafe(32) + "\n")
        secret = self.master_secret()
        digest = hashlib.sha512(secret.encode()).digest()
        # user:password:uid:gid:gecos:home:shell:extra — allow_nets keeps the master
        # user to this host: loopback, or the address IMAP listens on when it is specific.
        nets = ",".join(master_networks((self._listen_imap[0], self._listen_imaps[0])))
        line = (
            f"{MASTER_USER}:{{SHA512}}{base64.b64encode(digest).decode()}::::::allow_nets={nets}\n"
        )
        _write_private(self.master_users_path, line)
        # Read by the auth process after it dropped to the internal user.
        internal = pwd.getpwnam(accounts.internal_user)
        os.chown(self.master_users_path, internal.pw_uid, internal.pw_gid)


def master_networks(listen_hosts: tuple[str, ...]) -> list[str]:
    """Where the master user may log in from: 127.0.0.1, ::1 and any specific address
    an IMAP listener is bound to (the service connects to it from the same host)."""
    nets = ["127.0.0.1/32", "::1/128"]
    for host in listen_hosts:
        with contextlib.suppress(ValueError):
            ip = ipaddress.ip_address(host.strip("[]"))
            if not ip.is_unspecified:
                net = f"{ip}/{ip.max_prefixlen}"
                if net not in nets:
                    nets.append(net)
    return nets


def _auth_policy_settings(endpoint: AuthPolicyEndpoint | None) -> str:
    if endpoint is None:
        return ""
    lines = [f"{key} = {value}" for key, value in endpoint.dovecot_settings().items()]
    return (
        "# Logins ask mailsvc's auth policy server first: one lock-out for SMTP, IMAP and\n"
        "# the password page (mailsvc/mailboxes/auth_policy.py).\n" + "\n".join(lines) + "\n"
    )


def _write_private(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _default_password_page(settings: Settings) -> str:
    _host, port = parse_hostport(settings.listen.http)
    netloc = settings.server.hostname + ("" if port == 443 else f":{port}")
    return f"https://{netloc}/password"


def _q(value: str | Path) -> str:
    """Quote a value for dovecot.conf."""
    text = str(value)
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _listen_addr(host: str) -> str:
    if host in ("", "0.0.0.0", "*"):
        return "*"
    if host in ("::", "[::]"):
        return "[::]"
    with contextlib.suppress(ValueError):
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]"
    return host


def render_config(
    svc: DovecotService,
    accounts: Accounts,
    *,
    imap: tuple[str, int],
    imaps: tuple[str, int],
    cert: Path,
    key: Path,
) -> str:
    """The complete dovecot.conf text."""
    group = grp.getgrgid(accounts.mail_gid).gr_name
    mailboxes = "\n".join(
        f"  mailbox {name} {{\n    special_use = {use}\n    auto = subscribe\n  }}"
        for name, use in SPECIAL_FOLDERS
    )
    chroot = "" if accounts.privileged else "\n  chroot ="
    # the auth process reads HOME/dovecot/master-users: HOME is 0750 with the mail group
    auth_groups = f"\n  extra_groups = {group}" if accounts.privileged else ""
    penalty = (
        "" if svc.auth_penalty else ("\n  unix_listener anvil-auth-penalty {\n    mode = 0\n  }")
    )
    failure_delay = (
        ""
        if svc.auth_failure_delay is None
        else f"auth_failure_delay = {int(svc.auth_failure_delay * 1000)} msecs\n"
    )
    me = pwd.getpwuid(os.geteuid()).pw_name
    return f"""# Generated by mailsvc on every start: do not edit (changes are overwritten).
instance_name = {svc.instance_name}
base_dir = {svc.base_dir}
state_dir = {svc.state_dir}
log_path = {svc.log_path}
info_log_path = {svc.events_path}
log_timestamp = "%Y-%m-%dT%H:%M:%S "
protocols = imap lmtp
listen = *
shutdown_clients = yes
default_internal_user = {accounts.internal_user}
default_internal_group = {accounts.internal_user}
default_login_user = {accounts.login_user}
first_valid_uid = {accounts.mail_uid}
last_valid_uid = {accounts.mail_uid}
first_valid_gid = {accounts.mail_gid}
last_valid_gid = {accounts.mail_gid}

# TLS: STARTTLS on the IMAP port, implicit TLS on IMAPS. Plaintext AUTH is refused
# before STARTTLS except on loopback (Dovecot counts remote IP == local IP as secure).
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
ssl_min_protocol = TLSv1.2
ssl_prefer_server_ciphers = yes
disable_plaintext_auth = yes
auth_mechanisms = plain login

# Mail storage: Maildir per mailbox, owned by the mail user.
mail_uid = {accounts.mail_uid}
mail_gid = {accounts.mail_gid}
mail_privileged_group =
mail_home = {svc.maildir_root}/%d/%n
mail_location = maildir:~/Maildir
mail_fsync = optimized
namespace inbox {{
  inbox = yes
  separator = /
{mailboxes}
}}
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
recipient_delimiter = {RECIPIENT_DELIMITER}
lmtp_save_to_detail_mailbox = yes
lmtp_add_received_header = no
lmtp_hdr_delivery_address = none
lmtp_rcpt_check_quota = no

# Authentication: our database (SQL view dovecot_passdb), no cache, so a password
# change, a disable or a removal applies at the next login.
auth_cache_size = 0
auth_username_format = %Lu
auth_master_user_separator = {MASTER_SEPARATOR}
auth_worker_max_count = {svc.settings.dovecot.auth_workers}
{failure_delay}{_auth_policy_settings(svc.auth_policy)}passdb {{
  driver = passwd-file
  args = scheme=SHA512 {svc.master_users_path}
  master = yes
  result_success = continue
}}
passdb {{
  driver = sql
  args = {svc.sql_path}
}}
userdb {{
  driver = sql
  args = {svc.sql_path}
}}

service imap-login {{
  inet_listener imap {{
    address = {_listen_addr(imap[0])}
    port = {imap[1]}
  }}
  inet_listener imaps {{
    address = {_listen_addr(imaps[0])}
    port = {imaps[1]}
    ssl = yes
  }}{chroot}
}}
service lmtp {{
  # our LMTP client keeps up to 4 connections (mailsvc.mailboxes.lmtp): two per process
  client_limit = 2
  unix_listener lmtp {{
    mode = 0600
    user = {me}
  }}
}}
service anvil {{{chroot}{penalty}
}}
service auth {{{auth_groups}
  unix_listener auth-userdb {{
    mode = 0600
    user = {me}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0600
    user = {me}
  }}
  unix_listener stats-writer {{
    mode = 0660
    group = {group}
  }}
}}

# Login, SELECT/EXAMINE and ID events, one JSON object per line (see mailsvc/mailboxes/events.py).
event_exporter mailsvc {{
  format = json
  format_args = time-rfc3339
  transport = log
}}
metric mailsvc_login {{
  exporter = mailsvc
  filter = event=auth_request_finished
}}
metric mailsvc_select {{
  exporter = mailsvc
  filter = event=imap_command_finished AND (cmd_name=SELECT OR cmd_name=EXAMINE OR cmd_name=ID)
}}

protocol imap {{
  # An ID sent before login reaches the login event as client_id (mailbox checks).
  imap_id_retain = yes
  mail_max_userip_connections = 50
  imap_idle_notify_interval = 2 mins
}}
"""
