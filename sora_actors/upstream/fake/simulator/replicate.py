"""The simulator's Replicate dialect: the predictions API over the same job engine.

Shapes follow Replicate's public HTTP reference: ``POST /v1/models/{owner}/{name}/predictions``
(official models) or ``POST /v1/predictions`` with a ``version``; ``GET /v1/predictions/{id}``;
``GET /v1/predictions`` (newest first, cursor pages, without inputs, as Replicate's list);
``POST /v1/predictions/{id}/cancel``. Statuses starting / processing / succeeded / failed /
canceled; the output is a URL; progress appears only in ``logs``, as tqdm-style lines.
Errors are problem documents (``{"title", "detail", "status"}``). Auth: ``Bearer``.
A create's ``webhook`` is called back with the prediction object when the job ends, signed
with the engine's webhook secret (see `webhook_message`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..engine import Engine, EngineError, JobState
from .server import Request, Response

_MODEL_CREATE = re.compile(r"^/models/([^/]+)/([^/]+)/predictions$")
_PREDICTION = re.compile(r"^/predictions/([^/]+)$")
_CANCEL = re.compile(r"^/predictions/([^/]+)/cancel$")
_STATUS = {
    "queued": "starting",
    "in_progress": "processing",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "canceled",
}
_ASPECT_SIZES = {"portrait": "720x1280", "landscape": "1280x720"}
PAGE_SIZE = 100


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _problem(status: int, detail: str, headers: list[tuple[str, str]] | None = None) -> Response:
    doc = {"title": detail.split(".")[0], "detail": detail, "status": status}
    return Response(
        status,
        json.dumps(doc).encode(),
        [("content-type", "application/problem+json"), *(headers or [])],
    )


@dataclass(frozen=True, slots=True)
class _Created:
    """What a prediction was created with."""

    model: str | None  # "owner/name", or None when created by version
    version: str | None
    input: dict[str, Any]
    host: str  # the Host it was asked of: its URLs point there
    webhook: str | None = None
    events: tuple[str, ...] | None = None  # webhook_events_filter; None: every event


def render_error(e: EngineError) -> Response:
    """An engine refusal as Replicate's problem document (with Retry-After on a 429)."""
    headers: list[tuple[str, str]] = []
    if e.retry_after_s is not None:
        headers.append(("retry-after", str(max(1, round(e.retry_after_s + 0.499)))))
    return _problem(e.status, e.message, headers)


