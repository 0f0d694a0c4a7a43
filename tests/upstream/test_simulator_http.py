"""The simulator's wire behaviour seen by a raw HTTP client: shapes, faults, admin API."""

from __future__ import annotations

import httpx2
import pytest

from sora_actors.upstream.fake import FaultRates

from .conftest import SimFactory

pytestmark = pytest.mark.trio

ERROR_KEYS = {"message", "type", "param", "code"}


async def test_openai_error_shape_and_custom_base_path(start_sim: SimFactory) -> None:
    sim = await start_sim(base_path="/sora/v1", api_key="k")
    assert sim.base_url.endswith("/sora/v1")
    async with httpx2.AsyncClient(base_url=sim.base_url + "/") as c:
        r = await c.get("videos", headers={"authorization": "Bearer nope"})
        assert r.status_code == 401 and set(r.json()["error"]) == ERROR_KEYS
        r = await c.post("videos", json={"model": "sora-2"}, headers={"authorization": "k"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
        ref = {"image_url": "data:image/png;base64,AAAA"}
        r = await c.post(
            "videos", json={"prompt": "p", "input_reference": ref}, headers={"authorization": "k"}
        )
        assert r.status_code == 200 and r.json()["status"] == "queued"
        r = await c.get("videos", params={"limit": 0}, headers={"authorization": "k"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "limit"
        r = await c.get(f"{sim.root}/v1/videos", headers={"authorization": "k"})
        assert r.status_code == 404  # only the configured prefix is served


async def test_faults_on_the_wire(start_sim: SimFactory) -> None:
    sim = await start_sim()
    auth = {"authorization": "Bearer k"}
    async with httpx2.AsyncClient(base_url=sim.base_url + "/", headers=auth, timeout=0.3) as c:
        await sim.admin.faults(drop=1.0)
        with pytest.raises(httpx2.RemoteProtocolError):  # socket closed, not a single byte sent
            await c.get("videos")
        await sim.admin.faults(drop=0.0, malformed=1.0)
        r = await c.get("videos")
        assert r.status_code == 200
        with pytest.raises(ValueError):
            r.json()
        await sim.admin.faults(malformed=0.0, slow=1.0, slow_s=1.0)
        with pytest.raises(httpx2.ReadTimeout):
            await c.get("videos")
        await sim.admin.faults(slow=0.0, rate_limit=1.0, retry_after_ms=1500)
        r = await c.get("videos")
        assert r.status_code == 429
        assert (r.headers["retry-after"], r.headers["retry-after-ms"]) == ("2", "1500")
        assert r.json()["error"]["code"] == "rate_limit_exceeded"
        await sim.admin.faults(rate_limit=0.0, server_error=1.0)
        r = await c.get("videos")
        assert r.status_code in (500, 503) and r.json()["error"]["type"] == "server_error"
        r = await c.post(f"{sim.root}/__admin/faults", json={"drop": 2})
        assert r.status_code == 400
        await sim.admin.reset(faults=True)
        assert (await c.get("videos")).status_code == 200
    stats = await sim.admin.stats()
    assert stats["requests_total"] == 1 and stats["faults"] == vars_of(FaultRates())


def vars_of(f: FaultRates) -> dict[str, float]:
    return {name: getattr(f, name) for name in f.__slots__}


async def test_admin_token_and_gateway_direct_url(start_sim: SimFactory) -> None:
    sim = await start_sim(dialect="gateway", admin_token="adm")
    async with httpx2.AsyncClient(base_url=sim.root) as c:
        assert (await c.get("/__admin/stats")).status_code == 401
        assert (await c.get("/__admin/stats", headers={"authorization": "adm"})).status_code == 200
        r = await c.post(
            "/sora/v1/videos", json={"prompt": "p", "seconds": "15"}, headers={"authorization": "k"}
        )
        assert r.status_code == 200 and r.json()["status"] == "submitted"
        vid = r.json()["id"]
        r = await c.post(f"/__admin/jobs/{vid}/complete", json={}, headers={"authorization": "adm"})
        assert r.json()["status"] == "succeeded"
        url = r.json()["video_url"]
        r = await c.get(url)  # no key needed for a direct URL
        assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
        r = await c.get(f"/sora/v1/videos/{vid}", headers={"authorization": "k"})
        assert r.headers["openai-poll-after-ms"] == "250"
        r = await c.get("/sora/v1/videos/video_missing", headers={"authorization": "k"})
        assert r.status_code == 404 and isinstance(r.json()["error"], str)
