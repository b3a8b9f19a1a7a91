"""Dimensions in the station's decision path: the recipe's features measured on the coarse frames of
the views that name them, judged by `verdict.judge_dimensions`, kept in the part record. The live
cycle and the archive replay call `apply_dimensions` after the defect verdict, so both decide alike."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .dimensions import Measurement, as_record, measure_frame
from .gauge import PixelFrame
from .recipe import Recipe
from .station_config import StationConfig
from .two_stage import coarse_image_name
from .verdict import Verdict, judge_dimensions

RECORD_KEY = "dimensions"  # in PartRecord.extra: feature → value, nominal, tolerance, view, in_tolerance


def pixel_frame(station: StationConfig, recipe: Recipe, camera: str = "coarse") -> PixelFrame:
    """The calibrated mapping of a frame of `camera` to face mm in a view of `recipe`."""
    cam = station.cameras[camera]
    cal = cam.calibration
    return PixelFrame(cal.mm_per_px, cal.rotation_deg, cam.width_px, cam.height_px,
                      (recipe.fixture_offset.x, recipe.fixture_offset.y))


def measure_views(frames: Mapping[str, np.ndarray], recipe: Recipe, station: StationConfig) -> list[Measurement]:
    """Every feature of the recipe, measured in the coarse frame of its view (`frames`: image name →
    frame, as the cycle keeps them); a view without a frame leaves its features unmeasured."""
    out: list[Measurement] = []
    dims = recipe.dimensions
    by_name = {v.name: v for v in recipe.views}
    for view_name in dims.views():
        view = by_name[view_name]
        frame = frames.get(coarse_image_name(view))
        features = [f for f in dims.features if f.view == view_name]
        if frame is None:
            out.extend(Measurement(f.name, None, f.nominal_mm, f.tolerance_mm, f"no frame of view {view_name}")
                       for f in features)
            continue
        out.extend(measure_frame(frame, view_name, dims, pixel_frame(station, recipe, view.camera)))
    return out


def apply_dimensions(verdict: Verdict, frames: Mapping[str, np.ndarray], recipe: Recipe, station: StationConfig,
                     extra: dict[str, Any] | None = None) -> Verdict:
    """The verdict with the recipe's dimensions judged; every measured value goes into `extra`."""
    if not recipe.dimensions:
        return verdict
    measurements = measure_views(frames, recipe, station)
    if extra is not None:
        extra[RECORD_KEY] = as_record(measurements, {f.name: f.view for f in recipe.dimensions.features})
    return judge_dimensions(verdict, measurements, recipe)
