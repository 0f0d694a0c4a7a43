"""A task record built in memory, for the unit tests of pieces that only read one."""

from __future__ import annotations

import dataclasses

from sora_actors.storage import Task


def make_task(
    video_id: str, user_id: str, seq: int = 1, status: str = "PROCESSING", **changes: object
) -> Task:
    """Every field None except the required ones; ``changes`` sets any other field."""
    values: dict[str, object] = {field.name: None for field in dataclasses.fields(Task)}
    values.update(
        video_id=video_id,
        user_id=user_id,
        status=status,
        phase="POLLING",
        progress=0,
        prompt="p",
        model="sora-2",
        size="720x1280",
        duration=4,
        media_type="VIDEO",
        poll_count=0,
        seq=seq,
        restarts=0,
        created_at=0,
        updated_at=0,
    )
    values.update(changes)
    return Task(**values)  # type: ignore[arg-type]
