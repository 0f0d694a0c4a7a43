"""The task actor: one Trio task per unfinished video task.

It owns the task's state machine (`lifecycle`), its polling loop and a mailbox.

Every change goes through the task service (`task_service`), which persists it first (one
unit of work, ``seq`` + 1) and announces it second, so a client never hears of something a
crash could take back.

Submission safety. The upstream has no idempotency key: a create retried after a timeout
can start (and bill) a second job. So the actor stores its intent (phase SUBMITTING,
``submit_started_at``) when the create is about to leave (after any wait for a local job
slot: a task still waiting there was never sent, and after a restart goes out at once) and
the upstream id right after. A task found in SUBMITTING without an id (a crash, a
cancellation or an ambiguous create in between) is never submitted blindly again. The
provider finds the upstream jobs the create may have made (`Provider.find_jobs`, with the
model and length mapping it submits with) and the actor adopts the one no other task holds.
If there is none, it waits until the intent is older than ``submit_settle_s`` (a create still in
flight at the upstream must have landed by then) and looks again; only then, the upstream
having provably never seen the job, does it go back to ACCEPTED and submit again. A
provider that cannot list fails the task with SUBMISSION_UNCERTAIN (retryable) instead.

Channels. A new task's create goes to the channel `ChannelSet.pick` chooses; the intent
stores the channel's name with it, and every later call for the task goes to that channel.
A create that provably never reached the upstream (connection refused, 429, a 5xx with the
API's error body, 401/403, an open circuit) moves the task to the next channel at once;
an ambiguous one keeps it on its channel, where the lookup above decides.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from .backoff import Backoff
from .channels import Channel, ChannelSet, NoChannel, as_channels
from .clock import wall_ms
from .keeper import ContentKeeper, ContentStoreFull
from .ledger import PollLedger
from .lifecycle import ErrorCode, Phase
from .polling import PollingPolicy, Schedule, SteppedSchedule, WebhookWatch
from .storage import Activity, Storage, Task
from .task_service import CancelOutcome, TaskService
from .upstream import (
    ErrorKind,
    ImageInput,
    OnSend,
    Provider,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamStatus,
    is_policy_code,
)

log = logging.getLogger("sora_actors.task")


class LeaseLost(Exception):
    """This instance no longer holds the task's lease: its actor must stop at once."""


@dataclass(frozen=True)
class ActorConfig:
    policy: PollingPolicy = field(default_factory=SteppedSchedule)
    # A task still unfinished this long after it was accepted fails with DEADLINE_EXCEEDED.
    task_deadline_s: float = 3600.0
    # How long after a create was sent a job missing from the upstream's list proves that
    # the create never arrived.
    submit_settle_s: float = 60.0
    # Pause before submitting again after a definite "not created" (429, 5xx with a body).
    resubmit_delay_s: float = 5.0
    # How many upstream list pages a lost submission is looked for in.
    lookup_pages: int = 3
    # Where finished media is copied before COMPLETED is announced. None (embedded uses and
    # tests of the state machine alone): the task completes without a local copy.
    content: ContentKeeper | None = None
    # A failed copy (5xx, timeout, 429) is retried after this, doubling up to the maximum.
    fetch_backoff_s: float = 2.0
    fetch_backoff_max_s: float = 60.0
    # A download that finds the content store full waits for space with this backoff, the
    # last try landing this long before the upstream drops the video.
    space_retry: Backoff = field(default_factory=lambda: Backoff(5.0, 300.0))
    space_expiry_margin_s: float = 30.0
    # Which channels deliver webhooks now: their tasks poll as a sparse safety net.
    webhooks: WebhookWatch | None = None


# Today's single upstream is the channel of every task (channels come with issue 15).
DEFAULT_CHANNEL = "default"


@dataclass
class Cancel:
    """Mailbox command: cancel the task. The reply goes back on ``reply``."""

    reason: Activity
    reply: trio.MemorySendChannel[CancelOutcome]


@dataclass(frozen=True)
class UpstreamHint:
    """Mailbox message: a verified webhook says the upstream job ended (``event``, e.g.
    ``video.completed``). Only a hint: the actor polls once to confirm it."""

    event: str


Command = Cancel | UpstreamHint


def _remaining_to_trio(deadline_wall_ms: int | None, fallback_s: float) -> float:
    """A stored wall-clock deadline as a Trio-clock deadline (virtual time in tests)."""
    if deadline_wall_ms is None:
        return trio.current_time() + fallback_s
    return trio.current_time() + max(0.0, (deadline_wall_ms - wall_ms()) / 1000)


