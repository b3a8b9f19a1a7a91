"""Editing a recipe: pure edits that return a new, re-validated `Recipe`, and `save_recipe`, the one
way an edited recipe reaches the disk (role check, version bump, atomic write, old version kept,
diff in the audit log).

Edits never mutate: each returns a fresh `Recipe` (same version — a draft) or raises
`RecipeEditError` naming the field and what was expected. The version is bumped once, when saved.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterable, Mapping

from hardware.pose import StagePose

from .access import AccessControl, Session
from .recipe import ANY_ZONE, FACES, ClassPolicy, Recipe, Rule, View
from .schema import ConfigError

__all__ = ["RecipeEditError", "NoChanges", "RecipeConflict", "FieldChange", "SaveResult", "face_for_pose",
           "add_view", "remove_view", "set_class_policy", "set_rule", "add_rule", "remove_rule", "set_rules",
           "field_changes", "backup_path", "save_recipe", "write_atomic"]

# (a, b) that presents each face to the cameras (see hardware/sim/geometry.py and the reference recipe)
FACE_PRESENTATION: dict[str, tuple[float, float]] = {"top": (0.0, 0.0), "north": (90.0, 0.0), "south": (-90.0, 0.0),
                                                     "east": (0.0, -90.0), "west": (0.0, 90.0)}
CAMERAS = ("coarse", "fine")


class RecipeEditError(ValueError):
    """An edit was refused; `field` is the recipe field (dotted path), `expected` what would be valid."""

    def __init__(self, field: str, expected: str, got: Any = ...):
        self.field, self.expected = field, expected
        got_text = "" if got is ... else f", got {got!r}"
        super().__init__(f"{field}: expected {expected}{got_text}")


class NoChanges(ValueError):
    """Saving a recipe identical to the one on disk: nothing to version, nothing to audit."""


class RecipeConflict(RuntimeError):
    """The file on disk is not the version the edit started from (someone saved meanwhile)."""


@dataclass(frozen=True)
class FieldChange:
    path: str  # dotted path into Recipe.to_dict(), e.g. "classes.dent.grey_band"
    old: Any  # None when added
    new: Any  # None when removed

    def __str__(self) -> str:
        return f"{self.path}: {json.dumps(self.old)} → {json.dumps(self.new)}"

    def lines(self) -> list[str]:
        """The change as a person reads it, one leaf a line: `path: old → new` for a changed value,
        `+ path: value` for each field of something added, `- path: value` for something removed."""
        if self.old is not None and self.new is not None and not _nested(self.old) and not _nested(self.new):
            return [str(self)]
        removed = [] if self.old is None else [f"- {p}: {json.dumps(v)}" for p, v in _leaves(self.old, self.path)]
        added = [] if self.new is None else [f"+ {p}: {json.dumps(v)}" for p, v in _leaves(self.new, self.path)]
        return removed + added


def _nested(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and not _is_leaf_list(value))


def _leaves(value: Any, path: str) -> list[tuple[str, Any]]:
    """(dotted path, value) of every leaf under `value` (lists of plain values are one leaf)."""
    if isinstance(value, dict):
        return [leaf for key, v in value.items() for leaf in _leaves(v, f"{path}.{key}" if path else str(key))] \
            or [(path, value)]
    if _nested(value):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")] or [(path, value)]
    return [(path, value)]


@dataclass(frozen=True)
class SaveResult:
    recipe: Recipe  # as written, with its new version and source = the path
    path: Path
    backup: Path | None  # the previous version, kept beside it
    changes: tuple[FieldChange, ...]


# -- validation helpers ----------------------------------------------------------------------------------
def _number(field: str, value: Any, low: float | None = None, high: float | None = None, *,
            positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise RecipeEditError(field, "a number", value)
    if positive and not value > 0:
        raise RecipeEditError(field, "a positive number", value)
    if (low is not None and value < low) or (high is not None and value > high):
        raise RecipeEditError(field, f"a number in [{low:g}, {high:g}]" if low is not None and high is not None
                              else f"a number ≥ {low:g}" if low is not None else f"a number ≤ {high:g}", value)
    return float(value)


def _revalidate(recipe: Recipe) -> Recipe:
    """Run the recipe schema over the result, so an edit can never produce a recipe `load` refuses."""
    try:
        return Recipe.from_dict(recipe.to_dict(), source=recipe.source)
    except ConfigError as exc:
        raise RecipeEditError(exc.field, exc.problem) from None


# -- views -----------------------------------------------------------------------------------------------
def face_for_pose(pose: StagePose) -> str:
    """The face a pose presents to the cameras: the one whose presentation (a, b) is nearest."""
    def distance(face: str) -> float:
        a, b = FACE_PRESENTATION[face]
        da = (pose.a - a + 180.0) % 360.0 - 180.0
        return da * da + (pose.b - b) ** 2

    return min(FACES, key=distance)


def add_view(recipe: Recipe, name: str, pose: StagePose, *, light_program: str, face: str | None = None,
             camera: str = "coarse", exposure_us: float = 2000.0, gain: float = 1.0) -> Recipe:
    """A new view at `pose` (e.g. the stage's current pose), appended after the existing views. Its frames
    get the generic plausibility limits until the recipe is commissioned again (`inspector commission`)."""
    index = len(recipe.views)
    where = f"views[{index}]"
    if not isinstance(name, str) or not name.strip():
        raise RecipeEditError(f"{where}.name", "a non-empty view name", name)
    name = name.strip()
    if any(v.name == name for v in recipe.views):
        raise RecipeEditError(f"{where}.name", f"a name not used yet (taken: {', '.join(v.name for v in recipe.views)})",
                              name)
    face = face_for_pose(pose) if face is None else face
    if face not in FACES:
        raise RecipeEditError(f"{where}.face", f"one of {', '.join(FACES)}", face)
    if light_program not in recipe.light_programs:
        raise RecipeEditError(f"{where}.light_program", f"one of {', '.join(recipe.light_programs)}", light_program)
    if camera not in CAMERAS:
        raise RecipeEditError(f"{where}.camera", f"one of {', '.join(CAMERAS)}", camera)
    for axis in ("x", "y", "z"):
        _number(f"{where}.pose.{axis}", getattr(pose, axis))
    _number(f"{where}.pose.a", pose.a, -360, 360)
    _number(f"{where}.pose.b", pose.b, -90, 90)
    view = View(name=name, face=face, pose=StagePose(*(round(float(v), 4) for v in pose.as_tuple())),
                light_program=light_program, camera=camera,
                exposure_us=_number(f"{where}.exposure_us", exposure_us, positive=True),
                gain=_number(f"{where}.gain", gain, positive=True))
    return _revalidate(replace(recipe, views=recipe.views + (view,)))


def remove_view(recipe: Recipe, name: str) -> Recipe:
    if not any(v.name == name for v in recipe.views):
        raise RecipeEditError("views", f"the name of an existing view ({', '.join(v.name for v in recipe.views)})",
                              name)
    if len(recipe.views) == 1:
        raise RecipeEditError("views", "at least one view left after removing one")
    limits = {view: lim for view, lim in recipe.plausibility.views.items() if view != name}  # its frame limits go with it
    return _revalidate(replace(recipe, views=tuple(v for v in recipe.views if v.name != name),
                               plausibility=replace(recipe.plausibility, views=limits),
                               dimensions=recipe.dimensions.without_view(name)))  # its features go with it


# -- thresholds --------------------------------------------------------------------------------------------
def set_class_policy(recipe: Recipe, defect_class: str, *, detect_threshold: float | None = None,
                     accept_threshold: float | None = None,
                     grey_band: tuple[float, float] | list[float] | None = None) -> Recipe:
    """Change one class's thresholds and grey band; the others keep their values."""
    if defect_class not in recipe.classes:
        raise RecipeEditError("classes", f"a class of this recipe ({', '.join(recipe.classes) or 'none'})", defect_class)
    where = f"classes.{defect_class}"
    old = recipe.classes[defect_class]
    detect = old.detect_threshold if detect_threshold is None else _number(f"{where}.detect_threshold",
                                                                          detect_threshold, 0, 1)
    accept = old.accept_threshold if accept_threshold is None else _number(f"{where}.accept_threshold",
                                                                          accept_threshold, 0, 1)
    if grey_band is None:
        band = old.grey_band
    else:
        if not isinstance(grey_band, (list, tuple)) or len(grey_band) != 2:
            raise RecipeEditError(f"{where}.grey_band", "[low, high], two numbers", grey_band)
        band = (_number(f"{where}.grey_band[0]", grey_band[0], 0, 1),
                _number(f"{where}.grey_band[1]", grey_band[1], 0, 1))
        if band[0] > band[1]:
            raise RecipeEditError(f"{where}.grey_band", "[low, high] with low ≤ high", list(band))
    if accept < band[0]:
        raise RecipeEditError(f"{where}.accept_threshold", f"a score ≥ the grey band's low end {band[0]:g}", accept)
    classes = dict(recipe.classes)
    classes[defect_class] = ClassPolicy(detect_threshold=detect, accept_threshold=accept, grey_band=band)
    return _revalidate(replace(recipe, classes=classes))


# -- verdict rules -----------------------------------------------------------------------------------------
def _rule(recipe: Recipe, index: int, defect_class: Any, zone: Any, min_size_mm: Any, max_count: Any) -> Rule:
    where = f"rules[{index}]"
    if defect_class not in recipe.classes:
        raise RecipeEditError(f"{where}.class", f"a class of this recipe ({', '.join(recipe.classes)})", defect_class)
    if zone != ANY_ZONE and zone not in recipe.zones:
        raise RecipeEditError(f"{where}.zone", f"'*' (anywhere) or a zone of this recipe "
                                               f"({', '.join(recipe.zones) or 'none defined'})", zone)
    size = _number(f"{where}.min_size_mm", min_size_mm, 0, None)
    if isinstance(max_count, float) and max_count.is_integer():
        max_count = int(max_count)
    if isinstance(max_count, bool) or not isinstance(max_count, int) or max_count < 0:
        raise RecipeEditError(f"{where}.max_count", "a whole number ≥ 0", max_count)
    return Rule(defect_class=defect_class, zone=zone, min_size_mm=size, max_count=max_count)


def set_rule(recipe: Recipe, index: int, *, defect_class: str | None = None, zone: str | None = None,
             min_size_mm: float | None = None, max_count: int | None = None) -> Recipe:
    if not 0 <= index < len(recipe.rules):
        raise RecipeEditError("rules", f"a rule index in 0…{len(recipe.rules) - 1}", index)
    old = recipe.rules[index]
    rule = _rule(recipe, index, old.defect_class if defect_class is None else defect_class,
                 old.zone if zone is None else zone, old.min_size_mm if min_size_mm is None else min_size_mm,
                 old.max_count if max_count is None else max_count)
    rules = list(recipe.rules)
    rules[index] = rule
    return _revalidate(replace(recipe, rules=tuple(rules)))


def add_rule(recipe: Recipe, defect_class: str, *, zone: str = ANY_ZONE, min_size_mm: float = 0.0,
             max_count: int = 0) -> Recipe:
    rule = _rule(recipe, len(recipe.rules), defect_class, zone, min_size_mm, max_count)
    return _revalidate(replace(recipe, rules=recipe.rules + (rule,)))


def remove_rule(recipe: Recipe, index: int) -> Recipe:
    if not 0 <= index < len(recipe.rules):
        raise RecipeEditError("rules", f"a rule index in 0…{len(recipe.rules) - 1}", index)
    return _revalidate(replace(recipe, rules=recipe.rules[:index] + recipe.rules[index + 1:]))


def set_rules(recipe: Recipe, rules: Iterable[Mapping[str, Any] | Rule]) -> Recipe:
    """Replace every rule, e.g. from an edited table: rows as Rule or {class, zone, min_size_mm, max_count}."""
    parsed = []
    for index, row in enumerate(rules):
        if isinstance(row, Rule):
            row = {"class": row.defect_class, "zone": row.zone, "min_size_mm": row.min_size_mm,
                   "max_count": row.max_count}
        parsed.append(_rule(recipe, index, row.get("class"), row.get("zone", ANY_ZONE), row.get("min_size_mm", 0.0),
                            row.get("max_count", 0)))
    return _revalidate(replace(recipe, rules=tuple(parsed)))


# -- diff --------------------------------------------------------------------------------------------------
def field_changes(old: Recipe, new: Recipe, *, include_version: bool = True) -> list[FieldChange]:
    """Every changed leaf, old → new (views and rules compared by position; lists of numbers as one leaf)."""
    a, b = old.to_dict(), new.to_dict()
    if not include_version:
        a["recipe"].pop("version"), b["recipe"].pop("version")
    out: list[FieldChange] = []
    _walk(a, b, "", out)
    return out


def _is_leaf_list(value: Any) -> bool:
    return isinstance(value, list) and all(not isinstance(v, (dict, list)) for v in value)


def _walk(a: Any, b: Any, path: str, out: list[FieldChange]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            where = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(FieldChange(where, a[key], None))
            elif key not in a:
                out.append(FieldChange(where, None, b[key]))
            else:
                _walk(a[key], b[key], where, out)
    elif isinstance(a, list) and isinstance(b, list) and not (_is_leaf_list(a) and _is_leaf_list(b)):
        for index in range(max(len(a), len(b))):
            where = f"{path}[{index}]"
            if index >= len(b):
                out.append(FieldChange(where, a[index], None))
            elif index >= len(a):
                out.append(FieldChange(where, None, b[index]))
            else:
                _walk(a[index], b[index], where, out)
    elif a != b:
        out.append(FieldChange(path, a, b))


# -- saving ------------------------------------------------------------------------------------------------
def backup_path(path: str | Path, version: int) -> Path:
    """Where version `version` of the recipe at `path` is kept: housing.recipe.json → housing.recipe.v3.json."""
    path = Path(path)
    return path.with_name(f"{path.stem}.v{version}{path.suffix or '.json'}")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, flush it to disk, then rename over `path`:
    a reader sees the old file or the new one, never half of one."""
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


def _encode(recipe: Recipe) -> bytes:
    return (json.dumps(recipe.to_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def save_recipe(session: Session, old: Recipe, new: Recipe, path: str | Path, access: AccessControl,
                reason: str) -> SaveResult:
    """Save `new` (an edit of `old`) to `path` as version old.version + 1.

    Needs a live session issued by `access` with the "edit_recipe" permission (a forged or missing
    session is refused: AccessDenied) and a reason. Refuses a no-op and a file on disk that is no
    longer `old` (RecipeConflict). The previous file is kept as `<name>.v<old version>.json` beside
    it; the new file replaces the old one atomically. The audit log gets one row with the changed
    fields, old → new. If the audit cannot be written, the previous file is put back.
    """
    access.check(session, "edit_recipe")
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("saving a recipe needs a reason (it goes into the audit log)")
    path = Path(path)
    if new.id != old.id:
        raise RecipeEditError("recipe.id", f"the id of the recipe being edited ({old.id!r})", new.id)
    content_changes = field_changes(old, new, include_version=False)
    if not content_changes:
        raise NoChanges(f"{path}: nothing changed since version {old.version}; not saved")
    previous: bytes | None = None
    if path.exists():
        previous = path.read_bytes()
        try:
            on_disk = Recipe.from_dict(json.loads(previous.decode("utf-8")), source=str(path))
        except (ValueError, UnicodeDecodeError) as exc:
            raise RecipeConflict(f"{path}: the file on disk is not a valid recipe ({exc}); not overwritten") from None
        if on_disk.id != old.id or on_disk.version != old.version:
            raise RecipeConflict(f"{path}: holds {on_disk.id!r} version {on_disk.version}, but the edit started "
                                 f"from version {old.version}; reload it and edit again")
    saved = Recipe.from_dict(replace(new, version=old.version + 1).to_dict(), source=str(path))
    changes = tuple(field_changes(old, saved))
    backup = None
    if previous is not None:
        backup = backup_path(path, old.version)
        write_atomic(backup, previous)
    write_atomic(path, _encode(saved))
    try:
        access.record(session, "edit_recipe", f"recipe:{saved.id}",
                      {"version": old.version, "fields": {c.path: c.old for c in changes}},
                      {"version": saved.version, "fields": {c.path: c.new for c in changes}},
                      reason=reason.strip())
    except BaseException:
        if previous is not None:
            write_atomic(path, previous)
        else:
            path.unlink(missing_ok=True)
        raise
    return SaveResult(recipe=saved, path=path, backup=backup, changes=changes)
