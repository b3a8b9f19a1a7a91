"""Train the fine ROI classifier on crops cut exactly as the station cuts them.

Each sample is the marked target of a fine patch (a defect, a nuisance or a clean spot). Every
time it is drawn its box is jittered the way a coarse candidate maps into the fine frame (scaled
×0.8–2.2, shifted by a fraction of its size) and cut with the runtime's `crop_rois`, then the
optics augmentations apply. Classes: `ok` (nuisances and clean spots) + the 4 defect kinds.

`exclude_kind` (leave-one-kind-out) drops every fine patch in which that defect kind appears, from
train and val alike: the kind is never seen, though its class stays in the output layer (so the
model still fits a recipe that names it) and is never a training target.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from inspector.inference.classifier import RoiSpec, crop_rois

from .augment import Photometric, random_affine, warp_image
from .data.generate import load_image, open_set, open_sets
from .data.records import CLASSIFIER_CLASSES, LabelledSet, classifier_label
from .loop import Progress, load_checkpoint, restore, save_checkpoint, seed_everything, set_threads, warmup_cosine, write_json
from .models.classifier import RoiClassifier
from .models.detector import parameter_count

INPUT_SIZE = (64, 64)
ROI = RoiSpec(context=1.5, min_side_px=64.0, max_batch=0)
NORM_MEAN, NORM_STD = 0.25, 0.25


@dataclass
class ClassifierTrainConfig:
    train: Path | tuple[Path, ...]  # several sets are trained on together
    out: Path
    val: Path | None = None
    epochs: int = 14
    batch_size: int = 64
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 24
    seed: int = 1
    threads: int = 2
    max_steps: int = 0
    resume: bool = False
    progress: bool = True
    exclude_kind: str | None = None  # leave this defect kind out of train and val entirely


@dataclass
class Sample:
    patch: np.ndarray
    box: tuple[float, float, float, float]
    label: int
    category: str
    size_mm: float


def load_samples(data: LabelledSet, exclude_kind: str | None = None) -> list[Sample]:
    """The marked targets; with `exclude_kind`, no patch that shows that kind anywhere."""
    if exclude_kind is not None and exclude_kind not in CLASSIFIER_CLASSES[1:]:
        raise ValueError(f"exclude_kind {exclude_kind!r} is not a defect kind ({', '.join(CLASSIFIER_CLASSES[1:])})")
    samples = []
    for record in data.images:
        targets = [a for a in record.annotations if a.attributes.get("target")]
        if not targets or any(a.category == exclude_kind for a in record.annotations):
            continue
        patch = load_image(data.root, record)
        for a in targets:
            samples.append(Sample(patch, a.box_px, CLASSIFIER_CLASSES.index(classifier_label(a.category)), a.category,
                                  float(a.attributes.get("size_mm", 0.0))))
    return samples


def jitter_box(box: tuple[float, float, float, float], rng: np.random.Generator) -> tuple[float, float, float, float]:
    """The box a coarse candidate would give: centre off by a fraction of the size, size ×0.8–2.2."""
    x0, y0, x1, y1 = box
    w, h = max(x1 - x0, 2.0), max(y1 - y0, 2.0)
    cx = (x0 + x1) / 2 + rng.normal(0, 0.12 * max(w, h) + 5.0)
    cy = (y0 + y1) / 2 + rng.normal(0, 0.12 * max(w, h) + 5.0)
    s = rng.uniform(0.8, 2.2)
    return cx - s * w / 2, cy - s * h / 2, cx + s * w / 2, cy + s * h / 2


def to_input(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0 - NORM_MEAN) / NORM_STD


def make_crops(samples: list[Sample], rng: np.random.Generator | None, augment: bool) -> np.ndarray:
    photometric = Photometric()
    crops = np.empty((len(samples),) + INPUT_SIZE, np.uint8)
    for i, s in enumerate(samples):
        box = jitter_box(s.box, rng) if rng is not None else s.box
        crop = crop_rois(s.patch, [box], INPUT_SIZE, ROI)[0]
        if augment and rng is not None:
            matrix = random_affine(INPUT_SIZE, rng, max_rotation_deg=180.0, max_shift_px=2.0, flip=True)
            crop = photometric(warp_image(crop, matrix), rng)
        crops[i] = crop
    return crops


def fixed_val_crops(samples: list[Sample], seed: int = 12345) -> np.ndarray:
    """Validation crops with a fixed jitter: the same boxes every time, as a station would produce."""
    return make_crops(samples, np.random.default_rng(seed), augment=False)


@torch.no_grad()
def predict(model: torch.nn.Module, crops: np.ndarray, batch: int = 256) -> np.ndarray:
    model.eval()
    out = [model(torch.from_numpy(to_input(crops[i:i + batch])[:, None])).numpy() for i in range(0, len(crops), batch)]
    return np.concatenate(out) if out else np.zeros((0, len(CLASSIFIER_CLASSES)), np.float32)


def val_figures(probs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    pred = probs.argmax(1)
    per_class = {}
    for c, name in enumerate(CLASSIFIER_CLASSES):
        mask = labels == c
        per_class[name] = float((pred[mask] == c).mean()) if mask.any() else float("nan")
    defect = labels != 0
    escape = float((probs[defect, 1:].max(1) < 0.5).mean()) if defect.any() else float("nan")
    false_call = float((probs[~defect, 1:].max(1) >= 0.5).mean()) if (~defect).any() else float("nan")
    nll = float(-np.log(np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1)).mean())
    balanced = float(np.nanmean(list(per_class.values())))
    return {"balanced_accuracy": balanced, "accuracy": float((pred == labels).mean()), "nll": nll,
            "escape@0.5": escape, "false_call@0.5": false_call, "recall": per_class, "samples": int(len(labels))}


def train_classifier(cfg: ClassifierTrainConfig) -> Path:
    set_threads(cfg.threads)
    rng = seed_everything(cfg.seed)
    train_sets, train_manifest = open_sets(cfg.train)
    val_set, val_manifest = open_set(cfg.val) if cfg.val else (None, {})
    samples = [item for train_set in train_sets for item in load_samples(train_set, cfg.exclude_kind)]
    sets = ', '.join(map(str, cfg.train if isinstance(cfg.train, (tuple, list)) else [cfg.train]))
    if not samples:
        raise ValueError(f"classifier: the training set(s) {sets} hold no labelled "
                         f"regions, so there is nothing to train the classifier on")
    val_samples = load_samples(val_set, cfg.exclude_kind) if val_set is not None else []
    val_crops = fixed_val_crops(val_samples) if val_samples else None
    val_labels = np.array([s.label for s in val_samples], np.int64)
    labels = np.array([s.label for s in samples], np.int64)
    counts = np.bincount(labels, minlength=len(CLASSIFIER_CLASSES)).astype(np.float64)
    weights = 1.0 / np.sqrt(np.maximum(counts[labels], 1))  # rare classes drawn more often, not exclusively
    weights /= weights.sum()
    steps_per_epoch = max(1, len(samples) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch if not cfg.max_steps else min(cfg.max_steps, cfg.epochs * steps_per_epoch)
    model = RoiClassifier(num_classes=len(CLASSIFIER_CLASSES), width=cfg.width)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, total, warmup=min(50, total // 10 + 1))
    out = Path(cfg.out)
    last, best = out / "last.pt", out / "best.pt"
    step, best_score, history = 0, -1.0, []
    if cfg.resume and last.is_file():
        state = load_checkpoint(last)
        step = restore(state, model=model, optimizer=optimizer, scheduler=scheduler, rng=rng)
        best_score, history = state["extra"].get("best_score", -1.0), state["extra"].get("history", [])
    extra_base = {"kind": "classifier", "classes": list(CLASSIFIER_CLASSES), "norm": [NORM_MEAN, NORM_STD],
                  "input_size": list(INPUT_SIZE), "roi": ROI.as_dict(), "width": cfg.width,
                  "parameters": parameter_count(model), "train_counts": dict(zip(CLASSIFIER_CLASSES, counts.astype(int).tolist())),
                  "train_fingerprint": train_manifest["fingerprint"], "train_seed_range": train_manifest.get("seed_range"),
                  "val_fingerprint": val_manifest.get("fingerprint"), "val_seed_range": val_manifest.get("seed_range"),
                  "exclude_kind": cfg.exclude_kind}
    bar = Progress(total, step, "classifier", cfg.progress)
    bar.write(f"classifier: {parameter_count(model):,} parameters, {len(samples)} train samples "
              f"({', '.join(f'{n} {int(c)}' for n, c in zip(CLASSIFIER_CLASSES, counts))}), "
              f"{len(val_samples)} val samples; {steps_per_epoch} steps/epoch; from step {step}")
    started = time.time()
    model.train()
    while step < total:
        index = rng.choice(len(samples), size=cfg.batch_size, p=weights)
        crops = make_crops([samples[i] for i in index], rng, augment=True)
        x = torch.from_numpy(to_input(crops)[:, None])
        y = torch.from_numpy(labels[index])
        model.train()
        loss = F.cross_entropy(model.logits(x), y, label_smoothing=0.02)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        step += 1
        bar.update(loss=float(loss.detach()))
        done = step == total
        if step % steps_per_epoch == 0 or done:
            extra = {**extra_base}
            if val_crops is not None:
                figures = val_figures(predict(model, val_crops), val_labels)
                figures["step"] = step
                history.append(figures)
                bar.write(f"step {step}: val balanced accuracy {figures['balanced_accuracy']:.3f}, "
                          f"escape@0.5 {figures['escape@0.5']:.3f}, false call@0.5 {figures['false_call@0.5']:.3f}")
                score = figures["balanced_accuracy"] - figures["escape@0.5"]
                if score > best_score:
                    best_score = score
                    save_checkpoint(best, model=model, optimizer=None, scheduler=None, step=step, config=cfg,
                                    extra={**extra, "val": figures})
            save_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler, step=step, config=cfg,
                            extra={**extra, "best_score": best_score, "history": history}, rng=rng)
    bar.close()
    if val_crops is None:
        save_checkpoint(best, model=model, optimizer=None, scheduler=None, step=step, config=cfg, extra=extra_base)
    write_json(out / "history.json", {"history": history, "seconds": round(time.time() - started, 1)})
    return best
