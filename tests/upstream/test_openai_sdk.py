"""The official openai SDK (sync, in a worker thread) against the in-process simulator.

This is the proof that the simulator speaks the real API, not just our adapter's idea of it.
"""

from __future__ import annotations

import hashlib
import warnings
from typing import Any

import openai
import pytest
import trio

from sora_actors.upstream.fake.media import is_webp, media_sha256, mp4_top_level_boxes

from .conftest import Sim, SimFactory
from .test_adapter_http import PNG_1PX

pytestmark = [pytest.mark.trio, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


def sdk_session(base_url: str) -> dict[str, Any]:
    """Everything the SDK offers for videos, run synchronously; returns what the test checks."""
    warnings.simplefilter("ignore", DeprecationWarning)
    client = openai.OpenAI(base_url=base_url, api_key="sk-test", max_retries=0, timeout=10)
    out: dict[str, Any] = {}
    plain = client.videos.create(prompt="a lighthouse at dawn", model="sora-2", seconds="8")
    out["plain"] = plain
    with_file = client.videos.create(
        prompt="animate the reference",
        input_reference=("ref.png", PNG_1PX, "image/png"),
        size="1280x720",
    )
    out["with_file"] = with_file
    polled = client.videos.create_and_poll(prompt="waves", seconds="4")
    out["polled"] = polled
    out["retrieved"] = client.videos.retrieve(plain.id)
    out["listed"] = [v.id for v in client.videos.list(limit=2, order="asc")]  # auto-paginates
    out["video"] = client.videos.download_content(polled.id).content
    out["thumbnail"] = client.videos.download_content(polled.id, variant="thumbnail").content
    out["remix"] = client.videos.remix(polled.id, prompt="waves, but purple")
    out["deleted"] = client.videos.delete(plain.id)
    try:
        client.videos.retrieve(plain.id)
    except openai.NotFoundError as e:
        out["after_delete"] = e.status_code
    try:
        openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).videos.list()
    except openai.AuthenticationError as e:
        out["wrong_key"] = (e.status_code, e.code)
    return out


async def test_official_sdk_drives_every_endpoint(start_sim: SimFactory) -> None:
    sim: Sim = await start_sim(api_key="sk-test")
    out = await trio.to_thread.run_sync(sdk_session, sim.base_url)
    plain, with_file, polled, remix = out["plain"], out["with_file"], out["polled"], out["remix"]
    assert plain.status == "queued" and plain.seconds == "8"
    assert with_file.size == "1280x720"
    ref = (await sim.admin.stats())["input_references"][with_file.id]
    assert ref["sha256"] == hashlib.sha256(PNG_1PX).hexdigest() and ref["filename"] == "ref.png"
    assert polled.status == "completed" and polled.progress == 100
    assert out["retrieved"].id == plain.id
    assert out["listed"] == [plain.id, with_file.id, polled.id]
    video = out["video"]
    assert isinstance(video, bytes) and hashlib.sha256(video).hexdigest() == media_sha256("video")
    assert mp4_top_level_boxes(video)[0] == ("ftyp", 28)
    assert isinstance(out["thumbnail"], bytes) and is_webp(out["thumbnail"])
    assert remix.remixed_from_video_id == polled.id
    assert out["deleted"].deleted is True
    assert out["after_delete"] == 404
    assert out["wrong_key"] == (401, "invalid_api_key")
    stats = await sim.admin.stats()
    assert stats["creates_by_key"] == {"sk-test": 4}  # no retried creates
    assert stats["polls_by_job"][polled.id] >= 2
