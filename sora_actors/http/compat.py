"""The old backend's request vocabulary, mapped to ours: the one table of it.

Frontends written for the old backend name the shape of a video through the model name
(``sora_video2-landscape``, ``sora-2-pro-portrait-hd-15s``: orientation, tier, length) and
through ``aspectRatio`` / ``hd``; we store a plain model, size and duration. `resolve` turns
the one into the other, refusing only what contradicts itself or what nothing maps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

# Our model names (what a task stores and the upstream adapter maps further).
MODELS = ("sora-2", "sora-2-pro", "sora_video2")
SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
PORTRAIT, LANDSCAPE = "portrait", "landscape"
DEFAULT_ORIENTATION = PORTRAIT

# Per model and orientation: (standard size, HD size or None when the model has none).
MODEL_SIZES: dict[str, dict[str, tuple[str, str | None]]] = {
    "sora-2": {PORTRAIT: ("720x1280", None), LANDSCAPE: ("1280x720", None)},
    "sora_video2": {PORTRAIT: ("720x1280", None), LANDSCAPE: ("1280x720", None)},
    "sora-2-pro": {PORTRAIT: ("720x1280", "1024x1792"), LANDSCAPE: ("1280x720", "1792x1024")},
}

# aspectRatio / aspect_ratio values (compared lower-cased) and the orientation each means.
ASPECT_RATIOS = {"16:9": LANDSCAPE, LANDSCAPE: LANDSCAPE, "9:16": PORTRAIT, PORTRAIT: PORTRAIT}


@dataclass(frozen=True, slots=True)
class ModelName:
    """What an accepted model name encodes: our model, and optionally more of the shape."""

    model: str
    orientation: str | None = None
    duration: int | None = None
    hd: bool = False


def _old_names() -> dict[str, ModelName]:
    """Every old name: a prefix (tier), then any of orientation, ``hd``, ``<N>s`` in order.

    ``sora_video2`` and ``sora-2`` are the standard tier; ``sora_video2-pro`` and
    ``sora-2-pro`` the pro tier (the only one with HD sizes).
    """
    prefixes = {
        "sora_video2": "sora_video2",
        "sora-2": "sora-2",
        "sora_video2-pro": "sora-2-pro",
        "sora-2-pro": "sora-2-pro",
    }
    names: dict[str, ModelName] = {}
    orientations = (None, LANDSCAPE, PORTRAIT)
    for (prefix, model), orientation, hd, seconds in itertools.product(
        prefixes.items(), orientations, (False, True), (None, 10, 15)
    ):
        if hd and MODEL_SIZES[model][PORTRAIT][1] is None:
            continue
        parts = [prefix]
        if orientation:
            parts.append(orientation)
        if hd:
            parts.append("hd")
        if seconds:
            parts.append(f"{seconds}s")
        names["-".join(parts)] = ModelName(model, orientation, seconds, hd)
    return names


MODEL_NAMES: dict[str, ModelName] = _old_names()
ACCEPTED_MODELS: tuple[str, ...] = tuple(MODEL_NAMES)


class Contradiction(ValueError):
    """Two fields of one request ask for different things (``fields`` names both)."""

    def __init__(self, fields: tuple[str, str], message: str) -> None:
        super().__init__(message)
        self.fields = fields
        self.message = message


@dataclass(frozen=True, slots=True)
class Shape:
    model: str
    size: str
    duration: int


def orientation_of(size: str) -> str:
    width, _, height = size.partition("x")
    return LANDSCAPE if int(width) > int(height) else PORTRAIT


def aspect_ratio(size: str) -> str:
    """The old backend's ``aspectRatio`` of a stored size."""
    return "16:9" if orientation_of(size) == LANDSCAPE else "9:16"


def resolve(
    model: str,
    size: str | None,
    duration: int | None,
    ratio: str | None,
    hd: bool | None,
    default_duration: int,
) -> Shape:
    """Our (model, size, duration) for a request; Contradiction when two fields disagree.

    ``size`` / ``duration`` are None when the request did not give them. An explicit size
    wins over ``hd`` (which only picks the size when none is given, and asks for nothing a
    model does not offer); it must agree with ``aspectRatio`` and the model name's
    orientation.
    """
    name = MODEL_NAMES[model]
    orientation = name.orientation
    if ratio is not None:
        wanted = ASPECT_RATIOS[ratio.lower()]
        if orientation is not None and wanted != orientation:
            raise Contradiction(
                ("model", "aspectRatio"),
                f"model {model} is {orientation} but aspectRatio {ratio} is {wanted}",
            )
        orientation = wanted
    if size is not None:
        if orientation is not None and orientation_of(size) != orientation:
            field = "aspectRatio" if ratio is not None else "model"
            raise Contradiction(
                ("size", field),
                f"size {size} is {orientation_of(size)} but {field} asks for {orientation}",
            )
    else:
        standard, large = MODEL_SIZES[name.model][orientation or DEFAULT_ORIENTATION]
        size = large if (hd or (hd is None and name.hd)) and large else standard
    if name.duration is not None and duration is not None and duration != name.duration:
        raise Contradiction(
            ("duration", "model"),
            f"duration {duration} differs from the {name.duration} s model {model} encodes",
        )
    return Shape(name.model, size, duration or name.duration or default_duration)


def as_bool(value: Any) -> Any:
    """Form fields are text: "true"/"false"/"1"/"0" are the booleans; JSON keeps its own."""
    if isinstance(value, str) and value.strip().lower() in ("true", "1", "false", "0"):
        return value.strip().lower() in ("true", "1")
    return value
