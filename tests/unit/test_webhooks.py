"""Standard Webhooks verification: signatures, timestamps, replays, bounded memory; and the
bodies of each dialect (OpenAI's events, Replicate's prediction objects)."""

from __future__ import annotations

import base64
import json

import pytest

from sora_actors.upstream.webhooks import (
    ReplayGuard,
    WebhookRefused,
    WebhookVerifier,
    event_body,
    parse_replicate,
    secret_key,
    sign,
    signature,
)

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
OTHER = "whsec_" + base64.b64encode(b"fedcba9876543210fedcba9876543210").decode()
NOW = 1_800_000_000


def verifier(now: float = NOW) -> WebhookVerifier:
    return WebhookVerifier(SECRET, clock=lambda: now)


def refused(check: WebhookVerifier, headers: dict[str, str], body: bytes) -> WebhookRefused:
    with pytest.raises(WebhookRefused) as caught:
        check.verify(headers, body)
    return caught.value


def test_known_signature() -> None:
    # The Standard Webhooks reference example (svix's documentation and test vectors).
    key = secret_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    body = b'{"test": 2432232314}'
    assert (
        signature(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", body)
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_signed_event_is_accepted_once() -> None:
    check = verifier()
    body = event_body("evt_1", "video.completed", "video_abc", NOW)
    headers = sign(SECRET, "evt_1", body, NOW)
    event = check.verify(headers, body)
    assert (event.id, event.type, event.job_id) == ("evt_1", "video.completed", "video_abc")
    assert refused(check, headers, body).code == "WEBHOOK_REPLAYED"


def test_any_of_several_signatures_may_match() -> None:
    body = event_body("evt_2", "video.failed", "video_x", NOW)
    good = sign(SECRET, "evt_2", body, NOW)["webhook-signature"]
    stale = sign(OTHER, "evt_2", body, NOW)["webhook-signature"]
    headers = {
        **sign(SECRET, "evt_2", body, NOW),
        "webhook-signature": f"{stale} v2,xyz {good}",
    }
    assert verifier().verify(headers, body).type == "video.failed"


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"webhook-signature": None}, 400, "WEBHOOK_HEADERS_MISSING"),
        ({"webhook-timestamp": "yesterday"}, 400, "WEBHOOK_TIMESTAMP_INVALID"),
        ({"webhook-id": "evt_other"}, 401, "WEBHOOK_SIGNATURE_INVALID"),
        ({"webhook-signature": "v1,AAAA"}, 401, "WEBHOOK_SIGNATURE_INVALID"),
    ],
)
def test_bad_headers_are_refused(change: dict[str, str | None], status: int, code: str) -> None:
    body = event_body("evt_3", "video.completed", "video_y", NOW)
    headers = sign(SECRET, "evt_3", body, NOW)
    for name, value in change.items():
        if value is None:
            del headers[name]
        else:
            headers[name] = value
    problem = refused(verifier(), headers, body)
    assert (problem.status, problem.code) == (status, code)


def test_forged_body_and_foreign_secret_are_refused() -> None:
    body = event_body("evt_4", "video.completed", "video_z", NOW)
    headers = sign(SECRET, "evt_4", body, NOW)
    tampered = body.replace(b"video_z", b"video_q")
    assert refused(verifier(), headers, tampered).code == "WEBHOOK_SIGNATURE_INVALID"
    foreign = sign(OTHER, "evt_4", body, NOW)
    assert refused(verifier(), foreign, body).code == "WEBHOOK_SIGNATURE_INVALID"


@pytest.mark.parametrize(("offset", "accepted"), [(-300, True), (300, True), (-301, False)])
def test_timestamps_within_five_minutes(offset: int, accepted: bool) -> None:
    body = event_body("evt_5", "video.completed", "video_t", NOW)
    headers = sign(SECRET, "evt_5", body, NOW + offset)
    if accepted:
        assert verifier().verify(headers, body).job_id == "video_t"
    else:
        problem = refused(verifier(), headers, body)
        assert (problem.status, problem.code) == (401, "WEBHOOK_TIMESTAMP_OUT_OF_RANGE")


def test_a_signed_body_that_is_no_event_is_refused() -> None:
    body = b'{"type": "video.completed", "data": {}}'
    problem = refused(verifier(), sign(SECRET, "evt_6", body, NOW), body)
    assert (problem.status, problem.code) == (400, "WEBHOOK_PAYLOAD_INVALID")


def test_replay_memory_forgets_after_the_window_and_stays_bounded() -> None:
    guard = ReplayGuard(window_s=600, capacity=3)
    assert guard.first_time("a", 0) and not guard.first_time("a", 599)
    assert guard.first_time("a", 600.5)  # out of the window: forgotten
    for n, name in enumerate("bcde"):
        assert guard.first_time(name, 601 + n)
    assert len(guard) == 3  # the oldest went first
    assert not guard.first_time("e", 606)


@pytest.mark.parametrize("secret", ["", "sk-123", "whsec_***", "whsec_" + "QUJD"])
def test_malformed_secrets(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)


def replicate_verifier() -> WebhookVerifier:
    return WebhookVerifier(SECRET, clock=lambda: NOW, parse=parse_replicate)


def prediction(status: str, pid: str = "p_abc") -> bytes:
    """A prediction object as Replicate POSTs it."""
    doc = {
        "id": pid,
        "model": "openai/sora-2",
        "status": status,
        "input": {"prompt": "a cat"},
        "output": "https://replicate.delivery/x/out.mp4" if status == "succeeded" else None,
        "logs": "100%|##########| 100/100",
        "error": "boom" if status == "failed" else None,
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("status", "event"),
    [
        ("succeeded", "video.completed"),
        ("failed", "video.failed"),
        ("canceled", "video.failed"),
        ("processing", "prediction.processing"),  # not an end: acknowledged, ignored
    ],
)
def test_a_signed_replicate_prediction_is_an_event(status: str, event: str) -> None:
    body = prediction(status)
    got = replicate_verifier().verify(sign(SECRET, "msg_r1", body, NOW), body)
    assert (got.id, got.type, got.job_id) == ("msg_r1", event, "p_abc")


def test_a_forged_replicate_prediction_is_refused() -> None:
    body = prediction("succeeded")
    forged = refused(replicate_verifier(), sign(OTHER, "msg_r2", body, NOW), body)
    assert (forged.status, forged.code) == (401, "WEBHOOK_SIGNATURE_INVALID")
    headers = sign(SECRET, "msg_r3", body, NOW)
    tampered = refused(replicate_verifier(), headers, prediction("succeeded", "p_other"))
    assert tampered.code == "WEBHOOK_SIGNATURE_INVALID"


@pytest.mark.parametrize(
    "body",
    [
        b"[]",
        b'{"status": "succeeded"}',
        b'{"id": "p_1"}',
        b'{"id": 7, "status": "succeeded"}',
        b'{"id": "p_1", "status": null}',
        # An OpenAI event is not a prediction: a channel reads its own dialect only.
        event_body("evt_7", "video.completed", "video_abc", NOW),
    ],
)
def test_a_signed_body_that_is_no_prediction_is_refused(body: bytes) -> None:
    problem = refused(replicate_verifier(), sign(SECRET, "msg_r4", body, NOW), body)
    assert (problem.status, problem.code) == (400, "WEBHOOK_PAYLOAD_INVALID")
    assert "prediction" in problem.message
