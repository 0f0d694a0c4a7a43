"""A really full disk for tests: a small tmpfs, filled to the last byte by a filler file.

Mounting needs root (the test machines run as root). Where mounting is refused the test
skips with the reason, except under CI=true, where it fails: CI must run these.
"""

from __future__ import annotations

import errno
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

FILLER = "filler"


@contextmanager
def small_disk(path: Path, size: str = "4m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``path`` for the block; unmounted afterwards."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs at {path}: {mounted.stderr.strip() or mounted.returncode}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason + " (CI=true: the disk-full tests must run)")
        pytest.skip(reason)  # a laptop without root; under CI=true: failed above
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write a filler file until the disk has no byte left; the filler's path."""
    filler = disk / FILLER
    block = b"\0" * 65536
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, block)  # a short write takes the last blocks; the next one fails
    except OSError as error:
        assert error.errno == errno.ENOSPC, error
    finally:
        os.close(fd)
    stat = os.statvfs(disk)
    assert stat.f_bavail == 0, f"{disk} still has {stat.f_bavail} free blocks"
    return filler


def free(disk: Path) -> None:
    """Give the space back."""
    (disk / FILLER).unlink()
