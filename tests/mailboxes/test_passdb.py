"""SQLAlchemy URL → Dovecot SQL driver/connect, and the generated passdb query."""

from __future__ import annotations

import pytest

from mailsvc.errors import ConfigError
from mailsvc.mailboxes.passdb import password_query, sql_source


def test_sqlite_url() -> None:
    src = sql_source("sqlite:////var/lib/mailsvc/mailsvc.sqlite3")
    assert (src.driver, src.connect) == ("sqlite", "/var/lib/mailsvc/mailsvc.sqlite3")


def test_postgresql_urls() -> None:
    src = sql_source("postgresql://postgres@127.0.0.1:5432/test")
    assert src.driver == "pgsql"
    assert src.connect == "host=127.0.0.1 port=5432 dbname=test user=postgres"
    src = sql_source("postgresql+psycopg://mail:p%40ss%20w'rd@db.example.vn/mail?sslmode=require")
    assert src.connect == (
        "host=db.example.vn dbname=mail user=mail password='p@ss w\\'rd' sslmode=require"
    )


@pytest.mark.parametrize("url", ["mysql://u@h/db", "sqlite://", "sqlite:///:memory:", "::"])
def test_unusable_urls_name_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"database\.url"):
        sql_source(url)


def test_query_escapes_dovecot_variables_in_the_page_url() -> None:
    query = password_query("https://mail.example.vn/password?x=%41'")
    assert "%%41''" in query
    assert "'%{master_user}' = ''" in query and "WHERE username = '%Lu'" in query
