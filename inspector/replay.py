"""Offline replay: the two-stage logic on stored images, for audits and for checking a new model
against an archive before it goes live.

Two inputs:
- an archived part folder (`coarse_<view>.png` per recipe view, `fine_NN_<face>.png` per shot, as
  the cycle archives them): the detector runs on the coarse frames, the fine shots are planned
  again (deterministically) and the classifier runs on the archived fine frames — the same
  decisions as the live run on those frames;
- single high-resolution images of one face each at the fine camera's scale: the coarse stage sees
  the image downscaled to the coarse camera's scale, the fine stage classifies full-resolution crops.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from hardware.lights.base import LightProgram

from .channels import LEGACY, extra_frame_name
from .measuring import apply_dimensions
from .planner import FineShot
from .plausibility import ImplausibleFrame, check_frame
from .recipe import View
from .results.records import DefectRecord
from .two_stage import IncompleteInspection, ShotDecisions, TwoStage, coarse_image_name, fine_image_name


@dataclass(frozen=True)
class ReplayResult:
    source: str
    verdict: str
    reason: str
    defects: tuple[DefectRecord, ...]

    def as_dict(self) -> dict:
        return {"source": self.source, "verdict": self.verdict, "reason": self.reason,
                "defects": [{"class": d.defect_class, "score": d.score, "decision": d.decision, "face": d.face,
                             "position_mm": list(d.position_mm), "size_mm": d.size_mm, "view": d.view,
                             "box_px": list(d.box_px)} for d in self.defects]}


MAX_IMAGE_BYTES = 256 * 1024 * 1024  # a 16-bit 8k × 8k frame is 128 MB
MIN_IMAGE_PX = 16  # per side; no camera of the cell gives less


def read_mono(path: Path) -> np.ndarray:
    """A stored frame as 8-bit mono. Anything that is not one — missing, a folder, too large, not an
    image OpenCV decodes, a few pixels — is a ValueError naming the file (OpenCV's own log lines are
    kept off stderr)."""
    path = Path(path)
    try:
        if not path.is_file():
            raise ValueError(f"replay: image {str(path)!r}: " + ("no such file" if not path.exists() else "not a regular file"))
        size = path.stat().st_size
    except OSError as exc:
        raise ValueError(f"replay: cannot read image {str(path)!r}: {exc.strerror or exc}") from None
    if size > MAX_IMAGE_BYTES:
        raise ValueError(f"replay: image {str(path)!r} is {size / 1e6:.0f} MB, at most {MAX_IMAGE_BYTES // 2**20} MiB")
    level = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    except cv2.error as exc:
        raise ValueError(f"replay: cannot read image {str(path)!r}: {_cv_message(exc)}") from None
    finally:
        cv2.utils.logging.setLogLevel(level)
    if image is None:
        raise ValueError(f"replay: cannot read image {str(path)!r}: not an image OpenCV can decode (corrupt or another format)")
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0 / max(1, int(np.iinfo(image.dtype).max)))
    if min(image.shape[:2]) < MIN_IMAGE_PX:
        raise ValueError(f"replay: image {str(path)!r} is {image.shape[1]}×{image.shape[0]} px, "
                         f"too small to inspect (at least {MIN_IMAGE_PX} px a side)")
    return image


def _cv_message(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text[-160:] if text else type(exc).__name__


def read_capture(folder: Path, base: str, program: dict, what: str) -> dict[str, np.ndarray]:
    """One archived capture: the first step's frame `<base>.png`, then each further step's
    `<channel>@<base>.png`, by channel name in step order (as the cycle records them)."""
    names = LightProgram.from_dict("archived", program).channel_names
    frames = {}
    for index, channel in enumerate(names):
        path = folder / f"{base if index == 0 else extra_frame_name(channel, base)}.png"
        if not path.is_file():
            raise ValueError(f"replay: {folder} has no {path.name} for {what}")
        frames[channel] = read_mono(path)
    return frames


def replay_archive(folder: str | Path, stages: TwoStage) -> ReplayResult:
    """Every archived frame passes the same plausibility checks as in the live cycle; an implausible
    frame or a candidate not imaged gives ERROR with the reason, as it would have on the line."""
    folder = Path(folder)
    try:
        candidates = []
        coarse_frames = {}
        for view in stages.recipe.views:
            frames = read_capture(folder, coarse_image_name(view), stages.recipe.light_programs[view.light_program],
                                  f"view {view.name!r} of recipe {stages.recipe.id}")
            frame = next(iter(frames.values()))
            coarse_frames[coarse_image_name(view)] = frame
            candidates.extend(stages.candidates(view, stages.check_and_detect(view, frames), frame))
        judged: list[ShotDecisions] = []
        for index, shot in enumerate(stages.plan(candidates)):
            name = fine_image_name(index, shot.face)
            path = folder / f"{name}.png"
            if not path.is_file():
                raise ValueError(f"replay: {folder} lacks fine shot {path.name}: the archive was made with another "
                                 f"recipe or model (its candidates differ)")
            frame = read_mono(path)
            stages.check_fine(name, frame, shot)
            judged.append(stages.classify(shot, frame))
    except (ImplausibleFrame, IncompleteInspection) as exc:
        return ReplayResult(str(folder), "ERROR", str(exc), ())
    verdict, defects = stages.verdict(judged)
    verdict = apply_dimensions(verdict, coarse_frames, stages.recipe, stages.station)  # as the live cycle
    return ReplayResult(str(folder), verdict.verdict, verdict.reason, tuple(defects))


def replay_face_image(path: str | Path, view: View, stages: TwoStage) -> ReplayResult:
    """A face imaged at the fine camera's scale: downscale for the coarse stage, crop for the fine.
    The coarse rendition must pass the view's brightness, saturation and focus limits (not its
    outline position: a file is not framed as the view is)."""
    image = read_mono(Path(path))
    coarse_cam, fine_cam = stages.station.cameras["coarse"], stages.station.cameras["fine"]
    scale = fine_cam.calibration.mm_per_px / coarse_cam.calibration.mm_per_px
    small = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    if min(small) < MIN_IMAGE_PX:
        raise ValueError(f"replay: image {str(path)!r} is {image.shape[1]}×{image.shape[0]} px at the fine camera's "
                         f"scale, {small[0]}×{small[1]} px in the coarse camera: too small to inspect")
    try:
        coarse = _fit(cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA),
                      coarse_cam.height_px, coarse_cam.width_px)
    except cv2.error as exc:
        raise ValueError(f"replay: cannot scale image {str(path)!r}: {_cv_message(exc)}") from None
    limits = stages.recipe.plausibility.views.get(view.name)
    try:
        check_frame(coarse, limits and replace(limits, part_share=None, centre_px=None), f"image {Path(path).name}",
                    outline=False)
        if stages.detector.channels != LEGACY:  # an implausible image is ERROR all the same; a good one cannot be judged
            raise ValueError(f"replay: one image cannot feed detector {stages.detector.info.path}, which stacks the "
                             f"channels {list(stages.detector.channels)} of a light program; replay an archived part "
                             f"folder instead")
        judged = []
        full_h, full_w = image.shape
        for shot in stages.plan(stages.candidates(view, stages.detect(coarse), coarse)):
            judged.append(stages.classify(shot, _fine_crop(image, shot, stages, full_w, full_h)))
    except (ImplausibleFrame, IncompleteInspection) as exc:
        return ReplayResult(str(path), "ERROR", str(exc), ())
    verdict, defects = stages.verdict(judged)
    return ReplayResult(str(path), verdict.verdict, verdict.reason, tuple(defects))


def _fit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Centre `image` on a dark canvas of the coarse frame's size (crop if larger)."""
    canvas = np.zeros((height, width), np.uint8)
    h, w = min(height, image.shape[0]), min(width, image.shape[1])
    iy, ix = (image.shape[0] - h) // 2, (image.shape[1] - w) // 2
    cy, cx = (height - h) // 2, (width - w) // 2
    canvas[cy:cy + h, cx:cx + w] = image[iy:iy + h, ix:ix + w]
    return canvas


def _fine_crop(image: np.ndarray, shot: FineShot, stages: TwoStage, full_w: int, full_h: int) -> np.ndarray:
    fine = stages.station.cameras["fine"]
    mm = fine.calibration.mm_per_px
    cx, cy = shot.u_mm / mm + full_w / 2, shot.v_mm / mm + full_h / 2
    x0, y0 = int(round(cx - fine.width_px / 2)), int(round(cy - fine.height_px / 2))
    padded = cv2.copyMakeBorder(image, fine.height_px, fine.height_px, fine.width_px, fine.width_px,
                                cv2.BORDER_CONSTANT, value=0)
    return padded[y0 + fine.height_px:y0 + 2 * fine.height_px, x0 + fine.width_px:x0 + 2 * fine.width_px]
