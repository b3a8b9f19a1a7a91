"""Comparing a candidate model pair with the production pair, the regression gate, and promotion.

A candidate (detector + classifier ONNX files, e.g. from a retraining job) is judged on two sets:

- the **review set**: parts a QA engineer labelled in the review queue. The truth is the labels
  (a part is defective when a label or a closed item says it has a defect of a defect class, good
  when every call on it was rejected and nothing was added); each pair's decision comes from running
  its two stages on the archived images of the part (coarse frames → candidates → the archived fine
  shot that covers each candidate → classifier → verdict rules);
- the **held-out lot**: `python -m training eval … --out DIR` writes `DIR/report.json`; the UI runs
  it as a subprocess (the core never imports torch) and hands the report to `figures_from_eval_report`.

The gate: on each set the candidate may not let through more defective parts (escapes) than
production, and its overkill rate may not exceed production's by more than a stated margin.
`promote` checks the session's role, refuses when the gate fails (naming the failing figure),
archives the production files under `models/archive/<name>-<version>.onnx`, copies the candidate
into place and writes old → new and the reason to the audit log.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .access import AccessControl, AccessDenied, Session
from .inference.model_package import read_metadata_props
from .recipe import DEFECT_CLASSES, Recipe
from .review import LABEL_ACTIONS, ReviewQueue

MODEL_ROLES = ("detector", "classifier")
REVIEW_SET = "review set"
HELDOUT_LOT = "held-out lot"
SETS = (REVIEW_SET, HELDOUT_LOT)


class PromotionRefused(ValueError):
    """The gate failed, the comparison is stale, or the request is incomplete."""


# -- model pairs -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelPair:
    detector: Path
    classifier: Path

    @classmethod
    def from_recipe(cls, recipe_path: str | Path) -> "ModelPair":
        """The production pair: the files the recipe names."""
        recipe = Recipe.load(recipe_path)
        return cls(recipe.model_path("detector").resolve(), recipe.model_path("classifier").resolve())

    @classmethod
    def in_folder(cls, folder: str | Path) -> "ModelPair":
        """A candidate folder holding detector.onnx and classifier.onnx."""
        folder = Path(folder).resolve()
        return cls(folder / "detector.onnx", folder / "classifier.onnx")

    def path(self, role: str) -> Path:
        return Path(getattr(self, role))

    def missing(self) -> list[str]:
        return [f"{role} {self.path(role)}" for role in MODEL_ROLES if not self.path(role).is_file()]

    def fingerprint(self) -> dict[str, str]:
        return {role: file_sha256(self.path(role)) for role in MODEL_ROLES}

    def versions(self) -> dict[str, str]:
        return {role: model_version(self.path(role)) for role in MODEL_ROLES}


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()[:16]


_VERSIONS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime_ns) → version


def model_version(path: str | Path) -> str:
    """The `version` in the ONNX file's metadata ('?' when it cannot be read).

    Cheap enough for the GUI thread: the metadata is read from the file's top-level protobuf fields
    (no onnxruntime session), and remembered per (path, size, mtime) so a file that did not change
    is not read again."""
    try:
        stat = os.stat(path)
    except OSError:
        return "?"
    key = (os.path.abspath(path), stat.st_size, stat.st_mtime_ns)
    version = _VERSIONS.get(key)
    if version is None:
        version = _read_version(path)
        if len(_VERSIONS) >= 256:
            _VERSIONS.clear()
        _VERSIONS[key] = version
    return version


def _read_version(path: str | Path) -> str:
    try:
        return str(read_metadata_props(path).get("version", "?"))
    except (OSError, ValueError):  # not a protobuf this reader understands: ask onnxruntime
        pass
    try:
        import onnxruntime as ort
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return str(session.get_modelmeta().custom_metadata_map.get("version", "?"))
    except Exception:  # noqa: BLE001 - a display value; the runtime validates the contract on load
        return "?"


# -- figures on one set ----------------------------------------------------------------------------
@dataclass(frozen=True)
class SetFigures:
    """Part-level escape and overkill on one set, always with their denominators."""
    set_name: str
    defective_parts: int
    good_parts: int
    escapes: int  # defective parts PASSed
    overkill: int  # good parts FAILed
    skipped: int = 0  # parts that could not be judged (named in `notes`)
    notes: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()  # serials judged, in order (the two pairs must see the same parts)

    @property
    def escape_rate(self) -> float:
        return self.escapes / self.defective_parts if self.defective_parts else 0.0

    @property
    def overkill_rate(self) -> float:
        return self.overkill / self.good_parts if self.good_parts else 0.0

    def escape_text(self) -> str:
        return _fraction(self.escapes, self.defective_parts)

    def overkill_text(self) -> str:
        return _fraction(self.overkill, self.good_parts)

    def as_dict(self) -> dict[str, Any]:
        return {"set": self.set_name, "defective_parts": self.defective_parts, "good_parts": self.good_parts,
                "escapes": self.escapes, "overkill": self.overkill, "skipped": self.skipped,
                "notes": list(self.notes), "parts": list(self.parts)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SetFigures":
        return cls(data["set"], int(data["defective_parts"]), int(data["good_parts"]), int(data["escapes"]),
                   int(data["overkill"]), int(data.get("skipped", 0)), tuple(data.get("notes", ())),
                   tuple(data.get("parts", ())))


def _fraction(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / d:.1f} %)" if d else f"{n}/0 (–)"


def figures_from_eval_report(path: str | Path) -> SetFigures:
    """The held-out lot's part-level figures from `python -m training eval`'s report.json."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        level = report["part_level"]
        figures = SetFigures(HELDOUT_LOT, int(level["defective_parts"]), int(level["good_parts"]),
                             int(level["escapes"]), int(level["overkill"]),
                             parts=tuple(str(p.get("serial", p.get("seed"))) for p in report.get("parts", ())))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a held-out evaluation report ({type(exc).__name__}: {exc})") from None
    lot = report.get("lot", {})
    note = f"lot {lot.get('split', '?')} seeds {lot.get('seed_range', '?')}, fingerprint {lot.get('fingerprint', '?')}"
    return SetFigures(**{**figures.__dict__, "notes": (note,)})