class TaskActor:
    """Walks one task through the state table until it is terminal."""

    def __init__(
        self,
        task: Task,
        *,
        storage: Storage,
        provider: Provider | ChannelSet,
        tasks: TaskService,
        config: ActorConfig,
        mailbox: trio.MemoryReceiveChannel[Command],
        ledger: PollLedger,
        lease_ok: Callable[[], bool] = lambda: True,
    ) -> None:
        self.task = task
        self._storage = storage
        self._channels = as_channels(provider)
        self._tried: set[str] = set()  # channels that refused this submission round
        self._tasks = tasks
        self._config = config
        self._mailbox = mailbox
        self._ledger = ledger
        self._lease_ok = lease_ok
        self._deadline = _remaining_to_trio(task.deadline_at, config.task_deadline_s)
        self._settle_at = self._settle_deadline()
        self._fetch_failures = 0
        self._space_waits = 0
        self._space_deadline: float | None = None
        self._schedule = self._new_schedule(submitted=False)
        self._poll_at = trio.current_time()  # a resumed task polls at once

    @property
    def _provider(self) -> Channel:
        """The channel this task's create went to (every call for it goes there)."""
        return self._channels.get(self.task.channel)

    # -- the loop ---------------------------------------------------------------------

    async def run(self) -> Task:
        """Drive the task to a terminal state; return it."""
        steps = {
            Phase.ACCEPTED: self._submit,
            Phase.SUBMITTING: self._find_lost_submission,
            Phase.POLLING: self._poll,
            Phase.FETCHING: self._fetch,
        }
        while not self.task.terminal:
            await self._drain_mailbox()
            if self.task.terminal:
                break
            if not self._lease_ok():
                # Another instance may have adopted the task: never act on it alongside.
                raise LeaseLost(self.task.video_id)
            if trio.current_time() >= self._deadline and not self._waits_for_space():
                await self._fail(ErrorCode.DEADLINE_EXCEEDED, "the task did not finish in time")
                break
            await self._step(steps[Phase(self.task.phase)])
        return self.task

    async def _step(self, step: Callable[[], Awaitable[None]]) -> None:
        """Run one step while listening to the mailbox. A command interrupts the step (an
        upstream call, a download, a wait) and is handled at once: a cancel never waits for
        a slow upstream. Interrupting is safe: storage units complete regardless, a create
        cut off is looked up if the task goes on, and downloads land in temp files."""
        command: Command | None = None
        try:
            async with trio.open_nursery() as nursery:

                async def listen() -> None:
                    nonlocal command
                    with contextlib.suppress(trio.EndOfChannel):
                        received = await self._mailbox.receive()
                        # A webhook only matters while polling: a download goes on.
                        while isinstance(received, UpstreamHint) and not self._polling():
                            received = await self._mailbox.receive()
                        command = received
                        nursery.cancel_scope.cancel()

                nursery.start_soon(listen)
                await step()
                nursery.cancel_scope.cancel()
        except BaseException as error:
            if isinstance(command, Cancel):
                command.reply.close()  # its sender settles it through the database
            # The supervisor tells StaleTask, LeaseLost, a database outage and a crash apart:
            # hand it the step's own exception, not the nursery's group around it.
            raise _sole_error(error) from None
        if command is not None:
            await self._handle(command)

    async def _wait(self, seconds: float) -> None:
        """Sleep, never past the task deadline (commands interrupt it: see `_step`)."""
        await trio.sleep_until(min(trio.current_time() + max(0.0, seconds), self._deadline))

    async def _drain_mailbox(self) -> None:
        while not self.task.terminal:
            try:
                command = self._mailbox.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                return
            await self._handle(command)

    async def _handle(self, command: Command) -> None:
        if isinstance(command, UpstreamHint):
            self._hinted(command)
            return
        # The reply channel is closed however this ends: should the commit raise, the
        # caller sees EndOfChannel and settles the cancel through the database instead.
        with command.reply:
            if self.task.terminal:
                command.reply.send_nowait(CancelOutcome(self.task, cancelled=False))
                return
            await self._commit(
                Phase.CANCELLED,
                "cancelled",
                activity=command.reason,
                completed_at=wall_ms(),
            )
            command.reply.send_nowait(CancelOutcome(self.task, cancelled=True))
            await cancel_upstream(self._channels, self.task)

    # -- persistence ------------------------------------------------------------------

    async def _commit(
        self,
        target: Phase,
        message: str | None,
        *,
        activity: Activity | None = None,
        **changes: Any,
    ) -> None:
        """One step along the state table, through the task service."""
        self.task = await self._tasks.advance(
            self.task, target, message, activity=activity, **changes
        )

    async def _fail(self, code: ErrorCode, message: str) -> None:
        log.info("task %s failed: %s %s", self.task.video_id, code, message)
        self.task = await self._tasks.fail(self.task, code, message)

    # -- submitting -------------------------------------------------------------------

    def _settle_deadline(self) -> float:
        started = self.task.submit_started_at
        if started is None:
            return trio.current_time() + self._config.submit_settle_s
        settle_wall = started + int(self._config.submit_settle_s * 1000)
        return _remaining_to_trio(settle_wall, 0.0)

    async def _request(self) -> SubmitRequest:
        image = None
        stored = await self._storage.tasks.input_image(self.task.video_id)
        if stored is not None:
            content_type, filename, data = stored
            image = ImageInput(data=data, content_type=content_type, filename=filename)
        return SubmitRequest(
            prompt=self.task.prompt,
            model=self.task.model,
            size=self.task.size,
            seconds=self.task.duration,
            image=image,
        )

    async def _submit(self) -> None:
        # Waiting for a job slot must not outlive the task: past the deadline the next step
        # fails it (a create cut off mid-flight is looked up like any lost one).
        # Only the upstream call is timed: a Trio timer armed around database I/O would let
        # a virtual clock jump to it, so the deadline is lifted while the intent is stored.
        job: UpstreamJob | None = None
        try:
            channel, send = await self._prepare_send()
        except NoChannel as error:
            await self._no_channel(error)
            return
        except UpstreamError as error:
            await self._fail(*failure_for(error))
            return
        try:
            with trio.move_on_at(self._deadline) as timer:

                async def store_intent() -> None:
                    timer.deadline = math.inf
                    try:
                        await self._store_intent(channel.name)
                    finally:
                        timer.deadline = self._deadline

                job = await send(store_intent)
        except UpstreamError as error:
            await self._submit_failed(error, channel)
            return
        if job is None:
            return
        # (stored already, unless the provider skipped on_send)
        await self._store_intent(channel.name)
        self._schedule = self._new_schedule(submitted=True)
        self._poll_at = trio.current_time() + self._schedule.first_delay()
        await self._adopt(job, "submitted")

    async def _store_intent(self, channel: str) -> None:
        """The create is about to leave for ``channel``: SUBMITTING, from now on a restart
        looks it up there before sending it again. Once per submission (a create the
        provider retries after a definite refusal is the same intent)."""
        if self.task.phase != Phase.ACCEPTED:
            return
        now = wall_ms()
        await self._commit(
            Phase.SUBMITTING,
            f"submitting to the upstream (channel {channel})",
            submit_started_at=now,
            started_at=self.task.started_at or now,
            channel=channel,
        )
        self._settle_at = trio.current_time() + self._config.submit_settle_s

    async def _prepare_send(self) -> tuple[Channel, Callable[[OnSend], Awaitable[UpstreamJob]]]:
        """The channel and the create call, ready to go: a remix of the source task's
        upstream job (on the source's channel), else a new job on the channel routing picks
        (its inputs are read from storage here, before any timer is armed)."""
        source_id = self.task.remixed_from_video_id
        if source_id is None:
            task = self.task
            channel = self._channels.pick(task.model, task.size, task.duration, exclude=self._tried)
            request = await self._request()
            return channel, lambda on_send: channel.submit(request, on_send=on_send)
        source = await self._storage.tasks.get(source_id)
        if source is None or source.external_video_id is None:
            raise UpstreamError(
                ErrorKind.INVALID_REQUEST, f"the remixed task {source_id} has no upstream job"
            )
        target = source.external_video_id
        channel = self._channels.get(source.channel)
        return channel, lambda on_send: channel.remix(target, self.task.prompt, on_send=on_send)

    async def _submit_failed(self, error: UpstreamError, channel: Channel) -> None:
        kind = error.kind
        if kind is ErrorKind.AMBIGUOUS_CREATE:
            log.warning("task %s: create outcome unknown (%s)", self.task.video_id, error)
            # (stored already, unless the provider skipped on_send)
            await self._store_intent(channel.name)
            return  # stay in SUBMITTING on this channel: the next step looks the job up
        if kind not in _NOT_CREATED:
            await self._fail(*failure_for(error))
            return
        # A definite "not created": safe to send elsewhere, or here again later.
        if self.task.phase == Phase.SUBMITTING:
            await self._commit(
                Phase.ACCEPTED,
                f"channel {channel.name} refused: {error.message}",
                submit_started_at=None,
            )
        self._tried.add(channel.name)
        task = self.task
        none: NoChannel | None = None
        if task.remixed_from_video_id is not None:
            # A remix can only be made where its source lives: no other channel.
            none = NoChannel("unavailable", "a remix stays on its source's channel")
        else:
            try:
                self._channels.pick(task.model, task.size, task.duration, exclude=self._tried)
            except NoChannel as unroutable:
                none = unroutable
        if none is not None:
            if kind in (ErrorKind.AUTH, ErrorKind.QUOTA):
                await self._fail(*failure_for(error))
                return
            self._tried.clear()
            await self._wait(
                max(
                    self._config.resubmit_delay_s,
                    error.retry_after_s or 0.0,
                    none.retry_after_s or 0.0,
                )
            )
            return
        log.info(
            "task %s: %s refused the create; trying another channel", task.video_id, channel.name
        )

    async def _no_channel(self, error: NoChannel) -> None:
        """Routing found no channel: fail when none serves the task or all are disabled,
        else wait for one to cool down and free up."""
        self._tried.clear()
        if error.reason == "unserved":
            await self._fail(ErrorCode.UPSTREAM_REJECTED, str(error))
        elif error.reason == "disabled":
            await self._fail(ErrorCode.UPSTREAM_AUTH, str(error))
        else:
            await self._wait(error.retry_after_s or self._config.resubmit_delay_s)

    async def _adopt(self, job: UpstreamJob, how: str) -> None:
        await self._commit(
            Phase.POLLING,
            f"{how}: upstream job {job.id}",
            external_video_id=job.id,
            progress=job.progress,
            upstream_expires_at=_ms(job.expires_at),
        )

    async def _find_lost_submission(self) -> None:
        try:
            job = await self._lookup()
        except UpstreamError as error:
            if error.retryable:
                await self._wait(max(5.0, error.retry_after_s or 0.0))
                return
            await self._fail(
                ErrorCode.SUBMISSION_UNCERTAIN,
                "could not tell whether the upstream received this task; submit it again",
            )
            return
        if job is not None:
            await self._adopt(job, "recovered")
            return
        if trio.current_time() < self._settle_at:
            await self._wait(min(5.0, self._settle_at - trio.current_time()))
            return
        await self._commit(
            Phase.ACCEPTED,
            "the upstream never received the task; submitting again",
            submit_started_at=None,
        )

    async def _lookup(self) -> UpstreamJob | None:
        """The upstream job this task created, if the upstream lists one."""
        task = self.task
        wanted = SubmitRequest(
            prompt=task.prompt, model=task.model, size=task.size, seconds=task.duration
        )
        candidates = await self._provider.find_jobs(wanted, pages=self._config.lookup_pages)
        if not candidates:
            return None
        taken = await self._storage.tasks.claimed_external_ids([job.id for job in candidates])
        free = [job for job in candidates if job.id not in taken]
        if len(free) > 1:
            # Several unclaimed jobs look like ours (the same prompt sent by other tasks that
            # crashed too, perhaps other users'): adopting one could hand this user someone
            # else's video. Say we cannot tell instead.
            raise UpstreamError(
                ErrorKind.INVALID_REQUEST,
                f"{len(free)} upstream jobs match this task; cannot tell which is its own",
            )
        return free[0] if free else None

    # -- polling ----------------------------------------------------------------------

    def _new_schedule(self, *, submitted: bool) -> Schedule:
        watch = self._config.webhooks
        if watch is None:
            return self._config.policy.schedule(trio.current_time(), submitted=submitted)
        return self._config.policy.schedule(
            trio.current_time(),
            submitted=submitted,
            # The task's own channel: only its webhooks make its polling sparse.
            webhooks=watch.signal(self.task.channel or DEFAULT_CHANNEL),
        )

    def _polling(self) -> bool:
        return self.task.phase == Phase.POLLING and not self.task.terminal

    def _hinted(self, hint: UpstreamHint) -> None:
        """A webhook: poll once to confirm, as soon as the upstream lets us."""
        if not self._polling():
            return  # not following the job (yet, or any more): nothing to confirm
        now = trio.current_time()
        self._poll_at = min(self._poll_at, now + self._schedule.after_webhook(now))
        log.info("task %s: webhook %s; confirming by a poll", self.task.video_id, hint.event)

    async def _poll(self) -> None:
        """Wait for the schedule's time (a webhook or a command cuts the wait short), then
        poll once."""
        now = trio.current_time()
        if now < self._poll_at:
            await self._wait(self._poll_at - now)
            return
        external_id = self.task.external_video_id
        assert external_id is not None, "POLLING without an upstream id"
        try:
            job = await self._provider.get(external_id)
        except UpstreamError as error:
            now = trio.current_time()  # waits count from the answer (Retry-After, poll-after)
            if error.kind is ErrorKind.NOT_FOUND:
                await self._fail(ErrorCode.UPSTREAM_JOB_LOST, "the upstream lost track of the job")
                return
            if error.kind in (ErrorKind.AUTH, ErrorKind.QUOTA):
                await self._fail(*failure_for(error))
                return
            await self._record_poll()
            self._poll_at = now + self._schedule.next_delay(
                now, self.task.progress, failed=True, hint=None, retry_after=error.retry_after_s
            )
            return
        now = trio.current_time()
        delay = self._schedule.next_delay(
            now, job.progress, failed=False, hint=job.poll_after_s, retry_after=None
        )
        self._poll_at = now + delay
        await self._observe(job, self._schedule.remaining(now))

    async def _record_poll(self) -> None:
        """Count a poll that changed nothing visible: no seq bump, no event, and the write
        is grouped with other actors' (see `ledger`)."""
        now = wall_ms()
        self._ledger.note(self.task.video_id, now)
        self.task = dataclasses.replace(
            self.task, poll_count=self.task.poll_count + 1, last_poll_at=now
        )

    async def _observe(self, job: UpstreamJob, remaining_s: float | None) -> None:
        now = wall_ms()
        polled: dict[str, Any] = {"poll_count": "+1", "last_poll_at": now}
        if job.is_done:
            await self._commit(
                Phase.FETCHING,
                "finished upstream; fetching the result",
                progress=max(job.progress, 99),
                upstream_expires_at=_ms(job.expires_at),
                estimated_end_at=now,
                **polled,
            )
        elif job.status is UpstreamStatus.COMPLETED or job.status is UpstreamStatus.FAILED:
            await self._record_poll()
            await self._fail(*job_failure(job))
        elif job.status is UpstreamStatus.CANCELLED:
            await self._record_poll()
            await self._fail(ErrorCode.UPSTREAM_FAILED, "the upstream cancelled the job")
        elif job.progress > self.task.progress:
            await self._commit(
                Phase.POLLING,
                f"progress {job.progress}%",
                progress=job.progress,
                estimated_end_at=None if remaining_s is None else now + round(remaining_s * 1000),
                **polled,
            )
        else:
            await self._record_poll()

    # -- fetching ---------------------------------------------------------------------

    async def _fetch(self) -> None:
        """Copy the media into our content store, then announce COMPLETED.

        Only a finished copy completes the task, so no client is ever handed a link to a
        file that a crash could leave half-written; a restarted actor lands here again and
        fetches only what is not stored yet.
        """
        keeper = self._config.content
        stored: dict[str, Any] = {}
        if keeper is not None:
            try:
                variants = await keeper.copy(self.task)
            except UpstreamError as error:
                await self._fetch_failed(error)
                return
            except ContentStoreFull as error:
                await self._wait_for_space(error)
                return
            stored = {
                "content_stored_at": wall_ms(),
                "content_expired_at": None,
                "content_variants": " ".join(variants),
                "content_pending_since": None,
            }
        await self._commit(
            Phase.COMPLETED, "completed", progress=100, completed_at=wall_ms(), **stored
        )

    async def _fetch_failed(self, error: UpstreamError) -> None:
        if error.kind is ErrorKind.NOT_FOUND:
            await self._fail(
                ErrorCode.CONTENT_UNAVAILABLE,
                "the upstream no longer has the video (expired or deleted); submit it again",
            )
            return
        if error.kind in (ErrorKind.AUTH, ErrorKind.QUOTA):
            await self._fail(*failure_for(error))
            return
        if not error.retryable:
            await self._fail(
                ErrorCode.CONTENT_UNAVAILABLE, f"the upstream refused the download: {error.message}"
            )
            return
        self._fetch_failures += 1
        delay = min(
            self._config.fetch_backoff_max_s,
            self._config.fetch_backoff_s * 2 ** (self._fetch_failures - 1),
        )
        delay = max(delay, error.retry_after_s or 0.0)
        log.warning(
            "task %s: download failed (%s); retry in %.1f s", self.task.video_id, error, delay
        )
        await self._commit(
            Phase.FETCHING, f"downloading the result failed; retrying in {delay:.0f} s"
        )
        await self._wait(delay)

    def _waits_for_space(self) -> bool:
        """Finished upstream, waiting for room in the content store: the upstream's expiry
        bounds the wait, not the task deadline (the video exists; our disk is the holdup)."""
        task = self.task
        return task.content_pending_since is not None and task.upstream_expires_at is not None

    async def _wait_for_space(self, error: ContentStoreFull) -> None:
        """A known condition, not a failure: the upstream keeps the video until it expires,
        so try again with backoff; clients see contentStatus PENDING_SPACE meanwhile."""
        if self._space_deadline is None:  # the upstream's expiry, on the Trio clock
            expiry = _remaining_to_trio(self.task.upstream_expires_at, math.inf)
            self._space_deadline = expiry - self._config.space_expiry_margin_s
        self._space_waits += 1
        delay = self._config.space_retry.delay_before(
            self._space_waits, now=trio.current_time(), deadline=self._space_deadline
        )
        if delay is None:
            await self._fail(
                ErrorCode.CONTENT_UNAVAILABLE,
                "the content store stayed full until the upstream dropped the video",
            )
            return
        log.warning("task %s: %s; retry in %.1f s", self.task.video_id, error, delay)
        if self.task.content_pending_since is None:
            await self._commit(
                Phase.FETCHING,
                "waiting for space to store the video",
                content_pending_since=wall_ms(),
            )
        if self._waits_for_space():
            await trio.sleep(delay)
        else:
            await self._wait(delay)


