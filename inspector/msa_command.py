"""`inspector msa --sim --parts 10 --repeats 3 [--sessions 2] [--json] [--out DIR]`: a crossed gauge
R&R study of the recipe's dimensional features and an attribute agreement study of the PASS/FAIL
verdict, on the station's own cycle (`InspectionCycle.inspect`, the code that judges production).

On the virtual cell every part (seeds from MSA_FIRST_SEED) is inspected `repeats` times per session
and taken out and put back into the fixture before every inspection: each load places it anew
within the fixture's tolerance (± 0.2 mm, ± 1°), drawn from the part, session and trial. A session
is a freshly started and homed cell: the appraiser factor of the AIAG study (the cell has no human
appraiser; what changes between sessions is the start-up, and with it the stage's homing). The
truth is the part's true dimensions and `truth_verdict`. Only the virtual cell is implemented: a
study on real parts needs the QA engineer's reference values (CMM) and is left to come.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

MSA_FIRST_SEED = 600_000  # outside the training, validation, held-out and smoke seed ranges
BIAS_TARGET_MM = 0.005
GRR_TARGET_PERCENT = 10.0
AGREEMENT_TARGET = 0.95
TARGET_KINDS = ("length", "width", "hole_diameter", "hole_u", "hole_v", "hole_distance")  # outline and hole features


def add_parser(sub: argparse._SubParsersAction) -> None:
    msa = sub.add_parser("msa", help="measurement system analysis: gauge R&R of the dimensions, PASS/FAIL agreement",
                         description="Crossed gauge R&R (AIAG MSA 4th ed., ANOVA method) of the recipe's dimensional "
                                     "features and attribute agreement of the verdict, on the station's own cycle.")
    msa.add_argument("--sim", action="store_true", help="on the virtual cell (the only study implemented)")
    msa.add_argument("--parts", type=int, default=10, help="parts in the study (default 10)")
    msa.add_argument("--repeats", type=int, default=3, help="trials per part and session, reloaded each time (default 3)")
    msa.add_argument("--sessions", type=int, default=2, help="sessions (the appraiser factor): fresh cell each (default 2)")
    msa.add_argument("--first-seed", type=int, default=MSA_FIRST_SEED, help=f"first part seed (default {MSA_FIRST_SEED})")
    msa.add_argument("--recipe", default=None, help="recipe (default: the reference recipe)")
    msa.add_argument("--speed-factor", type=float, default=50.0, help="virtual cell speed factor (default 50)")
    msa.add_argument("--json", action="store_true", help="print the figures as JSON")
    msa.add_argument("--out", default=None, help="folder for report.md, report.json and the plot")
    msa.add_argument("--publish", action="store_true",
                     help="write the report to docs/msa and regenerate BENCHMARKS.md's MSA block")
    msa.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .demo import REFERENCE_RECIPE

    if not args.sim:
        print("inspector msa: only the virtual cell study is implemented: pass --sim", file=sys.stderr)
        return 2
    for name in ("parts", "repeats", "sessions"):
        low = 2 if name != "sessions" else 1
        if getattr(args, name) < low:
            print(f"inspector msa: --{name} must be at least {low}, got {getattr(args, name)}", file=sys.stderr)
            return 2
    if args.speed_factor <= 0:
        print(f"inspector msa: --speed-factor must be positive, got {args.speed_factor}", file=sys.stderr)
        return 2
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    study = run_sim_study(args.parts, args.repeats, args.sessions, first_seed=args.first_seed,
                          recipe_path=args.recipe or REFERENCE_RECIPE, speed_factor=args.speed_factor, log=log)
    summary = summarise(study)
    from .msa_report import MSA_BEGIN, benchmark_lines, write_report

    outs = [Path(args.out)] if args.out else []
    if args.publish:
        from .demo import PROJECT_ROOT
        from .evaluation.report import replace_block

        outs.append(PROJECT_ROOT / "docs" / "msa")
    for out in outs:
        for path in write_report(summary, study, out):
            log(f"wrote {path}")
    if args.publish:
        log(f"wrote {replace_block(PROJECT_ROOT / 'BENCHMARKS.md', benchmark_lines(summary), MSA_BEGIN)}")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        from .msa_report import text_table

        print(text_table(summary))
    return 0


def load_pose(seed: int, session: int, trial: int, tolerance: tuple[float, float, float]) -> tuple[float, float, float]:
    """Where one load puts the part in the fixture (dx mm, dy mm, dθ °), within its tolerance."""
    rng = random.Random(f"msa-load {seed} {session} {trial}")
    return tuple(round(rng.uniform(-t, t), 4) for t in tolerance)  # type: ignore[return-value]


def run_sim_study(parts: int, repeats: int, sessions: int, *, first_seed: int, recipe_path: str | Path,
                  speed_factor: float = 50.0, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Inspect every part `repeats` times in each of `sessions` fresh virtual cells, reloading it each time."""
    import tempfile

    from hardware.sim.cell import VirtualCell
    from hardware.sim.part import FIXTURE_TOLERANCE, make_part

    from .cycle import InspectionCycle
    from .demo import open_models, sim_station, true_measurements, truth_verdict
    from .devices import open_devices
    from .measuring import RECORD_KEY
    from .recipe import Recipe
    from .results.sqlite_store import ResultStore

    recipe = Recipe.load(recipe_path)
    if not recipe.dimensions:
        raise SystemExit(f"inspector msa: recipe {recipe_path} names no dimensional features")
    detector, classifier = open_models(recipe, log)
    features = [f.name for f in recipe.dimensions.features]
    seeds = list(range(first_seed, first_seed + parts))
    base = [make_part(seed) for seed in seeds]
    values = np.full((len(features), parts, sessions, repeats), np.nan)
    verdicts: list[list[str]] = [[] for _ in seeds]
    reasons: list[list[str]] = [[] for _ in seeds]
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="msa-") as work:
        for session in range(sessions):
            with VirtualCell(seed=first_seed, speed_factor=speed_factor) as cell, \
                    ResultStore(Path(work) / f"session-{session}.db") as store:
                station = sim_station(cell)
                devices = open_devices(station, virtual_cell=cell)
                cycle = InspectionCycle(station, devices, recipe, detector, classifier, store)
                try:
                    cycle.home()
                    for trial in range(repeats):
                        for index, part in enumerate(base):
                            loaded = replace(part, fixture_error=load_pose(part.seed, session, trial, FIXTURE_TOLERANCE))
                            cell.load_part(loaded)
                            _, record = cycle.inspect(part.serial, part.serial)
                            verdicts[index].append(record.verdict)
                            reasons[index].append(record.reason)
                            measured = record.extra.get(RECORD_KEY, {})
                            for k, name in enumerate(features):
                                value = measured.get(name, {}).get("value_mm")
                                values[k, index, session, trial] = np.nan if value is None else value
                        log(f"session {session + 1}/{sessions}, trial {trial + 1}/{repeats}: {parts} parts")
                finally:
                    cycle.close()
                    devices.close()
    truth_values = [{m.feature: m.value_mm for m in true_measurements(p, recipe)} for p in base]
    return {"recipe": {"id": recipe.id, "version": recipe.version, "hash": recipe.hash, "path": str(recipe_path)},
            "features": [f.to_dict() | {"name": f.name} for f in recipe.dimensions.features],
            "seeds": seeds, "parts": parts, "sessions": sessions, "repeats": repeats,
            "values": {name: values[k].tolist() for k, name in enumerate(features)},
            "truth": {name: [t[name] for t in truth_values] for name in features},
            "verdicts": verdicts, "reasons": reasons, "truth_verdicts": [truth_verdict(p, recipe) for p in base],
            "models": {"detector": detector.info.name, "classifier": classifier.info.name},
            "provider": detector.model.provider.describe("detector"),
            "run_s": round(time.time() - started, 1), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def summarise(study: dict[str, Any]) -> dict[str, Any]:
    """Per feature: bias, EV, AV, GRR, PV, %GRR of the tolerance, ndc; attribute agreement; the targets."""
    from .msa import attribute_agreement, bias, gauge_rr

    rows = []
    for feature in study["features"]:
        name = feature["name"]
        y = np.array(study["values"][name], dtype=float)
        missing = int(np.isnan(y).sum())
        row: dict[str, Any] = {"feature": name, "kind": feature["kind"], "nominal_mm": feature["nominal_mm"],
                               "tolerance_mm": feature["tolerance_mm"], "measurements": int(y.size), "missing": missing}
        if missing:
            row["error"] = f"{missing} of {y.size} measurements missing: no gauge R&R"
        else:
            grr = gauge_rr(y, 2 * feature["tolerance_mm"])
            b = bias(y, study["truth"][name])
            row.update({"bias_um": round(1000 * b.mean, 2), "worst_part_bias_um": round(1000 * b.worst_part, 2),
                        "ev_um": round(1000 * grr.ev, 2), "av_um": round(1000 * grr.av, 2),
                        "grr_um": round(1000 * grr.grr, 2), "pv_um": round(1000 * grr.pv, 2),
                        "grr_percent_tolerance": round(grr.percent_tolerance, 1),
                        "grr_percent_tv": round(grr.percent_tv, 1), "ndc": grr.ndc})
            if feature["kind"] in TARGET_KINDS:
                row["meets_targets"] = (abs(b.mean) <= BIAS_TARGET_MM and grr.percent_tolerance <= GRR_TARGET_PERCENT)
        rows.append(row)
    agreement = attribute_agreement(study["verdicts"], study["truth_verdicts"])
    disagreements = [{"seed": seed, "truth": truth, "verdicts": {v: verdicts.count(v) for v in sorted(set(verdicts))},
                      "reasons": sorted({r[:160] for v, r in zip(verdicts, reasons) if v != truth})}
                     for seed, truth, verdicts, reasons in zip(study["seeds"], study["truth_verdicts"], study["verdicts"],
                                                               study["reasons"])
                     if any(v != truth for v in verdicts)]
    targeted = [r for r in rows if "meets_targets" in r]
    return {"study": {k: study[k] for k in ("recipe", "parts", "sessions", "repeats", "seeds", "models", "provider",
                                            "run_s", "when")},
            "features": rows,
            "attribute": agreement.as_dict() | {
                "truth_agreement": round(agreement.truth_agreeing_decisions / agreement.decisions, 4),
                "truth_verdicts": study["truth_verdicts"], "disagreements": disagreements},
            "targets": {"bias_um": 1000 * BIAS_TARGET_MM, "grr_percent_tolerance": GRR_TARGET_PERCENT,
                        "attribute_truth_agreement": AGREEMENT_TARGET,
                        "features_meeting": sum(r["meets_targets"] for r in targeted), "features_targeted": len(targeted),
                        "attribute_met": agreement.truth_agreeing_decisions / agreement.decisions >= AGREEMENT_TARGET}}
