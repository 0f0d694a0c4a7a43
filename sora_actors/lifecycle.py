"""The task state machine, as a table.

A task's ``phase`` is the actor's state; its public ``status`` (the contract's QUEUED,
PROCESSING, COMPLETED, FAILED, CANCELLED) follows from the phase. Every change goes through
`transition`, which refuses a move the table does not list.

    ACCEPTED ──> SUBMITTING ──> POLLING ──> FETCHING ──> COMPLETED
        │            │  ▲ │        │  ▲         │
        │            │  └─┘(retry) └──┘(poll)    │
        └────────────┴──────┴─────────┴──────────┴──> FAILED | CANCELLED

SUBMITTING -> ACCEPTED is the one way back: after a crash mid-submission, when the upstream
provably never saw the job, the task is submitted again (see `task.py`).
"""

from __future__ import annotations

import enum
import uuid
from typing import Any

from .storage import NewTask


class Phase(enum.StrEnum):
    ACCEPTED = "ACCEPTED"  # stored, not yet sent upstream
    SUBMITTING = "SUBMITTING"  # intent stored; the create call may be in flight
    POLLING = "POLLING"  # upstream id stored; following the job
    FETCHING = "FETCHING"  # upstream finished; copying the result
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


PUBLIC_STATUS: dict[Phase, str] = {
    Phase.ACCEPTED: "QUEUED",
    Phase.SUBMITTING: "QUEUED",
    Phase.POLLING: "PROCESSING",
    Phase.FETCHING: "PROCESSING",
    Phase.COMPLETED: "COMPLETED",
    Phase.FAILED: "FAILED",
    Phase.CANCELLED: "CANCELLED",
}

_ENDINGS = frozenset({Phase.FAILED, Phase.CANCELLED})

TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    Phase.ACCEPTED: frozenset({Phase.SUBMITTING}) | _ENDINGS,
    Phase.SUBMITTING: frozenset({Phase.POLLING, Phase.ACCEPTED}) | _ENDINGS,
    Phase.POLLING: frozenset({Phase.POLLING, Phase.FETCHING}) | _ENDINGS,
    Phase.FETCHING: frozenset({Phase.FETCHING, Phase.COMPLETED}) | _ENDINGS,
    Phase.COMPLETED: frozenset(),
    Phase.FAILED: frozenset(),
    Phase.CANCELLED: frozenset(),
}

TERMINAL = frozenset(phase for phase, nexts in TRANSITIONS.items() if not nexts)


def new_task(user_id: str, prompt: str, **fields: Any) -> NewTask:
    """A task in its first state, with the API's defaults for what ``fields`` leaves out."""
    defaults: dict[str, Any] = {
        "video_id": f"video_{uuid.uuid4()}",
        "model": "sora-2",
        "size": "720x1280",
        "duration": 4,
    }
    return NewTask(
        user_id=user_id,
        prompt=prompt,
        status=PUBLIC_STATUS[Phase.ACCEPTED],
        phase=Phase.ACCEPTED.value,
        **{**defaults, **fields},
    )


class IllegalTransition(Exception):
    """A bug: code asked for a move the table does not allow."""


def transition(current: str, target: Phase, **changes: Any) -> dict[str, Any]:
    """The column changes that move a task from ``current`` to ``target`` (checked)."""
    here = Phase(current)
    if target not in TRANSITIONS[here]:
        raise IllegalTransition(f"{here} -> {target} is not in the state table")
    return {"phase": target.value, "status": PUBLIC_STATUS[target], **changes}


class ErrorCode(enum.StrEnum):
    """Why a task failed: the ``errorCode`` clients see."""

    UPSTREAM_REJECTED = "UPSTREAM_REJECTED"  # 400 on create: invalid request
    CONTENT_POLICY = "CONTENT_POLICY"  # the upstream's moderation refused or failed it
    UPSTREAM_AUTH = "UPSTREAM_AUTH"  # our upstream key is wrong or out of quota
    UPSTREAM_FAILED = "UPSTREAM_FAILED"  # the upstream job ended failed
    UPSTREAM_JOB_LOST = "UPSTREAM_JOB_LOST"  # the upstream no longer knows the job
    SUBMISSION_UNCERTAIN = "SUBMISSION_UNCERTAIN"  # cannot tell whether the create happened
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"  # still unfinished past the task deadline
    ACTOR_CRASH_LOOP = "ACTOR_CRASH_LOOP"  # restarted too often; given up
    CONTENT_UNAVAILABLE = "CONTENT_UNAVAILABLE"  # finished, but its media could not be copied


# Failures a user may sensibly retry by submitting again.
RETRYABLE = frozenset(
    {
        ErrorCode.SUBMISSION_UNCERTAIN,
        ErrorCode.DEADLINE_EXCEEDED,
        ErrorCode.ACTOR_CRASH_LOOP,
        ErrorCode.UPSTREAM_JOB_LOST,
        ErrorCode.CONTENT_UNAVAILABLE,
    }
)
