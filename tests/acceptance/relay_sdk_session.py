"""``python relay_sdk_session.py BASE_URL API_KEY``: the official openai SDK against our door.

Run as a subprocess by tests/acceptance/test_relay_sdk.py, once with the project's openai
(3.x) and once with openai 2.x put first on PYTHONPATH: it imports nothing but the SDK and
the standard library, so either version drives it. Prints what the test checks as JSON on
the last line of stdout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import sys
import warnings
from typing import Any

import openai

# A 1x1 PNG (the simulator checks the magic bytes of reference images).
PNG_1PX = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _video(video: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = video.model_dump(mode="json")
    return dumped


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def session(base_url: str, key: str) -> dict[str, Any]:
    warnings.simplefilter("ignore", DeprecationWarning)
    # No retries: a retried create would start a second video, and hide our errors.
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=30)
    out: dict[str, Any] = {"sdk": openai.__version__}
    raw = client.videos.with_raw_response.create(
        prompt="a lighthouse at dawn", model="sora-2", seconds="8"
    )
    out["plain_content_type"] = raw.http_request.headers.get("content-type", "")
    plain = raw.parse()
    out["plain"] = _video(plain)
    with_file = client.videos.create(
        prompt="animate the reference",
        input_reference=("ref.png", PNG_1PX, "image/png"),
        size="1280x720",
    )
    out["with_file"] = _video(with_file)
    polled = client.videos.create_and_poll(prompt="waves", seconds="4", poll_interval_ms=200)
    out["polled"] = _video(polled)
    out["retrieved"] = _video(client.videos.retrieve(plain.id))
    out["video_sha256"] = _digest(client.videos.download_content(polled.id).content)
    thumbnail = client.videos.download_content(polled.id, variant="thumbnail").content
    out["thumbnail_sha256"] = _digest(thumbnail)
    try:
        client.videos.download_content(polled.id, variant="spritesheet")
    except openai.NotFoundError as error:
        out["spritesheet"] = (error.status_code, error.body)
    remix = client.videos.remix(polled.id, prompt="waves, but purple")
    out["remix"] = _video(remix)
    # Deleted at once, while it runs (cancelled first), and once finished: gone either way.
    doomed = client.videos.create(prompt="a storm that nobody will see")
    out["deleted"] = client.videos.delete(doomed.id).model_dump(mode="json")
    out["doomed"] = _video(doomed)
    out["deleted_finished"] = client.videos.delete(polled.id).model_dump(mode="json")
    gone = {
        "retrieve": lambda: client.videos.retrieve(doomed.id),
        "content": lambda: client.videos.download_content(polled.id),
        "remix": lambda: client.videos.remix(polled.id, prompt="again"),
        "delete_again": lambda: client.videos.delete(polled.id),
    }
    out["after_delete"] = {}
    for name, call in gone.items():
        try:
            call()
        except openai.NotFoundError as error:
            out["after_delete"][name] = (error.status_code, error.code)
    # Three videos left, two a page: the SDK follows `after` over two pages by itself.
    out["listed_asc"] = [video.id for video in client.videos.list(limit=2, order="asc")]
    out["listed_desc"] = [video.id for video in client.videos.list(limit=2)]
    try:
        openai.OpenAI(base_url=base_url, api_key="sk-sora-wrong", max_retries=0).videos.list()
    except openai.AuthenticationError as error:
        out["wrong_key"] = (error.status_code, error.code, error.type)
    try:
        client.videos.retrieve("video_nope")
    except openai.NotFoundError as error:
        out["unknown_video"] = (error.status_code, error.code)
    return out


if __name__ == "__main__":
    print(json.dumps(session(sys.argv[1], sys.argv[2])))
