"""The decision logic of the two stages, without devices: coarse detections → candidates in face
mm; fine frames → per-candidate classes → findings → verdict. The live cycle and the offline
replay both call these, so an archive replays to the same decisions."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .inference.classifier import Classifier
from .inference.detector import DetectionResult, Detector
from .planner import Candidate, FineShot, fine_box_px, pixel_to_face_mm, plan_fine_shots
from .recipe import Recipe, View
from .results.records import DefectRecord
from .station_config import StationConfig
from .verdict import Finding, Verdict, decide, judge_scores


@dataclass(frozen=True)
class ShotDecisions:
    shot: FineShot
    boxes: tuple[tuple[float, float, float, float], ...]
    decisions: tuple[tuple[str, float, str], ...]  # (class, score, decision) per candidate
    classify_s: float


class TwoStage:
    def __init__(self, recipe: Recipe, station: StationConfig, detector: Detector, classifier: Classifier):
        self.recipe, self.station, self.detector, self.classifier = recipe, station, detector, classifier
        self.thresholds = {name: policy.detect_threshold for name, policy in recipe.classes.items()}

    def detect(self, frame: np.ndarray) -> DetectionResult:
        return self.detector.detect(frame, thresholds=self.thresholds)

    def candidates(self, view: View, result: DetectionResult) -> tuple[Candidate, ...]:
        coarse = self.station.cameras["coarse"]
        offset = (self.recipe.fixture_offset.x, self.recipe.fixture_offset.y)
        found = []
        for detection in result.detections:
            u, v = pixel_to_face_mm(coarse, *detection.center_px, offset)
            w, h = detection.size_px
            found.append(Candidate(view.name, view.face, detection.class_name, float(detection.score),
                                   tuple(float(b) for b in detection.box_px), u, v,
                                   max(w, h) * coarse.calibration.mm_per_px))
        return tuple(found)

    def plan(self, candidates: Sequence[Candidate]) -> list[FineShot]:
        return plan_fine_shots(candidates, self.recipe, self.station)

    def classify(self, shot: FineShot, frame: np.ndarray) -> ShotDecisions:
        boxes = tuple(fine_box_px(c, shot, self.station) for c in shot.candidates)
        result = self.classifier.classify(frame, boxes)
        decisions = tuple(judge_scores(item.scores, self.recipe.classes) for item in result.items)
        return ShotDecisions(shot, boxes, decisions, result.timings.total_ms / 1000.0)

    def verdict(self, judged: Sequence[ShotDecisions]) -> tuple[Verdict, list[DefectRecord]]:
        findings, records = [], []
        for index, shot_decisions in enumerate(judged):
            shot = shot_decisions.shot
            for cand, box, (name, score, decision) in zip(shot.candidates, shot_decisions.boxes,
                                                          shot_decisions.decisions):
                findings.append(Finding(name, score, decision, cand.face, cand.u_mm, cand.v_mm, cand.size_mm, cand.view))
                records.append(DefectRecord(
                    defect_class=name, score=round(score, 4), view=cand.view,
                    box_px=tuple(int(round(v)) for v in box), stage="fine", face=cand.face,  # type: ignore[arg-type]
                    position_mm=(round(cand.u_mm, 3), round(cand.v_mm, 3)), size_mm=round(cand.size_mm, 3),
                    decision=decision, image_path=fine_image_name(index, shot.face)))
        return decide(findings, self.recipe), records


def coarse_image_name(view: View) -> str:
    return f"coarse_{view.name}"


def fine_image_name(index: int, face: str) -> str:
    return f"fine_{index:02d}_{face}"
