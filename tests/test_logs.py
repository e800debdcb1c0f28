"""The JSON log format: one object per line, time in +07:00, the queue id of the message."""

from __future__ import annotations

import json
import logging
import sys

from mailsvc.logs import JsonFormatter
from mailsvc.smtp.handler import queue_id_var


def test_json_lines_carry_time_level_logger_message_and_queue_id() -> None:
    record = logging.LogRecord(
        "mailsvc.delivery", logging.INFO, __file__, 1, "delivered %s", ("Văn thư",), None
    )
    token = queue_id_var.set("5C6D639BC289")
    try:
        line = JsonFormatter().format(record)
    finally:
        queue_id_var.reset(token)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["time"].endswith("+07:00")
    assert entry["level"] == "INFO" and entry["logger"] == "mailsvc.delivery"
    assert entry["message"] == "delivered Văn thư"
    assert entry["queue_id"] == "5C6D639BC289"


def test_tracebacks_stay_inside_the_one_line() -> None:
    try:
        raise ValueError("hỏng")
    except ValueError:
        record = logging.LogRecord(
            "mailsvc", logging.ERROR, __file__, 1, "boom", (), sys.exc_info()
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    assert "ValueError: hỏng" in json.loads(line)["exc"]
