"""The simulator's HTTP surface: OpenAI Videos API (or a gateway dialect, or Replicate's
predictions API, see `replicate`) over the engine.

Also an admin API outside the base path, for tests:

- `GET  /__admin/stats`      counters (creates per key, polls per job, refusals by reason, ...)
- `GET  /__admin/requests`   the request log: [{t, key, op, job_id, outcome, retry_after_s}]
- `POST /__admin/faults`     partial FaultRates as JSON; answers the new rates
- `POST /__admin/limits`     partial KeyLimits as JSON
- `POST /__admin/reset`      clear counters and log; `{"faults": true}` restores configured faults
- `POST /__admin/webhooks`   `{"url", "secret", "loss"?, "delay_min_s"?, "delay_max_s"?}`: call
                             back there on job ends from now on; `{"url": null}`: stop
- `POST /__admin/jobs/{id}/expire|complete|fail`  force a job's outcome or expire its content now
- `GET  /__files/{id}/{variant}`  the gateway dialect's direct `video_url` (no auth, honours expiry)
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import fields
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any, cast

from ...provider import ContentVariant
from ..engine import (
    Engine,
    EngineError,
    FaultRates,
    JobState,
    KeyLimits,
    SimulatorConfig,
    WebhookConfig,
)
from ..media import CONTENT_TYPES, media_bytes
from ..webhooks import Message, openai_message
from .replicate import ReplicateRoutes, render_error
from .server import Request, Response

_JOB = re.compile(r"^/videos/([^/]+)$")
_JOB_SUB = re.compile(r"^/videos/([^/]+)/(content|remix)$")
_ADMIN_JOB = re.compile(r"^/__admin/jobs/([^/]+)/(expire|complete|fail)$")
_FILES = re.compile(r"^/__files/([^/]+)/(video|thumbnail|spritesheet)$")
_IMAGE_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"RIFF")
_GATEWAY_STATUS = {
    "queued": "submitted",
    "in_progress": "processing",
    "completed": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}


def _json(status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(
        status, json.dumps(doc).encode(), [("content-type", "application/json"), *(headers or [])]
    )


class SimulatorApp:
    """Routes requests to the engine and renders answers in the configured dialect."""

    def __init__(self, config: SimulatorConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.engine = engine or Engine(config)
        self.base = config.effective_base_path
        self.gateway = config.dialect == "gateway"
        self.replicate = ReplicateRoutes(self.engine) if config.dialect == "replicate" else None
        self.input_references: dict[str, dict[str, Any]] = {}

    def webhook_message(self) -> Message:
        """How this dialect's webhooks read (and where a Replicate create asked them sent)."""
        if self.replicate is not None:
            return self.replicate.webhook_message
        return openai_message(self.engine)

    # -- rendering ----------------------------------------------------------
    def error(self, e: EngineError) -> Response:
        if self.replicate is not None:
            return render_error(e)
        headers: list[tuple[str, str]] = []
        if e.retry_after_s is not None:
            headers += [
                ("retry-after", str(max(1, math.ceil(e.retry_after_s)))),
                ("retry-after-ms", str(max(1, math.ceil(e.retry_after_s * 1000)))),
            ]
        if self.gateway:
            return _json(e.status, {"error": e.message, "code": e.code}, headers)
        return _json(
            e.status,
            {"error": {"message": e.message, "type": e.type, "param": e.param, "code": e.code}},
            headers,
        )

    def video(self, st: JobState, req: Request) -> dict[str, Any]:
        j = st.job
        doc: dict[str, Any] = {
            "id": j.id,
            "object": "video",
            "model": j.model,
            "status": _GATEWAY_STATUS[st.status] if self.gateway else st.status,
            "progress": st.progress,
            "created_at": int(j.created),
            "completed_at": None if st.completed_at is None else int(st.completed_at),
            "expires_at": None if st.expires_at is None else int(st.expires_at),
            "prompt": j.prompt,
            "size": j.size,
            "seconds": j.seconds,
            "remixed_from_video_id": j.remixed_from,
            "error": None,
        }
        if st.status == "failed" and j.fail_code is not None:
            msg = self.engine.fail_message(j.fail_code)
            doc["error"] = msg if self.gateway else {"code": j.fail_code, "message": msg}
        if self.gateway and st.status == "completed":
            host = req.headers.get("host", "127.0.0.1")
            doc["video_url"] = f"http://{host}/__files/{j.id}/video"
        return doc

    # -- entry --------------------------------------------------------------
    async def __call__(self, req: Request) -> Response:
        try:
            if req.path.startswith("/__admin/"):
                return self.admin(req)
            if req.path.startswith("/__files/"):
                return self.files(req)
            if self.base and not (req.path == self.base or req.path.startswith(self.base + "/")):
                return self.error(EngineError(404, f"Unknown path {req.path}", code="unknown_url"))
            return self.api(req, req.path[len(self.base) :])
        except EngineError as e:
            return self.error(e)

    def _key(self, req: Request) -> str:
        if self.replicate is not None:
            return self._known(self.replicate.key(req))
        raw = req.headers.get("authorization", "").strip()
        if raw.lower().startswith("bearer "):
            if self.gateway:
                raise EngineError(
                    401,
                    "This gateway expects the bare API key, without 'Bearer '.",
                    code="invalid_api_key",
                    type="invalid_request_error",
                    reason="auth",
                )
            raw = raw[7:].strip()
        if not raw:
            raise EngineError(
                401, "You didn't provide an API key.", code="missing_api_key", reason="auth"
            )
        return self._known(raw)

    def _known(self, key: str) -> str:
        """The key, if this simulator accepts it (any non-empty one unless configured)."""
        if self.config.api_key is not None and key != self.config.api_key:
            raise EngineError(
                401, "Incorrect API key provided.", code="invalid_api_key", reason="auth"
            )
        return key

    def api(self, req: Request, path: str) -> Response:
        eng = self.engine
        try:
            key = self._key(req)
        except EngineError as e:
            eng.requests_total += 1
            eng.refused[e.reason] += 1
            eng.log("", "auth", "", "refused:auth")
            raise
        if self.replicate is not None:
            op, resp = self.replicate.handle(req, path, key)
            return self._fault(op, resp)
        m_job, m_sub = _JOB.fullmatch(path), _JOB_SUB.fullmatch(path)
        if path == "/videos" and req.method == "POST":
            op, job_id = "create", ""
        elif path == "/videos" and req.method == "GET":
            op, job_id = "list", ""
        elif m_job and req.method == "GET":
            op, job_id = "retrieve", m_job.group(1)
        elif m_job and req.method == "DELETE":
            op, job_id = "delete", m_job.group(1)
        elif m_sub and m_sub.group(2) == "content" and req.method == "GET":
            op, job_id = "content", m_sub.group(1)
        elif m_sub and m_sub.group(2) == "remix" and req.method == "POST":
            op, job_id = "remix", m_sub.group(1)
        else:
            raise EngineError(404, f"Invalid URL ({req.method} {req.path})", code="unknown_url")
        eng.admit(key, op, job_id, client=req.headers.get("user-agent", ""))
        extra: list[tuple[str, str]] = []
        if op == "create":
            st = eng.state(self.create(key, req))
            resp = _json(200, self.video(st, req))
        elif op == "list":
            resp = self.list(key, req)
        elif op == "retrieve":
            st = eng.retrieve(key, job_id)
            extra.append(("openai-poll-after-ms", str(eng.poll_after_ms(st))))
            resp = _json(200, self.video(st, req), extra)
        elif op == "delete":
            eng.delete(key, job_id)
            resp = _json(200, {"id": job_id, "object": "video.deleted", "deleted": True})
        elif op == "content":
            variant = req.q("variant") or "video"
            if variant not in CONTENT_TYPES:
                raise EngineError(
                    400, f"Invalid variant '{variant}'.", param="variant", code="invalid_value"
                )
            eng.content_check(key, job_id)
            body = media_bytes(cast(ContentVariant, variant))
            resp = Response(200, body, [("content-type", CONTENT_TYPES[variant])])
        else:
            prompt = self._body_json(req).get("prompt")
            if not isinstance(prompt, str):
                raise EngineError(
                    400,
                    "Missing required parameter: 'prompt'.",
                    param="prompt",
                    code="missing_required_parameter",
                )
            st = eng.state(eng.remix(key, job_id, prompt))
            resp = _json(200, self.video(st, req))
        return self._fault(op, resp)

    def _fault(self, op: str, resp: Response) -> Response:
        """Drop, delay or garble the answer as the configured response faults say."""
        eng = self.engine
        fault = eng.roll_response_fault(op)
        if fault == "drop":
            return Response(0, drop=True)
        if fault == "slow":
            resp.delay_s = eng.faults.slow_s
        elif fault == "malformed":
            resp.body = resp.body[: max(1, len(resp.body) // 2)] + b"<html>upstream hiccup"
        return resp

    def _body_json(self, req: Request) -> dict[str, Any]:
        try:
            doc = json.loads(req.body or b"{}")
        except ValueError as e:
            raise EngineError(
                400, f"We could not parse the JSON body of your request: {e}", code="invalid_json"
            ) from None
        if not isinstance(doc, dict):
            raise EngineError(400, "The body must be a JSON object.", code="invalid_json")
        return doc

    def create(self, key: str, req: Request) -> Any:
        ctype = req.headers.get("content-type", "")
        fields_: dict[str, str] = {}
        image: tuple[bytes, str, str] | None = None
        if ctype.lower().startswith("multipart/form-data"):
            msg = BytesParser(policy=HTTP).parsebytes(
                b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + req.body
            )
            if not msg.is_multipart():
                raise EngineError(400, "Malformed multipart body.", code="invalid_multipart")
            for part in msg.iter_parts():
                name = part.get_param("name", header="content-disposition")
                payload = part.get_payload(decode=True)
                if not isinstance(name, str) or not isinstance(payload, bytes):
                    continue
                filename = part.get_filename()
                if filename is not None or name == "input_reference":
                    image = (payload, part.get_content_type(), filename or "")
                else:
                    fields_[name] = payload.decode("utf-8")
        else:
            doc = self._body_json(req)
            for k in ("prompt", "model", "size", "seconds"):
                if doc.get(k) is not None:
                    fields_[k] = str(doc[k])
            ref = doc.get("input_reference")
            if ref is not None and not (
                isinstance(ref, dict) and (ref.get("image_url") or ref.get("file_id"))
            ):
                raise EngineError(
                    400,
                    "input_reference must be a file or {image_url|file_id}.",
                    param="input_reference",
                    code="invalid_value",
                )
        if image is not None and not image[0].startswith(_IMAGE_MAGIC):
            raise EngineError(
                400,
                "input_reference must be a PNG, JPEG or WebP image.",
                param="input_reference",
                code="invalid_image",
            )
        job = self.engine.create(
            key,
            fields_.get("prompt", ""),
            fields_.get("model"),
            fields_.get("size"),
            fields_.get("seconds"),
        )
        if image is not None:
            self.input_references[job.id] = {
                "sha256": hashlib.sha256(image[0]).hexdigest(),
                "content_type": image[1],
                "filename": image[2],
                "size": len(image[0]),
            }
        return job

    def list(self, key: str, req: Request) -> Response:
        try:
            limit = int(req.q("limit") or "20")
        except ValueError:
            raise EngineError(
                400, "limit must be an integer.", param="limit", code="invalid_value"
            ) from None
        states, has_more = self.engine.list(key, req.q("after"), limit, req.q("order") or "desc")
        data = [self.video(s, req) for s in states]
        return _json(
            200,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": has_more,
            },
        )

    # -- admin & files --------------------------------------------------------
    def admin(self, req: Request) -> Response:
        tok = self.config.admin_token
        if tok is not None and req.headers.get("authorization", "") not in (tok, f"Bearer {tok}"):
            return _json(401, {"error": "admin token required"})
        eng = self.engine
        path = req.path
        if path == "/__admin/stats" and req.method == "GET":
            return _json(200, {**eng.stats(), "input_references": self.input_references})
        if path == "/__admin/requests" and req.method == "GET":
            return _json(
                200,
                [
                    {
                        "t": t,
                        "key": k,
                        "op": op,
                        "job_id": j,
                        "outcome": o,
                        "retry_after_s": ra,
                        "client": c,
                    }
                    for t, k, op, j, o, ra, c in eng.request_log
                ],
            )
        if path == "/__admin/faults" and req.method in ("POST", "PUT"):
            try:
                new = eng.set_faults(**self._body_json(req))
            except (ValueError, TypeError) as e:
                return _json(400, {"error": str(e)})
            return _json(200, {f.name: getattr(new, f.name) for f in fields(FaultRates)})
        if path == "/__admin/limits" and req.method in ("POST", "PUT"):
            try:
                lim = eng.set_limits(**self._body_json(req))
            except (ValueError, TypeError) as e:
                return _json(400, {"error": str(e)})
            return _json(200, {f.name: getattr(lim, f.name) for f in fields(KeyLimits)})
        if path == "/__admin/webhooks" and req.method in ("POST", "PUT"):
            body = self._body_json(req)
            try:
                hooks = None if body.get("url") is None else WebhookConfig(**body)
                self.engine.set_webhooks(hooks)
            except (ValueError, TypeError) as e:
                return _json(400, {"error": str(e)})
            return _json(200, {"webhooks": None if hooks is None else hooks.url})
        if path == "/__admin/reset" and req.method == "POST":
            body = self._body_json(req)
            eng.reset_counters()
            self.input_references.clear()
            if body.get("faults"):
                eng.faults = self.config.faults
                eng.limits = self.config.limits
            return _json(200, {"reset": True})
        m = _ADMIN_JOB.fullmatch(path)
        if m and req.method == "POST":
            body = self._body_json(req)
            job = eng.force(m.group(1), m.group(2), body.get("code"))  # type: ignore[arg-type]
            return _json(200, self.video(eng.state(job), req))
        if path == "/__admin/health":
            return _json(200, {"ok": True, "now": eng.now()})
        return _json(404, {"error": f"unknown admin path {path}"})

    def files(self, req: Request) -> Response:
        m = _FILES.fullmatch(req.path)
        if not m or req.method != "GET":
            return _json(404, {"error": "not found"})
        job = self.engine.jobs.get(m.group(1))
        if job is None:
            return _json(404, {"error": "not found"})
        self.engine.content_check(job.key, job.id)
        variant = m.group(2)
        body = media_bytes(cast(ContentVariant, variant))
        return Response(200, body, [("content-type", CONTENT_TYPES[variant])])
