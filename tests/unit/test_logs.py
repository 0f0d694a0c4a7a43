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
