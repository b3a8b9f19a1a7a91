"""The decision logic of the two stages, without devices: coarse detections → candidates in face
mm; fine frames → per-candidate classes → findings → verdict. The live cycle and the offline
replay both call these, so an archive replays to the same decisions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from hardware.lights.base import LightProgram

from .channels import FIRST_FRAME, check_view_channels, detector_input
from .fine_size import FineSize, measure_defect
from .inference.classifier import Classifier, roi_square
from .inference.detector import DetectionResult, Detector, to_mono
from .inference.model_package import ModelInfo
from .plausibility import (DETAIL_MIN_SIGNIFICANCE, FOCUS_RATIO_MIN, IMPLAUSIBLE, FrameStats, OutOfFocus, around,
                           check_frame, check_step_frame, detail_peak)
from .planner import (Candidate, FineShot, fine_box_px, max_merge_distance_mm, pixel_to_face_mm, plan_fine_shots,
                      uncovered_px)
from .recipe import Recipe, View
from .results.records import DefectRecord
from .schema import ConfigError
from .station_config import StationConfig
from .verdict import OK, Finding, Verdict, decide, judge_scores


class IncompleteInspection(Exception):
    """The part could not be inspected fully (a candidate not imaged, more shots than allowed …)."""


@dataclass(frozen=True)
class ShotDecisions:
    shot: FineShot
    boxes: tuple[tuple[float, float, float, float], ...]
    decisions: tuple[tuple[str, float, str], ...]  # (class, score, decision) per candidate
    classify_s: float
    novelty: tuple[float | None, ...] = ()  # per candidate; None: the model has no novelty output
    fine_sizes: tuple[FineSize | None, ...] = ()  # per candidate that is a defect or under review


def rule_size(candidate: Candidate, fine: FineSize | None) -> float:
    """The size the rules judge: measured on the fine image where it could be (a blob cut off by the
    frame's border is a lower bound: the coarse size then stands if larger), else the coarse size."""
    if fine is None:
        return candidate.size_mm
    return max(fine.size_mm, candidate.size_mm) if fine.clipped else fine.size_mm


def check_kinds(recipe: Recipe, detector: ModelInfo, classifier: ModelInfo) -> None:
    """The recipe's defect kinds against the models' (kinds are data: they must agree). Every kind the
    classifier can call needs a class policy (else its calls would be dropped, as if ok), every kind
    the recipe rules on must be one the classifier knows, and every class the detector proposes needs
    the recipe's detect threshold."""
    known = [c for c in classifier.class_names if c != OK]
    problems = ([f"classifier {classifier.name} calls {k!r} but the recipe has no class policy for it" for k in known
                 if k not in recipe.classes]
                + [f"the recipe rules on {k!r} but classifier {classifier.name} does not know it (it knows "
                   f"{', '.join(known)})" for k in recipe.classes if k not in known]
                + [f"detector {detector.name} proposes {k!r} but the recipe has no detect threshold for it"
                   for k in detector.class_names if k not in recipe.classes])
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ConfigError(recipe.source, "classes", problems[0] + more)


class TwoStage:
    def __init__(self, recipe: Recipe, station: StationConfig, detector: Detector, classifier: Classifier):
        self.recipe, self.station, self.detector, self.classifier = recipe, station, detector, classifier
        check_kinds(recipe, detector.info, classifier.info)
        self.thresholds = {name: policy.detect_threshold for name, policy in recipe.classes.items()}
        # the recipe's novelty limit, else the model's; a recipe that sets one needs a model that scores it
        self.novelty_limit = recipe.novelty_limit if recipe.novelty_limit is not None else classifier.novelty_limit
        if recipe.novelty_limit is not None and not classifier.has_novelty:
            raise ConfigError(recipe.source, "novelty.limit", f"classifier {classifier.info.path} has no novelty output "
                                                              "to hold the limit against")
        self._check_channels()
        reim = recipe.reimaging
        bound = max_merge_distance_mm(station, reim.frame_margin_mm)
        if reim.merge_distance_mm > bound:
            raise ConfigError(recipe.source, "reimaging.merge_distance_mm",
                              f"{reim.merge_distance_mm} mm is more than this station's fine camera can cover in one "
                              f"shot (≤ {bound:.2f} mm: half its shorter field of view less the {reim.frame_margin_mm} mm margin)")

    # -- frames ---------------------------------------------------------------------------------
    def check_coarse(self, view: View, frame: np.ndarray) -> FrameStats:
        """Raise ImplausibleFrame unless the frame looks like the view's commissioned frames."""
        return check_frame(frame, self.recipe.plausibility.views.get(view.name), f"coarse frame of view {view.name!r}",
                           mm_per_px=self.station.cameras["coarse"].calibration.mm_per_px)

    def check_fine(self, name: str, frame: np.ndarray, shot: FineShot) -> bool:
        """The fine frame's own limits, then focus judged on its candidates: a featureless patch cannot
        show defocus, but a candidate with real structure in the coarse frame (significance ≥
        DETAIL_MIN_SIGNIFICANCE) must still show in the fine frame, at the coarse scale, with at least
        FOCUS_RATIO_MIN of its detail there — or, for a candidate too small to survive the change of scale,
        with real structure (that significance) at the fine frame's own scale. A shot whose candidates are all faint is not judged on
        focus: returns whether its focus was verified."""
        what = f"fine shot {name}"
        check_frame(frame, self.recipe.plausibility.fine, what, outline=False)
        coarse, fine = self.station.cameras["coarse"], self.station.cameras["fine"]
        scale = fine.calibration.mm_per_px / coarse.calibration.mm_per_px
        mono = to_mono(frame)
        ratios = []
        for cand in shot.candidates:
            if cand.detail <= 0:
                continue
            x0, y0, x1, y1 = fine_box_px(cand, shot, self.station)
            # a wider region in the fine frame: the coarse → fine mapping may be off by the fixture's and the
            # calibration's tolerances, and an edge just inside the coarse region must not fall outside
            half = (_detail_half(cand.box_px[2] - cand.box_px[0], cand.box_px[3] - cand.box_px[1]) + REGISTRATION_SLACK_PX) / scale
            region = around(mono, (x0 + x1) / 2, (y0 + y1) / 2, half)
            small = cv2.resize(region, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if region.size else region
            ratio = detail_peak(small)[0] / cand.detail
            if ratio < FOCUS_RATIO_MIN:
                # a candidate of a coarse pixel or two averages away when the fine frame is brought to the
                # coarse scale; a fine frame in focus still shows it at its own scale, with real structure and
                # as much detail (defocus flattens both: a blurred region's noise shrinks too, so significance
                # alone would not tell)
                native, significance = detail_peak(region)
                if significance >= DETAIL_MIN_SIGNIFICANCE:
                    ratio = min(FOCUS_RATIO_MIN, native / cand.detail)
            ratios.append(ratio)
        if ratios and max(ratios) < FOCUS_RATIO_MIN:
            raise OutOfFocus(f"{IMPLAUSIBLE}{what}: out of focus or off the focal plane (its candidates show at "
                             f"most {max(ratios):.0%} of the detail the coarse frame saw; limit {FOCUS_RATIO_MIN:.0%})")
        return bool(ratios)

    def _check_channels(self) -> None:
        """Every coarse view must give the detector the channels it was trained on, from its program's frames."""
        for index, view in enumerate(self.recipe.views):
            program = LightProgram.from_dict(view.light_program, self.recipe.light_programs[view.light_program])
            problem = check_view_channels(view.name, view.channels, program, self.station.lights.segments,
                                          self.detector.channels, self.detector.info.path)
            if problem:
                raise ConfigError(self.recipe.source, f"views[{index}].channels", problem)

    def detect(self, frame: np.ndarray) -> DetectionResult:
        """The detector on its input (a frame, or the channel stack `detector_input` builds)."""
        return self.detector.detect(frame, thresholds=self.thresholds)

    def detector_input(self, view: View, frames: Mapping[str, np.ndarray]) -> np.ndarray:
        """The view's channels stacked from one capture's frames (by channel name, the first frame first)."""
        return detector_input(view.channels, frames, self.station.lights.segments,
                              self.station.cameras["coarse"].calibration.mm_per_px)

    def check_and_detect(self, view: View, frames: Mapping[str, np.ndarray] | np.ndarray) -> DetectionResult:
        """The first frame's checks, then the detector on the view's channels. A bare frame is a capture of one."""
        if isinstance(frames, np.ndarray):
            frames = {FIRST_FRAME: frames}
        first, *further = frames.items()
        self.check_coarse(view, first[1])
        for channel, frame in further:  # every frame the detector may stack had its light
            check_step_frame(frame, f"coarse frame of view {view.name!r}, step {channel!r}")
        return self.detect(self.detector_input(view, frames))

    def candidates(self, view: View, result: DetectionResult, frame: np.ndarray | None = None) -> tuple[Candidate, ...]:
        """Detections as candidates in face mm; with the coarse `frame`, each also keeps how much fine
        detail the coarse camera saw about it (the fine shot must show at least part of it). Detections
        centred in a masked zone of the recipe (a part marking) are dropped."""
        coarse = self.station.cameras["coarse"]
        masks = [zone for zone in self.recipe.zones.values() if zone.masked and zone.face == view.face]
        offset = (self.recipe.fixture_offset.x, self.recipe.fixture_offset.y)
        mono = to_mono(frame) if frame is not None else None
        found = []
        for detection in result.detections:
            u, v = pixel_to_face_mm(coarse, *detection.center_px, offset)
            if any(zone.contains(view.face, u, v) for zone in masks):
                continue
            w, h = detection.size_px
            detail = 0.0
            if mono is not None:
                peak, significance = detail_peak(around(mono, *detection.center_px, _detail_half(w, h)))
                detail = peak if significance >= DETAIL_MIN_SIGNIFICANCE else 0.0
            found.append(Candidate(view.name, view.face, detection.class_name, float(detection.score),
                                   tuple(float(b) for b in detection.box_px), u, v,
                                   max(w, h) * coarse.calibration.mm_per_px, round(detail, 3)))
        return tuple(found)

    def _crop_side(self, box: tuple[float, float, float, float]) -> float:
        return roi_square(box, self.classifier.roi)[2]

    def plan(self, candidates: Sequence[Candidate]) -> list[FineShot]:
        return plan_fine_shots(candidates, self.recipe, self.station, self._crop_side)

    def classify(self, shot: FineShot, frame: np.ndarray) -> ShotDecisions:
        """Classify the shot's candidates; IncompleteInspection when one of them is not inside the
        frame with the recipe's margin (its crop would be padded, not imaged)."""
        margin = self.recipe.reimaging.frame_margin_mm
        for cand in shot.candidates:
            beyond = uncovered_px(cand, shot, self.station, margin, self._crop_side)
            if beyond > 0:
                raise IncompleteInspection(
                    f"candidate {cand.defect_class} at ({cand.u_mm:.2f}, {cand.v_mm:.2f}) mm on {cand.face} reaches "
                    f"{beyond:.0f} px beyond its fine frame's {margin} mm margin: not fully imaged")
        boxes = tuple(fine_box_px(c, shot, self.station) for c in shot.candidates)
        result = self.classifier.classify(frame, boxes)
        decisions = tuple(judge_scores(item.scores, self.recipe.classes, item.novelty, self.novelty_limit)
                          for item in result.items)
        mm_per_px = self.station.cameras["fine"].calibration.mm_per_px
        sizes = tuple(measure_defect(frame, box, mm_per_px, name) if decision != OK else None
                      for box, (name, _, decision) in zip(boxes, decisions))
        return ShotDecisions(shot, boxes, decisions, result.timings.total_ms / 1000.0,
                             tuple(item.novelty for item in result.items), sizes)

    def verdict(self, judged: Sequence[ShotDecisions]) -> tuple[Verdict, list[DefectRecord]]:
        findings, records = [], []
        for index, shot_decisions in enumerate(judged):
            shot = shot_decisions.shot
            sizes = shot_decisions.fine_sizes or (None,) * len(shot.candidates)
            for cand, box, (name, score, decision), fine in zip(shot.candidates, shot_decisions.boxes,
                                                                shot_decisions.decisions, sizes):
                size = rule_size(cand, fine)
                findings.append(Finding(name, score, decision, cand.face, cand.u_mm, cand.v_mm, size, cand.view))
                records.append(DefectRecord(
                    defect_class=name, score=round(score, 4), view=cand.view,
                    box_px=tuple(int(round(v)) for v in box), stage="fine", face=cand.face,  # type: ignore[arg-type]
                    position_mm=(round(cand.u_mm, 3), round(cand.v_mm, 3)), size_mm=round(size, 3),
                    decision=decision, image_path=fine_image_name(index, shot.face)))
        return decide(findings, self.recipe), records

    @staticmethod
    def record_extra(judged: Sequence[ShotDecisions]) -> dict[str, Any]:
        """What the part record keeps beside its defects: which candidates (indices into the record's
        defects) each fine shot covered and where it aimed, and per defect both sizes and the novelty."""
        shots, defects, index = [], [], 0
        for number, shot_decisions in enumerate(judged):
            shot = shot_decisions.shot
            count = len(shot.candidates)
            shots.append({"image": fine_image_name(number, shot.face), "aim_mm": [round(shot.u_mm, 3), round(shot.v_mm, 3)],
                          "candidates": list(range(index, index + count))})
            index += count
            sizes = shot_decisions.fine_sizes or (None,) * count
            novelty = shot_decisions.novelty or (None,) * count
            for cand, fine, nov in zip(shot.candidates, sizes, novelty):
                defects.append({"coarse_size_mm": round(cand.size_mm, 3),
                                "fine_size_mm": None if fine is None else round(fine.size_mm, 3),
                                "fine_size_clipped": None if fine is None else fine.clipped,
                                "novelty": None if nov is None else round(nov, 3)})
        return {"fine_shots": shots, "defects": defects}


REGISTRATION_SLACK_PX = 6.0  # coarse px (0.3 mm in the virtual cell)


def _detail_half(width_px: float, height_px: float) -> float:
    """Half the side (coarse px) of the region a candidate's detail is measured in."""
    return max(width_px, height_px, 4.0) + 3.0


def coarse_image_name(view: View) -> str:
    return f"coarse_{view.name}"


def fine_image_name(index: int, face: str) -> str:
    return f"fine_{index:02d}_{face}"
