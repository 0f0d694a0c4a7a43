"""Pure normalisation and mapping functions: every dialect's statuses and error shapes."""

from __future__ import annotations

import argparse
import json
from itertools import pairwise

import pytest

from sora_actors.upstream import ErrorKind, UpstreamError, UpstreamStatus, map_model, map_seconds
from sora_actors.upstream.config import RetryPolicy, UpstreamConfig
from sora_actors.upstream.fake.engine import progress_curve
from sora_actors.upstream.fake.media import is_webp, media_bytes, mp4_top_level_boxes
from sora_actors.upstream.fake.simulator import add_simulator_arguments, simulator_config_from_args
from sora_actors.upstream.mapping import (
    classify_http_error,
    job_from_wire,
    normalize_status,
    parse_error_body,
    parse_poll_after,
    parse_retry_after,
)


@pytest.mark.parametrize(
    ("raw", "want"),
    [
        ("queued", UpstreamStatus.QUEUED),
        ("submitted", UpstreamStatus.QUEUED),
        ("pending", UpstreamStatus.QUEUED),
        ("in_progress", UpstreamStatus.IN_PROGRESS),
        ("processing", UpstreamStatus.IN_PROGRESS),
        ("completed", UpstreamStatus.COMPLETED),
        ("succeeded", UpstreamStatus.COMPLETED),
        ("SUCCEEDED ", UpstreamStatus.COMPLETED),
        ("failed", UpstreamStatus.FAILED),
        ("cancelled", UpstreamStatus.CANCELLED),
        ("canceled", UpstreamStatus.CANCELLED),
        ("done?", UpstreamStatus.UNKNOWN),
        ("", UpstreamStatus.UNKNOWN),
        (None, UpstreamStatus.UNKNOWN),
        (3, UpstreamStatus.UNKNOWN),
    ],
)
def test_normalize_status(raw: object, want: UpstreamStatus) -> None:
    assert normalize_status(raw) is want


def test_unknown_is_never_done_and_completed_with_error_is_not_done() -> None:
    unknown = job_from_wire({"id": "v1", "status": "weird", "progress": 100})
    assert unknown.status is UpstreamStatus.UNKNOWN and not unknown.status.terminal
    assert not unknown.is_done
    broken = job_from_wire(
        {"id": "v2", "status": "completed", "error": {"code": "x", "message": "m"}}
    )
    assert broken.status is UpstreamStatus.COMPLETED and not broken.is_done
    ok = job_from_wire(
        {"id": "v3", "status": "succeeded", "progress": 40, "video_url": "http://x/v.mp4"}
    )
    assert ok.is_done and ok.progress == 100 and ok.direct_url == "http://x/v.mp4"
    failed = job_from_wire({"id": "v4", "status": "failed", "error": "moderation"})
    assert (failed.error_code, failed.error_message) == ("error", "moderation")
    with pytest.raises(UpstreamError) as e:
        job_from_wire({"status": "queued"})
    assert e.value.kind is ErrorKind.MALFORMED


def test_content_expired_uses_callers_clock() -> None:
    job = job_from_wire({"id": "v", "status": "completed", "expires_at": 1000})
    assert not job.content_expired(999.9) and job.content_expired(1000)


@pytest.mark.parametrize(
    ("body", "want"),
    [
        (
            b'{"error": {"message": "Bad size", "type": "invalid_request_error",'
            b' "code": "invalid_value"}}',
            ("Bad size", "invalid_value", "invalid_request_error"),
        ),
        (b'{"error": "plain string"}', ("plain string", None, None)),
        (
            json.dumps(
                {"error": {"message": json.dumps({"error": {"message": "inner", "code": "c"}})}}
            ).encode(),
            ("inner", "c", None),
        ),
        (b'{"message": "top-level", "code": 7}', ("top-level", "7", None)),
        (b"<html>502 Bad Gateway</html>", ("<html>502 Bad Gateway</html>", None, None)),
        (b"", ("no body", None, None)),
    ],
)
def test_parse_error_body_shapes(body: bytes, want: tuple[str, str | None, str | None]) -> None:
    assert parse_error_body(body) == want


