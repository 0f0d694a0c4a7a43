"""The task service: the only writer of task state.

Every change to a task goes through one of its methods:

- `accept` stores a new task (REST JSON and multipart creates, remixes, tests and benchmarks
  alike) and hands it to the supervisor to run;
- `advance` and `fail` move a task its local actor drives one step along the state table;
- `cancel_unowned` and `fail_unowned` end a task no local actor drives (a cancel for a task
  another instance runs or that is between restarts, an actor given up after a crash loop);
- `content_restored` and `content_expired` note what happened to a completed task's copy.

Each persists first (one unit of work, ``seq`` + 1, applied only if the task is still at the
``seq`` the caller last saw) and publishes to the hub second, in `_persist`: a client never
hears of something a crash could take back. Reads go straight to storage.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from .clock import wall_ms
from .hub import Hub, TaskEvent
from .lifecycle import PUBLIC_STATUS, RETRYABLE, ErrorCode, Phase, transition
from .plans import Plans, Wish
from .storage import Activity, NewTask, StaleTask, Storage, Task

# A reference image for image-to-video: (content type, file name, bytes).
Image = tuple[str, str, bytes]
Written = TypeVar("Written", Task, Task | None)


@dataclass(frozen=True, slots=True)
class Order:
    """What a client asks for: a new video, or a remix of one of its finished videos."""

    prompt: str
    model: str = "sora-2"
    size: str = "720x1280"
    duration: int = 4
    image: Image | None = None
    remixed_from: str | None = None

    def fingerprint(self) -> str:
        """The request hash an Idempotency-Key is bound to."""
        canonical = json.dumps(
            {
                "prompt": self.prompt,
                "model": self.model,
                "size": self.size,
                "duration": self.duration,
                "image": hashlib.sha256(self.image[2]).hexdigest() if self.image else None,
            },
            sort_keys=True,
        )
        return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class CancelOutcome:
    """A task after a request to end it; ``cancelled`` is False when it had already ended."""

    task: Task
    cancelled: bool


class Runner(Protocol):
    """Who runs accepted tasks (the supervisor): the owner and lease a new task is stored
    with, and where it starts."""

    @property
    def owner(self) -> str | None: ...

    def new_lease_until(self) -> int | None: ...

    def start(self, task: Task) -> None: ...


class TaskService:
    """Accepts tasks and writes every change to them: persist, then publish."""

    # Tries of the conditional update when ending a task that others may write meanwhile.
    END_ATTEMPTS = 5

    def __init__(
        self,
        storage: Storage,
        hub: Hub,
        *,
        deadline_s: float | None = None,
        plans: Plans | None = None,
    ) -> None:
        """``deadline_s``: a task still unfinished this long after acceptance fails (None:
        the actor's own default, counted from when it starts). ``plans``: what each user
        may create (None: anything, as for tests and benchmarks of other parts)."""
        self._storage = storage
        self._hub = hub
        self._deadline_s = deadline_s
        self._plans = plans
        self._runner: Runner | None = None

    def run_with(self, runner: Runner) -> None:
        """Hand accepted tasks to ``runner`` (without one they are only stored)."""
        self._runner = runner

    # -- new tasks ----------------------------------------------------------------------

    async def accept(
        self,
        user_id: str,
        order: Order,
        *,
        idempotency_key: str | None = None,
        ip: str | None = None,
        user_agent: str | None = None,
    ) -> tuple[Task, bool]:
        """Store a task in its first state and start its actor; ``(task, created)``.

        With an Idempotency-Key this user used before: the first task and False when the
        order is the same, Conflict(field="idempotency_key") when it is not. Otherwise, with
        plans: PlanForbids or QuotaExceeded when the user's plan does not admit it.
        """
        video_id = f"video_{uuid.uuid4()}"
        runner = self._runner
        image = order.image
        new = NewTask(
            video_id=video_id,
            user_id=user_id,
            prompt=order.prompt,
            model=order.model,
            size=order.size,
            duration=order.duration,
            status=PUBLIC_STATUS[Phase.ACCEPTED].value,
            phase=Phase.ACCEPTED.value,
            image=(image[0], image[1], base64.b64encode(image[2]).decode()) if image else None,
            idempotency_key=idempotency_key,
            request_hash=order.fingerprint() if idempotency_key else None,
            remixed_from_video_id=order.remixed_from,
            deadline_at=(
                wall_ms() + int(self._deadline_s * 1000) if self._deadline_s is not None else None
            ),
            # Created here, run here: no other instance has to discover it.
            owner=runner.owner if runner else None,
            lease_expires_at=runner.new_lease_until() if runner else None,
            media_type="IMAGE" if image else "VIDEO",
        )
        details: dict[str, Any] = {
            "videoId": video_id,
            "model": order.model,
            "size": order.size,
            "duration": order.duration,
            "image": image is not None,
        }
        if order.remixed_from:
            details["remixedFrom"] = order.remixed_from
        activity = Activity("generate_video", user_id, details, ip, user_agent)
        gate = None
        if self._plans is not None:
            wish = Wish(order.model, order.size, order.duration, image is not None)
            gate = self._plans.gate(wish)
        task, created = await self._storage.tasks.create(new, activity, gate)
        if runner is not None:
            runner.start(task)
        return task, created

    # -- a task its actor drives --------------------------------------------------------

    async def advance(
        self,
        task: Task,
        target: Phase,
        message: str | None,
        *,
        activity: Activity | None = None,
        **changes: Any,
    ) -> Task:
        """Move ``task`` to ``target`` (checked against the state table) with ``changes``.

        Raises StaleTask when the task moved on meanwhile (another ``seq``, or ended).
        """
        fields = transition(task.phase, target, **changes)
        return await self._persist(self._storage.tasks.change(task, activity, **fields), message)

    async def fail(self, task: Task, code: ErrorCode, message: str) -> Task:
        """End ``task`` FAILED with ``code``."""
        return await self.advance(
            task,
            Phase.FAILED,
            message,
            activity=_failure(task.video_id, task.user_id, code),
            error_code=code.value,
            error_message=message,
            completed_at=wall_ms(),
        )

    # -- a task no local actor drives ---------------------------------------------------

    async def cancel_unowned(self, video_id: str, reason: Activity) -> CancelOutcome | None:
        """Cancel a task whatever drives it; None when it does not exist."""
        return await self._end(video_id, Phase.CANCELLED, "cancelled", reason)

    async def fail_unowned(
        self, video_id: str, code: ErrorCode, message: str
    ) -> CancelOutcome | None:
        """Fail a task whose actor gave up; None when it does not exist."""
        return await self._end(
            video_id,
            Phase.FAILED,
            message,
            _failure(video_id, None, code),
            error_code=code.value,
            error_message=message,
        )

    async def _end(
        self, video_id: str, target: Phase, message: str, activity: Activity, **changes: Any
    ) -> CancelOutcome | None:
        """The conditional update, retried: racing an actor (here or elsewhere), the task
        ends in exactly one terminal state either way."""
        for _ in range(self.END_ATTEMPTS):
            task = await self._storage.tasks.get(video_id)
            if task is None:
                return None
            if task.terminal:
                return CancelOutcome(task, cancelled=False)
            # The log names the task's owner even when the caller did not know it.
            logged = activity if activity.user_id else replace(activity, user_id=task.user_id)
            try:
                ended = await self.advance(
                    task, target, message, activity=logged, completed_at=wall_ms(), **changes
                )
            except StaleTask:
                continue
            return CancelOutcome(ended, cancelled=True)
        raise StaleTask(video_id)

    # -- the local copy of a completed task ---------------------------------------------

    async def content_restored(self, video_id: str, variants: tuple[str, ...]) -> Task | None:
        """The copy was fetched again; None when the task is not COMPLETED."""
        return await self._persist(
            self._storage.content.restore(video_id, variants, wall_ms()),
            "the video was copied again",
        )

    async def content_expired(self, video_id: str, message: str) -> Task | None:
        """The copy is gone (retention, or lost and no longer upstream); None if already so."""
        return await self._persist(self._storage.content.expire(video_id, wall_ms()), message)

    # -- the one place that writes then announces ---------------------------------------

    async def _persist(self, write: Awaitable[Written], message: str | None) -> Written:
        """Wait for the unit of work, then announce the task it wrote (if it wrote one)."""
        task = await write
        if task is not None:
            self._hub.publish(TaskEvent(task, message))
        return task


def _failure(video_id: str, user_id: str | None, code: ErrorCode) -> Activity:
    details = {"videoId": video_id, "code": code.value, "retryable": code in RETRYABLE}
    return Activity("task_failed", user_id, details)
