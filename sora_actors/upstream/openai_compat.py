"""Provider for OpenAI's Videos API and the gateways that copy it, over httpx2.

Create semantics (no idempotency key exists upstream, so a duplicate create
bills a second video):

- timeout or dropped connection after the request was sent, an unreadable 2xx,
  408, 502/504, or any 5xx whose body is not an API error  -> AMBIGUOUS_CREATE,
  never retried here; the caller must look the job up (`list_jobs`) first;
- connect failure (nothing was sent)                       -> safe to retry;
- 429                                                      -> not created; the key's gate
  is closed until Retry-After, then retried up to `retry.create_attempts`;
- 500/503 carrying an OpenAI-style error body              -> not created, retried likewise;
- other 4xx                                                -> raised at once.

Polls, lists and downloads are idempotent: retried with exponential
backoff and jitter. All waits are Trio sleeps.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncGenerator, Mapping
from typing import Any

import httpx2
import trio

from .config import UpstreamConfig
from .limiter import LimitedProvider, Limiter
from .mapping import (
    classify_http_error,
    job_from_wire,
    map_model,
    map_seconds,
    may_have_created,
    parse_poll_after,
    parse_retry_after,
)
from .provider import (
    ContentVariant,
    ErrorKind,
    JobPage,
    OnSend,
    SubmitRequest,
    UpstreamError,
    UpstreamJob,
    find_in_list,
)

DEFAULT_429_WAIT_S = 1.0
_NOT_SENT = (httpx2.ConnectError, httpx2.ConnectTimeout, httpx2.PoolTimeout)


def _transport_error(e: httpx2.HTTPError) -> UpstreamError:
    if isinstance(e, httpx2.TimeoutException):
        return UpstreamError(ErrorKind.TIMEOUT, f"{type(e).__name__}: {e}")
    return UpstreamError(ErrorKind.TRANSIENT, f"{type(e).__name__}: {e}")


class OpenAICompatProvider(LimitedProvider):
    """`Provider` over HTTP. Use as `async with OpenAICompatProvider(config) as p:`."""

    def __init__(
        self,
        config: UpstreamConfig,
        *,
        limiter: Limiter | None = None,
        client: httpx2.AsyncClient | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.limiter = limiter or Limiter(
            config.max_requests_per_second, config.max_concurrent_jobs
        )
        self._rng = rng or random.Random()
        self._timeout = httpx2.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.read_timeout_s,
        )
        self._create_timeout = httpx2.Timeout(
            connect=config.connect_timeout_s,
            read=config.create_timeout_s,
            write=config.create_timeout_s,
            pool=config.create_timeout_s,
        )
        base = config.base_url.rstrip("/") + "/"
        self._client = client or httpx2.AsyncClient(
            base_url=base,
            timeout=self._timeout,
            limits=httpx2.Limits(
                max_connections=config.max_connections,
                max_keepalive_connections=config.max_connections,
            ),
            headers={**config.auth_headers(), "user-agent": config.user_agent},
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- dialect hooks (the Replicate adapter overrides these) -------------------
    def _job(self, doc: Any, *, poll_after_s: float | None = None) -> UpstreamJob:
        """A job object of this dialect -> UpstreamJob (MALFORMED when it is not one)."""
        return job_from_wire(doc, poll_after_s=poll_after_s)

    def _is_api_error_body(self, body: bytes) -> bool:
        """Whether a 5xx body is the API's own error document: the API answered, so the
        create was refused, not lost."""
        try:
            doc = json.loads(body)
        except ValueError:
            return False
        return isinstance(doc, dict) and "error" in doc

    # -- plumbing -------------------------------------------------------------
    def _error(self, resp: httpx2.Response, body: bytes) -> UpstreamError:
        ra = parse_retry_after(resp.headers)
        err = classify_http_error(resp.status_code, body, retry_after_s=ra)
        if resp.status_code == 429:
            self.limiter.defer(ra if ra is not None else DEFAULT_429_WAIT_S)
        return err

    async def _backoff(self, attempt: int, err: UpstreamError) -> None:
        if err.kind is ErrorKind.RATE_LIMITED:
            return  # the limiter's gate already holds every request until Retry-After
        await trio.sleep(self.config.retry.backoff(attempt, self._rng.random()))

    async def _idempotent(
        self, method: str, path: str, *, params: Mapping[str, Any] | None = None
    ) -> httpx2.Response:
        """Send a request that is safe to repeat; return the 2xx response (body read) or raise."""
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.wait_turn()
            try:
                resp = await self._client.request(method, path, params=params)
            except httpx2.HTTPError as e:
                err = _transport_error(e)
            else:
                if resp.is_success:
                    return resp
                err = self._error(resp, resp.content)
            if not err.retryable or attempt >= self.config.retry.max_attempts:
                raise err
            await self._backoff(attempt, err)

    async def _get_json(
        self, path: str, *, params: Mapping[str, Any] | None = None
    ) -> tuple[Any, httpx2.Response]:
        """GET with retries, including on an unreadable body (a poll is harmless to repeat)."""
        attempt = 0
        while True:
            attempt += 1
            resp = await self._idempotent("GET", path, params=params)
            try:
                return resp.json(), resp
            except ValueError:
                err = UpstreamError(
                    ErrorKind.MALFORMED, f"unreadable JSON from {path}", status=resp.status_code
                )
            if attempt >= self.config.retry.max_attempts:
                raise err
            await self._backoff(attempt, err)

    async def _create(self, path: str, on_send: OnSend | None, **kw: Any) -> UpstreamJob:
        """POST a create at most once per definite "not created" answer; see the module doc."""
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.wait_turn()
            if on_send is not None:
                await on_send()
            try:
                resp = await self._client.post(path, timeout=self._create_timeout, **kw)
            except _NOT_SENT as e:
                err = _transport_error(e)  # nothing reached the server: safe to try again
            except httpx2.HTTPError as e:
                raise UpstreamError(
                    ErrorKind.AMBIGUOUS_CREATE,
                    f"create outcome unknown after {type(e).__name__}: {e}",
                ) from e
            else:
                body = resp.content
                if resp.is_success:
                    try:
                        return self._job(json.loads(body))
                    except (ValueError, UpstreamError) as e:
                        raise UpstreamError(
                            ErrorKind.AMBIGUOUS_CREATE,
                            f"create answered {resp.status_code} with an unreadable body: {e}",
                            status=resp.status_code,
                        ) from e
                err = self._error(resp, body)
                s = resp.status_code
                if s in (408, 502, 504) or (s >= 500 and not self._is_api_error_body(body)):
                    raise UpstreamError(
                        ErrorKind.AMBIGUOUS_CREATE,
                        f"create answered {s} without saying whether the job exists: {err.message}",
                        status=s,
                        code=err.code,
                    )
            if not err.retryable or attempt >= self.config.retry.create_attempts:
                raise err
            await self._backoff(attempt, err)

    # -- Provider -------------------------------------------------------------
    async def submit(self, request: SubmitRequest, *, on_send: OnSend | None = None) -> UpstreamJob:
        fields = {
            "prompt": request.prompt,
            "model": map_model(request.model, self.config.model_map),
            "size": request.size,
            "seconds": map_seconds(request.seconds, self.config.allowed_seconds),
        }
        kw: dict[str, Any]
        if request.image is not None:
            img = request.image
            kw = {
                "data": fields,
                "files": {"input_reference": (img.filename, img.data, img.content_type)},
            }
        else:
            kw = {"json": fields}
        async with self.limiter.job_slot() as slot:
            job = await self._create("videos", on_send, **kw)
            if not job.status.terminal:
                slot.commit(job.id)
            return job

    async def remix(
        self, job_id: str, prompt: str, *, on_send: OnSend | None = None
    ) -> UpstreamJob:
        async with self.limiter.job_slot() as slot:
            job = await self._create(f"videos/{job_id}/remix", on_send, json={"prompt": prompt})
            if not job.status.terminal:
                slot.commit(job.id)
            return job

    async def get(self, job_id: str) -> UpstreamJob:
        try:
            doc, resp = await self._get_json(f"videos/{job_id}")
        except UpstreamError as e:
            if e.kind is ErrorKind.NOT_FOUND:
                self.limiter.release(job_id)
            raise
        job = job_from_wire(doc, poll_after_s=parse_poll_after(resp.headers))
        self.limiter.job_seen(job.id, job.status.terminal)
        return job

    async def list_jobs(self, after: str | None = None, limit: int = 100) -> JobPage:
        params: dict[str, Any] = {"limit": limit, "order": "desc"}
        if after:
            params["after"] = after
        doc, _ = await self._get_json("videos", params=params)
        data = doc.get("data") if isinstance(doc, dict) else None
        if not isinstance(data, list):
            raise UpstreamError(ErrorKind.MALFORMED, "list answer without a data array")
        jobs = tuple(job_from_wire(x) for x in data)
        return JobPage(
            jobs=jobs,
            has_more=bool(doc.get("has_more")),
            first_id=doc.get("first_id") or (jobs[0].id if jobs else None),
            last_id=doc.get("last_id") or (jobs[-1].id if jobs else None),
        )

    async def find_jobs(self, request: SubmitRequest, *, pages: int = 3) -> list[UpstreamJob]:
        config = self.config
        return await find_in_list(
            self.list_jobs,
            lambda job: may_have_created(job, request, config.model_map, config.allowed_seconds),
            pages,
        )

    def fetch_content(
        self, job_id: str, variant: ContentVariant = "video"
    ) -> AsyncGenerator[bytes, None]:
        return self._stream(self._client, f"videos/{job_id}/content", {"variant": variant})

    async def _stream(
        self, client: httpx2.AsyncClient, url: str, params: Mapping[str, Any] | None
    ) -> AsyncGenerator[bytes, None]:
        """Stream the media; retried (with backoff) only until the first byte is handed out."""
        attempt = 0
        while True:
            attempt += 1
            await self.limiter.wait_turn()
            err: UpstreamError | None = None
            started = False
            try:
                async with client.stream("GET", url, params=params) as resp:
                    if not resp.is_success:
                        err = self._error(resp, await resp.aread())
                    else:
                        chunks = resp.aiter_bytes(self.config.download_chunk_size)
                        while True:
                            try:
                                chunk = await chunks.__anext__()
                            except StopAsyncIteration:
                                return
                            started = True
                            yield chunk
            except httpx2.HTTPError as e:
                if started:
                    raise _transport_error(e) from e  # the caller already has part of it
                err = _transport_error(e)
            assert err is not None
            if not err.retryable or attempt >= self.config.retry.max_attempts:
                raise err
            await self._backoff(attempt, err)
