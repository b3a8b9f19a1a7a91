"""Commissioning the frame checks: learn, per view and for the fine shots, what good frames of this
part look like, and write the limits into a new version of the recipe.

Two sources, one learning rule (`inspector.plausibility.learn_limits`):
- archived parts (`coarse_<view>.png`, `fine_NN_<face>.png` per folder, as the station archives
  them): what an integrator uses on a real cell after running known-good parts;
- the virtual cell: a lot of parts inspected with the station's own cycle, its frames taken from
  the cycle's events.
While learning, only the generic limits apply (the recipe's old limits are set aside), so a
recipe can be recommissioned after a change of lights or optics.
"""
from __future__ import annotations

import json
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
import sys
from typing import Any, Callable, Iterable

import numpy as np

from .events import FineShotTaken, ViewCaptured
from .plausibility import FrameStats, frame_stats, learn_limits
from .recipe import Plausibility, Recipe
from .recipe_edit import write_atomic
from .replay import read_mono
from .station_config import StationConfig
from .two_stage import coarse_image_name

COMMISSIONING_FIRST_SEED = 250_000  # inside the val split's seed range, far from the seeds the val sets use
MIN_FRAMES = 5  # fewer good frames of a view than this teach nothing


@dataclass
class FrameSample:
    """Statistics of good frames, per coarse view and for all fine shots."""

    views: dict[str, list[FrameStats]] = field(default_factory=dict)
    fine: list[FrameStats] = field(default_factory=list)
    parts: int = 0

    def add_coarse(self, view: str, frame: np.ndarray) -> None:
        self.views.setdefault(view, []).append(frame_stats(frame, outline=True))

    def add_fine(self, frame: np.ndarray) -> None:
        self.fine.append(frame_stats(frame))


def sample_archive(folders: Iterable[str | Path], recipe: Recipe) -> FrameSample:
    """Statistics of archived good parts: each folder must hold every view's coarse frame."""
    sample = FrameSample()
    for folder in map(Path, folders):
        for view in recipe.views:
            path = folder / f"{coarse_image_name(view)}.png"
            if not path.is_file():
                raise ValueError(f"commission: {folder} has no {path.name} for view {view.name!r} of recipe {recipe.id}")
            sample.add_coarse(view.name, read_mono(path))
        for path in sorted(folder.glob("fine_*.png")):
            sample.add_fine(read_mono(path))
        sample.parts += 1
    return sample


def sample_sim(recipe: Recipe, parts: int, *, first_seed: int = COMMISSIONING_FIRST_SEED, speed_factor: float = 50.0,
               out: Callable[[str], None] = print) -> FrameSample:
    """Statistics of the frames of `parts` virtual-cell parts, inspected by the station's cycle."""
    from .demo import run_sim_lot

    sample = FrameSample()

    def collect(event: object) -> None:
        if isinstance(event, ViewCaptured):
            sample.add_coarse(event.view, event.image)
        elif isinstance(event, FineShotTaken):
            sample.add_fine(event.image)

    with tempfile.TemporaryDirectory(prefix="commission-") as work:
        learning = Path(work) / "recipe.json"
        data = replace(recipe, plausibility=replace(recipe.plausibility, views={}, fine=None)).to_dict()
        _absolute_models(data, recipe)  # the copy lives elsewhere
        learning.write_text(json.dumps(data), encoding="utf-8")
        run_sim_lot(parts, first_seed=first_seed, speed_factor=speed_factor, recipe_path=learning,
                    db=Path(work) / "results.db", archive_dir=None, out=out, on_event=collect)
    sample.parts = parts
    return sample


def learn(recipe: Recipe, sample: FrameSample, station: StationConfig, *, source: str) -> Recipe:
    """The next version of `recipe` with limits learned from `sample`."""
    missing = [view.name for view in recipe.views if len(sample.views.get(view.name, ())) < MIN_FRAMES]
    if missing:
        raise ValueError(f"commission: fewer than {MIN_FRAMES} good frames of view(s) {', '.join(missing)} "
                         f"({sample.parts} parts); inspect more good parts")
    if len(sample.fine) < MIN_FRAMES:
        raise ValueError(f"commission: only {len(sample.fine)} fine shots in {sample.parts} parts (need {MIN_FRAMES}); "
                         "inspect more good parts")
    tolerance_px = recipe.plausibility.fixture_tolerance_mm / station.cameras["coarse"].calibration.mm_per_px
    views = {view.name: learn_limits(sample.views[view.name], centre_tolerance_px=tolerance_px) for view in recipe.views}
    note = (f"{sample.parts} parts from {source} on {time.strftime('%Y-%m-%d')}: "
            f"{sum(len(v) for v in sample.views.values())} coarse frames, {len(sample.fine)} fine shots")
    return recipe.next_version(plausibility=replace(recipe.plausibility, views=views, fine=learn_limits(sample.fine),
                                                    commissioned=note))


def write_recipe(recipe: Recipe, path: str | Path) -> Path:
    """Write `recipe` to `path`; model files it names relative to its old folder stay found."""
    path = Path(path)
    data = recipe.to_dict()
    if path.resolve().parent != Path(recipe.source).resolve().parent:
        _absolute_models(data, recipe)
    write_atomic(path, (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


def _absolute_models(data: dict, recipe: Recipe) -> None:
    for role, entry in data["models"].items():
        where = str(recipe.model_path(role, verify=False).resolve())
        if isinstance(entry, dict):
            entry["file"] = where
        else:
            data["models"][role] = where


def plausibility_summary(plausibility: Plausibility) -> list[str]:
    lines = [plausibility.commissioned or "not commissioned: generic limits only"]
    for name, limits in plausibility.views.items():
        lines.append(f"  view {name}: median {limits.p50[0]:.0f}–{limits.p50[1]:.0f}, saturated ≤ {limits.saturated_max:.1%}, "
                     f"sharpness ≥ {limits.sharpness_min:.3g}, outline {limits.part_share[0]:.0%}–{limits.part_share[1]:.0%} "
                     f"at ±{limits.centre_tolerance_px:.0f} px" if limits.part_share else f"  view {name}: {limits}")
    if plausibility.fine is not None:
        fine = plausibility.fine
        lines.append(f"  fine shots: 95th percentile {fine.p95[0]:.0f}–{fine.p95[1]:.0f}, saturated ≤ {fine.saturated_max:.1%}, "
                     f"sharpness ≥ {fine.sharpness_min:.3g}")
    return lines


def main(args: Any) -> int:
    """`inspector commission`."""
    from .demo import REFERENCE_RECIPE

    recipe_path = args.recipe or REFERENCE_RECIPE
    recipe = Recipe.load(recipe_path)
    if args.sim:
        from hardware.sim.cell import station_config_dict

        station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
        sample = sample_sim(recipe, args.parts, first_seed=args.seed)
        source = f"the virtual cell (seeds {args.seed}–{args.seed + args.parts - 1})"
    else:
        if args.station is None:
            print("inspector commission: --from-archive needs --station STATION.toml (the camera calibration)", file=sys.stderr)
            return 2
        station = StationConfig.load(args.station)
        sample = sample_archive(args.from_archive, recipe)
        source = f"{len(args.from_archive)} archived parts"
    try:
        new = learn(recipe, sample, station, source=source)
    except ValueError as exc:
        print(f"inspector commission: {exc}", file=sys.stderr)
        return 1
    path = write_recipe(new, args.out or recipe_path)
    print(f"{path}: recipe {new.id} v{new.version} ({new.hash})")
    for line in plausibility_summary(new.plausibility):
        print(line)
    return 0
