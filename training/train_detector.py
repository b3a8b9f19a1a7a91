"""Train the coarse detector on random crops of coarse frames; validate on whole frames.

Crops (default 256 px) are biased: most are placed so that a real defect lies inside, some on a
nuisance (dust, machining marks: the look-alikes it must learn to leave alone), the rest anywhere.
Validation runs the runtime decoder (inspector.inference.detector) on full val frames, so the
figure that picks the best checkpoint is the one the station would see.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from inspector.channels import LEGACY
from inspector.inference.detector import DecodeSpec, postprocess

from .augment import Photometric, random_affine, warp_boxes, warp_image
from .data.generate import load_image, open_set, open_sets
from .data.records import DEFECT_CLASSES, NUISANCE_CLASSES, LabelledSet
from .loop import Progress, load_checkpoint, restore, save_checkpoint, seed_everything, set_threads, warmup_cosine, write_json
from .metrics import DetectionTally, Pred, Truth
from .models.detector import STRIDE, CenterNetDetector, parameter_count
from .models.targets import detector_loss, encode

NORM_MEAN, NORM_STD = 0.25, 0.25  # input = (pixel/255 - mean) / std
DECODE = DecodeSpec(stride=STRIDE, pad_multiple=32, max_detections=100, nms_iou=0.3, nms_min_box_px=8.0, min_score=0.05)


@dataclass
class DetectorTrainConfig:
    train: Path | tuple[Path, ...]  # several sets are trained on together
    out: Path
    val: Path | None = None
    iterations: int = 2500
    batch_size: int = 16
    crop: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    width: int = 32
    seed: int = 1
    threads: int = 2
    defect_bias: float = 0.65
    nuisance_bias: float = 0.15
    checkpoint_every: int = 250
    val_every: int = 500
    val_images: int = 150
    resume: bool = False
    progress: bool = True


@dataclass
class Frame:
    image: np.ndarray
    boxes: np.ndarray  # (K, 4) real defects, frame px after trimming
    classes: np.ndarray  # (K,) index into DEFECT_CLASSES
    nuisances: np.ndarray  # (M, 4)


def trim_offset(image: np.ndarray, margin: int = 40, level: int = 25) -> tuple[int, int, int, int]:
    """Bounding rows/cols of the lit part plus a margin: side faces fill a fifth of the frame."""
    if image.ndim == 3:
        image = image.max(axis=2)
    rows = np.flatnonzero(image.max(axis=1) > level)
    cols = np.flatnonzero(image.max(axis=0) > level)
    if not len(rows) or not len(cols):
        return 0, 0, image.shape[1], image.shape[0]
    h, w = image.shape
    return (max(int(cols[0]) - margin, 0), max(int(rows[0]) - margin, 0),
            min(int(cols[-1]) + margin + 1, w), min(int(rows[-1]) + margin + 1, h))


def load_frames(data: LabelledSet, trim: bool = True) -> list[Frame]:
    frames = []
    for record in data.images:
        image = load_image(data.root, record)
        x0, y0, x1, y1 = trim_offset(image) if trim else (0, 0, image.shape[1], image.shape[0])
        image = np.ascontiguousarray(image[y0:y1, x0:x1]).reshape(y1 - y0, x1 - x0, -1)  # H×W×C
        shift = np.array([x0, y0, x0, y0], np.float32)
        real = [a for a in record.annotations if a.category in DEFECT_CLASSES]
        nuis = [a for a in record.annotations if a.category in NUISANCE_CLASSES]
        frames.append(Frame(image, np.array([a.box_px for a in real], np.float32).reshape(-1, 4) - shift,
                            np.array([DEFECT_CLASSES.index(a.category) for a in real], np.int64),
                            np.array([a.box_px for a in nuis], np.float32).reshape(-1, 4) - shift))
    return frames


class CropSampler:
    def __init__(self, frames: list[Frame], crop: int, defect_bias: float, nuisance_bias: float):
        self.frames, self.crop = frames, crop
        self.defect_bias, self.nuisance_bias = defect_bias, nuisance_bias
        self.defects = [(i, k) for i, f in enumerate(frames) for k in range(len(f.boxes))]
        self.nuisances = [(i, k) for i, f in enumerate(frames) for k in range(len(f.nuisances))]
        self.photometric = Photometric()

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        c = self.crop
        r = rng.random()
        if r < self.defect_bias and self.defects:
            i, k = self.defects[int(rng.integers(len(self.defects)))]
            box = self.frames[i].boxes[k]
        elif r < self.defect_bias + self.nuisance_bias and self.nuisances:
            i, k = self.nuisances[int(rng.integers(len(self.nuisances)))]
            box = self.frames[i].nuisances[k]
        else:
            i, box = int(rng.integers(len(self.frames))), None
        frame = self.frames[i]
        h, w = frame.image.shape[:2]
        if box is not None:
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            x0 = int(cx - rng.uniform(16, c - 16))
            y0 = int(cy - rng.uniform(16, c - 16))
        else:
            x0 = int(rng.integers(min(0, w - c), max(1, w - c + 1)))
            y0 = int(rng.integers(min(0, h - c), max(1, h - c + 1)))
        crop = cut(frame.image, x0, y0, c)
        boxes = frame.boxes - np.array([x0, y0, x0, y0], np.float32)
        matrix = random_affine((c, c), rng, max_rotation_deg=3.0, max_shift_px=2.0, flip=True)
        crop = self.photometric(warp_image(crop, matrix), rng).reshape(c, c, -1)  # cv2 drops a single channel
        boxes = warp_boxes(boxes, matrix)
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2
        keep = (centre >= 0).all(1) & (centre < c).all(1)
        return crop, boxes[keep], frame.classes[keep]


def cut(image: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """image[y0:y0+size, x0:x0+size] with edge replication where the window leaves the image."""
    h, w = image.shape[:2]
    pad = (max(0, -y0), max(0, y0 + size - h), max(0, -x0), max(0, x0 + size - w))
    if any(pad):
        import cv2
        image = cv2.copyMakeBorder(image, *pad, cv2.BORDER_REPLICATE).reshape(h + pad[0] + pad[1], w + pad[2] + pad[3], -1)
        x0, y0 = x0 + pad[2], y0 + pad[0]
    return image[y0:y0 + size, x0:x0 + size]


def make_batch(sampler: CropSampler, batch_size: int, rng: np.random.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    images, targets = [], {"heatmap": [], "size": [], "offset": [], "mask": []}
    out = (sampler.crop // STRIDE, sampler.crop // STRIDE)
    for _ in range(batch_size):
        crop, boxes, classes = sampler.sample(rng)
        images.append(crop)
        for key, value in encode(boxes, classes, num_classes=len(DEFECT_CLASSES), out_shape=out, stride=STRIDE).items():
            targets[key].append(value)
    x = torch.from_numpy(np.ascontiguousarray(to_input(np.stack(images)).transpose(0, 3, 1, 2)))  # N×C×H×W
    return x, {k: torch.from_numpy(np.stack(v)) for k, v in targets.items()}


def to_input(pixels: np.ndarray) -> np.ndarray:
    return (pixels.astype(np.float32) / 255.0 - NORM_MEAN) / NORM_STD


@torch.no_grad()
def run_full_frame(model: torch.nn.Module, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from inspector.inference.detector import preprocess
    from inspector.inference.model_package import Normalisation
    channels = image.shape[2] if image.ndim == 3 else 1
    batch = preprocess(image, Normalisation(1 / 255, (NORM_MEAN,), (NORM_STD,)), DECODE.pad_multiple, channels)
    heat, size, offset = model(torch.from_numpy(batch))
    return heat[0].numpy(), size[0].numpy(), offset[0].numpy()


def validate(model: torch.nn.Module, data: LabelledSet, limit: int) -> dict[str, float]:
    model.eval()
    tally = DetectionTally()
    for record in data.images[:limit]:
        image = load_image(data.root, record)
        heat, size, offset = run_full_frame(model, image)
        dets = postprocess(heat, size, offset, class_names=DEFECT_CLASSES, thresholds={}, spec=DECODE,
                           image_size=image.shape[:2])
        tally.add([Pred(d.class_name, d.score, d.box_px) for d in dets],
                  [Truth(a.category, a.box_px, float(a.attributes.get("size_mm", 0)), a.category not in DEFECT_CLASSES)
                   for a in record.annotations])
    model.train()
    found, total = tally.recall(0.3)
    hits, calls = tally.precision(0.3)
    return {"ap": tally.average_precision(), "recall@0.3": found / max(total, 1), "precision@0.3": hits / max(calls, 1),
            "defects": total, "images": tally.images}


def train_detector(cfg: DetectorTrainConfig) -> Path:
    set_threads(cfg.threads)
    rng = seed_everything(cfg.seed)
    train_sets, train_manifest = open_sets(cfg.train)
    val_set, val_manifest = open_set(cfg.val) if cfg.val else (None, {})
    frames = [item for train_set in train_sets for item in load_frames(train_set)]
    sets = ', '.join(map(str, cfg.train if isinstance(cfg.train, (tuple, list)) else [cfg.train]))
    if not frames:  # else numpy's "high <= 0" from the crop sampler, minutes into the job
        raise ValueError(f"detector: the training set(s) {sets} hold no coarse "
                         f"frames, so there is nothing to train the detector on")
    channels = tuple(train_manifest.get("channels", LEGACY))
    depth = {frame.image.shape[2] for frame in frames}
    if depth != {len(channels)}:
        raise ValueError(f"detector: the training set(s) {sets} name channels {list(channels)} but hold images of "
                         f"{sorted(depth)} channel(s)")
    if val_set is not None and tuple(val_manifest.get("channels", LEGACY)) != channels:
        raise ValueError(f"detector: the val set {cfg.val} holds channels {val_manifest.get('channels', list(LEGACY))}, "
                         f"the training set(s) {list(channels)}")
    sampler = CropSampler(frames, cfg.crop, cfg.defect_bias, cfg.nuisance_bias)
    model = CenterNetDetector(num_classes=len(DEFECT_CLASSES), width=cfg.width, in_channels=len(channels))
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    scheduler = warmup_cosine(optimizer, cfg.iterations, warmup=min(100, cfg.iterations // 10 + 1))
    out = Path(cfg.out)
    last, best = out / "last.pt", out / "best.pt"
    step, best_score, history = 0, -1.0, []
    if cfg.resume and last.is_file():
        state = load_checkpoint(last)
        step = restore(state, model=model, optimizer=optimizer, scheduler=scheduler, rng=rng)
        best_score = state["extra"].get("best_score", -1.0)
        history = state["extra"].get("history", [])
    extra_base = {"kind": "detector", "classes": list(DEFECT_CLASSES), "norm": [NORM_MEAN, NORM_STD], "channels": list(channels),
                  "decode": DECODE.as_dict(), "width": cfg.width, "parameters": parameter_count(model),
                  "train_fingerprint": train_manifest["fingerprint"], "train_seed_range": train_manifest.get("seed_range"),
                  "val_fingerprint": val_manifest.get("fingerprint"), "val_seed_range": val_manifest.get("seed_range")}
    bar = Progress(cfg.iterations, step, "detector", cfg.progress)
    bar.write(f"detector: {parameter_count(model):,} parameters, {len(frames)} train frames, "
              f"{len(sampler.defects)} defects, {len(sampler.nuisances)} nuisances; from step {step}")
    model.train()
    started = time.time()
    while step < cfg.iterations:
        x, targets = make_batch(sampler, cfg.batch_size, rng)
        loss, parts = detector_loss(model(x), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        scheduler.step()
        step += 1
        bar.update(loss=float(loss.detach()), **parts)
        done = step == cfg.iterations
        if val_set is not None and (step % cfg.val_every == 0 or done):
            figures = validate(model, val_set, cfg.val_images)
            figures["step"] = step
            history.append(figures)
            bar.write(f"step {step}: val AP {figures['ap']:.3f}, recall@0.3 {figures['recall@0.3']:.3f}, "
                      f"precision@0.3 {figures['precision@0.3']:.3f} ({figures['defects']} defects)")
            if figures["ap"] > best_score:
                best_score = figures["ap"]
                save_checkpoint(best, model=model, optimizer=None, scheduler=None, step=step, config=cfg,
                                extra={**extra_base, "val": figures})
        if step % cfg.checkpoint_every == 0 or done:
            save_checkpoint(last, model=model, optimizer=optimizer, scheduler=scheduler, step=step, config=cfg,
                            extra={**extra_base, "best_score": best_score, "history": history}, rng=rng)
    bar.close()
    if val_set is None:
        save_checkpoint(best, model=model, optimizer=None, scheduler=None, step=step, config=cfg, extra=extra_base)
    write_json(out / "history.json", {"history": history, "seconds": round(time.time() - started, 1)})
    return best
