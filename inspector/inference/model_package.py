"""The model package contract: one .onnx file carries its own metadata (`metadata_props`).

The runtime reads it into a typed `ModelInfo` and refuses a model whose metadata is missing,
malformed or does not fit what the recipe asks for, naming the file and the mismatch.
Training writes the same keys with `metadata_for()` so both sides share one definition.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

CONTRACT = "inspection-cell/1"
TASKS = ("detect", "classify")
COLOURS = ("mono",)
LAYOUTS = ("NCHW",)
MAX_PROP_CHARS = 1_000_000  # one metadata value; real ones are a few hundred characters
REQUIRED = ("contract", "task", "class_names", "input_size", "input_layout", "colour", "normalisation",
            "version", "training_data_fingerprint", "thresholds", "grey_band")


class ModelContractError(ValueError):
    """A model file does not carry a valid contract, or does not fit what the recipe asks."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"model {path}: {problem}")


@dataclass(frozen=True)
class Normalisation:
    """input = (pixel * scale - mean) / std, per channel."""

    scale: float = 1 / 255
    mean: tuple[float, ...] = (0.0,)
    std: tuple[float, ...] = (1.0,)


@dataclass(frozen=True)
class ModelInfo:
    path: str
    task: str
    class_names: tuple[str, ...]
    input_size: tuple[int, int]  # (height, width); 0 means dynamic along that axis
    input_layout: str
    colour: str
    normalisation: Normalisation
    version: str
    training_data_fingerprint: str
    thresholds: Mapping[str, float]  # per class: score at or above it is a call
    grey_band: Mapping[str, tuple[float, float]]  # per class: scores in [lo, hi) go to review
    metrics: Mapping[str, Any] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)  # task-specific keys (e.g. detector stride)

    @property
    def name(self) -> str:
        return f"{Path(self.path).stem}@{self.version}"

    @property
    def novelty_limit(self) -> float | None:
        """A classifier's novelty limit (`extra['novelty']['limit']`): scores above it are unlike the
        training data. None for models exported without a novelty score."""
        entry = self.extra.get("novelty")
        return float(entry["limit"]) if isinstance(entry, dict) and "limit" in entry else None

    def require(self, *, task: str | None = None, class_names: Sequence[str] | None = None) -> "ModelInfo":
        """Raise if this model does not fit the recipe's expectations."""
        if task is not None and self.task != task:
            raise ModelContractError(self.path, f"is a {self.task!r} model, the recipe needs a {task!r} model")
        if class_names is not None:
            missing = [name for name in class_names if name not in self.class_names]
            if missing:
                raise ModelContractError(
                    self.path, f"has no class {missing[0]!r} that the recipe uses (model classes: "
                    f"{', '.join(self.class_names)})")
        return self


def metadata_for(info: ModelInfo) -> dict[str, str]:
    """The `metadata_props` strings for a model; the inverse of `parse_metadata`."""
    props = {
        "contract": CONTRACT,
        "task": info.task,
        "class_names": json.dumps(list(info.class_names)),
        "input_size": json.dumps(list(info.input_size)),
        "input_layout": info.input_layout,
        "colour": info.colour,
        "normalisation": json.dumps({"scale": info.normalisation.scale, "mean": list(info.normalisation.mean),
                                     "std": list(info.normalisation.std)}),
        "version": info.version,
        "training_data_fingerprint": info.training_data_fingerprint,
        "thresholds": json.dumps(dict(info.thresholds)),
        "grey_band": json.dumps({k: list(v) for k, v in info.grey_band.items()}),
        "metrics": json.dumps(dict(info.metrics)),
    }
    for key, value in info.extra.items():
        props[key] = json.dumps(value)
    return props


