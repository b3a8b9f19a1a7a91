"""The retraining job's commands, built from a review export: which labels train which model (coarse
frames the detector, fine shots the classifier), the train side of the review split only, and the
plain-language refusal when the export holds nothing the chosen model can learn from — said before a
job starts, never as a trainer's traceback minutes later. A detector that stacks channels (bright,
dark, curvature …) retrains only on an export of those stacks (`info["channels"]`, written when the
export was given the production recipe's `CoarseStack`), never on mono first frames."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Sequence

from inspector.channels import LEGACY
from inspector.promotion import GateSplit, keep_train_side

from .job_worker import JobStep, python_module

KIND_OF_ROLE = {"detector": "coarse", "classifier": "fine"}
WHAT_KIND_IS = {"coarse": "coarse-frame", "fine": "fine-shot"}


class RetrainRefused(ValueError):
    """The export cannot retrain that model; the message says why and what to do, in plain words."""


def image_kind(image: dict[str, Any]) -> str:
    """'coarse' or 'fine' (or '' for neither) from an exported image's file name r<row>_<kind>_<view>.png;
    a capture's extra frame (`<channel>@<base>`, in an export written before they were left out) is neither."""
    stem = Path(image["file_name"]).stem.split("_", 1)[-1]
    if "@" in stem:
        return ""
    return next((kind for kind in WHAT_KIND_IS if stem.startswith(f"{kind}_")), "")


def check_training_data(coco: str | Path, role: str, split: GateSplit, channels: Sequence[str] | None = None) -> None:
    """Refuse (RetrainRefused) when the export gives `role` nothing to train on: no images of its
    camera at all, or all of them on the gate side of the split (kept for the promotion gate), or —
    with `channels`, the production recipe's detector input — coarse images that are not those stacks."""
    if role not in KIND_OF_ROLE:
        raise RetrainRefused(f"retraining: model {role!r} is not one of {', '.join(KIND_OF_ROLE)}")
    coco = Path(coco)
    kind = KIND_OF_ROLE[role]
    doc = json.loads(coco.read_text(encoding="utf-8"))
    ours = [im for im in doc.get("images", []) if image_kind(im) == kind]
    if not ours:
        others = len(doc.get("images", []))
        other_kind = next(k for k in WHAT_KIND_IS if k != kind)
        held = (f"its {others} labelled image(s) are all {WHAT_KIND_IS[other_kind]}s" if others
                else "it holds no labelled images at all")
        how = ("draw or confirm boxes on a coarse frame (Image: coarse_…) in the review queue"
               if kind == "coarse" else "confirm, reject or relabel calls on fine shots in the review queue")
        raise RetrainRefused(f"the review export {coco.name} holds no {WHAT_KIND_IS[kind]} labels ({held}), so the "
                             f"{role} cannot be retrained from it: {how}, export the labels again, then retrain")
    exported = list((doc.get("info") or {}).get("channels") or LEGACY)
    if role == "detector" and channels is not None and exported != list(channels):
        raise RetrainRefused(f"the review export {coco.name} holds its coarse frames as {_as_what(exported)}, but the "
                             f"production recipe's detector takes {_as_what(channels)}, so the detector cannot be retrained "
                             f"from it: export the labels again (the export builds those stacks), then retrain")
    train_side, _ = keep_train_side({**doc, "images": ours}, split)
    if not train_side["images"]:
        raise RetrainRefused(f"the review export {coco.name} holds {len(ours)} {WHAT_KIND_IS[kind]} image(s), but all "
                             f"belong to parts on the gate side of the review split (kept to judge the candidate, "
                             f"never trained on), so the {role} has nothing to train on: review more parts, "
                             f"export again, then retrain")


def _as_what(channels: Sequence[str]) -> str:
    return "mono first frames" if list(channels) == list(LEGACY) else f"stacks of {list(channels)}"


