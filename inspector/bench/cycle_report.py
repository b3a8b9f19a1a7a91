"""The cycle-time findings, the before/after comparison (`--baseline bench.json`) and the timeline
plot of one part: where its time goes (moves, exposures, detection, classification)."""
from __future__ import annotations

import json
from pathlib import Path

from .plots import save_figure
from .stats import summary

LANES = (("motion", "move (wait for arrival)", "#4c72b0"), ("exposure", "lights + exposure", "#55a868"),
         ("detect", "detect (worker)", "#c44e52"), ("classify", "check + classify fine shot (worker)", "#dd8452"))
COMPARED = (("total", "cycle (measured)"), ("bound_plan", "plan run, machine model"),
            ("bound_coarse", "coarse pass alone, machine model"), ("bound_best", "best plan for the same shots, model"),
            ("motion_overhead", "driver overhead (measured motion − model moves)"),
            ("exposure", "lights + exposures (every step of every capture)"), ("detect_wait", "detection waited for"), ("classify_wait", "classification waited for"),
            ("fine_shots", "fine shots per part"))


def load_baseline(path: Path) -> dict:
    """The cycle section of an earlier run's bench.json, with where it came from."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    cycle = data.get("cycle")
    if not cycle or not cycle.get("rows"):
        raise ValueError(f"{path}: no cycle figures (run `inspector bench` without --skip cycle)")
    return {"source": str(path), "commit": data.get("machine", {}).get("commit", "unknown"),
            "command": data.get("options", {}).get("command", ""), "cycle": cycle,
            "recipe": data.get("recipe"), "models": data.get("models")}


def baseline_best(baseline: dict, recipe, dynamics) -> None:
    """Add bound_best (and the coarse pass in its shortest order) to a baseline made before they existed:
    computed from its recorded poses by the same machine model, never from its measurements."""
    from .cycle import plan_bounds

    rows = baseline["cycle"]["rows"]
    for row in rows:
        poses = row.get("plan_poses") or []
        if poses:
            model = plan_bounds(recipe, poses[0], poses[1:], dynamics)
            for key in ("bound_best", "best_motion", "bound_coarse", "coarse_motion"):  # coarse: in its shortest order
                row[key] = model[key]
    stages = baseline["cycle"]["stages"]
    for key in ("bound_best", "best_motion", "bound_coarse", "coarse_motion", "classify_wait"):
        stages[key] = summary(r.get(key, 0.0) for r in rows)


def _what_ran(base: dict, data: dict) -> str:
    def describe(run: dict) -> str:
        recipe, models = run.get("recipe") or {}, run.get("models") or {}
        return (f"recipe v{recipe.get('version', '?')}, {', '.join(models.values())}" if recipe else "recipe not recorded")
    before, after = describe(base), describe(data)
    return f"Same recipe and models ({after})" if before == after else f"Before {before}; after {after}"


def comparison(data: dict, img) -> list[str]:
    base = data.get("cycle_baseline")
    now = data.get("cycle")
    if not base or not now or not now.get("parts"):
        return []
    b, n = base["cycle"]["stages"], now["stages"]
    out = ["### Before and after", "",
           f"Before: `{base['source']}` (commit `{base['commit']}`, {base['cycle']['parts']} parts, speed factor "
           f"{base['cycle']['speed_factor']:g}). After: this run ({now['parts']} parts, speed factor "
           f"{now['speed_factor']:g}). {_what_ran(base, data)}; same seeds; seconds per part, mean (p95).", "",
           "| figure | before | after | change |", "|---|---|---|---|"]
    for key, label in COMPARED:
        if key not in b or key not in n:
            continue
        before, after = b[key]["mean"], n[key]["mean"]
        change = f"{100 * (after - before) / before:+.0f} %" if before else "—"
        out.append(f"| {label} | {before:.3f} ({b[key]['p95']:.3f}) | {after:.3f} ({n[key]['p95']:.3f}) | {change} |")
    ratio_b, ratio_n = base["cycle"].get("ratio_of_means"), now.get("ratio_of_means")
    if ratio_b and ratio_n:
        out.append(f"| cycle / plan-run bound (ratio of means) | {ratio_b:.3f} | {ratio_n:.3f} | |")
    verdicts = (base["cycle"].get("verdicts"), now.get("verdicts"))
    out += ["", f"Verdicts before {verdicts[0]}, after {verdicts[1]}. The decision code is the same (an archive "
                f"replays through the whole-part plan to the live record, tests/test_cycle.py), but the two runs need "
                f"not see the same frames: the baseline's commit may render parts differently (e.g. before the "
                f"area-sampled outline and holes of the dimensions work, which leave fewer false candidates at edges) "
                f"and drew sensor noise in shot order, so candidates, fine shots per part and a few verdicts differ "
                f"part by part. Compare the plan against its own best-plan bound for the planner's share; quality is "
                f"compared on the held-out evaluation, not here.", ""]
    return out + img("cycle_before_after.png", "cycle time before and after")


def findings(data: dict) -> list[str]:
    c = data.get("cycle")
    if not c or not c.get("parts"):
        return []
    s, sf = c["stages"], c["speed_factor"]
    total = s["total"]["mean"] or 1.0
    overhead = s["motion_overhead"]["mean"]
    moves = data["recipe"]["views"] + s["fine_shots"]["mean"]
    best = s.get("bound_best", {}).get("mean")
    out = [f"- **The plan**: {_f(s['bound_plan']['mean'])} s of machine time per part (model), against "
           f"{_f(best)} s for the best plan the planner finds knowing every face's shots in advance, and "
           f"{_f(s['bound_coarse']['mean'])} s for the coarse pass alone. The fine shots cost "
           f"{_f(s['fine_cost']['mean'])} s over {_f(s['fine_shots']['mean'], 1)} shots: a face's first shot is a "
           f"translation from the coarse camera's axis to the fine camera's that no rotation hides; shots on faces "
           f"that turn out to be ok are the rest. Fewer false candidates is what lowers it further."]
    out.append(f"- **Driver overhead**: measured motion − model moves {_f(overhead)} s per part "
               f"({_f(1000 * overhead / max(moves, 1), 1)} ms per move over {_f(moves, 1)} moves): the `G53 G0` and "
               f"`G4 P0` round trips and the `?` report that checks where the stage stopped.")
    sync = c.get("driver_sync")
    if sync:
        polls, dwell = sync["polls"], sync["dwell"]
        out.append(f"- **End of a move** (`inspector.bench.driver_sync`, the same {dwell['n']} moves each way on the "
                   f"emulated stage in real time; wall time from `move_to` to done less the model's time for the move): "
                   f"with `G4 P0` {1000 * dwell['mean']:.1f} ms per move (p95 {1000 * dwell['p95']:.1f}), with "
                   f"{1000 * sync['poll_interval_s']:.0f} ms status polls alone {1000 * polls['mean']:.1f} ms "
                   f"(p95 {1000 * polls['p95']:.1f}).")
    out.append(f"- **Compute on the critical path**: detection {_f(s['detect_wait']['mean'])} s per part (each "
               f"face's shots need its candidates), classification {_f(s.get('classify_wait', {}).get('mean'))} s "
               f"(it runs behind the next move), planning {_f(s['planning']['mean'])} s; other "
               f"{_f(s['other']['mean'])} s.")
    if sf == 1 and best:
        out.append(f"- **Against the targets**: mean cycle {_f(total, 2)} s (target ≤ 2.5 s); cycle / plan-run bound "
                   f"{_f(c.get('ratio_of_means'), 3)} (target ≤ 1.05).")
    return out


def timeline(plt, data: dict, plots_dir: Path) -> Path | None:
    """One part's timeline (the part with the median fine-shot count) as lanes of bars."""
    c = data.get("cycle")
    rows = [r for r in (c or {}).get("rows", []) if r.get("timeline")]
    if not rows:
        return None
    rows.sort(key=lambda r: r["fine_shots"])
    row = rows[len(rows) // 2]
    fig, ax = plt.subplots(figsize=(12, 3.4))
    for y, (lane, label, colour) in enumerate(LANES):
        bars = [(t0, t1 - t0) for name, _, t0, t1 in row["timeline"] if name == lane]
        busy = sum(w for _, w in bars)
        ax.broken_barh(bars, (len(LANES) - 1 - y - 0.35, 0.7), color=colour, label=f"{label}: {busy:.3f} s")
    ax.set_yticks(range(len(LANES)), [label.split(" (")[0] for _, label, _ in reversed(LANES)])
    ax.set_xlabel(f"seconds from the part's start (part {row['serial']}: {row['fine_shots']} fine shots, "
                  f"{row['verdict']}; cycle {row['total']:.3f} s, plan-run model {row['bound_plan']:.3f} s)")
    ax.set_xlim(0, max(row["total"], max(t1 for *_, t1 in row["timeline"])) * 1.01)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=2, fontsize=8, frameon=False)
    ax.set_title("One part's timeline: moves, exposures, detection and classification")
    return save_figure(plt, fig, plots_dir / "cycle_timeline.png")


