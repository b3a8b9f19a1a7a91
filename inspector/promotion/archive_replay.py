"""The review set: labelled parts judged again from their archived images, under a given recipe.

The truth is the review labels (a part is defective when a label or a closed item says it has a
defect of a defect class, good when every call on it was rejected and nothing was added). Each
recipe's decision comes from running its own models, thresholds and grey band on the archived
images of the part: coarse frames → candidates → the archived fine shot that covers each
candidate → classifier → verdict rules. Only gate-side parts are judged (see `gate_split`).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..recipe import Recipe
from ..review import LABEL_ACTIONS, ReviewQueue
from .figures import REVIEW_SET, SetFigures
from .gate_split import GateSplit


@dataclass(frozen=True)
class LabelledPart:
    part_row: int
    serial: str
    folder: Path  # the archived part folder
    defective: bool


def labelled_parts(queue: ReviewQueue) -> list[LabelledPart]:
    """Parts whose truth the review labels settle. A part counts as defective when its latest label
    on some station call is a defect class or 'unknown' (a real defect the models do not know), a
    missed box was added, or an item of it was closed with unrejected defect calls; good when it has
    labels and every call on it ended as 'ok'. Parts with only open, unlabelled calls are left out
    (nobody has looked yet)."""
    labels = queue.labels()
    items = queue.items()
    rows = sorted({lb.part_row for lb in labels if lb.action in LABEL_ACTIONS}
                  | {it.part_row for it in items if it.status == "done"})
    by_row = {it.part_row: it for it in items}
    found = []
    defect_labels = queue.defect_labels()
    for row in rows:
        item = by_row.get(row)
        if item is None or not item.image_paths:
            continue
        latest: dict[int, str] = {}
        added = False
        for lb in labels:
            if lb.part_row != row:
                continue
            if lb.action in ("confirm", "reject", "change_class") and lb.defect_index is not None and lb.new:
                latest[lb.defect_index] = lb.new
            elif lb.action == "add_box" and lb.new in defect_labels:
                added = True
        closed = any(it.status == "done" for it in items if it.part_row == row)
        calls = []
        for index, d in enumerate(item.defects):
            if index in latest:
                calls.append(latest[index])
            elif closed and d.decision == "defect":
                calls.append(d.defect_class)
            elif d.decision in ("defect", "review"):
                calls.append(None)  # unresolved
        defective = added or any(c in defect_labels for c in calls)  # an 'unknown' defect is a defect too
        if not defective and any(c is None for c in calls):
            continue
        found.append(LabelledPart(row, item.serial, Path(item.image_paths[0]).parent, defective))
    return found


def compare_on_review_set(production_recipe: str | Path, candidate_recipe: str | Path, parts: Sequence[LabelledPart],
                          *, station: Any, split: GateSplit,
                          progress: Callable[[int, int], None] | None = None) -> tuple[SetFigures, SetFigures]:
    """(production, candidate) figures on the gate side of `parts`, each recipe with its own models,
    thresholds and grey band; train-side parts are left out here, whatever the caller passed. Where
    the archived fine shots were aimed is recovered by replaying the production plan
    (deterministic); a part whose archive does not match it is skipped for both.
    `station` (its calibration maps pixels to mm) is required: the station the parts were made on."""
    if station is None:
        raise ValueError("compare_on_review_set needs the station config the parts were inspected with")
    train_side, gate_side = split.split(list(parts))
    recipes = {"production": Recipe.load(production_recipe), "candidate": Recipe.load(candidate_recipe)}
    stages = {name: _stages(recipe, station) for name, recipe in recipes.items()}
    counts = {name: [0, 0, 0, 0] for name in stages}  # defective, good, escapes, overkill
    notes: list[str] = [f"{len(gate_side)} gate-side part(s); {len(train_side)} train-side part(s) not used "
                        f"({split.rule.describe()})"]
    judged: list[str] = []
    for n, part in enumerate(gate_side):
        try:
            shots = archived_shot_positions(part.folder, stages["production"])
            verdicts = {name: judge_archive(part.folder, s, shots) for name, s in stages.items()}
        except ValueError as exc:
            notes.append(f"{part.serial}: {exc}")
        else:
            judged.append(part.serial)
            for name, verdict in verdicts.items():
                c = counts[name]
                if part.defective:
                    c[0] += 1
                    c[2] += verdict == "PASS"
                else:
                    c[1] += 1
                    c[3] += verdict != "PASS"
        if progress is not None:
            progress(n + 1, len(gate_side))
    figures = {name: SetFigures(REVIEW_SET, *c, skipped=len(gate_side) - len(judged), notes=tuple(notes),
                                parts=tuple(judged), recipe_hash=recipes[name].hash) for name, c in counts.items()}
    return figures["production"], figures["candidate"]


def _stages(recipe: Recipe, station: Any) -> Any:
    from ..inference.classifier import Classifier
    from ..inference.detector import Detector
    from ..two_stage import TwoStage
    return TwoStage(recipe, station, Detector.open(str(recipe.model_path("detector"))),
                    Classifier.open(str(recipe.model_path("classifier"))))


def _coarse_candidates(folder: Path, stages: Any) -> list[Any]:
    from ..replay import read_capture
    from ..two_stage import coarse_image_name
    candidates = []
    for view in stages.recipe.views:
        frames = read_capture(folder, coarse_image_name(view), stages.recipe.light_programs[view.light_program],
                              f"view {view.name!r}")
        candidates.extend(stages.candidates(view, stages.detect(stages.detector_input(view, frames))))
    return candidates


def archived_shot_positions(folder: str | Path, production: Any) -> dict[int, tuple[str, float, float]]:
    """index → (face, u mm, v mm) where each archived fine shot was aimed: the production plan replayed."""
    folder = Path(folder)
    plan = production.plan(_coarse_candidates(folder, production))
    found = sorted(folder.glob("fine_*.png"))
    if len(found) != len(plan):
        raise ValueError(f"the archive holds {len(found)} fine shot(s), the production recipe plans {len(plan)}: "
                         f"it was made with other models or thresholds")
    return {i: (shot.face, shot.u_mm, shot.v_mm) for i, shot in enumerate(plan)}


def judge_archive(folder: str | Path, stages: Any, shots: dict[int, tuple[str, float, float]]) -> str:
    """PASS / FAIL / ERROR of one archived part under `stages`' recipe. A call is classified in the
    archived fine frame that covers it; a call no archived frame covers counts as 'review' (the station
    would have re-imaged it, and an unknown is never PASS)."""
    import cv2

    from ..planner import FineShot
    from ..two_stage import ShotDecisions, fine_image_name

    folder = Path(folder)
    fine_cam = stages.station.cameras["fine"]
    half_w = fine_cam.width_px * fine_cam.calibration.mm_per_px / 2
    half_h = fine_cam.height_px * fine_cam.calibration.mm_per_px / 2
    judged: list[ShotDecisions] = []
    for shot in stages.plan(_coarse_candidates(folder, stages)):
        covering = [(i, u, v) for i, (face, u, v) in shots.items() if face == shot.face
                    and all(abs(c.u_mm - u) < 0.8 * half_w and abs(c.v_mm - v) < 0.8 * half_h for c in shot.candidates)]
        if not covering:
            judged.append(ShotDecisions(shot, tuple((0.0, 0.0, 0.0, 0.0) for _ in shot.candidates),
                                        tuple((c.defect_class, c.score, "review") for c in shot.candidates), 0.0))
            continue
        index, u, v = min(covering, key=lambda s: abs(s[1] - shot.u_mm) + abs(s[2] - shot.v_mm))
        image = cv2.imread(str(folder / f"{fine_image_name(index, shot.face)}.png"), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"cannot read {fine_image_name(index, shot.face)}.png")
        judged.append(stages.classify(FineShot(shot.face, u, v, shot.pose, shot.candidates), image))
    verdict, _ = stages.verdict(judged)
    return verdict.verdict
