"""Recipes: one versioned, human-edited JSON file per part type + fixture.

Holds what to look at and how to judge it — views (pose, light program, camera settings), models
and per-class thresholds with a grey band, the re-imaging strategy, verdict rules in mm with zones,
and the fixture offset. Station facts (ports, calibration) live in the station config instead.
Every validation error names the file, the field and what was expected. Where model files may lie
and their sha256 checks: `model_files`.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from hardware.cameras.base import EXPOSURE_US_LIMITS, GAIN_LIMITS
from hardware.lights.base import CHANNEL_NAME, LightProgram
from hardware.pose import StagePose as Pose

from .channels import LEGACY, MAX_CHANNELS
from .dimensions import Dimensions, parse_dimensions
from .golden_masters import Master, parse_masters
from .kind_names import kind_name_problem
from .model_files import (MODEL_ROOTS_ENV, PROJECT_MODELS, _SHA256, card_sha256, confined_model_path, file_sha256_hex,
                          model_roots, verified_model_path)
from .recipe_plausibility import Plausibility, parse_plausibility
from .schema import Section, load_document

__all__ = ["FACES", "ANY_ZONE", "MAX_MERGE_MM", "MAX_VERSION", "MAX_VIEWS", "MAX_FINE_SHOTS",
           "MAX_LIGHT_PROGRAMS", "MAX_RULES", "MAX_ZONES", "MAX_COUNT", "MAX_NAME", "View", "ClassPolicy", "Reimaging",
           "Zone", "Rule", "Plausibility", "Recipe", "diff",
           # the model-file checks, from model_files
           "MODEL_ROOTS_ENV", "PROJECT_MODELS", "model_roots", "confined_model_path", "file_sha256_hex", "card_sha256"]

FACES = ("top", "north", "south", "east", "west")
ANY_ZONE = "*"
MAX_CLASSES = 64  # defect kinds one recipe rules on
MAX_MERGE_MM = 5.0  # no fine camera of this cell class sees more than 10 mm; the station checks its own
# Bounds on what one recipe may ask for: far above any real part, low enough that a hostile file
# cannot make the station plan, allocate or record without limit.
MAX_VERSION = 1_000_000
MAX_VIEWS = 64
MAX_FINE_SHOTS = 500
MAX_LIGHT_PROGRAMS = 64
MAX_RULES = 256
MAX_ZONES = 64
MAX_COUNT = 1_000_000  # rules' max_count, plausibility's alarm_after and frame counts
MAX_NAME = 200  # characters in an id, a name, a model file name


@dataclass(frozen=True)
class View:
    name: str
    face: str
    pose: Pose
    light_program: str
    camera: str = "coarse"
    exposure_us: float = 2000.0
    gain: float = 1.0
    channels: tuple[str, ...] = LEGACY  # the detector's input, stacked from the program's frames (inspector.channels)


@dataclass(frozen=True)
class ClassPolicy:
    detect_threshold: float  # coarse score at or above it → re-image
    accept_threshold: float  # fine classifier score at or above it → defect
    grey_band: tuple[float, float]  # fine scores in [lo, hi) → review (never PASS)


@dataclass(frozen=True)
class Reimaging:
    camera: str = "fine"
    light_program: str = "fine"
    exposure_us: float = 1500.0
    gain: float = 1.0
    focus_offset_mm: float = 0.0
    merge_distance_mm: float = 1.0  # candidates closer than this share one fine shot
    frame_margin_mm: float = 0.2  # a candidate's crop must lie this far inside its fine frame
    size_uncertainty_mm: float = 0.02  # a defect measured this close below a rule's size limit goes to review
    max_shots: int = 40  # more candidates than this → ERROR (the part is not fully inspected)


@dataclass(frozen=True)
class Zone:
    name: str
    face: str
    rect_mm: tuple[float, float, float, float]  # u0, v0, u1, v1 on the face
    # not inspected (a part marking, a label): detections centred in it are dropped before re-imaging, so a
    # defect there is not found either; keep it to the marking plus the fixture's tolerance
    masked: bool = False

    def contains(self, face: str, u_mm: float, v_mm: float) -> bool:
        u0, v0, u1, v1 = self.rect_mm
        return face == self.face and u0 <= u_mm <= u1 and v0 <= v_mm <= v1


@dataclass(frozen=True)
class Rule:
    defect_class: str
    zone: str = ANY_ZONE
    min_size_mm: float = 0.0  # smaller defects of this class are tolerated
    max_count: int = 0  # more than this many counted defects → FAIL


@dataclass(frozen=True)
class Recipe:
    id: str
    version: int
    description: str
    fixture: str
    fixture_offset: Pose
    light_programs: dict[str, Any]  # name → light program dict (validated by hardware.lights when used)
    views: tuple[View, ...]
    models: dict[str, str]  # "detector" / "classifier" → path (relative to the recipe file's folder or absolute)
    classes: dict[str, ClassPolicy]
    reimaging: Reimaging
    zones: dict[str, Zone]
    rules: tuple[Rule, ...]
    model_pins: dict[str, str] = field(default_factory=dict)  # role → sha256 (64 hex) the file must have
    plausibility: Plausibility = field(default_factory=Plausibility)
    novelty_limit: float | None = None  # fine crops beyond it are "unknown" (review); None: the model's limit
    dimensions: Dimensions = field(default_factory=Dimensions)  # features measured with tolerances (inspector.dimensions)
    masters: tuple[Master, ...] = ()  # golden samples checked at shift start (inspector.golden)
    source: str = field(default="<memory>", compare=False)

    # -- identity ------------------------------------------------------------------------------
    @property
    def kinds(self) -> tuple[str, ...]:
        """The defect kinds this recipe rules on (its `classes`): data, checked against the models at load."""
        return tuple(self.classes)

    @property
    def hash(self) -> str:
        """Content hash of what the recipe says (not of its formatting): goes into every record."""
        text = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:16]

    def model_path(self, role: str, *, verify: bool = True) -> Path:
        """Where the role's model file lies. A pinned model is checked against its sha256 first: a
        swapped or tampered file is refused (ConfigError naming the file and both digests)."""
        return verified_model_path(self.models[role], self.model_pins.get(role), self.source, role, verify=verify)

    def model_sha256(self, role: str) -> str | None:
        return self.model_pins.get(role)

    # -- I/O ---------------------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | Path) -> "Recipe":
        return cls.from_dict(load_document(path), source=str(path))

    def save(self, path: str | Path, session: Any, access: Any, *, reason: str | None = None) -> None:
        """Write the recipe to `path` as it is (no version bump, no backup: an edit goes through
        `recipe_edit.save_recipe`). Needs a live session issued by `access` (an AccessControl) and
        allowed to "edit_recipe" — a forged, foreign or missing one: AccessDenied; the write is audited."""
        access.check(session, "edit_recipe")
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        access.record(session, "edit_recipe", f"recipe:{self.id}", None,
                      {"version": self.version, "hash": self.hash, "path": str(path)}, reason=reason or "Recipe.save")

    def next_version(self, **changes: Any) -> "Recipe":
        """A copy with `changes` applied and the version bumped, re-validated."""
        changed = replace(self, **changes, version=self.version + 1)
        return Recipe.from_dict(changed.to_dict(), source=self.source)

    def to_dict(self) -> dict[str, Any]:
        return {
            "recipe": {"id": self.id, "version": self.version, "description": self.description, "fixture": self.fixture},
            "fixture_offset": asdict(self.fixture_offset),
            "light_programs": self.light_programs,
            "views": [_view_dict(v) for v in self.views],
            "models": {role: ({"file": path, "sha256": self.model_pins[role]} if role in self.model_pins else path)
                       for role, path in self.models.items()},
            "classes": {k: {"detect_threshold": c.detect_threshold, "accept_threshold": c.accept_threshold,
                            "grey_band": list(c.grey_band)} for k, c in self.classes.items()},
            "reimaging": asdict(self.reimaging),
            "zones": {k: {"face": z.face, "rect_mm": list(z.rect_mm), **({"masked": True} if z.masked else {})}
                      for k, z in self.zones.items()},
            "rules": [{"class": r.defect_class, "zone": r.zone, "min_size_mm": r.min_size_mm, "max_count": r.max_count}
                      for r in self.rules],
            "plausibility": self.plausibility.to_dict(),
            **({"novelty": {"limit": self.novelty_limit}} if self.novelty_limit is not None else {}),
            **({"dimensions": self.dimensions.to_dict()} if self.dimensions else {}),
            **({"masters": [m.to_dict() for m in self.masters]} if self.masters else {}),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<memory>") -> "Recipe":
        top = Section(data, source)
        head = top.section("recipe")
        recipe_id = _name(head, "id")
        version = head.get("version", int, min_value=1, max_value=MAX_VERSION)
        description = head.get("description", str, "")
        fixture = _name(head, "fixture", "")
        head.reject_unknown()
        offset_section = top.section("fixture_offset", optional=True)
        fixture_offset = _pose(offset_section) if offset_section else Pose(0.0, 0.0, 0.0)

        programs_section = top.section("light_programs")
        light_programs = dict(programs_section.data)
        if len(light_programs) > MAX_LIGHT_PROGRAMS:
            raise top.error("light_programs", f"{len(light_programs)} programs, at most {MAX_LIGHT_PROGRAMS} allowed")
        for name, program in light_programs.items():
            try:
                LightProgram.from_dict(name, program)
            except (ValueError, TypeError, AttributeError, KeyError) as exc:
                raise programs_section.error(name, str(exc).splitlines()[0][:200] or type(exc).__name__) from None

        views = []
        seen = set()
        for index, raw in enumerate(top.get_list("views", MAX_VIEWS)):
            view = Section(raw, source, f"views[{index}]")
            name = _name(view, "name")
            if name in seen:
                raise view.error("name", f"duplicate view name {name!r}")
            seen.add(name)
            program = view.get("light_program", str)
            if program not in light_programs:
                raise view.error("light_program", f"no light program {program!r} (defined: {', '.join(light_programs)})")
            pose_section = view.section("pose")
            assert pose_section is not None
            views.append(View(name=name, face=view.get("face", str, choices=FACES), pose=_pose(pose_section),
                              light_program=program, camera=view.get("camera", str, "coarse", choices=("coarse", "fine")),
                              exposure_us=_exposure(view, 2000.0), gain=_gain(view), channels=_channels(view)))
            view.reject_unknown()
        if not views:
            raise top.error("views", "expected at least one view")

        models_section = top.section("models")
        models, model_pins = {}, {}
        for role in ("detector", "classifier"):
            entry = models_section.get(role, (str, dict))
            if isinstance(entry, dict):
                pinned = models_section.section(role)
                assert pinned is not None
                models[role] = _model_file(pinned, "file")
                pin = pinned.get("sha256", str)
                if not _SHA256.fullmatch(pin):
                    raise pinned.error("sha256", f"expected 64 lowercase hex digits, got {pin!r}")
                model_pins[role] = pin
                pinned.reject_unknown()
            else:
                models[role] = _model_file(models_section, role)
        models_section.reject_unknown()
        for role, file in models.items():
            confined_model_path(file, source, f"models.{role}")

        classes_section = top.section("classes")
        classes = {}
        if not classes_section.data or len(classes_section.data) > MAX_CLASSES:
            raise top.error("classes", f"expected 1–{MAX_CLASSES} defect kinds, got {len(classes_section.data)}")
        for name in list(classes_section.data):
            problem = kind_name_problem(name)
            if problem:
                raise classes_section.error(name, f"not a defect kind: {problem}")
            c = classes_section.section(name)
            assert c is not None
            band = c.get_vector("grey_band", 2)
            accept = c.get("accept_threshold", float, min_value=0, max_value=1)
            if not 0 <= band[0] <= band[1] <= 1:
                raise c.error("grey_band", f"expected [low, high] with 0 ≤ low ≤ high ≤ 1, got {list(band)}")
            if accept < band[0]:
                raise c.error("accept_threshold", f"must not lie below the grey band {list(band)}, got {accept}")
            classes[name] = ClassPolicy(detect_threshold=c.get("detect_threshold", float, min_value=0, max_value=1),
                                        accept_threshold=accept, grey_band=(band[0], band[1]))
            c.reject_unknown()

        re_section = top.section("reimaging")
        assert re_section is not None
        reimaging = Reimaging(
            camera=re_section.get("camera", str, "fine", choices=("coarse", "fine")),
            light_program=re_section.get("light_program", str),
            exposure_us=_exposure(re_section, 1500.0),
            gain=_gain(re_section),
            focus_offset_mm=re_section.get("focus_offset_mm", float, 0.0, min_value=-5, max_value=5),
            merge_distance_mm=re_section.get("merge_distance_mm", float, 1.0, min_value=0, max_value=MAX_MERGE_MM),
            frame_margin_mm=re_section.get("frame_margin_mm", float, 0.2, min_value=0, max_value=2),
            size_uncertainty_mm=re_section.get("size_uncertainty_mm", float, 0.02, min_value=0, max_value=1),
            max_shots=re_section.get("max_shots", int, 40, min_value=1, max_value=MAX_FINE_SHOTS))
        if reimaging.light_program not in light_programs:
            raise re_section.error("light_program", f"no light program {reimaging.light_program!r}")
        re_section.reject_unknown()

        zones = {}
        zones_section = top.section("zones", optional=True)
        if zones_section is not None:
            if len(zones_section.data) > MAX_ZONES:
                raise top.error("zones", f"{len(zones_section.data)} zones, at most {MAX_ZONES} allowed")
            for name in list(zones_section.data):
                z = zones_section.section(name)
                assert z is not None
                rect = z.get_vector("rect_mm", 4)
                if rect[0] >= rect[2] or rect[1] >= rect[3]:
                    raise z.error("rect_mm", f"expected [u0, v0, u1, v1] with u0 < u1 and v0 < v1, got {list(rect)}")
                zones[name] = Zone(name=name, face=z.get("face", str, choices=FACES), rect_mm=rect,  # type: ignore[arg-type]
                                   masked=z.get("masked", bool, False))
                z.reject_unknown()

        rules = []
        for index, raw in enumerate(top.get_list("rules", MAX_RULES)):
            r = Section(raw, source, f"rules[{index}]")
            zone = r.get("zone", str, ANY_ZONE)
            if zone != ANY_ZONE and zone not in zones:
                raise r.error("zone", f"no zone {zone!r} (defined: {', '.join(zones) or 'none'}; '*' means anywhere)")
            rules.append(Rule(defect_class=r.get("class", str, choices=tuple(classes)), zone=zone,
                              min_size_mm=r.get("min_size_mm", float, 0.0, min_value=0),
                              max_count=r.get("max_count", int, 0, min_value=0, max_value=MAX_COUNT)))
            r.reject_unknown()
        plausibility = parse_plausibility(top.section("plausibility", optional=True), {v.name for v in views},
                                          MAX_COUNT)
        novelty_limit = None
        novelty = top.section("novelty", optional=True)
        if novelty is not None:
            novelty_limit = novelty.get("limit", float, positive=True)
            novelty.reject_unknown()
        dimensions = parse_dimensions(top.section("dimensions", optional=True), seen)
        masters = parse_masters(top, tuple(classes))
        top.reject_unknown()
        return cls(id=recipe_id, version=version, description=description, fixture=fixture,
                   fixture_offset=fixture_offset, light_programs=light_programs, views=tuple(views), models=models,
                   model_pins=model_pins, classes=classes, reimaging=reimaging, zones=zones, rules=tuple(rules),
                   plausibility=plausibility, novelty_limit=novelty_limit, dimensions=dimensions, masters=masters,
                   source=source)


def _pose(section: Section) -> Pose:
    pose = Pose(x=section.get("x", float), y=section.get("y", float), z=section.get("z", float),
                a=section.get("a", float, 0.0, min_value=-360, max_value=360),
                b=section.get("b", float, 0.0, min_value=-90, max_value=90))
    section.reject_unknown()
    return pose


def _name(section: Section, key: str, default: Any = ...) -> str:
    value = section.get(key, str, default)
    if len(value) > MAX_NAME or any(ord(c) < 32 for c in value):
        raise section.error(key, f"expected a name of at most {MAX_NAME} printable characters, got {value[:40]!r}…")
    return value


def _exposure(section: Section, default: float) -> float:
    low, high = EXPOSURE_US_LIMITS
    return section.get("exposure_us", float, default, min_value=low, max_value=high)


def _gain(section: Section) -> float:
    low, high = GAIN_LIMITS
    return section.get("gain", float, 1.0, min_value=low, max_value=high)


def _model_file(section: Section, key: str) -> str:
    value = section.get(key, str)
    if not value.strip() or len(value) > 4096 or "\x00" in value:
        raise section.error(key, f"expected a model file name, got {value[:60]!r}")
    return value


def diff(old: Recipe, new: Recipe) -> list[str]:
    """Human-readable changes between two recipe versions, one line per changed leaf."""
    lines: list[str] = []
    _diff(old.to_dict(), new.to_dict(), "", lines)
    return lines


def _diff(a: Any, b: Any, path: str, out: list[str]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in a:
                out.append(f"+ {where} = {json.dumps(b[key])}")
            elif key not in b:
                out.append(f"- {where} (was {json.dumps(a[key])})")
            else:
                _diff(a[key], b[key], where, out)
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            _diff(x, y, f"{path}[{index}]", out)
    elif a != b:
        out.append(f"~ {path}: {json.dumps(a)} → {json.dumps(b)}")


def _view_dict(view: View) -> dict[str, Any]:
    data = asdict(view)
    if view.channels == LEGACY:
        del data["channels"]  # a recipe written before channels keeps its content (and hash)
    else:
        data["channels"] = list(view.channels)
    return data


def _channels(view: Section) -> tuple[str, ...]:
    """A view's detector channels: names of its program's steps, or frame / curvature / albedo."""
    if not view.has("channels"):
        return LEGACY
    names = view.get_list("channels", MAX_CHANNELS)
    if not names:
        raise view.error("channels", "expected at least one channel, e.g. [\"dark\", \"bright\", \"curvature\"]")
    for name in names:
        if not isinstance(name, str) or not CHANNEL_NAME.match(name):
            raise view.error("channels", f"{name!r} is not a channel name (a–z, 0–9, _, starting with a letter)")
    if len(set(names)) != len(names):
        raise view.error("channels", f"a channel is named twice in {names}")
    return tuple(names)