@pytest.mark.parametrize(
    ("status", "body", "kind", "retryable"),
    [
        (
            429,
            b'{"error": {"message": "slow down", "code": "rate_limit_exceeded"}}',
            ErrorKind.RATE_LIMITED,
            True,
        ),
        (
            429,
            b'{"error": {"message": "quota", "code": "insufficient_quota"}}',
            ErrorKind.QUOTA,
            False,
        ),
        (
            400,
            b'{"error": {"message": "blocked", "code": "moderation_blocked"}}',
            ErrorKind.CONTENT_POLICY,
            False,
        ),
        (
            400,
            b'{"error": {"message": "bad", "code": "invalid_value"}}',
            ErrorKind.INVALID_REQUEST,
            False,
        ),
        (401, b'{"error": "no"}', ErrorKind.AUTH, False),
        (403, b'{"error": "no quota"}', ErrorKind.QUOTA, False),
        (404, b'{"error": "gone"}', ErrorKind.NOT_FOUND, False),
        (408, b"", ErrorKind.TIMEOUT, True),
        (502, b"<html>", ErrorKind.TRANSIENT, True),
        (503, b'{"error": {"message": "overloaded"}}', ErrorKind.TRANSIENT, True),
    ],
)
def test_classify_http_error(status: int, body: bytes, kind: ErrorKind, retryable: bool) -> None:
    err = classify_http_error(status, body)
    assert err.kind is kind and err.retryable is retryable and err.status == status
    assert not UpstreamError(ErrorKind.AMBIGUOUS_CREATE, "x").retryable


def test_retry_after_and_poll_after_headers() -> None:
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) is None
    assert parse_retry_after({}) is None
    assert parse_poll_after({"openai-poll-after-ms": "250"}) == 0.25
    assert parse_poll_after({}) is None


def test_model_and_seconds_mapping() -> None:
    assert map_model("sora_video2") == "sora-2"
    assert map_model("sora-2-pro") == "sora-2-pro"
    assert map_model("sora_video2", {"sora_video2": "sora-2-pro"}) == "sora-2-pro"
    assert [map_seconds(s) for s in (5, 10, 15, "4", 1, 100)] == ["4", "12", "12", "4", "4", "12"]
    gateway = (4, 5, 8, 10, 12, 15)
    assert [map_seconds(s, gateway) for s in (5, 10, 15)] == ["5", "10", "15"]
    with pytest.raises(ValueError):
        map_seconds(5, ())


def test_config_auth_header_and_backoff() -> None:
    cfg = UpstreamConfig(base_url="http://x/v1", api_key="k")
    assert cfg.auth_header() == "Bearer k"
    assert UpstreamConfig(base_url="http://x", api_key="k", auth_style="bare").auth_header() == "k"
    assert dict(cfg.model_map) == {"sora_video2": "sora-2"}
    r = RetryPolicy(base_delay_s=1, max_delay_s=5)
    assert [r.backoff(a, 0.0) for a in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 2.5, 2.5]
    assert [r.backoff(a, 0.999999) for a in (1, 4)] == [pytest.approx(1.0), pytest.approx(5.0)]


def test_progress_curve_monotone_and_uneven() -> None:
    for shape in (0, 1, 77, 4095, 65535):
        xs = [i / 200 for i in range(201)]
        ys = [progress_curve(x, shape) for x in xs]
        assert ys[0] == 0 and ys[-1] == pytest.approx(1.0)
        assert all(b >= a - 1e-12 for a, b in pairwise(ys))
        slopes = [b - a for a, b in pairwise(ys)]
        assert max(slopes) > 3 * min(slopes) + 1e-6


def test_media_is_valid() -> None:
    boxes = dict(mp4_top_level_boxes(media_bytes("video")))
    assert {"ftyp", "moov", "mdat"} <= set(boxes)
    assert mp4_top_level_boxes(media_bytes("video"))[0][0] == "ftyp"  # faststart: ftyp, moov, mdat
    assert b"vp09" in media_bytes("video")  # VP9 in MP4: Chromium plays it without H.264 licences
    assert is_webp(media_bytes("thumbnail")) and is_webp(media_bytes("spritesheet"))
    with pytest.raises(ValueError):
        mp4_top_level_boxes(media_bytes("video")[:-1])


def test_cli_arguments_build_config() -> None:
    parser = argparse.ArgumentParser()
    add_simulator_arguments(parser)
    ns = parser.parse_args(
        [
            "--time-scale",
            "50",
            "--seed",
            "9",
            "--dialect",
            "gateway",
            "--fault-5xx",
            "0.1",
            "--fault-drop",
            "0.2",
            "--key-rpm",
            "10",
            "--key-max-jobs",
            "5",
            "--api-key",
            "k",
        ]
    )
    cfg = simulator_config_from_args(ns)
    assert (cfg.time_scale, cfg.seed, cfg.dialect, cfg.api_key) == (50, 9, "gateway", "k")
    assert cfg.effective_base_path == "/sora/v1"
    assert (cfg.faults.server_error, cfg.faults.drop) == (0.1, 0.2)
    assert (cfg.limits.requests_per_window, cfg.limits.max_concurrent_jobs) == (10, 5)
    with pytest.raises(ValueError):
        simulator_config_from_args(parser.parse_args(["--fault-429", "1.5"]))
