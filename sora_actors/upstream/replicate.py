"""Provider for Replicate's predictions API (a second dialect beside the OpenAI-compatible one).

From Replicate's public HTTP reference: a model is run by ``POST /v1/models/{owner}/{name}/
predictions`` (official models) or ``POST /v1/predictions`` with a ``version``; the answer is a
prediction (status ``starting`` / ``processing`` / ``succeeded`` / ``failed`` / ``canceled``),
read again with ``GET /v1/predictions/{id}`` and stopped with ``POST /v1/predictions/{id}/
cancel``. The output is a URL on another host (fetched without our key); progress exists only
as text in ``logs`` (the last percentage printed). Errors are problem documents
(``{"title", "detail", "status"}``); auth is ``Authorization: Bearer``.

The create rules (ambiguous vs. definitely not created), the pacing and the retries are the
OpenAI-compatible adapter's: this one only changes paths, bodies and shapes. The model map
takes our model name to ``owner/name`` (an official model) or a version id.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncGenerator, Mapping
from datetime import datetime
from typing import Any

import httpx2

from .config import UpstreamConfig
from .mapping import (
    classify_error,
    is_policy_code,
    map_model,
    map_seconds,
    may_have_created,
    parse_retry_after,
)
from .openai_compat import DEFAULT_429_WAIT_S, OpenAICompatProvider
from .provider import (
    ContentVariant,
    ErrorKind,
    JobPage,
    OnSend,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    UpstreamStatus,
)

# Our model names -> Replicate's official models (a channel's model_map adds or overrides).
REPLICATE_MODEL_MAP: Mapping[str, str] = {
    "sora-2": "openai/sora-2",
    "sora-2-pro": "openai/sora-2-pro",
    "sora_video2": "openai/sora-2",
}
STATUSES: Mapping[str, UpstreamStatus] = {
    "starting": UpstreamStatus.QUEUED,
    "processing": UpstreamStatus.IN_PROGRESS,
    "succeeded": UpstreamStatus.COMPLETED,
    "failed": UpstreamStatus.FAILED,
    "canceled": UpstreamStatus.CANCELLED,
    "aborted": UpstreamStatus.CANCELLED,
}
_PERCENT = re.compile(r"(\d{1,3}(?:\.\d+)?)\s*%")
# A lost create is looked for among this many of the newest predictions (the list carries
# no inputs, so each candidate costs one read).
LOOKUP_READS = 30


def progress_from_logs(logs: object) -> int:
    """The last percentage the logs print (tqdm bars, "step 40%"), 0..100; 0 when none."""
    if not isinstance(logs, str):
        return 0
    found = _PERCENT.findall(logs)
    return max(0, min(100, int(float(found[-1])))) if found else 0


def _text(v: object) -> str | None:
    if isinstance(v, (str, int, float)) and not isinstance(v, bool):
        return str(v)
    return None


def _unix(v: object) -> float | None:
    """ISO 8601 (Replicate's timestamps, with a Z) -> Unix seconds."""
    if not isinstance(v, str) or not v:
        return None
    try:
        return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _output_url(output: object) -> str | None:
    """A URL, or the first of a list of them (models that return several files)."""
    if isinstance(output, str) and output:
        return output
    if isinstance(output, list):
        return next((x for x in output if isinstance(x, str) and x), None)
    return None


def prediction_from_wire(obj: object, *, poll_after_s: float | None = None) -> UpstreamJob:
    """A prediction object -> UpstreamJob; raises MALFORMED when it is not one."""
    if not isinstance(obj, Mapping):
        raise UpstreamError(ErrorKind.MALFORMED, f"expected a prediction, got {type(obj).__name__}")
    pid = obj.get("id")
    if not isinstance(pid, str) or not pid:
        raise UpstreamError(ErrorKind.MALFORMED, "prediction without an id")
    raw_status = obj.get("status")
    status = (
        STATUSES.get(raw_status, UpstreamStatus.UNKNOWN)
        if isinstance(raw_status, str)
        else (UpstreamStatus.UNKNOWN)
    )
    inp = obj.get("input")
    inp = inp if isinstance(inp, Mapping) else {}
    url = _output_url(obj.get("output"))
    error = _text(obj.get("error"))
    code: str | None = None
    if status is UpstreamStatus.FAILED:
        code = "content_policy_violation" if is_policy_code(error) else "prediction_failed"
    elif status is UpstreamStatus.COMPLETED and url is None:
        code, error = "no_output", error or "the prediction succeeded without an output URL"
    progress = (
        100
        if status is UpstreamStatus.COMPLETED and code is None
        else (progress_from_logs(obj.get("logs")))
    )
    return UpstreamJob(
        id=pid,
        status=status,
        progress=min(progress, 99) if status is not UpstreamStatus.COMPLETED else progress,
        model=_text(obj.get("model")) or _text(obj.get("version")),
        size=None,
        seconds=_text(inp.get("seconds")),
        created_at=_unix(obj.get("created_at")),
        completed_at=_unix(obj.get("completed_at")),
        error_code=code,
        error_message=error if code else None,
        direct_url=url,
        poll_after_s=poll_after_s,
        prompt=_text(inp.get("prompt")),
    )


def create_call(model_ref: str) -> tuple[str, dict[str, Any]]:
    """Where a create goes and the body fields besides ``input``: an ``owner/name`` runs the
    official model, anything else is a version id."""
    if "/" in model_ref:
        owner, name = model_ref.split("/", 1)
        return f"models/{owner}/{name}/predictions", {}
    return "predictions", {"version": model_ref}


def input_for(request: SubmitRequest, allowed_seconds: tuple[int, ...]) -> dict[str, Any]:
    """Our request as the input of a Sora-class model on Replicate (prompt, seconds,
    portrait or landscape; the reference image as a data URI)."""
    width, _, height = request.size.partition("x")
    try:
        portrait = int(height) >= int(width)
    except ValueError:
        portrait = True
    doc: dict[str, Any] = {
        "prompt": request.prompt,
        "seconds": int(map_seconds(request.seconds, allowed_seconds)),
        "aspect_ratio": "portrait" if portrait else "landscape",
    }
    if request.image is not None:
        data = base64.b64encode(request.image.data).decode()
        doc["input_reference"] = f"data:{request.image.content_type};base64,{data}"
    return doc


def parse_problem(body: bytes) -> str:
    """The ``detail`` of a problem document, else the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        return text[:500] or "no body"
    if isinstance(doc, Mapping):
        for field in ("detail", "title", "error", "message"):
            value = doc.get(field)
            if isinstance(value, str) and value:
                return value
    return text[:500] or "no body"


class ReplicateProvider(OpenAICompatProvider):
    """`Provider` over Replicate's predictions API. Use as `async with ReplicateProvider(c)`."""

    def __init__(self, config: UpstreamConfig, **kw: Any) -> None:
        super().__init__(config, **kw)
        # Outputs live on a file host: never send our key there.
        self._files = httpx2.AsyncClient(
            timeout=self._timeout, headers={"user-agent": config.user_agent}
        )

    async def aclose(self) -> None:
        await self._files.aclose()
        await super().aclose()

    # -- dialect hooks -------------------------------------------------------------
    def _job(self, doc: Any, *, poll_after_s: float | None = None) -> UpstreamJob:
        return prediction_from_wire(doc, poll_after_s=poll_after_s)

    def _is_api_error_body(self, body: bytes) -> bool:
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        return isinstance(doc, dict) and ("detail" in doc or "title" in doc)

    def _error(self, resp: httpx2.Response, body: bytes) -> UpstreamError:
        ra = parse_retry_after(resp.headers)
        if resp.status_code == 429:
            self.limiter.defer(ra if ra is not None else DEFAULT_429_WAIT_S)
        return classify_error(resp.status_code, parse_problem(body), None, None, retry_after_s=ra)

    # -- Provider --------------------------------------------------------------------
    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        path, fields = create_call(map_model(request.model, self.config.model_map))
        body = {**fields, "input": input_for(request, self.config.allowed_seconds)}
        if self.config.webhook_url:
            # Called back once, when the prediction ends (a hint; polling stays the net).
            body |= {"webhook": self.config.webhook_url, "webhook_events_filter": ["completed"]}
        async with self.limiter.job_slot() as slot:
            job = await self._create(path, on_send, json=body)
            if not job.status.terminal:
                slot.commit(job.id)
            return job

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        raise UpstreamError(ErrorKind.INVALID_REQUEST, "Replicate predictions cannot be remixed")

    async def get(self, job_id: str) -> UpstreamJob:
        try:
            doc, _ = await self._get_json(f"predictions/{job_id}")
        except UpstreamError as e:
            if e.kind is ErrorKind.NOT_FOUND:
                self.limiter.release(job_id)
            raise
        job = self._job(doc)
        self.limiter.job_seen(job.id, job.status.terminal)
        return job

    async def cancel(self, job_id: str) -> bool:
        """``POST /predictions/{id}/cancel`` (harmless to repeat, so retried like a poll)."""
        resp = await self._idempotent("POST", f"predictions/{job_id}/cancel")
        try:
            job = self._job(resp.json())
        except ValueError:
            self.limiter.release(job_id)
        else:
            self.limiter.job_seen(job.id, job.status.terminal)
        return True

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        """Newest first; ``after`` is the previous page's ``next`` URL (Replicate pages by
        cursor, and its list carries no inputs: `find_jobs` reads each candidate)."""
        doc, _ = await self._get_json(after or "predictions")
        results = doc.get("results") if isinstance(doc, dict) else None
        if not isinstance(results, list):
            raise UpstreamError(ErrorKind.MALFORMED, "list answer without a results array")
        jobs = tuple(self._job(x) for x in results)
        nxt = doc.get("next")
        return JobPage(
            jobs=jobs,
            has_more=isinstance(nxt, str) and bool(nxt),
            first_id=jobs[0].id if jobs else None,
            last_id=nxt if isinstance(nxt, str) and nxt else None,
        )

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        config = self.config
        found: list[UpstreamJob] = []
        reads = 0
        after: str | None = None
        for _ in range(pages):
            page = await self.list_jobs(after=after)
            for listed in page.jobs:
                if reads >= LOOKUP_READS:
                    return found
                job = listed if listed.prompt is not None else await self.get(listed.id)
                reads += listed.prompt is None
                if may_have_created(job, request, config.model_map, config.allowed_seconds):
                    found.append(job)
            if not page.has_more or page.last_id is None:
                break
            after = page.last_id
        return found

    async def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        """The output file, from its own host; a prediction has no previews."""
        if variant != "video":
            raise UpstreamError(ErrorKind.NOT_FOUND, f"a prediction has no {variant}")
        job = await self.get(job_id)
        if not job.is_done or job.direct_url is None:
            raise UpstreamError(ErrorKind.NOT_FOUND, f"prediction {job_id} has no output")
        async for chunk in self._stream(self._files, job.direct_url, None):
            yield chunk
