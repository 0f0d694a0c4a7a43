"""The ceiling: a bare Quart-Trio JSON route, served exactly as sora-actors serves itself."""

from __future__ import annotations

import sys

import trio
from hypercorn.trio import serve
from quart_trio import QuartTrio

from sora_actors.server import hypercorn_config, wait_for_signal
from sora_actors.settings import load

app = QuartTrio("bare")


@app.get("/bare")
async def bare() -> dict[str, object]:
    return {"success": True, "data": {"ok": True}}


if __name__ == "__main__":
    port = int(sys.argv[1])
    config = hypercorn_config(load(environ={}), "127.0.0.1", port)
    trio.run(lambda: serve(app, config, shutdown_trigger=wait_for_signal))
