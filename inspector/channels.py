"""Input channels: which frames of a view's light program the detector looks at, and in what order.

A light program takes one frame per step; each step's frame is named by its `channel` (e.g.
"bright", "dark", "seg_n"), else step1, step2, …. Besides the frames themselves two channels are
derived from the segment-light frames by photometric stereo (inspector.photometric):

- ``curvature``: the Laplacian of the surface height, 8-bit, 128 = flat, brighter = concave;
- ``albedo``: the reflectance with the shading of the surface's slope taken out.

A recipe view names the channels its detector input is stacked from (`View.channels`); the detector's
metadata names the channels it was trained on (`channels`); loading refuses a recipe whose views do
not give the detector exactly what it expects (`check_view_channels`). A view and a model that name no
channels use the legacy single input ``frame``: the program's first frame.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from hardware.lights.base import LightProgram

from .photometric import LightDirection, photometric_stereo

FIRST_FRAME = "frame"  # the program's first frame (a model or view that names no channels)
LEGACY = (FIRST_FRAME,)
DERIVED = ("curvature", "albedo")
MAX_CHANNELS = 8
CURVATURE_FULL_SCALE_PER_MM = 2.0  # curvature that reaches 255 (concave) or 1 (convex) in the 8-bit channel
ALBEDO_FULL_SCALE = 255.0  # albedo (grey levels per unit n·l) that reaches 255


class ChannelError(ValueError):
    """A view's frames cannot give the channels asked for."""


def extra_frame_name(channel: str, base: str) -> str:
    """Record/archive name of a further step's frame: `<channel>@<base>` (the first frame keeps `base`),
    so tools that pick frames by their `coarse_` / `fine_` prefix see only the first."""
    return f"{channel}@{base}"


def record_frames(images: dict[str, np.ndarray], base: str, frames: Mapping[str, np.ndarray]) -> None:
    """Put every frame of one capture into a part's images: the first as `base`, the rest by channel."""
    for index, (channel, frame) in enumerate(frames.items()):
        images[base if index == 0 else extra_frame_name(channel, base)] = frame


def segment_frames(frames: Mapping[str, np.ndarray], segments: Mapping[str, tuple[float, float]]) -> dict[str, np.ndarray]:
    """The frames taken under one segment light each (their channel is the segment's role)."""
    return {name: frame for name, frame in frames.items() if name in segments}


def provides(program: LightProgram, segments: Mapping[str, tuple[float, float]]) -> tuple[str, ...]:
    """Every channel a capture with `program` can give on this station."""
    names = program.channel_names
    derived = DERIVED if sum(name in segments for name in names) >= 3 else ()
    return (FIRST_FRAME, *names, *derived)


def check_view_channels(view_name: str, wanted: Sequence[str], program: LightProgram,
                        segments: Mapping[str, tuple[float, float]], model_channels: Sequence[str],
                        model_path: str) -> str | None:
    """The first reason the view cannot feed the detector, in one line; None when it can."""
    if tuple(wanted) != tuple(model_channels):
        return (f"view {view_name!r} stacks channels {list(wanted)} but detector {model_path} expects "
                f"{list(model_channels)}")
    available = provides(program, segments)
    for channel in wanted:
        if channel not in available:
            why = (" (curvature and albedo need frames under at least 3 segment lights whose directions the "
                   "station config gives in [lights.segments])" if channel in DERIVED else "")
            return (f"view {view_name!r}: light program {program.name!r} gives no channel {channel!r}; it gives "
                    f"{', '.join(available)}{why}")
    return None


def detector_input(channels: Sequence[str], frames: Mapping[str, np.ndarray],
                   segments: Mapping[str, tuple[float, float]], mm_per_px: float) -> np.ndarray:
    """The detector's input from one capture: the first frame for the legacy single channel, else an
    H×W×C uint8 stack in `channels` order."""
    first = next(iter(frames.values()))
    if tuple(channels) == LEGACY:
        return first
    derived = {}
    if any(channel in DERIVED for channel in channels):
        lit = segment_frames(frames, segments)
        maps = photometric_stereo(lit, {name: LightDirection(*segments[name]) for name in lit}, mm_per_px)
        derived["curvature"] = maps.curvature_image(CURVATURE_FULL_SCALE_PER_MM)
        derived["albedo"] = np.where(maps.valid, np.clip(maps.albedo * (255.0 / ALBEDO_FULL_SCALE), 0, 255), 0).astype(np.uint8)
    planes = []
    for channel in channels:
        if channel == FIRST_FRAME:
            planes.append(first)
        elif channel in derived:
            planes.append(derived[channel])
        elif channel in frames:
            planes.append(frames[channel])
        else:
            raise ChannelError(f"no frame for channel {channel!r} (captured: {', '.join(frames)})")
    return np.dstack(planes)
