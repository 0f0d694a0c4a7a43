"""The task's states, as a table: phases, public statuses, the terminal set, error codes.

A task's ``phase`` is the actor's state; its public ``status`` (the contract's five
`Status` values) follows from the phase. Every change goes through `transition`, which
refuses a move the table does not list.

    ACCEPTED ──> SUBMITTING ──> POLLING ──> FETCHING ──> COMPLETED
        │            │  ▲ │        │  ▲         │
        │            │  └─┘(retry) └──┘(poll)    │
        └────────────┴──────┴─────────┴──────────┴──> FAILED | CANCELLED

SUBMITTING -> ACCEPTED is the one way back: after a crash mid-submission, when the upstream
provably never saw the job, the task is submitted again (see `task.py`).

This module imports nothing of sora_actors: storage, the http layer and the command-line
client all take the status names from here, so each is spelled once.
"""

from __future__ import annotations

import enum
from typing import Any


class Status(enum.StrEnum):
    """The public status clients see (REST, WebSocket, the command line)."""

    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Phase(enum.StrEnum):
    ACCEPTED = "ACCEPTED"  # stored, not yet sent upstream
    SUBMITTING = "SUBMITTING"  # intent stored; the create call may be in flight
    POLLING = "POLLING"  # upstream id stored; following the job
    FETCHING = "FETCHING"  # upstream finished; copying the result
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


PUBLIC_STATUS: dict[Phase, Status] = {
    Phase.ACCEPTED: Status.QUEUED,
    Phase.SUBMITTING: Status.QUEUED,
    Phase.POLLING: Status.PROCESSING,
    Phase.FETCHING: Status.PROCESSING,
    Phase.COMPLETED: Status.COMPLETED,
    Phase.FAILED: Status.FAILED,
    Phase.CANCELLED: Status.CANCELLED,
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
# The same split in public terms, as plain strings (what storage stores and filters on).
TERMINAL_STATUSES: frozenset[str] = frozenset(PUBLIC_STATUS[phase].value for phase in TERMINAL)
UNFINISHED_STATUSES: tuple[str, ...] = tuple(
    status.value for status in Status if status.value not in TERMINAL_STATUSES
)


class IllegalTransition(Exception):
    """A bug: code asked for a move the table does not allow."""


def transition(current: str, target: Phase, **changes: Any) -> dict[str, Any]:
    """The column changes that move a task from ``current`` to ``target`` (checked)."""
    here = Phase(current)
    if target not in TRANSITIONS[here]:
        raise IllegalTransition(f"{here} -> {target} is not in the state table")
    return {"phase": target.value, "status": PUBLIC_STATUS[target].value, **changes}


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
