"""The candidate: a model pair (e.g. from a retraining job) and the recipe it would run with.

`write_candidate_recipe` builds that recipe from the production recipe: the same views, rules and
zones, the candidate's model files pinned by sha256, and the per-class thresholds and grey band the
candidate models carry in their metadata (the detector's thresholds → `detect_threshold`, the
classifier's thresholds → `accept_threshold`, its grey band → `grey_band`). The gate scores exactly
this file, and a promotion writes exactly its settings.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..channels import LEGACY
from ..inference.detector import input_channels
from ..inference.model_package import ModelInfo, parse_metadata, read_metadata_props
from ..recipe import Recipe, file_sha256_hex
from ..recipe_edit import write_atomic

MODEL_ROLES = ("detector", "classifier")
CANDIDATE_RECIPE = "candidate.recipe.json"


@dataclass(frozen=True)
class ModelPair:
    detector: Path
    classifier: Path

    @classmethod
    def from_recipe(cls, recipe_path: str | Path) -> "ModelPair":
        """The files a recipe names (not verified against its pins here: that happens on load)."""
        recipe = Recipe.load(recipe_path)
        return cls(*(recipe.model_path(role, verify=False).resolve() for role in MODEL_ROLES))

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
        """role → sha256 (64 hex) of the file."""
        return {role: file_sha256_hex(self.path(role)) for role in MODEL_ROLES}

    def versions(self) -> dict[str, str]:
        return {role: model_version(self.path(role)) for role in MODEL_ROLES}


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


# -- the candidate recipe -----------------------------------------------------------------------------
def candidate_classes(production: Recipe, pair: ModelPair) -> dict[str, dict[str, Any]]:
    """The recipe's `classes` section with the candidate models' own thresholds and grey band (a class
    a model's metadata does not mention keeps production's value), plus a class for every kind the
    candidate classifier knows that production's recipe does not (a taught kind): no rule tolerates it
    yet, so any finding of it fails the part until an integrator writes one."""
    detector = parse_metadata(read_metadata_props(pair.detector), str(pair.detector))
    classifier = parse_metadata(read_metadata_props(pair.classifier), str(pair.classifier))
    classes = {}
    for name, policy in production.classes.items():
        classes[name] = {"detect_threshold": float(detector.thresholds.get(name, policy.detect_threshold)),
                         "accept_threshold": float(classifier.thresholds.get(name, policy.accept_threshold)),
                         "grey_band": list(classifier.grey_band.get(name, policy.grey_band))}
    for name in classifier.class_names:  # a kind the candidate classifier was taught: the policy it carries
        if name == "ok" or name in classes:
            continue
        if name not in classifier.thresholds or name not in classifier.grey_band:
            raise ValueError(f"candidate classifier {classifier.name} knows {name!r} but carries no threshold and grey "
                             "band for it")
        # a kind only the classifier knows is never proposed by the detector under its own name (threshold 1)
        classes[name] = {"detect_threshold": float(detector.thresholds.get(name, 1.0)),
                         "accept_threshold": float(classifier.thresholds[name]),
                         "grey_band": list(classifier.grey_band[name])}
    return classes


def adopt_capture(data: dict[str, Any], detector: ModelInfo) -> None:
    """A candidate detector trained on other input channels than production's views stack brings the
    capture it was trained on: each view takes its channels, and the views' light programs take the
    program named in its metadata (`light_program` with `steps`). Without one the candidate is refused."""
    channels = list(input_channels(detector))
    if all(list(view.get("channels", LEGACY)) == channels for view in data["views"]):
        return
    program = detector.extra.get("light_program")
    if not (isinstance(program, dict) and isinstance(program.get("steps"), list)):
        raise ValueError(f"candidate detector {detector.path} takes channels {channels}, which production's views do not "
                         "stack, and its metadata names no light program (with steps) to capture them")
    for view in data["views"]:
        view["channels"] = channels
        data["light_programs"][view["light_program"]] = {k: program[k] for k in ("steps", "description") if k in program}


def write_candidate_recipe(production_path: str | Path, pair: ModelPair, out: str | Path | None = None) -> Recipe:
    """Write the candidate's recipe (default: `candidate.recipe.json` beside the candidate detector)
    and return it as loaded back. Its version is production's + 1 (what it becomes if promoted);
    models are pinned by sha256 and named relative to the file when they lie beside it."""
    missing = pair.missing()
    if missing:
        raise FileNotFoundError(f"candidate incomplete: {', '.join(missing)}")
    production = Recipe.load(production_path)
    out = Path(out) if out is not None else pair.detector.parent / CANDIDATE_RECIPE
    data = production.to_dict()
    data["recipe"]["version"] = production.version + 1
    data["models"] = {role: {"file": relative_name(pair.path(role), out.parent),
                             "sha256": file_sha256_hex(pair.path(role))} for role in MODEL_ROLES}
    data["classes"] = candidate_classes(production, pair)
    adopt_capture(data, parse_metadata(read_metadata_props(pair.detector), str(pair.detector)))
    Recipe.from_dict(data, source=str(out))  # validate before anything is written
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, encode_recipe(data))
    return Recipe.load(out)


def encode_recipe(data: dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def relative_name(path: Path, folder: Path) -> str:
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path.name if path.parent == folder else str(path)