def eval_command(pair: ModelPair, *, parts: int, out: str | Path, python: str = sys.executable,
                 threads: int = 1) -> list[str]:
    """The held-out evaluation as a command line (run it as a subprocess; it imports torch)."""
    return [python, "-m", "training", "eval", "--detector", str(pair.detector), "--classifier",
            str(pair.classifier), "--parts", str(int(parts)), "--out", str(out), "--threads", str(int(threads))]


# -- the review set ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelledPart:
    part_row: int
    serial: str
    folder: Path  # the archived part folder
    defective: bool


def labelled_parts(queue: ReviewQueue) -> list[LabelledPart]:
    """Parts whose truth the review labels settle. A part counts as defective when its latest label
    on some station call is a defect class, a missed box was added, or an item of it was closed with
    unrejected defect calls; good when it has labels and every call on it ended as 'ok'. Parts with
    only open, unlabelled calls are left out (nobody has looked yet)."""
    labels = queue.labels()
    items = queue.items()
    rows = sorted({lb.part_row for lb in labels if lb.action in LABEL_ACTIONS}
                  | {it.part_row for it in items if it.status == "done"})
    by_row = {it.part_row: it for it in items}
    found = []
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
            elif lb.action == "add_box" and lb.new in DEFECT_CLASSES:
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
        defective = added or any(c in DEFECT_CLASSES for c in calls)
        if not defective and any(c is None for c in calls):
            continue
        found.append(LabelledPart(row, item.serial, Path(item.image_paths[0]).parent, defective))
    return found


def compare_on_review_set(production: ModelPair, candidate: ModelPair, recipe_path: str | Path,
                          parts: Sequence[LabelledPart], *, station: Any = None,
                          progress: Callable[[int, int], None] | None = None) -> tuple[SetFigures, SetFigures]:
    """(production, candidate) figures on the labelled parts: each pair's two stages run on the
    archived images. Where the archived fine shots were aimed is recovered by replaying the
    production plan (deterministic); a part whose archive does not match it is skipped for both."""
    if station is None:
        from hardware.sim.cell import station_config_dict

        from .station_config import StationConfig
        station = StationConfig.from_dict(station_config_dict("none", "none"), source="virtual cell")
    recipe = Recipe.load(recipe_path)
    stages = {"production": _stages(recipe, station, production), "candidate": _stages(recipe, station, candidate)}
    counts = {name: [0, 0, 0, 0] for name in stages}  # defective, good, escapes, overkill
    notes: list[str] = []
    judged: list[str] = []
    for n, part in enumerate(parts):
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
                    c[3] += verdict == "FAIL"
        if progress is not None:
            progress(n + 1, len(parts))
    figures = {name: SetFigures(REVIEW_SET, *c, skipped=len(parts) - len(judged), notes=tuple(notes),
                                parts=tuple(judged)) for name, c in counts.items()}
    return figures["production"], figures["candidate"]


