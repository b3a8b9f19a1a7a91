"""`inspector eval`: the held-out lot inspected by the station's own cycle on the virtual cell.

Each part of the lot (seeds nobody trained or tuned on) is loaded into the virtual cell's fixture
and inspected by `run_sim_lot` — the same function `inspector run --sim` calls: the recipe's
views, thresholds and grey band, the planner's merged, calibrated fine shots, real re-imaging at
the planned poses, the verdict rules. The cell is deterministic per part seed, so the verdict of
a serial here is the verdict `inspector run --sim --seed S` gives it. The truth of a part is the
same rule code applied to its true defects (`truth_verdict`). The lot is split into consecutive
chunks inspected by worker processes, each with its own virtual cell and result store.
"""
from __future__ import annotations

import multiprocessing
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from hardware.sim.part import make_part

from ..demo import run_sim_lot
from ..verdict import failed_for_grey_band
from .probe import Probe, false_candidates, proposed_defects

HELDOUT_FIRST_SEED = 300_000  # training/splits.py: seeds 300000–399999 are the held-out split
OUTCOME_RANK = {"not proposed": 0, "not imaged": 1, "ok": 2, "review": 3, "defect": 4}


@dataclass(frozen=True)
class PartMix:
    """Which parts a lot holds: the production mix (default), only some defect kinds, or defective
    and good parts alternating. Picklable, for the worker processes."""
    kinds: tuple[str, ...] | None = None  # only these defect kinds (every part defective)
    alternate: bool = False  # even seeds defective, odd seeds without defects

    def make(self, seed: int) -> Any:
        if self.kinds is not None:
            return make_part(seed, kinds=self.kinds, defect_probability=1.0)
        if self.alternate:
            return make_part(seed, defect_probability=1.0 if seed % 2 == 0 else 0.0)
        return make_part(seed)


@dataclass(frozen=True)
class EvalOptions:
    recipe: Path
    parts: int
    first_seed: int = HELDOUT_FIRST_SEED
    speed_factor: float = 50.0
    workers: int = 2
    work: Path = Path("out/eval")


def inspect_lot(options: EvalOptions, log: Callable[[str], None] = print, mix: PartMix | None = None
                ) -> list[dict[str, Any]]:
    """One row per part, in seed order: serial, verdict, truth and what happened to each true defect
    (parts as `mix` makes them; default the production mix)."""
    options.work.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(options.workers, options.parts))
    bounds = [options.parts * w // workers for w in range(workers + 1)]
    chunks = [(str(options.recipe), options.first_seed + bounds[w], bounds[w + 1] - bounds[w], options.speed_factor,
               str(fresh_store(options.work / f"results-{options.first_seed + bounds[w]}.db")), mix)
              for w in range(workers)]
    started = time.time()
    rows = [row for chunk in inspect_chunks(chunks, workers) for row in chunk]
    log(f"  eval: {len(rows)} parts inspected in {time.time() - started:.0f} s by {workers} worker(s)")
    return rows


def inspect_chunks(jobs: list[tuple], workers: int) -> list[list[dict[str, Any]]]:
    """`inspect_chunk(*job)` for every job, in spawned worker processes (each its own virtual cell)
    when there are several jobs and workers; the results in job order."""
    if workers <= 1 or len(jobs) <= 1:
        return [inspect_chunk(*job) for job in jobs]
    with multiprocessing.get_context("spawn").Pool(min(workers, len(jobs))) as pool:
        return pool.starmap(inspect_chunk, jobs)


def fresh_store(db: Path) -> Path:
    """`db` with any store of an earlier run (and its WAL files) removed: a re-run starts empty."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return db


def inspect_chunk(recipe_path: str, first_seed: int, count: int, speed_factor: float, db: str,
                  mix: PartMix | None = None, faults: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Inspect `count` consecutive seeds on a fresh virtual cell with the station's own cycle
    (parts as `mix` makes them, default the production mix; `faults` injected into the cell, and then the
    lot goes on past the cycle's alarm, so that every part shows what the fault does to it)."""
    probe = Probe()
    lines: list[str] = []
    mix = mix or PartMix()
    tally = run_sim_lot(count, first_seed=first_seed, speed_factor=speed_factor, recipe_path=recipe_path, db=db,
                        archive_dir=None, out=lines.append, on_event=probe.on_event, on_ready=probe.attach,
                        faults=faults, part_maker=mix.make, stop_on_alarm=not faults)
    if len(tally.rows) != count and not faults:
        raise RuntimeError(f"the lot from seed {first_seed} stopped after {len(tally.rows)} of {count} parts: "
                           f"{lines[-1] if lines else 'no reason given'}")
    rows = []
    for index, (record, truth) in enumerate(tally.rows):
        seed = first_seed + index
        part = mix.make(seed)  # the same part the cell loaded: its true defects, for the per-defect outcome
        rows.append(part_row(seed, part, record, truth, probe.parts.get(record.part_id)))
    return rows


def part_row(seed: int, part: Any, record: Any, truth: str, watch: Any) -> dict[str, Any]:
    proposed = proposed_defects(watch) if watch is not None else {}
    outcomes = []
    for defect in part.true_defects:
        outcome, called = "not proposed", set()
        for cand in proposed.get(defect.id, ()):
            outcome = max(outcome, _outcome_of(cand, record), key=OUTCOME_RANK.__getitem__)
            called |= _called_as(cand, record)
        outcomes.append({"id": defect.id, "kind": defect.kind, "size_mm": round(defect.size_mm, 4),
                         "face": defect.face, "outcome": outcome, "called_as": sorted(called)})
    coarse_max: dict[str, float] = {}
    for candidates in (watch.candidates_by_view.values() if watch is not None else ()):
        for cand in candidates:
            coarse_max[cand.defect_class] = max(coarse_max.get(cand.defect_class, 0.0), round(float(cand.score), 4))
    return {"serial": record.serial, "seed": seed, "verdict": record.verdict, "truth": truth,
            "grey_band": failed_for_grey_band(record.verdict, record.reason), "reason": record.reason,
            "fine_shots": watch.fine_shots if watch is not None else 0,
            "candidates": sum(map(len, watch.candidates_by_view.values())) if watch is not None else 0,
            "false_candidates": false_candidates(watch) if watch is not None else 0,
            "seconds": record.timings_s.get("total", 0.0), "true_defects": outcomes,
            "calls": [f"{d.defect_class}:{d.decision}:{d.score:.2f}@{d.face}" for d in record.defects
                      if d.decision != "ok"],
            "coarse_max": coarse_max}


def _at(candidate: Any, d: Any) -> bool:
    return (d.face == candidate.face and abs(d.position_mm[0] - candidate.u_mm) < 2e-3
            and abs(d.position_mm[1] - candidate.v_mm) < 2e-3)


def _called_as(candidate: Any, record: Any) -> set[str]:
    """The classes the record holds as defects (or for review) at this candidate."""
    return {d.defect_class for d in record.defects if _at(candidate, d) and d.decision in ("defect", "review")}


def _outcome_of(candidate: Any, record: Any) -> str:
    """The decision the record holds for this candidate, or 'not imaged' when it has none."""
    best = "not imaged"
    for d in record.defects:
        if _at(candidate, d):
            best = max(best, d.decision, key=OUTCOME_RANK.__getitem__)
    return best
