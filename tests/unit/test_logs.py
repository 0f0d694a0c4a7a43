"""The log safety net: redaction of secret-shaped text, request ids in records."""

from __future__ import annotations

import io
import json
import logging

from sora_actors.logs import CURRENT_REQUEST, RequestScope, make_handler, redact, register_secrets

JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMiLCJleHAiOjE3MDAwMDAwMDB9"
    ".kj8zWkxFruXA-DRHypiTFZgnnOv1jaVVN_xaLwMFbhk"
)


def test_secret_shapes_are_redacted_and_plain_text_is_not() -> None:
    cases = {
        f"token {JWT} expired": "token [REDACTED] expired",
        "Authorization: Bearer abc.def-ghi": "Authorization: Bearer [REDACTED]",
        "GET /files/v/video?exp=17&sig=AbC_-12 200": "GET /files/v/video?exp=17&sig=[REDACTED] 200",
        "/ws?token=xyz&x=1": "/ws?token=[REDACTED]&x=1",
        'in {"user": "bo", "password": "hunter2!"}': 'in {"user": "bo", "password": "[REDACTED]"}',
        "{'password': 'it\\'s'} ok": "{'password': '[REDACTED]'} ok",
        "key sk-proj-0123456789abcdef used": "key [REDACTED] used",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text
    plain = "task video_1b2c progress 40% (poll 3); GET /api/video/tasks/video_1b2c 200"
    assert redact(plain) == plain


def test_registered_secrets_are_redacted_wherever_they_appear() -> None:
    register_secrets(["upstream-key-7f1e9a", "short", None])
    assert redact("auth failed for upstream-key-7f1e9a!") == "auth failed for [REDACTED]!"
    assert redact("a short word") == "a short word"  # too short to register safely


def test_records_carry_the_request_id_only_while_the_request_lasts() -> None:
    out = io.StringIO()
    logger = logging.getLogger("sora_actors.test_logs")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    handler = make_handler(production=True, stream=out)
    logger.addHandler(handler)
    try:
        scope = RequestScope("req-1")
        token = CURRENT_REQUEST.set(scope)
        logger.info("inside %s", "the request", extra={"videoId": "video_1"})
        scope.active = False  # a task started by the request outlives it
        logger.info("after it")
        CURRENT_REQUEST.reset(token)
        try:
            int(f"bad token {JWT}")
        except ValueError:
            logger.exception("failed with password=hunter2")
    finally:
        logger.removeHandler(handler)
    inside, after, failed = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["requestId"] == "req-1" and inside["message"] == "inside the request"
    assert inside["videoId"] == "video_1" and inside["level"] == "info"
    assert "requestId" not in after
    assert failed["message"] == "failed with password=[REDACTED]"
    assert (
        "ValueError: invalid literal for int() with base 10: 'bad token [REDACTED]'"
        in (failed["exception"])
    )
    assert JWT not in out.getvalue()


def test_development_lines_are_readable_with_the_request_id() -> None:
    out = io.StringIO()
    record = logging.LogRecord("sora_actors.x", logging.WARNING, "f", 1, "hello %s", ("you",), None)
    token = CURRENT_REQUEST.set(RequestScope("abc"))
    try:
        make_handler(production=False, stream=out).handle(record)
    finally:
        CURRENT_REQUEST.reset(token)
    line = out.getvalue().strip()
    assert line.endswith("WARNING sora_actors.x [abc]: hello you")


def _raise(error: Exception) -> None:
    raise error


def test_url_passwords_are_redacted() -> None:
    cases = {
        "postgres://u:Secret@h/db": "postgres://u:[REDACTED]@h/db",
        "url 'postgresql+asyncpg://app:p@ss@db:5432/x' bad": (
            "url 'postgresql+asyncpg://app:[REDACTED]@db:5432/x' bad"
        ),
        "redis://:hunter22@cache:6379/0": "redis://:[REDACTED]@cache:6379/0",
    }
    for text, expected in cases.items():
        assert redact(text) == expected, text
    plain = "see https://example.com:8443/a@b and postgresql://app@db/x"
    assert redact(plain) == plain


def test_control_characters_are_escaped_and_tracebacks_indented() -> None:
    out = io.StringIO()
    logger = logging.getLogger("sora_actors.test_escape")
    logger.propagate = False
    handler = make_handler(production=False, stream=out)
    logger.addHandler(handler)
    try:
        logger.warning("GET %s", "/x\n2099-01-01 FORGED\r\x1b[2K\x00\u2028\tend")
        try:
            _raise(ValueError("bad\n2099-01-01 FORGED TOO"))
        except ValueError:
            logger.exception("failed for %s", "a\nb")
    finally:
        logger.removeHandler(handler)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(
        r"WARNING sora_actors.test_escape: GET /x\n2099-01-01 FORGED\r\x1b[2K\x00\u2028\tend"
    )
    assert lines[1].endswith(r"ERROR   sora_actors.test_escape: failed for a\nb")
    assert lines[2] == "    Traceback (most recent call last):"
    assert lines[-2:] == ["    ValueError: bad", "    2099-01-01 FORGED TOO"]
    assert all(line.startswith("    ") for line in lines[2:])


def test_asyncpg_pool_retries_are_one_warning_line() -> None:
    import asyncpg.pool

    out = io.StringIO()
    logger = asyncpg.pool.logger  # the logger asyncpg's pool reports reconnect failures on
    handler = make_handler(production=False, stream=out)
    logger.addHandler(handler)
    try:
        try:
            _raise(ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"))
        except ConnectionRefusedError:
            # asyncpg/pool.py, Pool._maintain_min_size, word for word.
            logger.warning("Failed to restore the pool connection floor; retrying", exc_info=True)
    finally:
        logger.removeHandler(handler)
    first, *rest = out.getvalue().splitlines()
    assert first.endswith(
        "WARNING asyncpg.pool: Failed to restore the pool connection floor; retrying: "
        "ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', 5432)"
    )
    assert rest == [], rest
