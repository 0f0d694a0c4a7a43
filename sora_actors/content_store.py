"""Where our own copies of finished videos live: the content store.

`ContentStore` is the small interface a backend implements (a local directory now, an object
store later). Writes are all-or-nothing: bytes go to a temporary name, are fsynced, and are
renamed onto the final key, so a reader (or a restart after a crash) never sees half a file.
The keeper (`keeper.py`) fills it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol

import trio

from .upstream import ContentVariant

if TYPE_CHECKING:
    from trio._file_io import AsyncIOWrapper

# The variants we keep, their media types and file extensions. The video is required; the
# thumbnail is kept when the upstream has one.
VARIANTS: tuple[ContentVariant, ...] = ("video", "thumbnail")
CONTENT_TYPES: dict[str, str] = {"video": "video/mp4", "thumbnail": "image/webp"}
_EXTENSIONS: dict[str, str] = {"video": "mp4", "thumbnail": "webp"}

_KEY = re.compile(r"^[A-Za-z0-9_-]{1,200}/[A-Za-z0-9_-]{1,50}\.[a-z0-9]{1,8}$")
_PARTIAL_SUFFIX = ".part"
READ_CHUNK = 64 * 1024


def content_key(video_id: str, variant: str) -> str:
    """The store key of one variant of a task's media."""
    key = f"{video_id}/{variant}.{_EXTENSIONS[variant]}"
    if not _KEY.fullmatch(key):
        raise ValueError(f"not a content key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What a finished write produced."""

    size: int
    sha256: str


class ContentWriter(Protocol):
    """One object being written: chunks in, then `commit` makes it visible at once."""

    async def write(self, chunk: bytes) -> None: ...

    async def commit(self) -> StoredObject: ...


class ContentStore(Protocol):
    """Where copies live. Keys look like ``video_<uuid>/video.mp4``."""

    def writer(self, key: str) -> AbstractAsyncContextManager[ContentWriter]:
        """Write an object; unless `commit` is called, nothing becomes visible."""
        ...

    async def size(self, key: str) -> int | None:
        """The size of a committed object, None when there is none."""
        ...

    def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        """``length`` bytes from ``start``, in chunks."""
        ...

    async def delete(self, key: str) -> bool:
        """Remove an object; False when it was not there."""
        ...

    async def remove_stale_partials(self, older_than_s: float) -> int:
        """Delete unfinished writes left by a crash; how many were removed."""
        ...


class _LocalWriter:
    def __init__(self, handle: AsyncIOWrapper[BinaryIO], temp: Path, final: Path) -> None:
        self._file = handle
        self._temp = temp
        self._final = final
        self._hash = hashlib.sha256()
        self._size = 0
        self.committed = False

    async def write(self, chunk: bytes) -> None:
        await self._file.write(chunk)
        self._hash.update(chunk)
        self._size += len(chunk)

    async def commit(self) -> StoredObject:
        handle = self._file
        await handle.flush()
        await trio.to_thread.run_sync(os.fsync, handle.fileno())
        await handle.aclose()
        await trio.to_thread.run_sync(os.replace, self._temp, self._final)
        await trio.to_thread.run_sync(_fsync_dir, self._final.parent)
        self.committed = True
        return StoredObject(self._size, self._hash.hexdigest())


def _fsync_dir(path: Path) -> None:
    """Make a rename durable: fsync the directory that holds the new name."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalContentStore:
    """A `ContentStore` in a local directory (``<data_dir>/content`` by default).

    A write goes to ``.<name>.<random>.part`` beside its final name and is renamed onto it
    after an fsync; readers only ever open final names.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def path(self, key: str) -> Path:
        if not _KEY.fullmatch(key):
            raise ValueError(f"not a content key: {key!r}")
        return self.root / key

    @asynccontextmanager
    async def writer(self, key: str) -> AsyncIterator[ContentWriter]:
        final = self.path(key)
        await trio.Path(final.parent).mkdir(parents=True, exist_ok=True)
        temp = final.with_name(f".{final.name}.{secrets.token_hex(6)}{_PARTIAL_SUFFIX}")
        handle = await trio.open_file(temp, "xb")
        writer = _LocalWriter(handle, temp, final)
        try:
            yield writer
        finally:
            if not writer.committed:
                # Plain system calls: they must run even while being cancelled. Closing
                # flushes, which fails on a full disk: the temp file goes all the same.
                with contextlib.suppress(OSError):
                    handle.wrapped.close()
                temp.unlink(missing_ok=True)

    async def size(self, key: str) -> int | None:
        try:
            stat = await trio.Path(self.path(key)).stat()
        except FileNotFoundError:
            return None
        return stat.st_size

    async def read(self, key: str, start: int, length: int) -> AsyncIterator[bytes]:
        async with await trio.open_file(self.path(key), "rb") as handle:
            await handle.seek(start)
            remaining = length
            while remaining > 0:
                chunk = await handle.read(min(READ_CHUNK, remaining))
                if not chunk:
                    raise OSError(errno.EIO, f"{key} ended {remaining} bytes early")
                remaining -= len(chunk)
                yield chunk

    async def delete(self, key: str) -> bool:
        path = trio.Path(self.path(key))
        try:
            await path.unlink()
        except FileNotFoundError:
            return False
        with contextlib.suppress(OSError):
            await path.parent.rmdir()  # the task's folder, once empty
        return True

    async def remove_stale_partials(self, older_than_s: float) -> int:
        return await trio.to_thread.run_sync(self._remove_partials, older_than_s)

    def _remove_partials(self, older_than_s: float) -> int:
        if not self.root.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for path in self.root.glob(f"*/.*{_PARTIAL_SUFFIX}"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed
