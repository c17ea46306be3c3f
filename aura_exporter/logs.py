"""Logging in Prometheus' style: logfmt or JSON, one line per event, key=value context.

Context is passed with `extra={...}`; values are quoted and escaped, since label values from
monitored systems can contain anything (newlines, quotes, markup). Every line is written without
secrets (`without_secrets`): a URL's password, an Authorization header's credentials, a password or
token in a query string, wherever they come from (an error text, a library's message, a traceback).
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time

LEVELS = ("debug", "info", "warn", "error")
_SECRETS = (
    (re.compile(r"(//[^/@\s:]*):[^/@\s]*@"), r"\1:<secret>@"),  # scheme://user:password@host
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 <secret>"),  # Authorization values
    (re.compile(r"(?i)([?&](?:password|passwd|token|access_token|api_key|apikey|secret)=)[^&\s'\"]*"), r"\1<secret>"),
)
_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime", "taskName"}


def without_secrets(text: str) -> str:
    """`text` with every credential _SECRETS knows the shape of replaced by `<secret>`."""
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


def _context(record: logging.LogRecord) -> dict[str, object]:
    return {k: v for k, v in record.__dict__.items() if k not in _STANDARD}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


def _level(record: logging.LogRecord) -> str:
    return {"WARNING": "warn", "CRITICAL": "error"}.get(record.levelname, record.levelname.lower())


def _logfmt_value(value: object) -> str:
    text = str(value)
    if text and all(c.isalnum() or c in "-._:/@+" for c in text):
        return text
    return json.dumps(text)  # quotes, backslashes and control characters escaped


class _Formatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, object]:
        fields = {"ts": _timestamp(record), "level": _level(record), "logger": record.name,
                  "msg": record.getMessage(), **_context(record)}
        if record.exc_info:
            fields["err"] = self.formatException(record.exc_info)
        return {key: without_secrets(value) if isinstance(value, str) else value for key, value in fields.items()}


class LogfmtFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return " ".join(f"{key}={_logfmt_value(value)}" for key, value in self.fields(record).items())


class JSONFormatter(_Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(self.fields(record), default=str)


def setup_logging(level: str = "info", fmt: str = "logfmt") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JSONFormatter() if fmt == "json" else LogfmtFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel({"warn": logging.WARNING}.get(level, getattr(logging, level.upper())))
    for noisy in ("aiohttp.access", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
