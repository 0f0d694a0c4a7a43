"""What the hub sends for a task event: `encode_event`, the WebSocket envelopes it makes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sora_actors.clock import wall_ms
from sora_actors.http import signing
from sora_actors.http.signing import UrlSigner, Verdict
from sora_actors.http.ws import encode_event
from sora_actors.hub import TaskEvent

from .factory import make_task

T0 = 1_764_600_000_000


def decode(frames: tuple[str, ...]) -> list[dict[str, Any]]:
    return [json.loads(text) for text in frames]


def test_progress_is_one_compact_envelope_with_the_whole_task() -> None:
    task = make_task("video_1", "u", seq=7, progress=40, prompt="un renard « roux »")
    before = wall_ms()
    frames = encode_event(TaskEvent(task, "polled"))
    after = wall_ms()
    assert len(frames) == 1
    text = frames[0]
    assert "«" in text  # UTF-8 as is, not \u escapes
    assert ", " not in text and '": ' not in text  # compact separators
    (message,) = decode(frames)
    assert list(message) == ["type", "timestamp", "payload"]  # no "id": not a reply
    assert message["type"] == "taskProgress"
    assert before <= message["timestamp"] <= after
    payload = message["payload"]
    assert (payload["videoId"], payload["status"], payload["progress"]) == (
        "video_1",
        "PROCESSING",
        40,
    )
    assert (payload["seq"], payload["message"], payload["prompt"]) == (
        7,
        "polled",
        "un renard « roux »",
    )
    assert payload["videoUrl"] is None and payload["errorCode"] is None


def test_completed_carries_result_and_metrics() -> None:
    task = make_task(
        "video_2",
        "u",
        seq=9,
        status="COMPLETED",
        progress=100,
        size="1280x720",
        duration=8,
        created_at=T0,
        started_at=T0 + 1_500,
        completed_at=T0 + 61_500,
    )
    (message,) = decode(encode_event(TaskEvent(task, "done")))
    assert message["type"] == "taskCompleted"
    payload = message["payload"]
    assert (payload["status"], payload["progress"], payload["seq"]) == ("completed", 100, 9)
    assert payload["result"] == {
        "videoUrl": None,
        "thumbnailUrl": None,
        "duration": 8,
        "resolution": "1280x720",
    }
    # Seconds, as the old backend sent them (it sent totalTime: 125).
    assert payload["metrics"] == {"totalTime": 61.5, "queueTime": 1.5, "processTime": 60.0}
    assert payload["completedAt"] == "2025-12-01T14:41:01.500Z"


def test_completed_without_a_start_has_no_metrics() -> None:
    task = make_task("video_3", "u", status="COMPLETED", created_at=T0, completed_at=T0 + 10)
    (message,) = decode(encode_event(TaskEvent(task)))
    assert "metrics" not in message["payload"]


def test_stored_content_is_announced_as_signed_links(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = UrlSigner(b"k" * 32, ttl_seconds=3600)
    monkeypatch.setattr(signing, "_process_signer", signer)  # no app: the process signer
    task = make_task(
        "video_4",
        "u",
        status="COMPLETED",
        content_stored_at=T0,
        content_variants="video",
    )
    (message,) = decode(encode_event(TaskEvent(task)))
    result = message["payload"]["result"]
    assert result["thumbnailUrl"] is None  # not stored: no link
    path, query = result["videoUrl"].split("?")
    assert path == "/files/video_4/video"  # relative: no origin learnt from a request
    params = dict(part.split("=", 1) for part in query.split("&"))
    assert signer.verify("video_4", "video", params["exp"], params["sig"]) is Verdict.VALID
    assert message["payload"]["contentStatus"] == "STORED"


@pytest.mark.parametrize(
    ("code", "message", "expected"),
    [
        ("UPSTREAM_JOB_LOST", "gone upstream", ("UPSTREAM_JOB_LOST", "gone upstream", True)),
        ("CONTENT_POLICY", "refused", ("CONTENT_POLICY", "refused", False)),
        ("SOMETHING_NEW", None, ("SOMETHING_NEW", "the task failed", False)),
        (None, None, ("FAILED", "the task failed", False)),
    ],
)
def test_failed_says_why_and_whether_to_retry(
    code: str | None, message: str | None, expected: tuple[str, str, bool]
) -> None:
    task = make_task("video_5", "u", status="FAILED", error_code=code, error_message=message)
    (envelope,) = decode(encode_event(TaskEvent(task)))
    assert envelope["type"] == "taskFailed"
    assert envelope["payload"]["status"] == "failed"
    error = envelope["payload"]["error"]
    assert (error["code"], error["message"], error["retryable"]) == expected


def test_cancelled_is_a_progress_for_old_clients_then_the_terminal_event() -> None:
    task = make_task("video_6", "u", seq=4, status="CANCELLED")
    progress, cancelled = decode(encode_event(TaskEvent(task, "cancelled")))
    assert (progress["type"], progress["payload"]["status"]) == ("taskProgress", "CANCELLED")
    assert (cancelled["type"], cancelled["payload"]["status"]) == ("taskCancelled", "cancelled")
    assert progress["payload"]["seq"] == cancelled["payload"]["seq"] == 4