def _stages(recipe: Recipe, station: Any, pair: ModelPair) -> Any:
    from .inference.classifier import Classifier
    from .inference.detector import Detector
    from .two_stage import TwoStage
    return TwoStage(recipe, station, Detector.open(str(pair.detector)), Classifier.open(str(pair.classifier)))


def _coarse_candidates(folder: Path, stages: Any) -> list[Any]:
    import cv2

    from .two_stage import coarse_image_name
    candidates = []
    for view in stages.recipe.views:
        path = folder / f"{coarse_image_name(view)}.png"
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise ValueError(f"no readable {path.name} for view {view.name!r}")
        candidates.extend(stages.candidates(view, stages.detect(image)))
    return candidates


def archived_shot_positions(folder: str | Path, production: Any) -> dict[int, tuple[str, float, float]]:
    """index → (face, u mm, v mm) where each archived fine shot was aimed: the production plan replayed."""
    folder = Path(folder)
    plan = production.plan(_coarse_candidates(folder, production))
    found = sorted(folder.glob("fine_*.png"))
    if len(found) != len(plan):
        raise ValueError(f"the archive holds {len(found)} fine shot(s), the production models plan {len(plan)}: "
                         f"it was made with other models")
    return {i: (shot.face, shot.u_mm, shot.v_mm) for i, shot in enumerate(plan)}


def judge_archive(folder: str | Path, stages: Any, shots: dict[int, tuple[str, float, float]]) -> str:
    """PASS / FAIL of one archived part under `stages`' models. A call is classified in the archived
    fine frame that covers it; a call no archived frame covers counts as 'review' (the station would
    have re-imaged it, and an unknown is never PASS)."""
    import cv2

    from .planner import FineShot
    from .two_stage import ShotDecisions, fine_image_name

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


# -- comparison and the gate ------------------------------------------------------------------------
@dataclass(frozen=True)
class GateRule:
    overkill_margin: float = 0.02  # candidate overkill rate may exceed production's by this much (absolute)

    def describe(self) -> str:
        return (f"Promote only if, on the review set and on the held-out lot, the candidate lets through no more "
                f"defective parts (escapes) than production, and its overkill is at most "
                f"{100 * self.overkill_margin:.1f} percentage points above production's.")


@dataclass(frozen=True)
class Comparison:
    production: dict[str, SetFigures]
    candidate: dict[str, SetFigures]
    production_models: dict[str, str] = field(default_factory=dict)  # role → sha256 of the file compared
    candidate_models: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    failures: tuple[str, ...]
    checks: tuple[str, ...]  # one line per figure compared, pass or fail

    def message(self) -> str:
        return "gate passed" if self.passed else "gate failed: " + "; ".join(self.failures)


def gate(comparison: Comparison, rule: GateRule = GateRule()) -> GateResult:
    failures, checks = [], []
    for name in SETS:
        prod, cand = comparison.production.get(name), comparison.candidate.get(name)
        if prod is None or cand is None:
            failures.append(f"{name}: not evaluated for {'production' if prod is None else 'the candidate'}")
            continue
        if (prod.defective_parts, prod.good_parts) != (cand.defective_parts, cand.good_parts):
            failures.append(f"{name}: the two pairs were judged on different parts "
                            f"({prod.defective_parts}+{prod.good_parts} vs {cand.defective_parts}+{cand.good_parts})")
            continue
        line = f"{name} escapes: candidate {cand.escape_text()} vs production {prod.escape_text()}"
        if cand.escapes > prod.escapes:
            failures.append(line)
        checks.append(("✗ " if cand.escapes > prod.escapes else "✓ ") + line)
        limit = prod.overkill_rate + rule.overkill_margin
        worse = cand.overkill_rate > limit + 1e-12
        line = (f"{name} overkill: candidate {cand.overkill_text()} vs production {prod.overkill_text()} "
                f"(limit {100 * limit:.1f} %)")
        if worse:
            failures.append(line)
        checks.append(("✗ " if worse else "✓ ") + line)
    return GateResult(not failures, tuple(failures), tuple(checks))


