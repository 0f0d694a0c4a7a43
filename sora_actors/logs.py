"""Logging: one JSON object per line in production, readable lines in development.

Every record carries the id of the HTTP request (or WebSocket connection) it was logged
under, from a context variable set by the http layer, so that one request's lines can be
found among thousands. A redaction filter on the handler is the safety net for secrets:
login tokens (JWTs), bearer headers, passwords in key/value text, the ``sig``/``token``
query parameters of links, and the configured secrets themselves (upstream API key, JWT
and link-signing secrets) never reach the output, whoever logged them; so do passwords in
URLs (``postgresql://user:secret@host/db``).

Logged text is often the client's (a request path, a username): control characters in it
are escaped, so a ``%0a`` in a URL cannot forge a line of the development log. The only
line breaks left are those of tracebacks, indented under their record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .settings import Settings


@dataclass
class RequestScope:
    """The HTTP request or WebSocket connection being served, while it is being served.

    Tasks started during a request (an actor, say) inherit the context variable; ``active``
    turns false when the request ends, so their later lines do not claim its id.
    """

    id: str
    route: str | None = None
    active: bool = True


CURRENT_REQUEST: ContextVar[RequestScope | None] = ContextVar("sora_request", default=None)


def current_request_id() -> str | None:
    scope = CURRENT_REQUEST.get()
    return scope.id if scope is not None and scope.active else None


REDACTED = "[REDACTED]"

# Shapes of secrets worth catching even when nobody registered their value.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # A JWT: three base64url parts, the first starting with '{"' encoded (eyJ).
    (re.compile(r"eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*"), REDACTED),
    # Authorization header values.
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+"), r"\1 " + REDACTED),
    # Secrets in query strings and form bodies: ?sig=..., &token=..., password=...
    (
        re.compile(
            r"(?i)(?<![A-Za-z0-9_])(sig|signature|token|access_token|password|passwd|api_key|"
            r"apikey|secret)=[^&\s\"',;]+"
        ),
        r"\1=" + REDACTED,
    ),
    # The same in JSON or repr text: "password": "...", 'token': '...'
    (
        re.compile(
            r"(?i)([\"'](?:password|token|sig|secret|api_?key|authorization|jwt)[\"']\s*:\s*)"
            r"([\"'])(?:\\.|(?!\2).)*\2"
        ),
        r"\1\2" + REDACTED + r"\2",
    ),
    # bcrypt password hashes (a database driver logs statement arguments at DEBUG).
    (re.compile(r"\$2[abxy]\$\d\d\$[./A-Za-z0-9]{53}"), REDACTED),
    # OpenAI-style API keys.
    (re.compile(r"\bsk-[A-Za-z0-9_-]{8,}"), REDACTED),
    # The password of a URL (scheme://user:password@host); up to the last "@" of the authority.
    (
        re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^\s/]*@"),
        r"\1" + REDACTED + "@",
    ),
)

# Something every one of the patterns above needs (a superset, checked in one pass): most
# strings a log line carries (paths, ids, numbers) have none, and skip the substitutions.
# Measured (bench/middleware.py): an access-log line went from ~150 to ~50 us of CPU.
_MAYBE_SECRET = re.compile(r"(?i)eyJ|bearer|basic|=|[\"']\s*:|sk-|://")

# C0 and C1 control characters (newlines, ESC of terminal sequences, NUL...) and the Unicode
# line and paragraph separators: what could end a log line early or repaint a terminal.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}

_secrets: set[str] = set()

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is kept.
_STANDARD = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
    | {"message", "asctime", "request_id"}
)


def register_secrets(values: Iterable[str | None]) -> None:
    """Values that must never be printed (short ones would redact innocent text)."""
    for value in values:
        if value and len(value) >= 8:
            _secrets.add(value)


def redact(text: str) -> str:
    """``text`` with every known secret and secret-shaped substring replaced."""
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    if _MAYBE_SECRET.search(text) is None:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters as ``\\n``, ``\\x1b``, ``\\u2028``..."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(_escape_one, text)


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED_ESCAPES.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class ContextFilter(logging.Filter):
    """Stamps each record with the current request id (``-`` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


def _rewrite_extras(record: logging.LogRecord, rewrite: Callable[[str], str]) -> None:
    """Applies ``rewrite`` to every string the record was given with ``extra=``."""
    attributes = record.__dict__
    for key in attributes.keys() - _STANDARD:  # the extras, by one set difference
        value = attributes[key]
        if isinstance(value, str):
            attributes[key] = rewrite(value)


class RedactingFilter(logging.Filter):
    """Replaces the record's message (and traceback text) by a redacted rendering."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} % {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        _rewrite_extras(record, redact)
        return True


class EscapingFilter(logging.Filter):
    """Escapes control characters in the message and every ``extra=`` string; runs after
    redaction, which renders the message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = escape_controls(record.getMessage())
        record.args = None
        _rewrite_extras(record, escape_controls)
        return True


# Loggers of libraries that log a full traceback for a failure they then recover from on
# their own: asyncpg's pool, while PostgreSQL restarts ("Failed to restore the pool
# connection floor; retrying"), once a second. The exception's one-line summary says enough.
RECOVERING_LOGGERS = ("asyncpg.pool",)


class OneLineFilter(logging.Filter):
    """Folds the traceback of those loggers' warnings into one line: ``message: Error: text``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.exc_info
            and record.exc_info[1] is not None
            and record.levelno <= logging.WARNING
            and record.name.startswith(RECOVERING_LOGGERS)
        ):
            summary = "".join(traceback.format_exception_only(record.exc_info[1])).strip()
            record.msg = f"{record.getMessage()}: {summary}"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def _iso(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers index without parsing rules."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "-")
        if request_id != "-":
            entry["requestId"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False, default=str)


class DevFormatter(logging.Formatter):
    """Readable lines for a terminal, with the request id when there is one."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(rid)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        request_id = getattr(record, "request_id", "-")
        record.rid = f" [{request_id}]" if request_id != "-" else ""
        # Every line but the record's first (a traceback's) is indented: only records start
        # at the margin.
        return super().format(record).replace("\n", "\n    ")


def make_handler(*, production: bool, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler with the context and redaction filters and the mode's format."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(ContextFilter())
    handler.addFilter(OneLineFilter())
    handler.addFilter(RedactingFilter())
    handler.addFilter(EscapingFilter())
    handler.setFormatter(JsonFormatter() if production else DevFormatter())
    return handler


def configure(
    *,
    production: bool,
    level: int = logging.INFO,
    secrets: Iterable[str | None] = (),
    stream: IO[str] | None = None,
) -> logging.Handler:
    """Replace the root logger's handlers by ours; returns the handler (tests read it)."""
    register_secrets(secrets)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    handler = make_handler(production=production, stream=stream)
    root.addHandler(handler)
    root.setLevel(level)
    # Library chatter (a line per upstream request) that would drown the service's own
    # lines at INFO; at DEBUG everything is wanted.
    for noisy in ("hpack", "httpcore", "httpx", "httpx2"):
        logging.getLogger(noisy).setLevel(logging.WARNING if level >= logging.INFO else level)
    return handler


def configure_from_settings(
    settings: Settings | None, *, level: int = logging.INFO, stream: IO[str] | None = None
) -> logging.Handler:
    """JSON lines when ``SORA_ENV=production``; the settings' secrets are always redacted."""
    if settings is None:
        return configure(production=False, level=level, stream=stream)
    return configure(
        production=settings.is_production,
        level=level,
        secrets=(
            settings.jwt_secret,
            settings.upstream_api_key,
            settings.content_url_secret,
            settings.admin_password,
        ),
        stream=stream,
    )
