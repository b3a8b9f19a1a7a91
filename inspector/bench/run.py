"""The bench as one call: options → measurements → BENCHMARKS.md + plots + bench.json."""
from __future__ import annotations

import gc
import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from ..demo import PROJECT_ROOT, REFERENCE_RECIPE
from ..inference.classifier import Classifier
from ..inference.detector import Detector
from ..recipe import Recipe
from . import cycle, driver_sync, latency, machine, quality, soak
from .report import write_report

FIRST_SEED = 500_000  # the demo's range: no model was trained, tuned or evaluated on it


@dataclass
class BenchOptions:
    out: Path = PROJECT_ROOT  # BENCHMARKS.md here, plots in out/docs/bench
    work: Path = PROJECT_ROOT / "out" / "bench"  # result stores, raw figures, the evaluation's output
    quick: bool = False
    parts: int = 30  # cycle-time parts
    speed_factor: float = 1.0  # cycle-time runs; 1 = real time (wall seconds are machine seconds)
    latency_repeats: int = 50
    soak_parts: int = 10_000
    soak_minutes: float = 15.0
    soak_cached_parts: int = 8
    eval_parts: int = 500  # 0: do not run the evaluation
    eval_report: Path | None = None  # read this report.json instead of running the evaluation
    baseline: Path | None = None  # an earlier run's bench.json: its cycle figures as "before"
    first_seed: int = FIRST_SEED
    recipe: Path = REFERENCE_RECIPE
    skip: tuple[str, ...] = ()  # any of cycle, latency, soak, quality
    command: str = "inspector bench"

    @classmethod
    def quick_defaults(cls, **overrides) -> "BenchOptions":
        base = dict(quick=True, parts=3, latency_repeats=10, soak_parts=300, soak_minutes=2.0, soak_cached_parts=3,
                    eval_parts=20)
        base.update(overrides)
        return cls(**base)


@dataclass
class BenchResult:
    report: Path
    plots: list[Path] = field(default_factory=list)
    data: dict = field(default_factory=dict)


def run_bench(options: BenchOptions, log: Callable[[str], None] = print) -> BenchResult:
    started = time.time()
    out, work = Path(options.out), Path(options.work)
    work.mkdir(parents=True, exist_ok=True)
    plots_dir = out / "docs" / "bench"
    plots_dir.mkdir(parents=True, exist_ok=True)
    data: dict = {"options": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(options).items()},
                  "machine": machine.machine_info(PROJECT_ROOT), "started_at": started}
    log(f"bench: {data['machine']['cpu_model']}, {data['machine']['cores']} cores, load {data['machine']['load_average_start']}")
    recipe = Recipe.load(options.recipe)
    detector = Detector.open(str(recipe.model_path("detector")))
    classifier = Classifier.open(str(recipe.model_path("classifier")))
    data["station_provider"] = detector.model.provider.describe("detector")
    data["recipe"] = {"id": recipe.id, "version": recipe.version, "hash": recipe.hash, "views": len(recipe.views),
                      "path": _rel(Path(options.recipe))}
    data["models"] = {"detector": detector.info.name, "classifier": classifier.info.name}
    sections: dict[str, float] = {}

    need_frames = any(s not in options.skip for s in ("cycle", "latency", "soak"))
    tape = None
    if need_frames:
        t = time.time()
        n = max(options.parts if "cycle" not in options.skip else 0, 2 if "latency" not in options.skip else 0,
                options.soak_cached_parts if "soak" not in options.skip else 0, 1)
        seeds = list(range(options.first_seed, options.first_seed + n))
        log(f"bench: rendering {n} parts once (frames replayed by the timed runs)")
        tape, record_verdicts = cycle.record_lot(recipe, detector, classifier, seeds, work, log=log)
        data["frames"] = {"parts": len(tape.parts), "coarse": len(tape.images("coarse")),
                          "fine": len(tape.images("fine")), "mib": tape.nbytes / 2 ** 20, "first_seed": options.first_seed}
        sections["render"] = time.time() - t

    if "latency" not in options.skip:
        t = time.time()
        log("bench: inference latency")
        data["latency"] = latency.measure(recipe.model_path("detector"), recipe.model_path("classifier"),
                                          latency.detector_inputs(recipe, tape.images("coarse"), 10),
                                          tape.images("fine")[:40],
                                          repeats=options.latency_repeats, log=log)
        sections["latency"] = time.time() - t

    if "cycle" not in options.skip:
        t = time.time()
        log(f"bench: cycle time, {options.parts} parts at speed factor {options.speed_factor:g}")
        sub = _subtape(tape, options.parts)
        result = cycle.time_lot(recipe, detector, classifier, sub, work, speed_factor=options.speed_factor, log=log)
        data["cycle"] = result.figures()
        data["cycle"]["rows"] = result.parts
        data["cycle"]["record_pass_verdicts_match"] = all(record_verdicts.get(r["serial"]) == r["verdict"]
                                                          for r in result.parts)
        if options.baseline is not None:
            data["cycle_baseline"] = _baseline(options.baseline, recipe, log)
        log("bench: driver, end of a move: G4 P0 against status polls")
        data["cycle"]["driver_sync"] = driver_sync.measure(rounds=2 if options.quick or options.parts < 10 else 5)
        sections["cycle"] = time.time() - t

    if "soak" not in options.skip:
        t = time.time()
        log(f"bench: soak, up to {options.soak_parts} parts or {options.soak_minutes:g} min")
        sub = _subtape(tape, options.soak_cached_parts)
        res = soak.run_soak(recipe, detector, classifier, sub, work, parts=options.soak_parts,
                            budget_s=options.soak_minutes * 60.0, log=log)
        data["soak"] = res.figures()
        data["soak"]["series"] = {"samples": res.samples, "write_ms": res.write_ms}
        sections["soak"] = time.time() - t
    tape = None
    gc.collect()

    if "quality" not in options.skip:
        t = time.time()
        try:
            if options.eval_report is not None:
                path = Path(options.eval_report)
                how = "read"
            elif options.eval_parts > 0:
                log(f"bench: held-out evaluation, {options.eval_parts} parts (inspector eval)")
                path = quality.run_eval(options.eval_parts, work / "eval", options.recipe, log=log)
                how = "run"
            else:
                path, how = None, "skipped"
            if path is not None:
                data["quality"] = quality.summarise(quality.load_report(path), path)
                data["quality"]["how"] = how
            else:
                data["quality"] = {"how": "skipped", "reason": "--eval-parts 0 and no --eval-report"}
        except (OSError, RuntimeError, KeyError, ValueError) as exc:
            data["quality"] = {"how": "failed", "reason": str(exc)}
            log(f"bench: quality not measured: {exc}")
        sections["quality"] = time.time() - t

    data["sections_s"] = {k: round(v, 1) for k, v in sections.items()}
    data["seconds"] = round(time.time() - started, 1)
    data["machine"]["load_average_end"] = machine.load_average()
    log("bench: plots and report")
    from .plots import draw_all

    plots = draw_all(data, plots_dir)
    report = write_report(data, out / "BENCHMARKS.md", plots_dir, plots)
    (work / "bench.json").write_text(json.dumps(_jsonable(data), indent=1), encoding="utf-8")
    log(f"bench: wrote {report} and {len(plots)} plots in {plots_dir} ({data['seconds']:.0f} s)")
    return BenchResult(report, plots, data)