# Create failures that prove the upstream made no job: the task may go to another channel.
_NOT_CREATED = frozenset(
    {
        ErrorKind.RATE_LIMITED,
        ErrorKind.TRANSIENT,
        ErrorKind.TIMEOUT,
        ErrorKind.AUTH,
        ErrorKind.QUOTA,
    }
)
# How long a cancel waits for the upstream to take the job's cancel too.
UPSTREAM_CANCEL_TIMEOUT_S = 10.0


async def cancel_upstream(channels: ChannelSet, task: Task) -> None:
    """Best effort after a task was cancelled here: stop its job upstream too, where the
    channel's dialect can (Replicate); the OpenAI-compatible contract has no cancel."""
    if task.external_video_id is None:
        return
    channel = channels.get(task.channel)
    with trio.move_on_after(UPSTREAM_CANCEL_TIMEOUT_S):
        try:
            if await channel.cancel(task.external_video_id):
                log.info("task %s: cancelled upstream too", task.video_id)
        except UpstreamError as error:
            log.warning("task %s: upstream cancel failed (%s)", task.video_id, error)


def _sole_error(error: BaseException) -> BaseException:
    """The one exception that is not a cancellation, if a group holds exactly one."""
    if not isinstance(error, BaseExceptionGroup):
        return error
    _, rest = error.split(trio.Cancelled)
    if rest is None:
        return error  # only cancellations: let Trio handle them as they are
    leaves = list(_leaves(rest))
    return leaves[0] if len(leaves) == 1 else error


def _leaves(error: BaseException) -> list[BaseException]:
    if isinstance(error, BaseExceptionGroup):
        return [leaf for inner in error.exceptions for leaf in _leaves(inner)]
    return [error]


def _ms(unix_seconds: float | None) -> int | None:
    return None if unix_seconds is None else math.floor(unix_seconds * 1000)


def job_failure(job: UpstreamJob) -> tuple[ErrorCode, str]:
    """Why a task fails whose upstream job ended failed (or completed with an error)."""
    code = ErrorCode.CONTENT_POLICY if is_policy_code(job.error_code) else ErrorCode.UPSTREAM_FAILED
    return code, job.error_message or "the upstream job failed"


def failure_for(error: UpstreamError) -> tuple[ErrorCode, str]:
    """Why a task fails on an upstream refusal that trying again will not change."""
    kind = error.kind
    if kind is ErrorKind.CONTENT_POLICY:
        return ErrorCode.CONTENT_POLICY, error.message
    if kind in (ErrorKind.AUTH, ErrorKind.QUOTA):
        return ErrorCode.UPSTREAM_AUTH, "the upstream refused our credentials or quota"
    return ErrorCode.UPSTREAM_REJECTED, error.message
