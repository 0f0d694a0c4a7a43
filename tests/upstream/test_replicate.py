"""The Replicate dialect: the pure mapping of predictions, then the adapter against the
simulator's Replicate dialect over real HTTP (create, poll to the end, download, list, find
a lost create, cancel), and webhooks asked for at create."""

from __future__ import annotations

import base64
import json
from contextlib import aclosing

import httpx2
import pytest
import trio

from sora_actors.upstream import (
    ErrorKind,
    ImageInput,
    ReplicateProvider,
    SubmitRequest,
    UpstreamError,
    UpstreamStatus,
)
from sora_actors.upstream.fake.engine import WebhookConfig
from sora_actors.upstream.fake.simulator.server import Request, Response, serve_http
from sora_actors.upstream.replicate import (
    REPLICATE_MODEL_MAP,
    create_call,
    input_for,
    parse_problem,
    prediction_from_wire,
    progress_from_logs,
)
from sora_actors.upstream.webhooks import WebhookVerifier, parse_replicate
from tests.upstream.conftest import SimFactory

PREDICTION = {
    "id": "gm3qorzdhgbfurvjtvhg6dckhu",
    "model": "openai/sora-2",
    "version": None,
    "input": {"prompt": "a red fox", "seconds": 8, "aspect_ratio": "landscape"},
    "logs": "Generating...\n 10%|#   | 10/100\n 42%|####  | 42/100\n",
    "output": None,
    "error": None,
    "status": "processing",
    "created_at": "2023-09-08T16:19:34.765994Z",
    "started_at": "2023-09-08T16:19:34.779176Z",
    "completed_at": None,
    "urls": {
        "get": "https://x/v1/predictions/gm3",
        "cancel": "https://x/v1/predictions/gm3/cancel",
    },
}


def test_progress_is_the_last_percentage_in_the_logs() -> None:
    assert progress_from_logs(PREDICTION["logs"]) == 42
    assert progress_from_logs("step 1 of 3 (33.3%)\nstep 2 of 3 (66.7%)") == 66
    assert progress_from_logs("") == 0 and progress_from_logs(None) == 0
    assert progress_from_logs("no numbers here") == 0
    assert progress_from_logs("250% overdrive") == 100


def test_a_processing_prediction_maps_to_our_job() -> None:
    job = prediction_from_wire(PREDICTION)
    assert job.id == "gm3qorzdhgbfurvjtvhg6dckhu"
    assert job.status is UpstreamStatus.IN_PROGRESS and job.progress == 42
    assert (job.prompt, job.seconds, job.model) == ("a red fox", "8", "openai/sora-2")
    assert job.created_at == 1694189974.765994
    assert job.direct_url is None and job.error_code is None


@pytest.mark.parametrize(
    ("status", "ours"),
    [
        ("starting", UpstreamStatus.QUEUED),
        ("processing", UpstreamStatus.IN_PROGRESS),
        ("succeeded", UpstreamStatus.COMPLETED),
        ("failed", UpstreamStatus.FAILED),
        ("canceled", UpstreamStatus.CANCELLED),
        ("aborted", UpstreamStatus.CANCELLED),
        ("mystery", UpstreamStatus.UNKNOWN),
    ],
)
def test_statuses(status: str, ours: UpstreamStatus) -> None:
    doc = {**PREDICTION, "status": status, "output": "https://files/out.mp4"}
    assert prediction_from_wire(doc).status is ours


def test_outputs_errors_and_malformed_predictions() -> None:
    done = prediction_from_wire(
        {**PREDICTION, "status": "succeeded", "output": ["https://f/a.mp4", "https://f/b.mp4"]}
    )
    assert done.is_done and done.progress == 100 and done.direct_url == "https://f/a.mp4"
    empty = prediction_from_wire({**PREDICTION, "status": "succeeded", "output": None})
    assert not empty.is_done and empty.error_code == "no_output"
    failed = prediction_from_wire(
        {**PREDICTION, "status": "failed", "error": "Flagged by the safety system (policy)"}
    )
    assert failed.error_code == "content_policy_violation"
    assert failed.error_message == "Flagged by the safety system (policy)"
    plain = prediction_from_wire({**PREDICTION, "status": "failed", "error": "CUDA out of memory"})
    assert plain.error_code == "prediction_failed" and plain.progress == 42
    for bad in ([], {"status": "starting"}, {"id": ""}):
        with pytest.raises(UpstreamError) as raised:
            prediction_from_wire(bad)
        assert raised.value.kind is ErrorKind.MALFORMED


def test_create_calls_and_inputs() -> None:
    assert create_call("openai/sora-2") == ("models/openai/sora-2/predictions", {})
    assert create_call("5c7d5dc6dd8b") == ("predictions", {"version": "5c7d5dc6dd8b"})
    portrait = input_for(SubmitRequest(prompt="p", size="720x1280", seconds=10), (4, 8, 12))
    assert portrait == {"prompt": "p", "seconds": 12, "aspect_ratio": "portrait"}
    image = ImageInput(data=b"\x89PNG", content_type="image/png", filename="a.png")
    landscape = input_for(SubmitRequest(prompt="p", size="1280x720", image=image), (4, 8, 12))
    assert landscape["aspect_ratio"] == "landscape"
    assert landscape["input_reference"] == "data:image/png;base64,iVBORw=="
    assert REPLICATE_MODEL_MAP["sora-2"] == "openai/sora-2"


def test_problem_documents() -> None:
    body = b'{"title": "Unauthenticated", "detail": "You did not pass a token", "status": 401}'
    assert parse_problem(body) == "You did not pass a token"
    assert parse_problem(b"<html>bad gateway</html>") == "<html>bad gateway</html>"
    assert parse_problem(b"") == "no body"


