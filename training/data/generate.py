"""Labelled data sets rendered by the virtual cell, deterministic by part seed.

- coarse sets (detector): one coarse image per face (top + 4 sides) of each part under the
  reference coarse program; every visible defect and nuisance is a box with its size in mm.
- fine sets (classifier): one fine shot per defect, per nuisance and per random clean spot of each
  part, aimed with a small random error (as a coarse candidate would be), kept as a square patch
  around the target. The target is marked; other boxes in the patch are kept for completeness.

Each set is a folder: images/*.png, annotations.coco.json, labels/*.txt (YOLO; `yolo.write_data_yaml` pairs a train and a val set) and
manifest.json (split, seed range, generator settings, counts, fingerprint).
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import cv2
import numpy as np

from hardware.sim.geometry import (COARSE_CAMERA, FACE_TABLE, FACES, FINE_CAMERA, CameraSpec, face_point_pose,
                                   face_to_pixel, face_view_pose, pixel_to_face)
from hardware.sim.part import HOLES, PartInstance, make_part
from hardware.sim.render import RenderResult, render

from inspector.channels import DERIVED, LEGACY, detector_input

from ..lights import (COARSE_PROGRAM, COARSE_STEPS, DETECTOR_CHANNELS, FINE_PROGRAM, LightProgram, coarse_program_dict,
                      sim_segments)
from ..splits import seeds_for
from .coco import read_coco, write_coco
from .records import COARSE_CATEGORIES, FINE_CATEGORIES, Annotation, ImageRecord, LabelledSet
from .yolo import write_yolo

if TYPE_CHECKING:
    from inspector.inference.detector import Detector

GENERATOR_VERSION = "1"
COCO_NAME = "annotations.coco.json"
MANIFEST_NAME = "manifest.json"
FACE_INDEX = {face: i for i, face in enumerate(FACES)}


@dataclass(frozen=True)
class PartMix:
    """How parts are drawn: training sets use more defects per part than a production lot."""

    defect_probability: float = 0.5
    max_defects: int = 3
    max_nuisances: int = 4

    def make(self, seed: int) -> PartInstance:
        return make_part(seed, defect_probability=self.defect_probability, max_defects=self.max_defects,
                         max_nuisances=self.max_nuisances)


TRAINING_MIX = PartMix(defect_probability=0.95, max_defects=6, max_nuisances=5)
LOT_MIX = PartMix()  # a production-like lot: half the parts defective


def coarse_render_seed(part_seed: int, face: str) -> int:
    return part_seed * 16 + FACE_INDEX[face]


def fine_render_seed(part_seed: int, shot: int) -> int:
    return part_seed * 4096 + 1024 + shot


def render_coarse(part: PartInstance, face: str, program: LightProgram = COARSE_PROGRAM,
                  camera: CameraSpec = COARSE_CAMERA) -> RenderResult:
    """The coarse view of one face as the reference recipe takes it (nominal pose, in focus)."""
    return render(part, face_view_pose(face, camera), program.levels, camera, exposure_us=program.exposure_us,
                  gain=program.gain, seed=coarse_render_seed(part.seed, face))


def coarse_input(part: PartInstance, face: str, channels: Sequence[str] = DETECTOR_CHANNELS,
                 camera: CameraSpec = COARSE_CAMERA) -> tuple[np.ndarray, RenderResult]:
    """The detector's input for one face as the station builds it (inspector.channels.detector_input) from
    the frames of the reference coarse capture (COARSE_STEPS): only the steps the channels need are rendered."""
    if tuple(channels) == LEGACY:
        result = render_coarse(part, face, camera=camera)
        return result.image, result
    derived = any(c in DERIVED for c in channels)
    segments = sim_segments()
    frames, first = {}, None
    for index, (name, levels) in enumerate(COARSE_STEPS):
        if name in channels or (derived and name in segments):
            result = render(part, face_view_pose(face, camera), levels, camera, exposure_us=COARSE_PROGRAM.exposure_us,
                            gain=COARSE_PROGRAM.gain, seed=coarse_render_seed(part.seed, face) + 7919 * index)
            frames[name] = result.image
            first = first or result
    missing = [c for c in channels if c not in frames and c not in DERIVED]
    if missing or first is None:
        raise ValueError(f"the reference coarse capture has no step for channel(s) {missing or list(channels)}")
    return detector_input(channels, frames, segments, camera.mm_per_px), first


def truth_annotations(result: RenderResult, part: PartInstance, *, shift: tuple[float, float] = (0.0, 0.0),
                      clip: tuple[int, int] | None = None) -> list[Annotation]:
    by_id = {d.id: d for d in part.defects}
    out = []
    for t in result.truth:
        x0, y0, x1, y1 = (float(v) for v in t.box_px)
        x0, x1, y0, y1 = x0 - shift[0], x1 - shift[0], y0 - shift[1], y1 - shift[1]
        if clip is not None:
            w, h = clip
            x0, y0, x1, y1 = max(x0, 0.0), max(y0, 0.0), min(x1, float(w)), min(y1, float(h))
            if x1 <= x0 or y1 <= y0:
                continue
        d = by_id[t.defect_id]
        out.append(Annotation(t.kind, (x0, y0, x1, y1), {
            "defect_id": t.defect_id, "size_mm": t.size_mm, "is_nuisance": t.is_nuisance, "face": t.face,
            "u_mm": t.u_mm, "v_mm": t.v_mm, "depth_mm": d.depth_mm, "length_mm": d.length_mm, "width_mm": d.width_mm}))
    return out


def pixel_digest(digest: "hashlib._Hash", name: str, image: np.ndarray) -> None:
    digest.update(name.encode())
    digest.update(np.ascontiguousarray(image).tobytes())


def set_fingerprint(data: LabelledSet, images: Iterable[np.ndarray] | None = None) -> str:
    """sha256 over pixels (decoded, so independent of the PNG encoder) and annotations."""
    digest = hashlib.sha256()
    pixels = images if images is not None else (load_image(data.root, r) for r in data.images)
    for record, image in zip(data.images, pixels):
        pixel_digest(digest, record.file_name, image)
        digest.update(json.dumps([[a.category, [round(v, 3) for v in a.box_px]] for a in record.annotations]).encode())
    return "sha256:" + digest.hexdigest()[:20]


def load_image(root: Path, record: ImageRecord) -> np.ndarray:
    """A set's image as stored: mono (H×W), or the detector's channel stack (H×W×C, in channel order)."""
    image = cv2.imread(str(root / record.file_name), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise FileNotFoundError(f"image {root / record.file_name} missing or unreadable")
    return image


def _save(root: Path, name: str, image: np.ndarray) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), image, [cv2.IMWRITE_PNG_COMPRESSION, 3]):
        raise OSError(f"cannot write {path}")


def _finish(data: LabelledSet, images: list[np.ndarray], manifest: dict) -> LabelledSet:
    fingerprint = set_fingerprint(data, images)
    data.info.update({"fingerprint": fingerprint, "split": manifest["split"], "kind": manifest["kind"]})
    write_coco(data, data.root / COCO_NAME)
    write_yolo(data)
    manifest.update({"fingerprint": fingerprint, "images": len(data.images), "annotations": data.annotation_count(),
                     "generator_version": GENERATOR_VERSION})
    (data.root / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return data


def generate_coarse(out: Path | str, split: str, parts: int, *, offset: int = 0, mix: PartMix = TRAINING_MIX,
                    faces: Iterable[str] = FACES, progress: Callable[[int, int], None] | None = None,
                    channels: Sequence[str] = DETECTOR_CHANNELS) -> LabelledSet:
    """Coarse frames as the detector takes them: the stack of `channels` (a C-channel PNG), or for the
    legacy channel ("frame",) the mixed frame alone."""
    root = Path(out)
    seeds = seeds_for(split, parts, offset)
    data = LabelledSet(root, COARSE_CATEGORIES, [], {"description": f"coarse {split} set, virtual cell"})
    images: list[np.ndarray] = []
    faces = tuple(faces)
    started = time.time()
    for n, seed in enumerate(seeds):
        part = mix.make(seed)
        for face in faces:
            image, result = coarse_input(part, face, channels)
            name = f"images/{part.serial}_{face}.png"
            _save(root, name, image)
            data.images.append(ImageRecord(name, COARSE_CAMERA.width_px, COARSE_CAMERA.height_px,
                                           truth_annotations(result, part),
                                           {"part_seed": seed, "serial": part.serial, "face": face, "camera": "coarse",
                                            "light_program": COARSE_PROGRAM.name, "defocus_mm": result.defocus_mm,
                                            "fixture_error": list(part.fixture_error), "split": split}))
            images.append(image)
        if progress:
            progress(n + 1, parts)
    manifest = {"kind": "coarse", "split": split, "seed_range": [seeds.start, seeds.stop - 1], "parts": parts,
                "faces": list(faces), "mix": asdict(mix), "channels": list(channels),
                "light_program": COARSE_PROGRAM.as_dict() if tuple(channels) == LEGACY else coarse_program_dict(),
                "camera": asdict(COARSE_CAMERA), "seconds": round(time.time() - started, 1)}
    return _finish(data, images, manifest)


# ---------------------------------------------------------------- fine sets

FINE_PATCH_PX = 320  # 3.2 mm at the fine camera: room for the largest defect and the aiming error
AIM_ERROR_MM = 0.25  # a coarse candidate lands within about this of the defect (1 coarse px = 0.05 mm)
FOCUS_ERROR_MM = 0.03


def _clean_spot(rng: np.random.Generator, part: PartInstance) -> tuple[str, float, float]:
    """A point with nothing on it: half anywhere on a face, half near an edge or a hole rim, where
    a coarse detector is most tempted."""
    for _ in range(200):
        face = FACES[int(rng.integers(len(FACES)))]
        f = FACE_TABLE[face]
        mode = rng.random()
        if mode < 0.5:
            u, v = rng.uniform(-f.half_u + 0.3, f.half_u - 0.3), rng.uniform(-f.half_v + 0.3, f.half_v - 0.3)
        elif mode < 0.8 or face != "top":
            inset = rng.uniform(0.0, 0.8)
            if rng.random() < 0.5:
                u, v = rng.uniform(-f.half_u, f.half_u), rng.choice((-1, 1)) * (f.half_v - inset)
            else:
                u, v = rng.choice((-1, 1)) * (f.half_u - inset), rng.uniform(-f.half_v, f.half_v)
        else:
            hu, hv, r, _ = HOLES[int(rng.integers(len(HOLES)))]
            angle, radius = rng.uniform(0, 2 * math.pi), r + rng.uniform(-0.2, 0.6)
            u, v = hu + radius * math.cos(angle), hv + radius * math.sin(angle)
        if all(d.face != face or math.hypot(d.u_mm - u, d.v_mm - v) > 0.6 + d.size_mm for d in part.defects):
            return face, float(u), float(v)
    raise RuntimeError(f"no clean spot found on part {part.serial}")


def false_candidates(part: PartInstance, detector: "Detector") -> list[tuple[str, float, float, float]]:
    """Where `detector` (at its shipped thresholds) calls a candidate on the part's coarse views that is
    not on a true defect: (face, u mm, v mm, box side in fine px). These are the "ok" shots the fine
    classifier meets at the station — harder than random clean spots (edges, hole rims, machining
    marks, dust), so a classifier trained on them makes fewer false calls."""
    scale = COARSE_CAMERA.mm_per_px / FINE_CAMERA.mm_per_px
    found = []
    for face in FACES:
        image, frame = coarse_input(part, face, detector.channels)
        defects = [t.box_px for t in frame.truth if not t.is_nuisance]
        for det in detector.detect(image).detections:
            cx, cy = det.center_px
            if any(x0 - 3 <= cx <= x1 + 3 and y0 - 3 <= cy <= y1 + 3 for x0, y0, x1, y1 in defects):
                continue
            fface, u, v = pixel_to_face(COARSE_CAMERA, face_view_pose(face, COARSE_CAMERA), cx, cy)
            found.append((fface, float(u), float(v), float(max(det.size_px)) * scale))
    return found


def generate_fine(out: Path | str, split: str, parts: int, *, offset: int = 0, mix: PartMix = TRAINING_MIX,
                  clean_spots: int = 4, detector: "Detector | None" = None, max_false_candidates: int = 8,
                  progress: Callable[[int, int], None] | None = None) -> LabelledSet:
    """Fine patches around each defect, nuisance and `clean_spots` random clean spots per part; with a
    `detector`, also around up to `max_false_candidates` of its false candidates per part (labelled
    `clean_spot`, attribute `false_candidate`)."""
    root = Path(out)
    seeds = seeds_for(split, parts, offset)
    data = LabelledSet(root, FINE_CATEGORIES, [], {"description": f"fine {split} set, virtual cell"})
    images: list[np.ndarray] = []
    half = FINE_PATCH_PX // 2
    started = time.time()
    mined = 0
    for n, seed in enumerate(seeds):
        part = mix.make(seed)
        rng = np.random.default_rng([seed, 77])
        targets: list[tuple[str, float, float, int | None, float | None]] = [
            (d.face, d.u_mm, d.v_mm, d.id, None) for d in part.defects]
        targets += [(*_clean_spot(rng, part), None, None) for _ in range(clean_spots)]
        if detector is not None:
            false = false_candidates(part, detector)
            picked = rng.permutation(len(false))[:max_false_candidates]
            targets += [(*false[i][:3], None, false[i][3]) for i in sorted(picked)]
            mined += len(picked)
        for shot, (face, u, v, defect_id, side_px) in enumerate(targets):
            aim = rng.normal(0.0, AIM_ERROR_MM / 2, 2).clip(-AIM_ERROR_MM, AIM_ERROR_MM)
            if side_px is not None:
                aim = np.zeros(2)  # aimed exactly as the station aims at a coarse candidate
            pose = face_point_pose(face, u + aim[0], v + aim[1], FINE_CAMERA,
                                   z_offset_mm=float(rng.normal(0.0, FOCUS_ERROR_MM)))
            result = render(part, pose, FINE_PROGRAM.levels, FINE_CAMERA, exposure_us=FINE_PROGRAM.exposure_us,
                            gain=FINE_PROGRAM.gain, seed=fine_render_seed(seed, shot))
            if defect_id is not None:
                hit = [t for t in result.truth if t.defect_id == defect_id]
                if not hit:
                    continue  # e.g. a burr whose footprint the fine field cuts away
                b = hit[0].box_px
                cx, cy = (b[0] + b[2]) / 2, (b[1] + b[3]) / 2
            elif side_px is not None:
                cx, cy = FINE_CAMERA.width_px / 2, FINE_CAMERA.height_px / 2  # where the station cuts its ROI
            else:
                cx, cy = face_to_pixel(FINE_CAMERA, pose, face, u, v, part.fixture_error)
            x0, y0 = int(round(cx)) - half, int(round(cy)) - half
            patch = cv2.copyMakeBorder(result.image, half, half, half, half, cv2.BORDER_REPLICATE)[
                y0 + half:y0 + half + FINE_PATCH_PX, x0 + half:x0 + half + FINE_PATCH_PX]
            annotations = truth_annotations(result, part, shift=(x0, y0), clip=(FINE_PATCH_PX, FINE_PATCH_PX))
            for a in annotations:
                a.attributes["target"] = a.attributes["defect_id"] == defect_id
            if defect_id is None:
                side = float(rng.uniform(8, 60)) if side_px is None else min(max(side_px, 8.0), 120.0)
                c = FINE_PATCH_PX / 2
                annotations.append(Annotation("clean_spot", (c - side / 2, c - side / 2, c + side / 2, c + side / 2),
                                              {"target": True, "face": face, "u_mm": round(u, 3), "v_mm": round(v, 3),
                                               "size_mm": round(side * FINE_CAMERA.mm_per_px, 3), "is_nuisance": False,
                                               "false_candidate": side_px is not None}))
            name = f"images/{part.serial}_s{shot:02d}.png"
            _save(root, name, patch)
            data.images.append(ImageRecord(name, FINE_PATCH_PX, FINE_PATCH_PX, annotations,
                                           {"part_seed": seed, "serial": part.serial, "face": face, "camera": "fine",
                                            "light_program": FINE_PROGRAM.name, "defocus_mm": result.defocus_mm,
                                            "patch_origin_px": [x0, y0], "split": split}))
            images.append(patch)
        if progress:
            progress(n + 1, parts)
    manifest = {"kind": "fine", "split": split, "seed_range": [seeds.start, seeds.stop - 1], "parts": parts,
                "clean_spots_per_part": clean_spots, "mix": asdict(mix),
                "false_candidates": {"detector": detector.info.version if detector else None,
                                     "detector_fingerprint": detector.info.training_data_fingerprint if detector else None,
                                     "max_per_part": max_false_candidates if detector else 0, "mined": mined}, "light_program": FINE_PROGRAM.as_dict(),
                "camera": asdict(FINE_CAMERA), "patch_px": FINE_PATCH_PX, "aim_error_mm": AIM_ERROR_MM,
                "seconds": round(time.time() - started, 1)}
    return _finish(data, images, manifest)


def open_set(root: Path | str) -> tuple[LabelledSet, dict]:
    """A generated (or imported) set and its manifest ({} when it has none)."""
    root = Path(root)
    coco = root / COCO_NAME
    if not coco.is_file():
        raise FileNotFoundError(f"{root} holds no {COCO_NAME} (generate it with `python -m training data …`)")
    manifest_path = root / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    data = read_coco(coco, root=root)
    if "fingerprint" not in manifest:
        manifest["fingerprint"] = data.info.get("fingerprint") or set_fingerprint(data)
    return data, manifest


def open_sets(roots: Path | str | Sequence[Path | str]) -> tuple[list[LabelledSet], dict]:
    """One or more sets trained on together (e.g. the standard set plus relabelled review exports) and
    one manifest for them: a fingerprint over the sets' fingerprints, their seed ranges and paths."""
    paths = [roots] if isinstance(roots, (str, Path)) else list(roots)
    if not paths:
        raise ValueError("no training set given")
    opened = [open_set(p) for p in paths]
    channels = [tuple(m.get("channels", LEGACY)) for _, m in opened]
    if len(set(channels)) > 1:
        raise ValueError("sets to train on together hold different channels: " + "; ".join(
            f"{p}: {list(c)}" for p, c in zip(paths, channels)))
    if len(opened) == 1:
        return [opened[0][0]], opened[0][1]
    fingerprints = [m["fingerprint"] for _, m in opened]
    ranges = [m["seed_range"] for _, m in opened if m.get("seed_range")]
    manifest = {"fingerprint": "sha256:" + hashlib.sha256("+".join(fingerprints).encode()).hexdigest()[:20],
                "parts_of": [{"path": str(p), "fingerprint": f} for p, f in zip(paths, fingerprints)],
                "seed_range": [min(r[0] for r in ranges), max(r[1] for r in ranges)] if ranges else None,
                "seed_ranges": ranges, "channels": list(channels[0])}
    return [data for data, _ in opened], manifest
