"""Playing finished videos, end to end: a real server, its in-process simulator, real HTTP.

Every response a test's client receives is recorded; each test ends by checking that the
upstream API key appears in none of them (body or header) and that the routes it exercised
were among them. Runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
import trio

from sora_actors.content_store import ContentStore, ContentWriter, LocalContentStore, StoredObject
from sora_actors.http.signing import SIGNER_KEY, UrlSigner
from sora_actors.runtime import SIMULATOR_KEY
from sora_actors.settings import Settings
from sora_actors.upstream.fake import SimulatorConfig, serve_simulator
from sora_actors.upstream.fake.media import media_bytes, media_sha256
from tests.acceptance.admin_helpers import admin_headers
from tests.conftest import make_settings
from tests.harness import LiveServer, assert_error, live_server

FAST = {"simulator_time_scale": 240, "polling_speedup": 80}
VIDEO = media_bytes("video")


class Responses:
    """Every response the test client saw, to prove the upstream key never leaks."""

    def __init__(self) -> None:
        self.seen: list[httpx2.Response] = []

    async def hook(self, response: httpx2.Response) -> None:
        await response.aread()
        self.seen.append(response)

    def check(self, *paths: str, key: str = SIMULATOR_KEY) -> None:
        assert self.seen
        for response in self.seen:
            assert key not in response.text, response.url
            assert key.encode() not in response.content
            for name, value in response.headers.items():
                assert key not in name and key not in value
        visited = " ".join(str(response.url.path) for response in self.seen)
        for path in paths:
            assert path in visited, f"{path} was not exercised"


@asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[tuple[LiveServer, Responses]]:
    async with live_server(settings) as server:
        responses = Responses()
        server.client.event_hooks = {"response": [responses.hook]}
        yield server, responses


@pytest.fixture
async def served(tmp_path: Path, database_url: str) -> AsyncIterator[tuple[LiveServer, Responses]]:
    async with serving(make_settings(tmp_path, database_url, **FAST)) as pair:
        yield pair


async def create(server: LiveServer, headers: dict[str, str], prompt: str) -> dict[str, Any]:
    response = await server.client.post(
        "/api/video/tasks", json={"prompt": prompt}, headers=headers
    )
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()["data"]
    return task


async def until(
    server: LiveServer, headers: dict[str, str], video_id: str, *statuses: str
) -> dict[str, Any]:
    with trio.fail_after(30):
        while True:
            response = await server.client.get(f"/api/video/tasks/{video_id}", headers=headers)
            assert response.status_code == 200, response.text
            task: dict[str, Any] = response.json()["data"]
            if task["status"] in statuses:
                return task
            await trio.sleep(0.05)


async def completed(server: LiveServer, headers: dict[str, str], prompt: str) -> dict[str, Any]:
    task = await create(server, headers, prompt)
    done = await until(server, headers, task["videoId"], "COMPLETED", "FAILED", "CANCELLED")
    assert done["status"] == "COMPLETED", done
    return done


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def content_dir(server: LiveServer) -> Path:
    return server.services.settings.resolved_content_dir


async def simulator_admin(server: LiveServer, path: str) -> Any:
    base = server.services.runtime.upstream_url.rsplit("/", 1)[0]
    async with httpx2.AsyncClient(base_url=base) as admin:
        response = await admin.request("POST" if "/jobs/" in path else "GET", path)
        assert response.status_code == 200, response.text
        return response.json()


async def content_fetches(server: LiveServer, external_id: str) -> int:
    log = await simulator_admin(server, "/__admin/requests")
    return sum(1 for r in log if r["op"] == "content" and r["job_id"] == external_id)


# -- the happy path ---------------------------------------------------------------------


async def test_a_completed_task_plays_the_exact_bytes(served: tuple[LiveServer, Responses]) -> None:
    server, responses = served
    alice = await server.user("alice")
    task = await completed(server, alice, "a heron at dawn")
    assert task["contentStatus"] == "STORED"
    assert task["videoUrl"].startswith(server.base_url + "/files/")
    assert task["thumbnailUrl"].startswith(server.base_url + "/files/")

    content = await server.client.get(f"/api/video/tasks/{task['videoId']}/content", headers=alice)
    assert content.status_code == 200, content.text
    data = content.json()["data"]
    assert set(data) == {"videoId", "externalVideoId", "url", "expiresAt"}
    assert data["videoId"] == task["videoId"]
    assert data["externalVideoId"] == task["externalVideoId"]
    assert data["url"] == task["videoUrl"]  # same expiry bucket: the browser keeps its cache
    expires = int(parse_qs(urlsplit(data["url"]).query)["exp"][0])
    assert 3600 <= expires - time.time() <= 3600 + 300 + 5
    assert data["expiresAt"].endswith("Z")

    # No Authorization header: the link itself is the permission.
    video = await server.client.get(data["url"])
    assert video.status_code == 200
    assert video.headers["content-type"] == "video/mp4"
    assert video.headers["accept-ranges"] == "bytes"
    assert int(video.headers["content-length"]) == len(VIDEO)
    assert sha(video.content) == media_sha256("video")
    thumbnail = await server.client.get(task["thumbnailUrl"])
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/webp"
    assert sha(thumbnail.content) == media_sha256("thumbnail")
    head = await server.client.head(data["url"])
    assert head.status_code == 200 and head.content == b""
    assert int(head.headers["content-length"]) == len(VIDEO)

    # What the database recorded matches what was served.
    records = await server.services.storage.content.records(task["videoId"])
    assert records["video"].sha256 == media_sha256("video")
    assert records["video"].size_bytes == len(VIDEO)
    assert records["thumbnail"].sha256 == media_sha256("thumbnail")
    responses.check("/content", "/files/")


async def test_range_requests(served: tuple[LiveServer, Responses]) -> None:
    server, responses = served
    bob = await server.user("bob")
    url = (await completed(server, bob, "waves on basalt"))["videoUrl"]
    size = len(VIDEO)
    cases = {
        "bytes=100-199": (100, 199),
        "bytes=9000-": (9000, size - 1),
        "bytes=-50": (size - 50, size - 1),
        f"bytes=0-{size + 1000}": (0, size - 1),  # an end past the file is clamped
    }
    for header, (start, end) in cases.items():
        part = await server.client.get(url, headers={"Range": header})
        assert part.status_code == 206, (header, part.text)
        assert part.headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(part.headers["content-length"]) == end - start + 1
        assert part.content == VIDEO[start : end + 1]
        assert part.headers["content-type"] == "video/mp4"

    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 10}", "bytes=-0"):
        refused = await server.client.get(url, headers={"Range": header})
        assert_error(refused, 416, "RANGE_NOT_SATISFIABLE")
        assert refused.headers["content-range"] == f"bytes */{size}"

    # A malformed or multi-part range is ignored: the whole file, 200.
    for header in ("bytes=abc", "bytes=0-1,5-6", "items=0-5"):
        whole = await server.client.get(url, headers={"Range": header})
        assert whole.status_code == 200 and whole.content == VIDEO
    # If-Range with another version's validator: the whole file.
    etag = whole.headers["etag"]
    stale = await server.client.get(url, headers={"Range": "bytes=0-9", "If-Range": '"other"'})
    assert stale.status_code == 200 and stale.content == VIDEO
    fresh = await server.client.get(url, headers={"Range": "bytes=0-9", "If-Range": etag})
    assert fresh.status_code == 206 and fresh.content == VIDEO[:10]
    responses.check("/files/")


async def test_tampered_and_expired_links_are_refused(served: tuple[LiveServer, Responses]) -> None:
    server, responses = served
    carol = await server.user("carol")
    task = await completed(server, carol, "a lantern in fog")
    other = await completed(server, carol, "a second lantern")
    url = urlsplit(task["videoUrl"])
    query = parse_qs(url.query)
    exp, sig = query["exp"][0], query["sig"][0]
    path = url.path
    flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
    tampered = [
        f"{path}?exp={exp}&sig={flipped}",  # signature changed
        f"{path}?exp={int(exp) + 3600}&sig={sig}",  # expiry extended
        f"{path.replace('/video', '/thumbnail')}?exp={exp}&sig={sig}",  # other variant
        f"/files/{other['videoId']}/video?exp={exp}&sig={sig}",  # other task
        f"{path}?exp={exp}",  # no signature
        f"{path}?sig={sig}",  # no expiry
        f"{path}?exp=soon&sig={sig}",
        path,
    ]
    for link in tampered:
        refused = await server.client.get(link)
        assert_error(refused, 403, "CONTENT_URL_INVALID")
        assert refused.content != VIDEO

    signer: UrlSigner = server.running.app.extensions[SIGNER_KEY]
    old = signer.sign(task["videoId"], "video", now=time.time() - 7200, base="")
    expired = await server.client.get(old.url)
    assert_error(expired, 403, "CONTENT_URL_EXPIRED")

    # A link signed with another secret (another deployment) is refused too.
    foreign = UrlSigner(b"k" * 32, 3600).sign(task["videoId"], "video", base="")
    assert_error(await server.client.get(foreign.url), 403, "CONTENT_URL_INVALID")
    responses.check("/files/")


async def test_routes_refuse_unfinished_and_foreign_tasks(
    served: tuple[LiveServer, Responses],
) -> None:
    server, responses = served
    dave = await server.user("dave")
    erin = await server.user("erin")
    task = await create(server, dave, "a slow sunrise")
    vid = task["videoId"]
    assert task["videoUrl"] is None and task["contentStatus"] is None

    not_yet = await server.client.get(f"/api/video/tasks/{vid}/content", headers=dave)
    assert_error(not_yet, 409, "TASK_NOT_COMPLETED")
    refresh = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=dave)
    assert_error(refresh, 409, "TASK_NOT_COMPLETED")
    remix = await server.client.post(
        f"/api/video/tasks/{vid}/remix", json={"prompt": "at dusk"}, headers=dave
    )
    assert_error(remix, 409, "TASK_NOT_COMPLETED")

    for method, suffix in (("GET", "content"), ("POST", "refresh-url"), ("POST", "remix")):
        body = {"prompt": "x"} if suffix == "remix" else None
        path = f"/api/video/tasks/{vid}/{suffix}"
        foreign = await server.client.request(method, path, headers=erin, json=body)
        assert_error(foreign, 404, "TASK_NOT_FOUND")
        anonymous = await server.client.request(method, path, json=body)
        assert anonymous.status_code == 401
    responses.check("/content", "/refresh-url", "/remix")


# -- crashes -----------------------------------------------------------------------------


class _Writer:
    def __init__(self, inner: ContentWriter, fault: FaultyStore) -> None:
        self._inner = inner
        self._fault = fault

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)
        await self._fault.after_write()

    async def commit(self) -> StoredObject:
        await self._fault.before_commit()
        return await self._inner.commit()


class FaultyStore:
    """A store whose next video write stops at a chosen point (a crash, or a hang)."""

    def __init__(self, inner: LocalContentStore, mode: str) -> None:
        self.inner = inner
        self.mode = mode  # "fail-before-rename" or "hang-mid-write"
        self.armed = True
        self.reached = trio.Event()
        self.release = trio.Event()

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[ContentWriter]:
        async with self.inner.writer(key) as writer:
            if self.armed and key.endswith("/video.mp4"):
                yield _Writer(writer, self)
            else:
                yield writer

    async def after_write(self) -> None:
        if self.armed and self.mode == "hang-mid-write":
            self.reached.set()
            await trio.sleep_forever()

    async def before_commit(self) -> None:
        if self.armed and self.mode == "fail-before-rename":
            self.armed = False
            self.reached.set()
            await self.release.wait()
            raise OSError(5, "injected: the disk failed before the rename")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def install_store(server: LiveServer, store: Any) -> None:
    keeper = server.services.runtime.content
    keeper.store = store
    assert isinstance(keeper.store, FaultyStore)
    _: ContentStore = store  # it is a ContentStore


async def test_a_failure_after_the_temp_file_never_serves_it(
    served: tuple[LiveServer, Responses],
) -> None:
    server, responses = served
    frank = await server.user("frank")
    local = server.services.runtime.content.store
    assert isinstance(local, LocalContentStore)
    faulty = FaultyStore(local, "fail-before-rename")
    install_store(server, faulty)
    task = await create(server, frank, "a kite over dunes")
    vid = task["videoId"]
    with trio.fail_after(30):
        await faulty.reached.wait()

    # The whole video sits in a temporary file; nothing may serve it.
    partial = list((content_dir(server) / vid).glob(".video.mp4.*.part"))
    assert len(partial) == 1 and partial[0].read_bytes() == VIDEO
    assert not (content_dir(server) / vid / "video.mp4").exists()
    during = (await server.client.get(f"/api/video/tasks/{vid}", headers=frank)).json()["data"]
    assert during["status"] == "PROCESSING" and during["videoUrl"] is None
    assert_error(
        await server.client.get(f"/api/video/tasks/{vid}/content", headers=frank),
        409,
        "TASK_NOT_COMPLETED",
    )
    signer: UrlSigner = server.running.app.extensions[SIGNER_KEY]
    forged = signer.sign(vid, "video", base="")  # even a valid link finds no file
    assert_error(await server.client.get(forged.url), 404, "CONTENT_NOT_FOUND")

    crashes = server.services.runtime.supervisor.statistics().crashes
    faulty.release.set()  # the commit fails: the actor crashes and is restarted
    done = await until(server, frank, vid, "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED"
    assert server.services.runtime.supervisor.statistics().crashes == crashes + 1
    played = await server.client.get(done["videoUrl"])
    assert sha(played.content) == media_sha256("video")
    assert list((content_dir(server) / vid).glob("*.part")) == []
    responses.check("/content", "/files/")


async def test_a_server_stopped_mid_fetch_resumes_with_the_right_bytes(
    tmp_path: Path, database_url: str
) -> None:
    # One upstream for both server runs (an in-process simulator would die with the first).
    key = "sk-shared-upstream-key-for-this-test"
    async with trio.open_nursery() as nursery:
        upstream = await nursery.start(serve_simulator, SimulatorConfig(time_scale=240))
        settings = make_settings(
            tmp_path, database_url, upstream_url=upstream, upstream_api_key=key, **FAST
        )
        await _stop_mid_fetch_then_resume(settings, key)
        nursery.cancel_scope.cancel()


async def _stop_mid_fetch_then_resume(settings: Settings, key: str) -> None:
    async with serving(settings) as (server, responses):
        grace = await server.user("grace")
        local = server.services.runtime.content.store
        assert isinstance(local, LocalContentStore)
        faulty = FaultyStore(local, "hang-mid-write")
        install_store(server, faulty)
        task = await create(server, grace, "rain on a tin roof")
        vid = task["videoId"]
        with trio.fail_after(30):
            await faulty.reached.wait()
        assert list((content_dir(server) / vid).glob(".video.mp4.*.part"))
        responses.check("/api/video/tasks", key=key)
    # The server stopped mid-write; a SIGKILL would also have left a partial file behind.
    folder = settings.resolved_content_dir / vid
    assert not (folder / "video.mp4").exists()
    leftover = folder / ".video.mp4.deadbeef.part"
    leftover.write_bytes(VIDEO[:4000])
    two_hours_ago = time.time() - 7200
    os.utime(leftover, (two_hours_ago, two_hours_ago))

    async with serving(settings) as (server, responses):
        assert server.services.runtime.resumed == 1
        token = await server.login("grace")
        grace = {"Authorization": f"Bearer {token}"}
        done = await until(server, grace, vid, "COMPLETED", "FAILED")
        assert done["status"] == "COMPLETED", done
        played = await server.client.get(done["videoUrl"])
        assert played.status_code == 200 and sha(played.content) == media_sha256("video")
        records = await server.services.storage.content.records(vid)
        assert records["video"].sha256 == media_sha256("video")
        with trio.fail_after(10):  # the sweep at start-up clears the crash's leftover
            while leftover.exists():
                await trio.sleep(0.05)
        assert list(folder.glob("*.part")) == []
        responses.check("/files/", key=key)


# -- refresh -----------------------------------------------------------------------------


async def test_refresh_fetches_a_lost_copy_again(served: tuple[LiveServer, Responses]) -> None:
    server, responses = served
    heidi = await server.user("heidi")
    task = await completed(server, heidi, "a paper boat")
    vid, external = task["videoId"], task["externalVideoId"]
    assert await content_fetches(server, external) == 2  # video + thumbnail

    fresh = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=heidi)
    assert fresh.status_code == 200, fresh.text
    data = fresh.json()["data"]
    assert {"videoId", "externalVideoId", "videoUrl", "status", "refreshedAt"} <= set(data)
    assert data["status"] == "COMPLETED" and data["externalVideoId"] == external
    assert await content_fetches(server, external) == 2  # the copy was there: no download

    (content_dir(server) / vid / "video.mp4").unlink()
    missing = await server.client.get(f"/api/video/tasks/{vid}/content", headers=heidi)
    assert_error(missing, 410, "CONTENT_MISSING")
    assert_error(await server.client.get(task["videoUrl"]), 404, "CONTENT_NOT_FOUND")

    again = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=heidi)
    assert again.status_code == 200, again.text
    assert await content_fetches(server, external) == 3  # only the video was fetched again
    played = await server.client.get(again.json()["data"]["videoUrl"])
    assert sha(played.content) == media_sha256("video")
    ok = await server.client.get(f"/api/video/tasks/{vid}/content", headers=heidi)
    assert ok.status_code == 200
    responses.check("/refresh-url", "/content", "/files/")


async def test_refresh_after_the_upstream_expired_it_is_410(
    served: tuple[LiveServer, Responses],
) -> None:
    server, responses = served
    ivan = await server.user("ivan")
    task = await completed(server, ivan, "a comet over ice")
    vid = task["videoId"]
    await simulator_admin(server, f"/__admin/jobs/{task['externalVideoId']}/expire")
    # Our copy outlives the upstream's.
    still = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=ivan)
    assert still.status_code == 200, still.text
    assert sha((await server.client.get(still.json()["data"]["videoUrl"])).content) == (
        media_sha256("video")
    )

    (content_dir(server) / vid / "video.mp4").unlink()
    gone = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=ivan)
    assert_error(gone, 410, "CONTENT_EXPIRED")
    after = (await server.client.get(f"/api/video/tasks/{vid}", headers=ivan)).json()["data"]
    assert after["status"] == "COMPLETED"
    assert after["contentStatus"] == "EXPIRED" and after["contentExpiredAt"].endswith("Z")
    assert after["videoUrl"] is None and after["thumbnailUrl"] is None
    assert_error(
        await server.client.get(f"/api/video/tasks/{vid}/content", headers=ivan),
        410,
        "CONTENT_EXPIRED",
    )
    assert_error(await server.client.get(still.json()["data"]["videoUrl"]), 410, "CONTENT_EXPIRED")
    responses.check("/refresh-url", "/content", "/files/")


# -- remix -------------------------------------------------------------------------------


async def test_remix_links_the_two_tasks(served: tuple[LiveServer, Responses]) -> None:
    server, responses = served
    judy = await server.user("judy")
    source = await completed(server, judy, "a red bicycle")
    vid = source["videoId"]

    for body in ({}, {"prompt": "   "}, {"prompt": "x" * 4001}, ["prompt"]):
        bad = await server.client.post(f"/api/video/tasks/{vid}/remix", json=body, headers=judy)
        assert_error(bad, 400, "VALIDATION_ERROR")
    not_json = await server.client.post(
        f"/api/video/tasks/{vid}/remix", content=b"prompt=x", headers=judy
    )
    assert not_json.status_code in (400, 415)
    unknown = await server.client.post(
        "/api/video/tasks/video_nope/remix", json={"prompt": "x"}, headers=judy
    )
    assert_error(unknown, 404, "TASK_NOT_FOUND")

    made = await server.client.post(
        f"/api/video/tasks/{vid}/remix", json={"prompt": "the bicycle is blue"}, headers=judy
    )
    assert made.status_code == 201, made.text
    remix = made.json()["data"]
    assert remix["remixedFromVideoId"] == vid
    assert remix["videoId"] != vid and remix["status"] == "QUEUED"
    assert remix["prompt"] == "the bicycle is blue"
    assert (remix["model"], remix["size"], remix["duration"]) == (
        source["model"],
        source["size"],
        source["duration"],
    )
    done = await until(server, judy, remix["videoId"], "COMPLETED", "FAILED")
    assert done["status"] == "COMPLETED", done
    assert done["externalVideoId"] not in (None, source["externalVideoId"])
    upstream = await server.services.runtime.provider.get(done["externalVideoId"])
    assert upstream.remixed_from == source["externalVideoId"]  # made by the remix call
    played = await server.client.get(done["videoUrl"])
    assert sha(played.content) == media_sha256("video")
    responses.check("/remix", "/files/")


# -- retention ---------------------------------------------------------------------------


async def test_retention_removes_old_copies_and_says_so(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path,
        database_url,
        content_retention_days=2 / 86400,  # two seconds
        content_sweep_interval_seconds=0.2,
        **FAST,
    )
    async with serving(settings) as (server, responses):
        kim = await server.user("kim")
        task = await completed(server, kim, "snow on cedars")
        vid = task["videoId"]
        url = task["videoUrl"]
        assert url is not None
        folder = content_dir(server) / vid
        with trio.fail_after(15):
            while True:
                now = (await server.client.get(f"/api/video/tasks/{vid}", headers=kim)).json()
                if now["data"]["contentStatus"] == "EXPIRED":
                    break
                await trio.sleep(0.1)
        swept = now["data"]
        assert swept["status"] == "COMPLETED"  # the task itself is not undone
        assert swept["videoUrl"] is None and swept["thumbnailUrl"] is None
        assert not (folder / "video.mp4").exists() and not (folder / "thumbnail.webp").exists()
        expired = await server.client.get(f"/api/video/tasks/{vid}/content", headers=kim)
        assert_error(expired, 410, "CONTENT_EXPIRED")
        assert_error(await server.client.get(url), 410, "CONTENT_EXPIRED")

        # The upstream still has it: refresh brings the copy back.
        back = await server.client.post(f"/api/video/tasks/{vid}/refresh-url", headers=kim)
        assert back.status_code == 200, back.text
        played = await server.client.get(back.json()["data"]["videoUrl"])
        assert sha(played.content) == media_sha256("video")
        responses.check("/content", "/refresh-url", "/files/")


async def test_deleting_a_finished_task_removes_its_files_and_its_links(
    served: tuple[LiveServer, Responses],
) -> None:
    server, _ = served
    alice = await server.user("alice")
    task = await completed(server, alice, "a heron, then nothing")
    video_id = task["videoId"]
    folder = content_dir(server) / video_id
    assert sorted(path.name for path in folder.iterdir()) == ["thumbnail.webp", "video.mp4"]
    assert (await server.client.get(task["videoUrl"])).status_code == 200

    deleted = await server.client.delete(f"/api/video/tasks/{video_id}", headers=alice)
    assert deleted.status_code == 200, deleted.text
    assert not folder.exists()  # both files, and their folder
    # The links issued before are dead; the task is not found by its owner.
    for url in (task["videoUrl"], task["thumbnailUrl"]):
        assert_error(await server.client.get(url), 404, "CONTENT_NOT_FOUND")
    missing = await server.client.get(f"/api/video/tasks/{video_id}/content", headers=alice)
    assert_error(missing, 404, "TASK_NOT_FOUND")
    # Admins still count the task (its row stays); no copy of it is held any more.
    root = await admin_headers(server)
    figures = (await server.client.get("/api/admin/statistics", headers=root)).json()["data"]
    assert figures["tasks"]["total"] == 1 and figures["tasks"]["byStatus"]["COMPLETED"] == 1
    assert figures["videos"] == {"stored": 0, "bytes": 0}
    user = await server.services.storage.accounts.by_username("alice")
    assert user is not None
    detail = await server.client.get(f"/api/admin/users/{user.id}", headers=root)
    assert detail.status_code == 200, detail.text
    assert detail.json()["data"]["tasksByStatus"]["COMPLETED"] == 1