class OldBenchFormat(ValueError):
    """A bench.json from before the machine-model bounds: its cycle figures cannot be reported."""


def check_format(data: dict, source: object = "bench.json") -> None:
    """The cycle section must carry the machine-model bounds (`bound_plan`, `bound_coarse`)."""
    c = data.get("cycle")
    if c and c.get("parts") and "bound_plan" not in c.get("stages", {}):
        raise OldBenchFormat(f"{source}: cycle figures in the old format (a 'lower_bound' taken from measured "
                             f"motion + exposure, no 'bound_plan'/'bound_coarse' from the machine model); "
                             f"run `inspector bench` again to measure them")


def rerender(figures: Path, out: Path, log: Callable[[str], None] = print, baseline: Path | None = None) -> BenchResult:
    """BENCHMARKS.md and plots again from a run's bench.json (and a baseline's), without measuring anything."""
    data = json.loads(Path(figures).read_text(encoding="utf-8"))
    check_format(data, figures)
    if baseline is not None:
        data["cycle_baseline"] = _baseline(baseline, Recipe.load(data["options"].get("recipe") or REFERENCE_RECIPE), log)
    plots_dir = Path(out) / "docs" / "bench"
    plots_dir.mkdir(parents=True, exist_ok=True)
    from .plots import draw_all

    plots = draw_all(data, plots_dir)
    report = write_report(data, Path(out) / "BENCHMARKS.md", plots_dir, plots)
    log(f"bench: wrote {report} from {figures}")
    return BenchResult(report, plots, data)


def _baseline(path: Path, recipe: Recipe, log: Callable[[str], None]) -> dict:
    """An earlier run's cycle figures, with the best-plan bound added from its poses where it lacks it."""
    from hardware.sim.dynamics import Dynamics
    from hardware.sim.dynamics import AxisLimits

    from .cycle_report import baseline_best, load_baseline

    base = load_baseline(path)
    figures = base["cycle"].get("dynamics") or {}
    axes = figures.get("axes") or {}
    dynamics = (Dynamics.of({a: AxisLimits(v["max_rate"], v["acceleration"], -1e9, 1e9) for a, v in axes.items()},
                            figures["settle_s"]) if axes else Dynamics())
    baseline_best(base, recipe, dynamics)
    log(f"bench: baseline {path} ({base['cycle']['parts']} parts, commit {base['commit']})")
    return base


def _subtape(tape, count: int):
    from .frames import FrameTape

    keys = list(tape.parts)[:max(1, count)]
    return FrameTape({k: tape.parts[k] for k in keys}, {k: tape.seeds[k] for k in keys})


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
