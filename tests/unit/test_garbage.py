"""The freezing collector: its schedule in virtual time, and what it does to real cycles."""

from __future__ import annotations

import gc
import weakref

import pytest
import trio
import trio.testing

from sora_actors.garbage import FreezingCollector, collecting


class FakeGc:
    """Records what the collector asks of the `gc` module, with the virtual time."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str]] = []

    def _note(self, name: str) -> None:
        self.calls.append((trio.current_time(), name))

    def collect(self, generation: int = 2) -> int:
        self._note(f"collect{generation}")
        return 0

    def freeze(self) -> None:
        self._note("freeze")

    def unfreeze(self) -> None:
        self._note("unfreeze")


async def test_steps_on_schedule_and_walks_everything_only_when_the_heap_doubled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeGc()
    heap = iter([100, 150, 250, 300, 300, 500, 900, 1300])  # `before` of each step...
    measured: list[int] = []

    def measure() -> int:
        value = next(heap)
        measured.append(value)
        return value

    collector = FreezingCollector(
        0.5, major_growth=2.0, major_floor=200, collector=fake, heap=measure
    )
    start = trio.current_time()
    with trio.move_on_after(2.75):
        await collector.run()

    ops = [(round(t - start, 3), name) for t, name in fake.calls]
    # 0.5: 100 <= floor 200: minor. 1.0: 150: minor. 1.5: 250 > 200: major; after it the
    # heap reads 300 (next value), so the next major needs > 600. 2.0: 300: minor.
    # 2.5: 500: minor. Cancelled at 2.75: everything handed back (unfreeze).
    assert ops == [
        (0.5, "collect2"),
        (0.5, "freeze"),
        (1.0, "collect2"),
        (1.0, "freeze"),
        (1.5, "unfreeze"),
        (1.5, "collect2"),
        (1.5, "freeze"),
        (2.0, "collect2"),
        (2.0, "freeze"),
        (2.5, "collect2"),
        (2.5, "freeze"),
        (2.75, "unfreeze"),
    ]
    assert measured == [100, 150, 250, 300, 300, 500]
    assert (collector.statistics().steps, collector.statistics().majors) == (5, 1)


async def test_major_threshold_follows_the_heap_after_the_last_major(
    autojump_clock: trio.testing.MockClock,
) -> None:
    fake = FakeGc()
    readings = [300, 300, 650, 700, 1300]
    collector = FreezingCollector(
        1.0, major_growth=2.0, major_floor=200, collector=fake, heap=lambda: readings.pop(0)
    )
    collector.step()  # 300 > 200: major, heap after 300
    collector.step()  # 650 > 600: major, heap after 700
    collector.step()  # 1300 < 1400: minor
    assert [name for _, name in fake.calls].count("unfreeze") == 2
    assert collector.statistics().majors == 2


async def test_closed_connections_trigger_a_full_walk_below_the_heap_threshold() -> None:
    fake = FakeGc()
    counts = iter([(10, 400), (10, 999), (10, 1000), (10, 1500), (3000, 3999), (3000, 4000)])
    collector = FreezingCollector(1.0, major_floor=10**9, collector=fake, heap=lambda: 100)
    collector.follow(lambda: next(counts))
    majors = []
    for _ in range(6):
        collector.step()
        majors.append(collector.statistics().majors)
    # 1000 closed since the start (and >= the 10 open): major. Then 500 more: not yet.
    # 3999 - 1000 = 2999 < 3000 open: minor; 3000 >= 3000 open: major.
    assert majors == [0, 0, 1, 1, 1, 2]
    assert [name for _, name in fake.calls].count("unfreeze") == 2


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def make_cycle() -> weakref.ref[Node]:
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_a_frozen_cycle_waits_for_the_next_full_walk() -> None:
    heap = [0]
    collector = FreezingCollector(1.0, major_growth=2.0, major_floor=10, heap=lambda: heap[0])
    try:
        young = make_cycle()
        collector.step()  # heap 0: minor. The cycle is garbage already: collected, not frozen.
        assert young() is None

        kept = Node()
        kept.other = Node()
        kept.other.other = kept
        alive = weakref.ref(kept)
        collector.step()  # alive at this step: frozen
        del kept
        gc.collect()  # CPython's own collections do not walk frozen objects...
        assert alive() is not None
        collector.step()  # ...nor do minor steps
        assert alive() is not None

        heap[0] = 100  # the heap has grown past the floor: the next step walks everything
        collector.step()
        assert alive() is None
        assert collector.statistics().majors == 1
    finally:
        gc.unfreeze()


async def test_collecting_runs_the_collector_for_the_block_and_unfreezes_after() -> None:
    async with collecting(0.01, 2.0) as collector:
        assert collector is not None
        while collector.statistics().steps < 2:
            await trio.sleep(0.01)
        assert gc.get_freeze_count() > 0
    assert gc.get_freeze_count() == 0


async def test_collecting_with_interval_zero_leaves_cpython_alone() -> None:
    async with collecting(0, 2.0) as collector:
        assert collector is None
        await trio.sleep(0.05)
        assert gc.get_freeze_count() == 0


def test_rejects_settings_that_make_no_sense() -> None:
    with pytest.raises(ValueError):
        FreezingCollector(0)
    with pytest.raises(ValueError):
        FreezingCollector(1.0, major_growth=1.0)
