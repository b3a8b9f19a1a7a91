"""Quality on a held-out lot, for the bench: the report of `inspector eval` (the station's own cycle
on the virtual cell), run in-process or read from a report.json.

From the report's per-part rows it also derives the **coarse-only** baseline: a part fails as soon
as the coarse detector proposes a candidate scoring at or above its class's detect threshold × k
(k ≥ 1: the cycle keeps only candidates at or above the recipe's thresholds), with no fine shot and
no classifier. Sweeping k and taking the loosest setting whose escapes are no more than the
two-stage cell's gives the coarse-only overkill at the same escape count — what the fine stage buys.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from ..evaluation import EvalOptions, evaluate
from ..evaluation import figures as fig
from ..evaluation.report import BEGIN, END, headline, outcome_table, recall_table
from ..recipe import Recipe


def run_eval(parts: int, out: Path, recipe: Path, *, log: Callable[[str], None] = print) -> Path:
    """`inspector eval --parts N --out OUT --recipe R`, in this process; returns the report.json path."""
    log(f"  quality: inspector eval --parts {parts} --out {out}")
    evaluate(EvalOptions(recipe=Path(recipe), parts=parts, work=Path(out)), command=f"inspector eval --parts {parts}",
             log=log)
    return Path(out) / "report.json"


def load_report(path: Path) -> dict:
    report = json.loads(Path(path).read_text(encoding="utf-8"))
    if "summary" not in report or "parts" not in report:
        raise ValueError(f"{path}: not an `inspector eval` report (no summary/parts); run `inspector eval` again")
    return report


def coarse_only(report: dict, thresholds: dict[str, float]) -> dict | None:
    parts = report.get("parts") or []
    if not parts:
        return None
    rows = [(max((s / thresholds.get(c, 0.5) for c, s in p["coarse_max"].items()), default=0.0), p["truth"] == "FAIL")
            for p in parts]
    defective = sum(d for _, d in rows)
    good = len(rows) - defective
    s = report["summary"]
    two_escapes = s["escape"]["count"]

    def at(k: float) -> tuple[int, int]:
        return (sum(1 for score, d in rows if d and score < k), sum(1 for score, d in rows if not d and score >= k))

    levels = sorted({score for score, _ in rows if score >= 1.0} | {1.0}) + [float("inf")]
    curve = [(k, *at(k)) for k in levels]
    feasible = [(k, e, o) for k, e, o in curve if e <= two_escapes]
    chosen = max(feasible, key=lambda row: row[0]) if feasible else None

    def k_text(k: float) -> float | None:
        return None if k == float("inf") else round(k, 4)

    return {"defective_parts": defective, "good_parts": good,
            "two_stage": {"escapes": two_escapes, "overkill": s["line_overkill"]["count"]},
            "coarse_only_at_recipe_thresholds": dict(zip(("k", "escapes", "overkill"), (1.0, *at(1.0)))),
            "coarse_only_at_same_escape": (None if chosen is None else
                                           {"k": k_text(chosen[0]), "escapes": chosen[1], "overkill": chosen[2]}),
            "curve": [{"k": k_text(k), "escapes": e, "overkill": o} for k, e, o in curve]}


def summarise(report: dict, path: Path) -> dict:
    recipe = Recipe.load(report["recipe"]["path"])
    thresholds = {name: policy.detect_threshold for name, policy in recipe.classes.items()}
    stale = recipe.hash != report["recipe"]["hash"]
    return {"path": str(path), "report": {k: v for k, v in report.items() if k != "parts"},
            "coarse_only": None if stale else coarse_only(report, thresholds),
            "command": report.get("command", ""), "seconds": report.get("seconds")}


def section_lines(q: dict[str, Any], img: Callable[[str, str], list[str]]) -> list[str]:
    """The quality section of BENCHMARKS.md; its headline is the block `inspector eval --publish` renews."""
    out = ["## Quality on a held-out lot", ""]
    report = q.get("report")
    if not report:
        # the block stays, so that `inspector eval --publish` can fill it
        return out + [BEGIN, f"Not measured in this run: {q.get('reason', '`--skip quality`')}.", END, ""]
    source = "run by the bench" if q.get("how") == "run" else f"read from `{q['path']}`"
    out += [f"From `inspector eval` ({source}; {q.get('seconds')} s).", "", BEGIN, *headline(report), END, ""]
    out += ["Coarse detector: true defects proposed for a fine shot, per class and size (found/total):", "",
            *recall_table(report["defects"]), "",
            "End to end per true defect (detector → fine shot → classifier):", "", *outcome_table(report["defects"])]
    co = q.get("coarse_only")
    out += ["", "### Two-stage vs coarse-only at the same escape count", ""]
    if co is None:
        out += ["Not available: the report's recipe has changed since it was measured; run `inspector eval` again.", ""]
        return out
    dp, gp, t = co["defective_parts"], co["good_parts"], co["two_stage"]
    same, base = co.get("coarse_only_at_same_escape"), co["coarse_only_at_recipe_thresholds"]
    out += ["Coarse-only: a part fails when the detector proposes any candidate at or above its class's detect "
            "threshold × k (no fine shot, no classifier); k is swept over the same per-part data.", "",
            "| inspection | k | escapes | line overkill |", "|---|---|---|---|",
            f"| two-stage (the station) | 1 | {fig.short(fig.share(t['escapes'], dp))} | "
            f"{fig.short(fig.share(t['overkill'], gp))} |",
            f"| coarse only, recipe thresholds | 1 | {fig.short(fig.share(base['escapes'], dp))} | "
            f"{fig.short(fig.share(base['overkill'], gp))} |"]
    if same:
        k = f"{same['k']:.3f}" if same["k"] is not None else "∞"
        out += [f"| coarse only, same escapes | {k} | {fig.short(fig.share(same['escapes'], dp))} | "
                f"{fig.short(fig.share(same['overkill'], gp))} |"]
    out += [""] + img("quality_two_stage_vs_coarse.png", "two-stage vs coarse-only")
    return out
