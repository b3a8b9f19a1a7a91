"""`CoarseStack`: the detector's input rebuilt from a part's archived coarse capture, for the review
export. A recipe whose views stack channels (`View.channels`, e.g. bright, dark, curvature) trains a
detector on those stacks, not on the capture's first frame: the export writes, for each archived
`coarse_<view>.png`, the stack `inspector.channels.detector_input` builds from every frame of that
capture (`inspector.replay.read_capture`) with the station's segment lights and coarse calibration —
the same code the live cycle feeds the detector with."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..channels import LEGACY, detector_input
from ..recipe import Recipe, View
from ..replay import read_capture
from ..station_config import StationConfig
from ..two_stage import coarse_image_name


def stacked_channels(recipe: Recipe) -> tuple[str, ...]:
    """The channels every view of `recipe` stacks for the detector (LEGACY: the first frame alone). Views
    that stack different channels are a ValueError naming them: one export holds one kind of image."""
    kinds: dict[tuple[str, ...], list[str]] = {}
    for view in recipe.views:
        kinds.setdefault(tuple(view.channels), []).append(view.name)
    if len(kinds) > 1:
        raise ValueError(f"recipe {recipe.id}: its views stack different detector channels ("
                         + "; ".join(f"{', '.join(names)}: {list(ch)}" for ch, names in kinds.items())
                         + "), so one review export cannot hold them")
    return next(iter(kinds), LEGACY)


class CoarseStack:
    """Builds the exported image of an archived coarse frame: the view's channel stack (H×W×C uint8)."""

    def __init__(self, recipe: Recipe, station: StationConfig):
        self.recipe, self.station = recipe, station
        self.channels = stacked_channels(recipe)
        self._views: dict[str, View] = {coarse_image_name(view): view for view in recipe.views}

    @property
    def stacks(self) -> bool:
        """Whether the views stack channels (False: the legacy first frame, exported as it is)."""
        return self.channels != LEGACY

    def handles(self, path: str | Path) -> bool:
        """Whether `path` is a coarse frame this stacker builds the exported image of (any `coarse_…`)."""
        return self.stacks and Path(path).stem.startswith("coarse_")

    def build(self, path: str | Path) -> np.ndarray:
        """The stack of the capture whose first frame is archived at `path`. A frame of the capture
        that is missing or unreadable, or a view the recipe does not have, is a ValueError naming it."""
        path = Path(path)
        view = self._views.get(path.stem)
        if view is None:
            raise ValueError(f"{path.name}: recipe {self.recipe.id} has no view {path.stem.removeprefix('coarse_')!r}")
        frames = read_capture(path.parent, path.stem, self.recipe.light_programs[view.light_program],
                              f"view {view.name!r} of recipe {self.recipe.id}")
        return detector_input(view.channels, frames, self.station.lights.segments,
                              self.station.cameras["coarse"].calibration.mm_per_px)