def parse_metadata(props: Mapping[str, str], path: str) -> ModelInfo:
    missing = [key for key in REQUIRED if key not in props]
    if missing:
        raise ModelContractError(path, f"metadata_props lacks {', '.join(missing)} "
                                       f"(not an inspection-cell model, or exported without its contract)")
    if props["contract"] != CONTRACT:
        raise ModelContractError(path, f"contract {props['contract']!r} is not {CONTRACT!r}")

    def load(key: str) -> Any:
        text = props[key]
        if len(text) > MAX_PROP_CHARS:
            raise ModelContractError(path, f"metadata {key!r} is {len(text)} characters long, at most {MAX_PROP_CHARS}")
        try:
            return json.loads(text)
        except ValueError as exc:  # JSONDecodeError, and integers beyond Python's digit limit
            raise ModelContractError(path, f"metadata {key!r} is not valid JSON: {str(exc)[:120]}") from None
        except RecursionError:
            raise ModelContractError(path, f"metadata {key!r} is nested too deeply") from None

    def choice(key: str, allowed: Sequence[str]) -> str:
        if props[key] not in allowed:
            raise ModelContractError(path, f"metadata {key!r} is {props[key]!r}, expected one of {', '.join(allowed)}")
        return props[key]

    task = choice("task", TASKS)
    class_names = load("class_names")
    if not (isinstance(class_names, list) and class_names and all(isinstance(c, str) and c for c in class_names)):
        raise ModelContractError(path, "metadata 'class_names' must be a non-empty list of names")
    if len(set(class_names)) != len(class_names):
        raise ModelContractError(path, "metadata 'class_names' has duplicates")
    size = load("input_size")
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v >= 0 for v in size)):
        raise ModelContractError(path, f"metadata 'input_size' must be [height, width], got {props['input_size']}")
    norm = load("normalisation")
    try:
        normalisation = Normalisation(float(norm["scale"]), tuple(map(float, norm["mean"])), tuple(map(float, norm["std"])))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelContractError(path, f"metadata 'normalisation' needs scale, mean, std: {str(exc)[:120]}") from None
    numbers = (normalisation.scale, *normalisation.mean, *normalisation.std)
    if not all(math.isfinite(v) for v in numbers) or not normalisation.mean or not normalisation.std:
        raise ModelContractError(path, "metadata 'normalisation' needs finite numbers and at least one mean and std")
    if any(s <= 0 for s in normalisation.std):
        raise ModelContractError(path, "metadata 'normalisation' std must be positive")
    thresholds = load("thresholds")
    grey = load("grey_band")
    for name, mapping in (("thresholds", thresholds), ("grey_band", grey)):
        if not isinstance(mapping, dict):
            raise ModelContractError(path, f"metadata {name!r} must map class name → value")
        unknown = [k for k in mapping if k not in class_names]
        if unknown:
            raise ModelContractError(path, f"metadata {name!r} names class {unknown[0]!r} that the model lacks")
    for cls, value in thresholds.items():
        if not (_is_number(value) and 0 <= value <= 1):
            raise ModelContractError(path, f"threshold for {cls!r} must be in [0, 1], got {value!r}")
    grey_band: dict[str, tuple[float, float]] = {}
    for cls, band in grey.items():
        if not (isinstance(band, list) and len(band) == 2 and all(map(_is_number, band))
                and 0 <= band[0] <= band[1] <= 1):
            raise ModelContractError(path, f"grey band for {cls!r} must be [low, high] within [0, 1], got {band!r}")
        grey_band[cls] = (float(band[0]), float(band[1]))
    metrics = load("metrics") if "metrics" in props else {}
    extra = {}
    for key, value in props.items():
        if key not in REQUIRED and key != "metrics":
            try:
                extra[key] = json.loads(value) if len(value) <= MAX_PROP_CHARS else value
            except (ValueError, RecursionError):
                extra[key] = value
    novelty = extra.get("novelty")
    if novelty is not None:
        limit = novelty.get("limit") if isinstance(novelty, dict) else None
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not math.isfinite(limit) or limit <= 0:
            raise ModelContractError(path, f"metadata 'novelty' needs a positive finite 'limit', got {props['novelty'][:80]}")
    return ModelInfo(path=path, task=task, class_names=tuple(class_names), input_size=(size[0], size[1]),
                     input_layout=choice("input_layout", LAYOUTS), colour=choice("colour", COLOURS),
                     normalisation=normalisation, version=props["version"],
                     training_data_fingerprint=props["training_data_fingerprint"],
                     thresholds={k: float(v) for k, v in thresholds.items()}, grey_band=grey_band,
                     metrics=metrics, extra=extra)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- reading the metadata without a session ------------------------------------------------------------
_METADATA_PROPS = 14  # ModelProto.metadata_props: repeated StringStringEntryProto {key = 1; value = 2}


def _varint(read) -> int | None:
    value = shift = 0
    while True:
        byte = read(1)
        if not byte:
            return None if shift == 0 else _truncated()
        value |= (byte[0] & 0x7F) << shift
        if byte[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _truncated():
    raise ValueError("truncated protobuf")


def _fields(data: bytes):
    """(field number, wire type, value) of a serialized message held in memory."""
    pos, end = 0, len(data)

    def read(n: int) -> bytes:
        nonlocal pos
        chunk = data[pos:pos + n]
        pos += len(chunk)
        return chunk

    while pos < end:
        key = _varint(read)
        number, wire = key >> 3, key & 7
        if wire == 0:
            yield number, wire, _varint(read)
        elif wire == 2:
            length = _varint(read)
            if length is None or pos + length > end:
                _truncated()
            yield number, wire, read(length)
        elif wire in (1, 5):
            read(8 if wire == 1 else 4)
        else:
            raise ValueError(f"unsupported wire type {wire}")


def read_metadata_props(path: str | Path) -> dict[str, str]:
    """The `metadata_props` of an ONNX file, read from its top-level protobuf fields (the graph and
    the weights are skipped, not parsed), without onnx or an onnxruntime session. Raises
    ValueError on a file that is not a well-formed ModelProto."""
    props: dict[str, str] = {}
    with open(path, "rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(0)
        while True:
            key = _varint(handle.read)
            if key is None:
                return props
            number, wire = key >> 3, key & 7
            if wire == 0:
                if _varint(handle.read) is None:
                    _truncated()
            elif wire == 2:
                length = _varint(handle.read)
                if length is None or handle.tell() + length > size:
                    _truncated()
                if number == _METADATA_PROPS:
                    entry = {n: v for n, w, v in _fields(handle.read(length)) if w == 2}
                    props[entry.get(1, b"").decode("utf-8")] = entry.get(2, b"").decode("utf-8")
                else:
                    handle.seek(length, 1)
            elif wire in (1, 5):
                handle.seek(8 if wire == 1 else 4, 1)
            else:
                raise ValueError(f"{path}: not an ONNX model (protobuf wire type {wire})")
