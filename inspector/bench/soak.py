"""Soak: many parts back to back at the highest speed factor, watching the process.

Every part goes through the real cycle engine, drivers, pseudo-terminals, models and SQLite
store. Rendering every frame would make the soak a renderer benchmark (≈2 s of CPU per part on
this machine), so the cameras replay a small recorded set of parts in rotation (see `frames`);
each part still gets its own record. Sampled as it runs: resident memory, kernel threads, Python
threads, open file descriptors, result-store size; timed per part: the store's write (one
committed transaction). The soak stops at its part target or its time budget, whichever comes
first, and says which.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from hardware.sim.part import make_part

from ..inference.classifier import Classifier
from ..inference.detector import Detector
from ..recipe import Recipe
from . import machine
from .cell import bench_cell
from .frames import FrameTape
from .stats import summary

MAX_SPEED_FACTOR = 1000.0  # machine time 1000× wall time: a 0.4 s move takes 0.4 ms


@dataclass
class SoakResult:
    target_parts: int
    budget_s: float
    speed_factor: float
    cached_parts: int
    parts: int = 0
    seconds: float = 0.0
    stopped_by: str = "target"
    samples: list[dict] = field(default_factory=list)  # part index, rss_mb, threads, python_threads, fds, db_mb
    write_ms: list[float] = field(default_factory=list)
    part_s: list[float] = field(default_factory=list)
    verdicts: dict[str, int] = field(default_factory=dict)
    replay_misses: int = 0

    def figures(self) -> dict:
        def first_last(key):
            values = [s[key] for s in self.samples if s.get(key) is not None]
            return (values[0], values[-1], max(values)) if values else (None, None, None)

        rss0, rss1, rss_max = first_last("rss_mb")
        # growth after warm-up: compare the first sample past 10 % of the run with the last one
        warm = [s for s in self.samples if s["part"] >= max(1, self.parts // 10)]
        rss_warm = warm[0]["rss_mb"] if warm and warm[0].get("rss_mb") is not None else rss0
        thr0, thr1, thr_max = first_last("threads")
        fd0, fd1, fd_max = first_last("fds")
        py0, py1, py_max = first_last("python_threads")
        half = [(s["part"], s["rss_mb"]) for s in self.samples if s["part"] >= self.parts / 2 and s.get("rss_mb")]
        slope = None  # MiB per 1000 parts over the second half of the run (least squares)
        if len(half) >= 3 and half[-1][0] > half[0][0]:
            mx = sum(p for p, _ in half) / len(half)
            my = sum(r for _, r in half) / len(half)
            den = sum((p - mx) ** 2 for p, _ in half)
            slope = 1000.0 * sum((p - mx) * (r - my) for p, r in half) / den if den else None
        n = len(self.write_ms)
        tenth = max(1, n // 10)
        return {"target_parts": self.target_parts, "parts": self.parts, "seconds": round(self.seconds, 1),
                "budget_s": self.budget_s, "stopped_by": self.stopped_by, "speed_factor": self.speed_factor,
                "cached_parts": self.cached_parts, "parts_per_s": self.parts / self.seconds if self.seconds else 0.0,
                "rss_mb": {"start": rss0, "after_warmup": rss_warm, "end": rss1, "max": rss_max,
                           "growth_after_warmup": (rss1 - rss_warm) if rss1 is not None and rss_warm is not None else None,
                           "slope_mib_per_1000_parts_second_half": slope},
                "threads": {"start": thr0, "end": thr1, "max": thr_max},
                "python_threads": {"start": py0, "end": py1, "max": py_max},
                "fds": {"start": fd0, "end": fd1, "max": fd_max},
                "write_ms": summary(self.write_ms),
                "write_ms_first_tenth": summary(self.write_ms[:tenth]),
                "write_ms_last_tenth": summary(self.write_ms[-tenth:]) if n else summary([]),
                "part_s": summary(self.part_s), "verdicts": self.verdicts, "replay_misses": self.replay_misses,
                "samples": len(self.samples)}


def _sample(part: int, db: Path) -> dict:
    size = sum(p.stat().st_size for p in db.parent.glob(db.name + "*") if p.is_file())
    return {"part": part, "t": time.perf_counter(), "rss_mb": machine.rss_mb(), "threads": machine.os_threads(),
            "python_threads": machine.python_threads(), "fds": machine.open_files(), "db_mb": size / 2 ** 20}


def run_soak(recipe: Recipe, detector: Detector, classifier: Classifier, tape: FrameTape, work: Path, *,
             parts: int, budget_s: float, speed_factor: float = MAX_SPEED_FACTOR, samples: int = 200,
             log: Callable[[str], None] = print) -> SoakResult:
    keys = list(tape.parts)
    if not keys:
        raise ValueError("soak: no recorded parts to replay")
    result = SoakResult(parts, budget_s, speed_factor, len(keys))
    every = max(1, parts // samples)
    db = work / "soak.db"
    started = time.perf_counter()
    with bench_cell(recipe, detector, classifier, db, speed_factor=speed_factor, tape=tape, mode="replay") as bench:
        parts_in_fixture = {key: make_part(tape.seeds[key]) for key in keys}
        result.samples.append(_sample(0, db))
        report_every = max(1, parts // 10)
        for index in range(parts):
            if time.perf_counter() - started > budget_s:
                result.stopped_by = "time budget"
                break
            key = keys[index % len(keys)]
            bench.cell.load_part(parts_in_fixture[key])
            bench.start_part(key)
            t = time.perf_counter()
            _, record = bench.cycle.inspect(f"SOAK-{index + 1:05d}", f"SOAK-{index + 1:05d}")
            result.part_s.append(time.perf_counter() - t)
            bench.poses.take()  # the soak does not use the poses; keep the bench's own log from growing
            result.verdicts[record.verdict] = result.verdicts.get(record.verdict, 0) + 1
            result.parts = index + 1
            if result.parts % every == 0:
                result.samples.append(_sample(result.parts, db))
            if result.parts % report_every == 0:
                s = result.samples[-1]
                log(f"  soak: {result.parts}/{parts} parts, {time.perf_counter() - started:.0f} s, "
                    f"RSS {s['rss_mb']:.0f} MiB, threads {s['threads']}, fds {s['fds']}")
        if result.samples[-1]["part"] != result.parts:
            result.samples.append(_sample(result.parts, db))
        result.write_ms = [w * 1000.0 for w in bench.store.write_s]
        result.replay_misses = sum(c.misses for c in bench.cameras.values())
    result.seconds = time.perf_counter() - started
    return result