class ReplicateRoutes:
    """Answers the API part of a request in the Replicate dialect."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.created: dict[str, _Created] = {}

    def key(self, req: Request) -> str:
        raw = req.headers.get("authorization", "").strip()
        if not raw.lower().startswith("bearer ") or not raw[7:].strip():
            raise EngineError(
                401,
                "You did not pass a valid authentication token.",
                code="unauthenticated",
                reason="auth",
            )
        return raw[7:].strip()

    def handle(self, req: Request, path: str, key: str) -> tuple[str, Response]:
        """The operation (for response faults) and the answer."""
        eng = self.engine
        m_model, m_pred, m_cancel = (
            _MODEL_CREATE.fullmatch(path),
            _PREDICTION.fullmatch(path),
            _CANCEL.fullmatch(path),
        )
        if req.method == "POST" and (m_model or path == "/predictions"):
            eng.admit(key, "create", client=req.headers.get("user-agent", ""))
            model = f"{m_model.group(1)}/{m_model.group(2)}" if m_model else None
            st = self._create(key, req, model)
            return "create", self._json(201, self.prediction(st, _host(req)))
        if req.method == "GET" and path == "/predictions":
            eng.admit(key, "list")
            return "list", self._list(key, req)
        if req.method == "GET" and m_pred:
            eng.admit(key, "retrieve", m_pred.group(1))
            st = eng.retrieve(key, m_pred.group(1))
            return "retrieve", self._json(200, self.prediction(st, _host(req)))
        if req.method == "POST" and m_cancel:
            eng.admit(key, "cancel", m_cancel.group(1))
            st = eng.cancel(key, m_cancel.group(1))
            return "cancel", self._json(200, self.prediction(st, _host(req)))
        raise EngineError(404, f"Not found: {req.method} {req.path}.", code="not_found")

    # -- creating -------------------------------------------------------------------
    def _create(self, key: str, req: Request, model: str | None) -> JobState:
        try:
            doc = json.loads(req.body or b"{}")
        except ValueError:
            raise EngineError(400, "The request body is not valid JSON.") from None
        inp = doc.get("input") if isinstance(doc, dict) else None
        if not isinstance(inp, dict):
            raise EngineError(422, "input is required and must be an object.", param="input")
        version = doc.get("version")
        if model is None and not isinstance(version, str):
            raise EngineError(422, "version is required.", param="version")
        name = (model or "").split("/")[-1] or "sora-2"
        if not name.startswith("sora-2"):
            raise EngineError(404, f"The requested model {model} was not found.")
        aspect = inp.get("aspect_ratio", "portrait")
        if aspect not in _ASPECT_SIZES:
            raise EngineError(422, f"aspect_ratio must be one of {', '.join(_ASPECT_SIZES)}.")
        seconds = inp.get("seconds", 4)
        job = self.engine.create(
            key,
            str(inp.get("prompt") or ""),
            name,
            _ASPECT_SIZES[aspect],
            str(seconds),
        )
        webhook, events = doc.get("webhook"), doc.get("webhook_events_filter")
        if webhook is not None and not (isinstance(webhook, str) and webhook.startswith("http")):
            raise EngineError(422, "webhook must be an http(s) URL.", param="webhook")
        if events is not None and not (
            isinstance(events, list) and all(isinstance(e, str) for e in events)
        ):
            raise EngineError(422, "webhook_events_filter must be a list of event names.")
        self.created[job.id] = _Created(
            model,
            version if isinstance(version, str) else None,
            inp,
            _host(req),
            webhook,
            tuple(events) if events is not None else None,
        )
        return self.engine.state(job)

    # -- rendering ------------------------------------------------------------------
    def _json(self, status: int, doc: Any) -> Response:
        return Response(status, json.dumps(doc).encode(), [("content-type", "application/json")])

    def webhook_message(self, st: JobState, msg_id: str) -> tuple[str | None, bytes] | None:
        """A job's end as Replicate calls it back: the prediction itself, to the create's
        ``webhook`` (None: the configured URL); None when its filter leaves out "completed"."""
        made = self.created.get(st.job.id)
        if made is not None and made.events is not None and "completed" not in made.events:
            return None
        host = made.host if made is not None else "127.0.0.1"
        url = made.webhook if made is not None else None
        return url, json.dumps(self.prediction(st, host)).encode()

    def prediction(self, st: JobState, host: str, *, full: bool = True) -> dict[str, Any]:
        j = st.job
        made = self.created.get(j.id)
        model, version, inp = (
            (made.model, made.version, made.input) if made else (None, None, {"prompt": j.prompt})
        )
        get_url = f"http://{host}/v1/predictions/{j.id}"
        doc: dict[str, Any] = {
            "id": j.id,
            "model": model,
            "version": version,
            "status": _STATUS[st.status],
            "created_at": _iso(j.created),
            "started_at": _iso(j.start) if st.status != "queued" else None,
            "completed_at": _iso(st.completed_at),
            "urls": {"get": get_url, "cancel": f"{get_url}/cancel"},
        }
        if not full:
            return doc  # a list entry: Replicate lists no inputs, logs or outputs
        doc["input"] = inp
        doc["logs"] = _logs(st)
        doc["output"] = f"http://{host}/__files/{j.id}/video" if st.status == "completed" else None
        doc["error"] = (
            self.engine.fail_message(j.fail_code) if st.status == "failed" and j.fail_code else None
        )
        return doc

    def _list(self, key: str, req: Request) -> Response:
        cursor = req.q("cursor")
        states, has_more = self.engine.list(key, cursor, PAGE_SIZE, "desc")
        host = _host(req)
        nxt = (
            f"http://{host}/v1/predictions?cursor={states[-1].job.id}"
            if has_more and states
            else None
        )
        return self._json(
            200,
            {
                "previous": None,
                "next": nxt,
                "results": [self.prediction(s, host, full=False) for s in states],
            },
        )


def _host(req: Request) -> str:
    return req.headers.get("host", "127.0.0.1")


def _logs(st: JobState) -> str:
    """tqdm-style progress lines, one per 10 % reached: the only progress Replicate shows."""
    if st.status == "queued":
        return ""
    lines = ["Generating video..."]
    lines += [f"{p:3d}%|{'#' * (p // 10):<10}| {p}/100" for p in range(0, st.progress + 1, 10)]
    if st.progress % 10:
        lines.append(f"{st.progress:3d}%|{'#' * (st.progress // 10):<10}| {st.progress}/100")
    return "\n".join(lines) + "\n"