def review_subset(coco: str | Path, kind: str, split: GateSplit) -> Path:
    """The exported review labels restricted to train-side parts of `split` (the gate side is what
    a candidate is scored on: never trained on, never used to pick a checkpoint or thresholds) and to
    one camera's images ('coarse' frames train the detector, 'fine' shots the classifier), written
    beside the export; returns its path."""
    coco = Path(coco)
    doc, _ = keep_train_side(json.loads(coco.read_text(encoding="utf-8")), split)
    keep = [im for im in doc["images"] if image_kind(im) == kind]
    ids = {im["id"] for im in keep}
    annotations = [a for a in doc["annotations"] if a["image_id"] in ids]
    categories = list(doc["categories"])
    if kind == "fine":  # the classifier trains on ROIs marked as targets; a rejected call is an 'ok' ROI
        annotations = [{**a, "attributes": {**a.get("attributes", {}), "target": True}} for a in annotations]
        ok_id = max((c["id"] for c in categories), default=0) + 1
        categories.append({"id": ok_id, "name": "clean_spot", "supercategory": "ok"})
        for im in keep:
            for rejected in im.get("attributes", {}).get("rejected", []):
                x0, y0, x1, y1 = rejected["box_px"]
                annotations.append({"id": len(doc["annotations"]) + len(annotations) + 1, "image_id": im["id"],
                                    "category_id": ok_id, "bbox": [x0, y0, x1 - x0, y1 - y0],
                                    "area": (x1 - x0) * (y1 - y0), "iscrowd": 0,
                                    "attributes": {"target": True, "source": "review", "action": "reject"}})
    out = coco.with_name(f"review.{kind}.coco.json")
    subset = {**doc, "images": keep, "annotations": annotations, "categories": categories}
    out.write_text(json.dumps(subset, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return out


def retrain_steps(role: str, coco: str | Path, job_dir: str | Path, steps: int, *, split: GateSplit,
                  data_root: str | Path = "out/data", version: str | None = None,
                  channels: Sequence[str] | None = None) -> list[JobStep]:
    """The retraining job as `python -m training` steps: import the review labels of the role's
    camera as a set → train (`--iterations` for the detector, `--epochs` for the classifier) on the
    standard training set plus the imported one when the standard set is there, else on the imported
    set alone → export the candidate ONNX to job_dir/candidate/<role>.onnx. Checkpoint choice and
    thresholds use the standard validation set when it is there, else the imported set itself. The
    imported labels are train-side parts only (`split`): the gate side never enters the job. An
    export with nothing for the role is refused first (`check_training_data`), and so is, with
    `channels` (the production recipe's detector input), a detector export of other images."""
    check_training_data(coco, role, split, channels)
    job_dir = Path(job_dir)
    kind = KIND_OF_ROLE[role]
    data, train, candidate = job_dir / "data", job_dir / "train", job_dir / "candidate"
    subset = review_subset(coco, kind, split)
    standard_train, standard_val = Path(data_root) / f"{kind}-train", Path(data_root) / f"{kind}-val"
    val = standard_val if (standard_val / "annotations.coco.json").is_file() else data
    train_sets = [str(standard_train)] if (standard_train / "annotations.coco.json").is_file() else []
    count = ["--iterations", str(steps)] if role == "detector" else ["--epochs", str(steps)]
    version = version or time.strftime("%Y%m%d.%H%M")
    return [
        JobStep("import labels", python_module("training", "data", "import-coco", str(subset), "--kind", kind,
                                               "--out", str(data))),
        JobStep(f"train {role}", python_module("training", "train", role, "--train", *train_sets, str(data), "--val", str(val),
                                               "--out", str(train), "--threads", "1", *count)),
        JobStep(f"export {role}", python_module("training", "export", role, "--checkpoint", str(train / "best.pt"),
                                                "--val", str(val), "--out", str(candidate / f"{role}.onnx"),
                                                "--version", version)),
    ]
