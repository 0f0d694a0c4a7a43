"""Upstream webhooks end to end: a simulator calls back a live server (SQLite and PostgreSQL).

The simulator runs 20 times faster than real time (a job: 60 simulated seconds, 3 real ones)
and so does the server's polling (``polling_speedup``). Its webhooks are signed with the
channel's secret and arrive 0.2-0.8 s after the job ends. A Replicate-dialect channel gets
them too: it asks for them at create, and they carry the prediction object.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import trio
from trio_websocket import open_websocket_url

from sora_actors.upstream.fake import DurationDistribution, SimulatorConfig, serve_simulator
from sora_actors.upstream.fake.engine import Dialect, Engine, WebhookConfig
from sora_actors.upstream.webhooks import event_body, sign
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server
from tests.wsclient import Session, ws_url

SECRET = "whsec_" + base64.b64encode(b"webhook-secret-of-the-default-ch").decode()
FOREIGN = "whsec_" + base64.b64encode(b"a-secret-the-upstream-never-had").decode()
SCALE = 20
HOOKS = "/api/upstream/webhooks/default"


@asynccontextmanager
async def upstream(
    dialect: Dialect = "openai", webhooks: WebhookConfig | None = None
) -> AsyncIterator[tuple[str, Engine]]:
    config = SimulatorConfig(
        dialect=dialect,
        webhooks=webhooks,
        time_scale=SCALE,
        seed=11,
        progress_shape="linear",
        durations=DurationDistribution(
            queue_min_s=0, queue_max_s=0, run_min_s=60, run_max_s=60, run_shape="uniform"
        ),
    )
    engine = Engine(config)
    async with trio.open_nursery() as nursery:
        url = await nursery.start(partial(serve_simulator, config, engine=engine))
        yield url, engine
        nursery.cancel_scope.cancel()


async def completed(server: LiveServer, headers: dict[str, str], prompt: str) -> dict[str, Any]:
    created = await server.client.post("/api/video/tasks", json={"prompt": prompt}, headers=headers)
    assert created.status_code == 201, created.text
    video_id = created.json()["data"]["videoId"]
    with trio.fail_after(30):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            task: dict[str, Any] = response.json()["data"]
            assert task["status"] not in ("FAILED", "CANCELLED"), task
            if task["status"] == "COMPLETED":
                return task
            await trio.sleep(0.05)


async def until(condition: Callable[[], bool]) -> None:
    with trio.fail_after(10):
        while not condition():
            await trio.sleep(0.02)


async def post_hook(
    server: LiveServer, job_id: str, *, secret: str = SECRET, age_s: int = 0, msg_id: str = ""
) -> Any:
    msg_id = msg_id or f"evt_{uuid.uuid4().hex}"
    body = event_body(msg_id, "video.completed", job_id, int(time.time()))
    headers = sign(secret, msg_id, body, int(time.time()) - age_s)
    return await server.client.post(
        HOOKS, content=body, headers={**headers, "content-type": "application/json"}
    )


async def test_webhooks_end_to_end(tmp_path: Path, database_url: str) -> None:
    async with upstream() as (url, engine):
        settings = make_settings(
            tmp_path,
            database_url,
            upstream_url=url,
            upstream_api_key="sk-test",
            upstream_webhook_secret=SECRET,
            polling_speedup=SCALE,
        )
        async with live_server(settings) as server:
            headers = await server.user("hooked")
            engine.set_webhooks(WebhookConfig(server.base_url + HOOKS, SECRET, 0.0, 0.2, 0.8))

            # The first task polls by the estimate; its webhook shows the channel delivers.
            first = await completed(server, headers, "the first one")
            await until(lambda: engine.webhooks_sent == 1)
            first_polls = engine.polls_by_job[first["externalVideoId"]]
            assert first_polls >= 3

            # Now polling is the safety net (first poll after 90 / 20 s): the job ends at 3 s,
            # its webhook comes, and one poll confirms it.
            second = await completed(server, headers, "the second one")
            assert engine.polls_by_job[second["externalVideoId"]] == 1
            assert second["pollCount"] == 1
            await until(lambda: engine.webhooks_sent == 2)
            assert engine.webhooks_failed == 0

            # A lost webhook: the safety net's own poll finds the job done.
            engine.set_webhooks(WebhookConfig(server.base_url + HOOKS, SECRET, 1.0))
            third = await completed(server, headers, "the third one")
            assert engine.webhooks_lost == 1 and engine.webhooks_sent == 2
            assert engine.polls_by_job[third["externalVideoId"]] == 1

            # Forged, stale, replayed, unsigned, for no channel: refused with their codes.
            job = second["externalVideoId"]
            assert_error(
                await post_hook(server, job, secret=FOREIGN), 401, "WEBHOOK_SIGNATURE_INVALID"
            )
            assert_error(
                await post_hook(server, job, age_s=301), 401, "WEBHOOK_TIMESTAMP_OUT_OF_RANGE"
            )
            once = await post_hook(server, job, msg_id="evt_once")
            assert once.status_code == 200, once.text
            receipt = once.json()["data"]
            assert receipt == {
                "event": "video.completed",
                "videoId": second["videoId"],
                "delivered": False,
            }
            assert_error(await post_hook(server, job, msg_id="evt_once"), 409, "WEBHOOK_REPLAYED")
            unsigned = await server.client.post(HOOKS, content=b"{}")
            assert_error(unsigned, 400, "WEBHOOK_HEADERS_MISSING")
            elsewhere = await server.client.post("/api/upstream/webhooks/nowhere", content=b"{}")
            assert_error(elsewhere, 404, "WEBHOOK_CHANNEL_UNKNOWN")
            garbage = b"not json"
            signed = sign(SECRET, "evt_garbage", garbage)
            bad_body = await server.client.post(HOOKS, content=garbage, headers=signed)
            assert_error(bad_body, 400, "WEBHOOK_PAYLOAD_INVALID")
            # None of that touched the finished tasks.
            again = await server.client.get(
                f"/api/video/tasks/{second['videoId']}", headers=headers
            )
            assert json.loads(again.text)["data"]["pollCount"] == 1


async def test_task_progress_carries_the_estimate(tmp_path: Path, database_url: str) -> None:
    """Over /ws, every taskProgress says how many seconds the upstream still needs (the
    polling policy's estimate; null before there is one)."""
    async with upstream() as (url, _):
        settings = make_settings(
            tmp_path,
            database_url,
            upstream_url=url,
            upstream_api_key="sk-test",
            polling_speedup=SCALE,
        )
        async with live_server(settings) as server:
            token = await server.login((await server.register("eta"))["username"])
            async with open_websocket_url(ws_url(server.base_url)) as connection:
                session = Session(connection)
                await session.recv()  # connected
                assert (await session.auth(token))["type"] == "authSuccess"
                await session.send("subscribe_tasks")
                assert (await session.recv())["type"] == "subscribeTasksSuccess"
                created = await server.client.post(
                    "/api/video/tasks",
                    json={"prompt": "counting down"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert created.status_code == 201, created.text
                events = await session.recv_until(lambda m: m["type"] == "taskCompleted")
    progress = [m["payload"] for m in events if m["type"] == "taskProgress"]
    estimates = [p["estimatedTimeRemaining"] for p in progress]
    assert estimates[0] is None  # accepted: nothing to estimate from yet
    # The job takes 3 s (60 simulated seconds at 20x); the estimates count down to 0
    # (finished upstream, fetching).
    numbers = [e for e in estimates if e is not None]
    assert numbers and max(numbers) <= 4 and numbers[-1] == 0 and any(n > 0 for n in numbers)
    assert progress[-1]["progress"] >= 99


def free_port() -> int:
    """A port nobody listens on now (the server's public address must be set before it runs)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_replicate_webhooks_end_to_end(tmp_path: Path, database_url: str) -> None:
    """The channel asks Replicate for a webhook at create (our public URL); the prediction
    object comes back signed, and one poll confirms it. The simulator knows no URL of its
    own: each webhook goes where its create said."""
    hooks = WebhookConfig("", SECRET, 0.0, 0.2, 0.8)
    async with upstream("replicate", hooks) as (url, engine):
        port = free_port()
        settings = make_settings(
            tmp_path,
            database_url,
            public_base_url=f"http://127.0.0.1:{port}",
            polling_speedup=SCALE,
            channels=[
                {
                    "name": "rep",
                    "dialect": "replicate",
                    "base_url": url,
                    "api_keys": ["r8_key"],
                    "webhook_secret": SECRET,
                }
            ],
        )
        async with live_server(settings, port=port) as server:
            headers = await server.user("replicated")
            first = await completed(server, headers, "the first prediction")
            await until(lambda: engine.webhooks_sent == 1)
            assert engine.polls_by_job[first["externalVideoId"]] >= 3  # polled by the estimate

            # The channel delivers: its next task is confirmed by one poll after the webhook.
            second = await completed(server, headers, "the second prediction")
            assert second["pollCount"] == 1
            # Upstream saw that poll, and the download's read of the output URL.
            assert engine.polls_by_job[second["externalVideoId"]] == 2
            await until(lambda: engine.webhooks_sent == 2)
            assert engine.webhooks_failed == 0

            rep_hooks = "/api/upstream/webhooks/rep"
            job = second["externalVideoId"]
            body = json.dumps({"id": job, "status": "succeeded", "output": None}).encode()
            forged = sign(FOREIGN, "msg_forged", body)
            refused = await server.client.post(rep_hooks, content=body, headers=forged)
            assert_error(refused, 401, "WEBHOOK_SIGNATURE_INVALID")
            genuine = await server.client.post(
                rep_hooks, content=body, headers=sign(SECRET, "msg_late", body)
            )
            assert genuine.status_code == 200, genuine.text
            assert genuine.json()["data"] == {
                "event": "video.completed",
                "videoId": second["videoId"],
                "delivered": False,  # ended already
            }
            # An OpenAI event is no prediction: this channel reads Replicate's bodies only.
            event = event_body("evt_x", "video.completed", job, int(time.time()))
            wrong = await server.client.post(
                rep_hooks, content=event, headers=sign(SECRET, "evt_x", event)
            )
            assert_error(wrong, 400, "WEBHOOK_PAYLOAD_INVALID")
            again = await server.client.get(
                f"/api/video/tasks/{second['videoId']}", headers=headers
            )
            assert again.json()["data"]["pollCount"] == 1
