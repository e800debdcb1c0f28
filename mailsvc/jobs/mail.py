"""Mail written by scheduled jobs (reports, reminders): templates and the message frame.

Templates live in ``templates/jobs/`` (Jinja2, StrictUndefined, plain values only).
Every message comes from the postmaster, carries ``Auto-Submitted: auto-generated`` and
goes out through the service's :class:`~mailsvc.outbound.mailer.Mailer`.
"""

from __future__ import annotations

from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from mailsvc.app import templates_dir
from mailsvc.config import Settings
from mailsvc.time import VIETNAM

SENDER_NAME = "Hệ thống thư công vụ"


def job_templates(settings: Settings) -> Environment:
    return Environment(
        loader=FileSystemLoader(str(templates_dir(settings) / "jobs")),
        undefined=StrictUndefined,
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def compose(
    settings: Settings, recipient: str, subject: str, body: str, *, when: datetime
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = f"{SENDER_NAME} <postmaster@{settings.server.domain}>"
    message["To"] = recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(when.astimezone(VIETNAM))
    message["Message-ID"] = make_msgid(domain=settings.server.hostname)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def render(env: Environment, name: str, values: dict[str, Any]) -> str:
    return env.get_template(name).render(values)
