"""How log records are written: readable text (default) or one JSON object per line.

``[log] format = "json"`` in mailsvc.toml: each line is an object with ``time`` (ISO 8601
in Vietnam's zone, +07:00), ``level``, ``logger``, ``message``, ``queue_id`` (the message
being handled, from the SMTP handler's context variable, or "-") and ``exc`` when a
traceback is attached. Configured once, by ``mailsvc serve``.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Literal

from mailsvc.time import VIETNAM

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        # Imported here: the handler module is heavy and logs are configured before it loads.
        from mailsvc.smtp.handler import queue_id_var

        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, VIETNAM).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "queue_id": queue_id_var.get(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(log_format: Literal["text", "json"], level: int) -> None:
    """Replace the root handlers' formatter (text or JSON) and set the level."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level, format=TEXT_FORMAT)
    formatter: logging.Formatter = (
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    for handler in root.handlers:
        handler.setFormatter(formatter)
    root.setLevel(level)
