"""Inference latency and throughput per execution provider.

Detector: one call per coarse frame (the station's `Detector.detect`: pre-process, onnxruntime,
decode), on recorded coarse frames. Classifier: one call per batch of ROI crops (batch 1, 8, 32)
cut from recorded fine frames (`Classifier.classify_crops`). Each provider the onnxruntime build
lists is tried; one that cannot run here is reported with the reason, not measured.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..inference.classifier import Classifier
from ..inference.detector import Detector
from ..inference.loaded_model import load_model
from ..inference.providers import SHORT_NAMES
from .stats import summary

BATCHES = (1, 8, 32)


def provider_names() -> list[str]:
    import onnxruntime as ort

    order = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    available = set(ort.get_available_providers())
    return [SHORT_NAMES[p] for p in order if p in available]


def _timings(fn: Callable[[], object], repeats: int, warmup: int = 2) -> tuple[list[float], object]:
    last = None
    for _ in range(warmup):
        last = fn()
    laps = []
    for _ in range(repeats):
        t = time.perf_counter()
        last = fn()
        laps.append((time.perf_counter() - t) * 1000.0)
    return laps, last


def crops_from(fine_frames: Sequence[np.ndarray], size: tuple[int, int], count: int, seed: int = 0) -> np.ndarray:
    """`count` crops of the classifier's input size from the fine frames (random places, fixed seed)."""
    rng = np.random.default_rng(seed)
    h, w = size
    crops = []
    for i in range(count):
        frame = fine_frames[i % len(fine_frames)] if len(fine_frames) else rng.integers(80, 120, (600, 800), np.uint8)
        if frame.ndim == 3:
            frame = frame[..., 0]
        y = int(rng.integers(0, max(1, frame.shape[0] - h)))
        x = int(rng.integers(0, max(1, frame.shape[1] - w)))
        crops.append(np.ascontiguousarray(frame[y:y + h, x:x + w]))
    return np.stack(crops).astype(np.uint8)


def detector_inputs(recipe: Any, coarse_frames: Sequence[np.ndarray], count: int) -> list[np.ndarray]:
    """The detector's input for the first `count` coarse captures (frames in capture order, a capture per
    view of its program's steps), stacked as the station stacks them on the virtual cell."""
    from hardware.lights.base import LightProgram
    from hardware.sim.cell import station_config_dict

    from ..channels import detector_input
    from ..station_config import StationConfig

    views = {(v.light_program, v.channels) for v in recipe.views}
    if len(views) != 1:
        raise ValueError(f"bench latency: the recipe's views use different captures {sorted(views)}")
    (program_name, channels), = views
    names = LightProgram.from_dict(program_name, recipe.light_programs[program_name]).channel_names
    station = StationConfig.from_dict(station_config_dict("/dev/null", "/dev/null"))
    steps = len(names)
    captures = [dict(zip(names, coarse_frames[i:i + steps])) for i in range(0, len(coarse_frames) - steps + 1, steps)]
    return [detector_input(channels, frames, station.lights.segments, station.cameras["coarse"].calibration.mm_per_px)
            for frames in captures[:count]]


def measure(detector_path: Path, classifier_path: Path, coarse_frames: Sequence[np.ndarray],
            fine_frames: Sequence[np.ndarray], *, repeats: int = 20, batches: Sequence[int] = BATCHES,
            log: Callable[[str], None] = print) -> dict:
    results: dict = {}
    for provider in provider_names():
        entry: dict = {"provider": provider}
        try:
            detector = Detector(load_model(detector_path, task="detect", prefer=[provider]))
            classifier = Classifier(load_model(classifier_path, task="classify", prefer=[provider]))
        except Exception as exc:  # noqa: BLE001 - a provider that cannot run here is reported, not measured
            reason = str(exc).splitlines()[0]
            entry.update(available=False, reason=reason.split("cannot load it: ", 1)[-1][:200])
            results[provider] = entry
            log(f"  latency: {provider} not available ({entry['reason']})")
            continue
        entry.update(available=True, reason=detector.model.provider.reason,
                     session_provider=detector.model.provider.short_name)
        frames = list(coarse_frames) or [np.full((768, 1024), 100, np.uint8)]
        calls = iter(range(10 ** 9))
        stage_rows = []

        def detect_once():
            res = detector.detect(frames[next(calls) % len(frames)])
            stage_rows.append(res.timings)
            return res

        laps, last = _timings(detect_once, max(repeats, 1))
        stage_rows = stage_rows[-len(laps):]
        h, w = last.image_size
        entry["detector"] = {"input": f"{w}×{h}", "frames": len(frames), "calls": len(laps), "ms": summary(laps),
                             "infer_ms": summary(t.infer_ms for t in stage_rows),
                             "pre_ms": summary(t.pre_ms for t in stage_rows),
                             "post_ms": summary(t.post_ms for t in stage_rows),
                             "images_per_s": 1000.0 / summary(laps)["median"]}
        entry["classifier"] = {}
        size = tuple(classifier.info.input_size)
        for batch in batches:
            crops = crops_from(fine_frames, size, batch)
            laps, res = _timings(lambda: classifier.classify_crops(crops), max(repeats * 2, 1))
            entry["classifier"][str(batch)] = {"batch": batch, "session_calls": res.batches, "calls": len(laps),
                                               "ms": summary(laps), "crops_per_s": batch * 1000.0 / summary(laps)["median"]}
        entry["classifier_input"] = f"{size[1]}×{size[0]}"
        entry["classifier_max_batch"] = classifier.batch_size
        log(f"  latency: {provider}: detector {entry['detector']['ms']['median']:.1f} ms/frame, classifier "
            + ", ".join(f"b{b} {entry['classifier'][str(b)]['ms']['median']:.2f} ms" for b in batches))
        results[provider] = entry
    return results
