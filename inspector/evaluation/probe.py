"""What the evaluation watches while the station's own cycle inspects a part on the virtual cell:
the ground truth of every coarse frame (the virtual camera renders it beside the image) and the
candidates the cycle found in it. Nothing here decides anything; the verdict is the record's."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import CandidatesFound, FineShotTaken, PartStarted, ViewCaptured

MATCH_MARGIN_PX = 2.0  # a candidate box within this many coarse px of a truth box has found it


class TruthTap:
    """Wraps the coarse camera and keeps the truth of the last frame it returned; everything else is
    the camera's own (the cycle cannot tell the difference)."""

    def __init__(self, camera: Any):
        self._camera = camera
        self.last_truth: tuple = ()

    def snap(self, timeout_s: float = 2.0):
        frame = self._camera.snap(timeout_s)
        self.last_truth = tuple(frame.truth)
        return frame

    def grab(self, timeout_s: float = 2.0):
        frame = self._camera.grab(timeout_s)
        self.last_truth = tuple(frame.truth)
        return frame

    def __getattr__(self, name: str) -> Any:
        return getattr(self._camera, name)


@dataclass
class PartWatch:
    truth_by_view: dict[str, tuple] = field(default_factory=dict)  # view → TruthBox tuple of its coarse frame
    candidates_by_view: dict[str, tuple] = field(default_factory=dict)  # view → planner.Candidate tuple
    fine_shots: int = 0


class Probe:
    """Subscribe `on_event` to the cycle's bus and `attach` the cycle once it is ready."""

    def __init__(self) -> None:
        self.parts: dict[str, PartWatch] = {}
        self._tap: TruthTap | None = None
        self._current: PartWatch | None = None

    def attach(self, cycle: Any) -> None:
        self._tap = TruthTap(cycle.devices.cameras["coarse"])
        cycle.devices.cameras["coarse"] = self._tap

    def on_event(self, event: object) -> None:
        if isinstance(event, PartStarted):
            self._current = self.parts[event.part_id] = PartWatch()
        elif isinstance(event, ViewCaptured) and self._current is not None and self._tap is not None:
            self._current.truth_by_view[event.view] = self._tap.last_truth
        elif isinstance(event, CandidatesFound) and self._current is not None:
            self._current.candidates_by_view[event.view] = tuple(event.candidates)
        elif isinstance(event, FineShotTaken) and self._current is not None:
            self._current.fine_shots += 1


def proposed_defects(watch: PartWatch) -> dict[int, list[Any]]:
    """defect id → the candidates whose coarse box meets that true defect's box (in any view)."""
    found: dict[int, list[Any]] = {}
    for view, truths in watch.truth_by_view.items():
        candidates = watch.candidates_by_view.get(view, ())
        for truth in truths:
            if truth.is_nuisance:
                continue
            hits = [c for c in candidates if _boxes_meet(c.box_px, truth.box_px, MATCH_MARGIN_PX)]
            if hits:
                found.setdefault(truth.defect_id, []).extend(hits)
    return found


def false_candidates(watch: PartWatch) -> int:
    """Candidates whose coarse box meets no true defect's box (a nuisance, an edge, a texture): each costs
    a fine shot's worth of attention for nothing."""
    count = 0
    for view, candidates in watch.candidates_by_view.items():
        truths = [t for t in watch.truth_by_view.get(view, ()) if not t.is_nuisance]
        count += sum(not any(_boxes_meet(c.box_px, t.box_px, MATCH_MARGIN_PX) for t in truths) for c in candidates)
    return count


def _boxes_meet(a: tuple, b: tuple, margin: float) -> bool:
    return (a[0] <= b[2] + margin and b[0] - margin <= a[2]
            and a[1] <= b[3] + margin and b[1] - margin <= a[3])
