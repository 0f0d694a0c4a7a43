"""Failure classification: which errorCode a task ends with, for each upstream outcome."""

from __future__ import annotations

import pytest

from sora_actors.lifecycle import RETRYABLE, ErrorCode
from sora_actors.task import failure_for, job_failure
from sora_actors.upstream import ErrorKind, UpstreamError, UpstreamJob, UpstreamStatus
from sora_actors.upstream.mapping import classify_error, is_policy_code


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        (ErrorKind.CONTENT_POLICY, ErrorCode.CONTENT_POLICY),
        (ErrorKind.AUTH, ErrorCode.UPSTREAM_AUTH),
        (ErrorKind.QUOTA, ErrorCode.UPSTREAM_AUTH),
        (ErrorKind.INVALID_REQUEST, ErrorCode.UPSTREAM_REJECTED),
        (ErrorKind.NOT_FOUND, ErrorCode.UPSTREAM_REJECTED),
    ],
)
def test_a_refusal_maps_to_one_error_code(kind: ErrorKind, code: ErrorCode) -> None:
    got, message = failure_for(UpstreamError(kind, "the upstream said no"))
    assert got is code
    if code is ErrorCode.UPSTREAM_AUTH:  # never echo what the upstream said about our key
        assert message == "the upstream refused our credentials or quota"
    else:
        assert message == "the upstream said no"


@pytest.mark.parametrize(
    ("error_code", "expected"),
    [
        ("moderation_blocked", ErrorCode.CONTENT_POLICY),
        ("content_policy_violation", ErrorCode.CONTENT_POLICY),
        ("safety_system", ErrorCode.CONTENT_POLICY),
        ("Content_Filter", ErrorCode.CONTENT_POLICY),
        ("blocked", ErrorCode.CONTENT_POLICY),
        ("internal_error", ErrorCode.UPSTREAM_FAILED),
        ("error", ErrorCode.UPSTREAM_FAILED),
        (None, ErrorCode.UPSTREAM_FAILED),
    ],
)
def test_a_failed_job_is_a_policy_refusal_or_an_upstream_failure(
    error_code: str | None, expected: ErrorCode
) -> None:
    job = UpstreamJob("video_1", UpstreamStatus.FAILED, error_code=error_code)
    assert job_failure(job) == (expected, "the upstream job failed")
    told = UpstreamJob("video_1", UpstreamStatus.FAILED, error_code=error_code, error_message="x")
    assert job_failure(told) == (expected, "x")


def test_the_job_and_the_http_error_agree_on_what_a_policy_refusal_is() -> None:
    """One marker list: a code the job classification calls a policy refusal is one for the
    create's HTTP error too, and the other way round."""
    for code in ("moderation_blocked", "safety", "content_filter", "blocked", "policy"):
        assert is_policy_code(code)
        assert classify_error(400, "refused", code, None).kind is ErrorKind.CONTENT_POLICY
        assert classify_error(403, "refused", code, None).kind is ErrorKind.CONTENT_POLICY
    for code in ("invalid_value", "error", None):
        assert not is_policy_code(code)
        assert classify_error(400, "refused", code, None).kind is ErrorKind.INVALID_REQUEST
        assert classify_error(403, "refused", code, None).kind is ErrorKind.QUOTA


def test_which_failures_a_user_may_retry() -> None:
    assert {
        ErrorCode.SUBMISSION_UNCERTAIN,
        ErrorCode.DEADLINE_EXCEEDED,
        ErrorCode.ACTOR_CRASH_LOOP,
        ErrorCode.UPSTREAM_JOB_LOST,
        ErrorCode.CONTENT_UNAVAILABLE,
    } == RETRYABLE
    assert ErrorCode.CONTENT_POLICY not in RETRYABLE and ErrorCode.UPSTREAM_AUTH not in RETRYABLE