async def test_the_adapter_runs_a_prediction_end_to_end(start_sim: SimFactory) -> None:
    sim = await start_sim(dialect="replicate")
    config = sim.provider_config(model_map=REPLICATE_MODEL_MAP)
    async with ReplicateProvider(config) as provider:
        request = SubmitRequest(prompt="a lighthouse at dusk", model="sora-2", seconds=8)
        job = await provider.submit(request)
        assert job.status is UpstreamStatus.QUEUED and job.prompt == "a lighthouse at dusk"
        seen = []
        while not job.status.terminal:
            await trio.sleep(0.05)
            job = await provider.get(job.id)
            seen.append(job.progress)
        assert job.is_done and job.direct_url is not None
        assert seen == sorted(seen) and 0 < max(seen[:-1], default=1) < 100
        async with aclosing(provider.fetch_content(job.id)) as chunks:
            data = b"".join([chunk async for chunk in chunks])
        assert len(data) > 1000
        with pytest.raises(UpstreamError) as raised:
            async with aclosing(provider.fetch_content(job.id, "thumbnail")) as chunks:
                async for _ in chunks:
                    pass
        assert raised.value.kind is ErrorKind.NOT_FOUND
        # A lost create is found again by its prompt and length, not by similar ones.
        other = await provider.submit(SubmitRequest(prompt="something else"))
        found = await provider.find_jobs(request)
        assert [j.id for j in found] == [job.id]
        page = await provider.list_jobs()
        assert [j.id for j in page.jobs] == [other.id, job.id] and not page.has_more
        assert page.jobs[1].prompt is None  # Replicate's list carries no inputs
        # The creates went to the official model's endpoint with our key as Bearer.
        log = await sim.admin.requests()
        assert [r["op"] for r in log if r["op"] == "create"] == ["create", "create"]
        assert {r["key"] for r in log} == {"k1"}


async def test_cancel_stops_the_prediction_upstream(start_sim: SimFactory) -> None:
    sim = await start_sim(dialect="replicate")
    async with ReplicateProvider(sim.provider_config()) as provider:
        job = await provider.submit(SubmitRequest(prompt="to be cancelled"))
        assert await provider.cancel(job.id) is True
        after = await provider.get(job.id)
        assert after.status is UpstreamStatus.CANCELLED
        assert (await sim.admin.stats())["cancels"] == 1
        assert provider.limiter.active_jobs == 0
        with pytest.raises(UpstreamError) as raised:
            await provider.cancel("nope")
        assert raised.value.kind is ErrorKind.NOT_FOUND


async def test_auth_and_errors_are_classified(start_sim: SimFactory) -> None:
    sim = await start_sim(dialect="replicate", api_key="right")
    async with ReplicateProvider(sim.provider_config(api_key="wrong")) as provider:
        with pytest.raises(UpstreamError) as raised:
            await provider.submit(SubmitRequest(prompt="x"))
        assert raised.value.kind is ErrorKind.AUTH and raised.value.status == 401
    async with ReplicateProvider(sim.provider_config(api_key="right")) as provider:
        await sim.admin.faults(server_error=1.0)
        with pytest.raises(UpstreamError) as raised:
            await provider.submit(SubmitRequest(prompt="x"))
        # A problem document came back: the API answered, so nothing was created.
        assert raised.value.kind is ErrorKind.TRANSIENT
        assert (await sim.admin.stats())["jobs_total"] == 0
    async with httpx2.AsyncClient() as client:
        response = await client.get(f"{sim.base_url}/predictions/x")
        assert response.status_code == 401 and response.json()["status"] == 401


class Receiver:
    """An HTTP endpoint that keeps what it is sent (headers, body)."""

    def __init__(self) -> None:
        self.got: list[tuple[dict[str, str], bytes]] = []

    async def __call__(self, req: Request) -> Response:
        self.got.append((req.headers, req.body))
        return Response(204)


async def test_a_webhook_asked_for_at_create_comes_signed(
    start_sim: SimFactory, nursery: trio.Nursery
) -> None:
    secret = "whsec_" + base64.b64encode(b"replicate-webhook-secret-bytes").decode()
    # The simulator knows a secret but no URL: only creates that name one are called back.
    sim = await start_sim(dialect="replicate", webhooks=WebhookConfig("", secret, 0, 0, 0))
    receiver = Receiver()
    port = await nursery.start(serve_http, receiver, "127.0.0.1", 0)
    hooked = sim.provider_config(webhook_url=f"http://127.0.0.1:{port}/hooks/rep")
    async with ReplicateProvider(hooked) as provider:
        job = await provider.submit(SubmitRequest(prompt="call me back"))
    async with ReplicateProvider(sim.provider_config()) as provider:
        unhooked = await provider.submit(SubmitRequest(prompt="do not call"))
    with trio.fail_after(10):
        while sim.engine.webhooks_sent < 1 or not all(
            sim.engine.state(sim.engine.jobs[j.id]).status == "completed" for j in (job, unhooked)
        ):
            await trio.sleep(0.05)
    await trio.sleep(0.2)  # a second webhook, were one coming, would be here by now
    assert len(receiver.got) == 1 and sim.engine.webhooks_failed == 0
    headers, body = receiver.got[0]
    event = WebhookVerifier(secret, parse=parse_replicate).verify(headers, body)
    assert (event.type, event.job_id) == ("video.completed", job.id)
    assert prediction_from_wire(json.loads(body)).is_done  # the prediction object itself
