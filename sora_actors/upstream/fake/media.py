"""The media the fake upstream serves: a real, tiny, playable clip and WebP previews.

The files were made once with ffmpeg (1.5 s 160x90 VP9 in MP4 with +faststart,
which Chromium's <video> plays; WebP stills) and ship as package data. Every
job serves the same bytes, so tests can compare SHA-256 digests.
"""

from __future__ import annotations

import hashlib
import struct
from importlib import resources

from ..provider import ContentVariant

CONTENT_TYPES: dict[str, str] = {
    "video": "video/mp4",
    "thumbnail": "image/webp",
    "spritesheet": "image/webp",
}
_FILES: dict[str, str] = {
    "video": "sample.mp4",
    "thumbnail": "thumbnail.webp",
    "spritesheet": "spritesheet.webp",
}


_CACHE: dict[str, bytes] = {}


def media_bytes(variant: ContentVariant) -> bytes:
    """Bytes for one content variant (read from package data once)."""
    data = _CACHE.get(variant)
    if data is None:
        data = _CACHE[variant] = _read(variant)
    return data


def _read(variant: ContentVariant) -> bytes:
    return (
        resources.files("sora_actors.upstream.fake")
        .joinpath("data")
        .joinpath(_FILES[variant])
        .read_bytes()
    )


def media_sha256(variant: ContentVariant) -> str:
    return hashlib.sha256(media_bytes(variant)).hexdigest()


def mp4_top_level_boxes(data: bytes) -> list[tuple[str, int]]:
    """ISO-BMFF top-level boxes -> [(type, size)]; ValueError if they do not tile the file."""
    out: list[tuple[str, int]] = []
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"truncated box header at {pos}")
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            if pos + 16 > len(data):
                raise ValueError("truncated largesize box")
            (size,) = struct.unpack(">Q", data[pos + 8 : pos + 16])
        elif size == 0:
            size = len(data) - pos
        if size < 8 or pos + size > len(data):
            raise ValueError(f"bad box size {size} at {pos}")
        out.append((kind.decode("latin-1"), size))
        pos += size
    return out


def is_webp(data: bytes) -> bool:
    """RIFF....WEBP with a RIFF length that matches the data."""
    return (
        len(data) >= 12
        and data[:4] == b"RIFF"
        and data[8:12] == b"WEBP"
        and struct.unpack("<I", data[4:8])[0] + 8 == len(data)
    )