# -- promotion ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Promotion:
    replaced: dict[str, tuple[str, str]]  # role → (old version, new version)
    archived: dict[str, Path]  # role → where the old file went
    message: str


def promote(session: Session, access: AccessControl, candidate: ModelPair, comparison: Comparison, *,
            recipe_path: str | Path, reason: str, rule: GateRule = GateRule(),
            archive_dir: str | Path | None = None) -> Promotion:
    """Put the candidate pair in place of the files the recipe names, keeping the old ones under
    `archive_dir` (default: `<models folder>/archive/`) and writing one audit row per model."""
    session.require("promote_model")
    if not isinstance(reason, str) or not reason.strip():
        raise PromotionRefused("a promotion needs a reason")
    result = gate(comparison, rule)
    if not result.passed:
        raise PromotionRefused(f"promotion refused, {result.message()}")
    missing = candidate.missing()
    if missing:
        raise PromotionRefused(f"promotion refused: candidate file missing: {', '.join(missing)}")
    production = ModelPair.from_recipe(recipe_path)
    if comparison.candidate_models and comparison.candidate_models != candidate.fingerprint():
        raise PromotionRefused("promotion refused: the candidate files changed since the comparison; compare again")
    current = {role: file_sha256(production.path(role)) for role in MODEL_ROLES if production.path(role).is_file()}
    if comparison.production_models and comparison.production_models != current:
        raise PromotionRefused("promotion refused: the production models changed since the comparison; compare again")
    archive = Path(archive_dir) if archive_dir is not None else production.detector.parent / "archive"
    replaced, archived = {}, {}
    for role in MODEL_ROLES:
        src, dst = candidate.path(role), production.path(role)
        if dst.is_file() and file_sha256(src) == file_sha256(dst):
            continue  # this model is unchanged
        old_version = model_version(dst) if dst.is_file() else "none"
        new_version = model_version(src)
        kept = None
        if dst.is_file():
            kept = _free_name(archive / f"{dst.stem}-{old_version}{dst.suffix}")
            kept.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(dst, kept)
            for card in _cards(dst):
                shutil.copy2(card, kept.with_name(kept.stem + card.name[len(dst.stem):]))
        tmp = dst.with_name(dst.name + ".promote.tmp")
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
        for card in _cards(src):
            shutil.copyfile(card, dst.with_name(dst.stem + card.name[len(src.stem):]))
        old = {"file": str(dst), "version": old_version, "sha256": current.get(role), "archived_as": str(kept) if kept else None}
        new = {"file": str(dst), "version": new_version, "sha256": file_sha256(dst), "from": str(src)}
        access.record(session, "promote_model", f"model:{role}", old, new,
                      f"{reason.strip()} [{'; '.join(result.checks)}]")
        replaced[role] = (old_version, new_version)
        if kept is not None:
            archived[role] = kept
    if not replaced:
        message = "nothing promoted: the candidate files are the production files"
    else:
        message = "promoted " + ", ".join(f"{role} {old} → {new}" for role, (old, new) in replaced.items())
    return Promotion(replaced, archived, message)


def _cards(model: Path) -> list[Path]:
    return [p for p in (model.with_name(model.stem + ".card.json"), model.with_name(model.stem + ".card.md")) if p.is_file()]


def _free_name(path: Path) -> Path:
    n = 1
    candidate = path
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.stem}.{n}{path.suffix}")
    return candidate


__all__ = ["AccessDenied", "Comparison", "GateResult", "GateRule", "HELDOUT_LOT", "LabelledPart", "ModelPair",
           "Promotion", "PromotionRefused", "REVIEW_SET", "SetFigures", "archived_shot_positions", "compare_on_review_set",
           "eval_command", "figures_from_eval_report", "file_sha256", "gate", "judge_archive", "labelled_parts",
           "model_version", "promote"]
