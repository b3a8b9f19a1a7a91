"""The result record of one inspected part, as the station writes it and the tools read it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VERDICTS = ("PASS", "FAIL", "ERROR")
STAGES = ("coarse", "fine", "rule")


@dataclass(frozen=True)
class DefectRecord:
    defect_class: str
    score: float
    view: str
    box_px: tuple[int, int, int, int]  # in the frame of the stage that decided
    stage: str  # which stage decided: coarse (detector), fine (classifier), rule (verdict rules)
    face: str = ""
    position_mm: tuple[float, float] = (0.0, 0.0)  # on the face, origin at its centre
    size_mm: float = 0.0
    decision: str = "defect"  # defect | nuisance | review | ok
    image_path: str = ""


@dataclass(frozen=True)
class PartRecord:
    part_id: str
    serial: str
    started_at: float  # unix time
    finished_at: float
    station: str
    recipe_id: str
    recipe_version: int
    recipe_hash: str
    model_versions: dict[str, str]
    provider: str
    verdict: str
    reason: str
    defects: tuple[DefectRecord, ...] = ()
    timings_s: dict[str, float] = field(default_factory=dict)
    image_paths: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"part {self.part_id}: verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")
        for defect in self.defects:
            if defect.stage not in STAGES:
                raise ValueError(f"part {self.part_id}: defect stage {defect.stage!r} is not one of {', '.join(STAGES)}")
