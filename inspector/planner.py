"""Planning the fine stage: coarse pixels → face millimetres → stage poses, merging and ordering.

Pure functions over the station calibration. A recipe view presents one face perpendicular to
the cameras with the face centre on the coarse camera's axis, so a coarse pixel's offset from the
image centre, scaled and rotated by the calibration, is the point's position on the face (u, v in
mm). Moving the stage by the same offset, plus the coarse → fine camera offset, puts that point on
the fine camera's axis; the focus follows from the two cameras' focal heights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

from hardware.pose import StagePose

from .recipe import Recipe, View
from .station_config import CameraConfig, StationConfig


@dataclass(frozen=True)
class Candidate:
    view: str
    face: str
    defect_class: str  # the detector's class guess
    score: float
    box_px: tuple[float, float, float, float]  # in the coarse frame
    u_mm: float
    v_mm: float
    size_mm: float
    detail: float = 0.0  # peak fine detail about it in the coarse frame (plausibility.detail_peak); 0: not measured


@dataclass(frozen=True)
class FineShot:
    face: str
    u_mm: float  # where the fine camera is aimed
    v_mm: float
    pose: StagePose
    candidates: tuple[Candidate, ...]


def _rotate(dx: float, dy: float, degrees: float) -> tuple[float, float]:
    if not degrees:
        return dx, dy
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    return c * dx - s * dy, s * dx + c * dy


def pixel_to_face_mm(camera: CameraConfig, px: float, py: float, fixture_offset: tuple[float, float] = (0.0, 0.0)
                     ) -> tuple[float, float]:
    """Face (u, v) in mm of a pixel in a view that centres the face on this camera's axis."""
    cal = camera.calibration
    dx = (px - camera.width_px / 2) * cal.mm_per_px
    dy = (py - camera.height_px / 2) * cal.mm_per_px
    u, v = _rotate(dx, dy, cal.rotation_deg)
    return u - fixture_offset[0], v - fixture_offset[1]


def face_mm_to_pixel(camera: CameraConfig, u: float, v: float, fixture_offset: tuple[float, float] = (0.0, 0.0)
                     ) -> tuple[float, float]:
    cal = camera.calibration
    dx, dy = _rotate(u + fixture_offset[0], v + fixture_offset[1], -cal.rotation_deg)
    return dx / cal.mm_per_px + camera.width_px / 2, dy / cal.mm_per_px + camera.height_px / 2


def fine_pose(view: View, u: float, v: float, station: StationConfig, focus_offset_mm: float = 0.0,
              fixture_offset: tuple[float, float] = (0.0, 0.0)) -> StagePose:
    """Stage pose that puts face point (u, v) of `view`'s face on the fine camera's axis, in focus."""
    coarse, fine = station.cameras["coarse"].calibration, station.cameras["fine"].calibration
    du, dv = u + fixture_offset[0], v + fixture_offset[1]
    pose = view.pose
    return StagePose(x=pose.x + fine.optical_axis_mm[0] - coarse.optical_axis_mm[0] - du,
                     y=pose.y + fine.optical_axis_mm[1] - coarse.optical_axis_mm[1] - dv,
                     z=pose.z + fine.focal_z_mm - coarse.focal_z_mm + focus_offset_mm,
                     a=pose.a, b=pose.b)


def merge_candidates(candidates: Sequence[Candidate], distance_mm: float) -> list[list[Candidate]]:
    """Groups of candidates on the same face within `distance_mm` of the group's first member
    (single linkage would chain a row of dust across the part into one shot)."""
    groups: list[list[Candidate]] = []
    for cand in sorted(candidates, key=lambda c: -c.score):
        for group in groups:
            lead = group[0]
            if lead.face == cand.face and math.hypot(lead.u_mm - cand.u_mm, lead.v_mm - cand.v_mm) <= distance_mm:
                group.append(cand)
                break
        else:
            groups.append([cand])
    return groups


