"""A personal API key's last use is written at most once a minute, in virtual time."""

from __future__ import annotations

from typing import cast

import trio
import trio.testing

from sora_actors.http.keyauth import UsageStamps, bearer_key, key_hash, new_key
from sora_actors.storage.apikeys import ApiKeyStore


class Recorder:
    """Stands in for the store: what would have been written, and when (Trio's clock)."""

    def __init__(self) -> None:
        self.writes: list[tuple[float, list[str]]] = []

    async def record_use(self, stamps: dict[str, int]) -> None:
        self.writes.append((trio.current_time(), sorted(stamps)))


async def test_uses_within_a_minute_write_once_per_key(
    autojump_clock: trio.testing.MockClock,
) -> None:
    recorder = Recorder()
    stamps = UsageStamps(cast(ApiKeyStore, recorder), interval_s=60)
    start = trio.current_time()
    for _ in range(5):  # a burst: one write
        await stamps.used("a")
    await trio.sleep(30)
    await stamps.used("a")  # 30 s later: nothing
    await stamps.used("b")  # another key: its own write
    await trio.sleep(29.5)
    await stamps.used("a")  # 59.5 s after a's write: still nothing
    await trio.sleep(0.5)
    await stamps.used("a")  # 60 s: written again
    await stamps.used("b")  # 30 s after b's: nothing
    assert [(at - start, keys) for at, keys in recorder.writes] == [
        (0.0, ["a"]),
        (30.0, ["b"]),
        (60.0, ["a"]),
    ]


def test_keys_are_long_random_and_recognised_only_with_their_prefix() -> None:
    first, second = new_key(), new_key()
    assert first != second
    assert first.startswith("sk-sora-") and len(first) - len("sk-sora-") >= 32
    assert key_hash(first) != key_hash(second) and len(key_hash(first)) == 64
    assert bearer_key(f"Bearer {first}") == first
    assert bearer_key(f"bearer  {first} ") == first
    assert bearer_key(first) == first
    assert bearer_key("Bearer eyJhbGciOiJIUzI1NiJ9.e30.x") is None
    assert bearer_key(None) is None and bearer_key("") is None
