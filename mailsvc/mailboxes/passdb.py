"""Dovecot's SQL passdb/userdb on our own database.

Dovecot reads the ``dovecot_passdb`` view (created by the Alembic migration
``mailboxes_dovecot_passdb``); this module turns our SQLAlchemy URL into a
Dovecot ``driver``/``connect`` pair and writes the queries.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.engine import make_url

from mailsvc.errors import ConfigError

# Reasons shown by the mail client after "NO [CONTACTADMIN]" (only when the password is right).
MUST_CHANGE_REASON = (
    "This is a one-time password. Set your own password at {page}, then log in again."
)
EXPIRED_REASON = (
    "Your password has expired. Ask your administrator for a new one-time password "
    "and set your own at {page}."
)
DISABLED_REASON = "This mailbox is disabled. Contact your administrator."


@dataclass(frozen=True)
class SqlSource:
    """Dovecot's view of our database: ``driver`` (sqlite|pgsql) and its ``connect`` string."""

    driver: str
    connect: str


def sql_source(database_url: str) -> SqlSource:
    """Translate a SQLAlchemy URL (``sqlite:///path`` or ``postgresql[+driver]://``)."""
    try:
        url = make_url(database_url)
    except Exception as exc:  # SQLAlchemy raises ArgumentError for a malformed URL
        raise ConfigError(f"database.url: cannot parse {database_url!r}: {exc}") from exc
    backend = url.get_backend_name()
    if backend == "sqlite":
        if not url.database or url.database == ":memory:":
            raise ConfigError("database.url: Dovecot needs an SQLite file, not an in-memory DB")
        return SqlSource("sqlite", url.database)
    if backend == "postgresql":
        parts: list[str] = []
        pairs: dict[str, str | None] = {
            "host": url.host,
            "port": str(url.port) if url.port else None,
            "dbname": url.database,
            "user": url.username,
            "password": url.password if isinstance(url.password, str) else None,
        }
        for key, option in url.query.items():
            if key in ("host", "port", "sslmode", "sslrootcert", "sslcert", "sslkey"):
                pairs[key] = option if isinstance(option, str) else option[-1]
        for key, value in pairs.items():
            if value:
                parts.append(f"{key}={_pg_quote(value)}")
        return SqlSource("pgsql", " ".join(parts))
    raise ConfigError(f"database.url: Dovecot cannot read a {backend!r} database")


def _pg_quote(value: str) -> str:
    if value and all(c.isalnum() or c in "._-/:" for c in value):
        return value
    escaped = value.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _sql_literal(text: str) -> str:
    """A SQL string literal inside a Dovecot query (``%`` starts a Dovecot variable)."""
    return "'" + text.replace("'", "''").replace("%", "%%") + "'"


def password_query(password_page: str) -> str:
    """The passdb query: nologin + reason unless the state is ``ok`` or a master user logs in.

    Master-user sessions (service actions) ignore must_change/expired/disabled so a
    recall still works on such mailboxes; removed mailboxes are absent from the view.
    """
    must = _sql_literal(MUST_CHANGE_REASON.format(page=password_page))
    expired = _sql_literal(EXPIRED_REASON.format(page=password_page))
    disabled = _sql_literal(DISABLED_REASON)
    return (
        "SELECT username AS user, password, "
        "CASE WHEN state <> 'ok' AND '%{master_user}' = '' THEN 'Y' END AS nologin, "
        "CASE WHEN '%{master_user}' <> '' THEN NULL "
        f"WHEN state = 'must_change' THEN {must} "
        f"WHEN state = 'expired' THEN {expired} "
        f"WHEN state = 'disabled' THEN {disabled} END AS reason "
        "FROM dovecot_passdb WHERE username = '%Lu' AND password <> ''"
    )


# LMTP and post-login lookups: every mailbox that is not removed (disabled ones still receive).
USER_QUERY = "SELECT username AS user FROM dovecot_passdb WHERE username = '%Lu'"
ITERATE_QUERY = "SELECT username AS user FROM dovecot_passdb"