def before_after(plt, data: dict, plots_dir: Path) -> Path | None:
    base, now = data.get("cycle_baseline"), data.get("cycle")
    if not base or not now or not now.get("rows"):
        return None
    keys = [k for k, _ in COMPARED[:5] if k in base["cycle"]["stages"] and k in now["stages"]]
    labels = [dict(COMPARED)[k] for k in keys]
    fig, ax = plt.subplots(figsize=(10, 4))
    ys = range(len(keys))
    for offset, (name, stages, colour) in enumerate((("before", base["cycle"]["stages"], "#999999"),
                                                     ("after", now["stages"], "#4c72b0"))):
        values = [stages[k]["mean"] for k in keys]
        ax.barh([y + 0.2 - 0.4 * offset for y in ys], values, height=0.38, color=colour, label=name)
        for y, v in zip(ys, values):
            ax.text(v, y + 0.2 - 0.4 * offset, f" {v:.2f}", va="center", fontsize=8)
    ax.axvline(2.5, color="#c44e52", linestyle="--", linewidth=1, label="target 2.5 s")
    ax.set_yticks(list(ys), labels)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds per part (mean; before {base['cycle']['parts']} parts, after {now['parts']})")
    ax.legend(fontsize=8)
    return save_figure(plt, fig, plots_dir / "cycle_before_after.png")


def _f(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