def plan_fine_shots(candidates: Sequence[Candidate], recipe: Recipe, station: StationConfig,
                    crop_side: Callable[[tuple[float, float, float, float]], float] | None = None) -> list[FineShot]:
    """One shot per merged group, ordered face by face starting where the coarse pass ended (the
    recipe's views backwards: no rotation back to the first face) and, within a face, by nearest
    neighbour from the previous shot to keep travel short. A member whose crop (`crop_side` of its
    fine box, in fine px; default the box itself) would not lie inside the frame with the recipe's
    margin when the shot aims at the group's centre leaves the group and gets a shot of its own."""
    views = {view.face: view for view in recipe.views}
    offset = (recipe.fixture_offset.x, recipe.fixture_offset.y)
    groups = _covered_groups(merge_candidates(candidates, recipe.reimaging.merge_distance_mm), recipe, station, crop_side)
    shots: list[FineShot] = []
    for view in reversed(recipe.views):
        on_face = [g for g in groups if g[0].face == view.face]
        here = (0.0, 0.0)
        while on_face:
            nearest = min(on_face, key=lambda g: math.hypot(_centre(g)[0] - here[0], _centre(g)[1] - here[1]))
            on_face.remove(nearest)
            u, v = _centre(nearest)
            here = (u, v)
            shots.append(FineShot(view.face, u, v, fine_pose(views[view.face], u, v, station,
                                                             recipe.reimaging.focus_offset_mm, offset),
                                  tuple(nearest)))
    return shots


def _covered_groups(groups: list[list[Candidate]], recipe: Recipe, station: StationConfig, crop_side) -> list[list[Candidate]]:
    out: list[list[Candidate]] = []
    queue = list(groups)
    while queue:
        group = queue.pop(0)
        u, v = _centre(group)
        aim = FineShot(group[0].face, u, v, StagePose(0.0, 0.0, 0.0), tuple(group))
        inside = [c for c in group if uncovered_px(c, aim, station, recipe.reimaging.frame_margin_mm, crop_side) <= 0]
        if len(group) == 1 or len(inside) == len(group):
            out.append(group)
            continue
        kept = inside or group[:1]  # the lead is aimed at alone if nothing fits around the centre
        out.append(kept)
        queue.extend([c] for c in group if c not in kept)
    return out


def uncovered_px(candidate: Candidate, shot: FineShot, station: StationConfig, margin_mm: float,
                 crop_side: Callable[[tuple[float, float, float, float]], float] | None = None) -> float:
    """How far (fine px) the candidate's crop reaches beyond the fine frame less the margin; ≤ 0 when
    it is imaged in full."""
    fine = station.cameras["fine"]
    x0, y0, x1, y1 = fine_box_px(candidate, shot, station)
    side = crop_side((x0, y0, x1, y1)) if crop_side is not None else max(x1 - x0, y1 - y0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    margin = margin_mm / fine.calibration.mm_per_px
    return max(margin + side / 2 - cx, cx + side / 2 - (fine.width_px - margin),
               margin + side / 2 - cy, cy + side / 2 - (fine.height_px - margin))


def max_merge_distance_mm(station: StationConfig, margin_mm: float) -> float:
    """The farthest two candidates may lie apart and still share one shot: half the fine camera's
    shorter field of view, less the margin."""
    fine = station.cameras["fine"]
    return min(fine.width_px, fine.height_px) * fine.calibration.mm_per_px / 2 - margin_mm


def fine_box_px(candidate: Candidate, shot: FineShot, station: StationConfig) -> tuple[float, float, float, float]:
    """The candidate's coarse box expressed in the fine frame of `shot`."""
    coarse, fine = station.cameras["coarse"], station.cameras["fine"]
    scale = coarse.calibration.mm_per_px / fine.calibration.mm_per_px
    w = (candidate.box_px[2] - candidate.box_px[0]) * scale
    h = (candidate.box_px[3] - candidate.box_px[1]) * scale
    cx = (candidate.u_mm - shot.u_mm) / fine.calibration.mm_per_px + fine.width_px / 2
    cy = (candidate.v_mm - shot.v_mm) / fine.calibration.mm_per_px + fine.height_px / 2
    return cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2


def _centre(group: Sequence[Candidate]) -> tuple[float, float]:
    return (sum(c.u_mm for c in group) / len(group), sum(c.v_mm for c in group) / len(group))

