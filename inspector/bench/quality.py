"""Quality on a held-out lot: read (or produce) the report of `python -m training eval`.

The evaluation lives in the training package (it scores against the virtual cell's ground truth
and draws PR curves with matplotlib); the core never imports it, so the bench either reads an
existing `report.json` or runs the evaluation in its own process. From the report's per-part rows
it derives the **coarse-only** baseline: a part fails as soon as the coarse detector scores any
candidate at or above its class threshold × k, with no fine shot and no classifier. Sweeping k and
taking the loosest setting whose escape rate is no worse than the two-stage cell's gives the
coarse-only overkill at the same escape rate — what the fine stage buys.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Callable


def run_eval(parts: int, out: Path, *, log: Callable[[str], None] = print, timeout_s: float | None = None) -> Path:
    """`python -m training eval --parts N --out OUT` in its own process; returns the report.json path."""
    command = [sys.executable, "-m", "training", "eval", "--parts", str(parts), "--out", str(out)]
    log(f"  quality: {' '.join(command[1:])}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"training eval failed (exit {done.returncode}): {' | '.join(tail)}")
    return out / "report.json"


def load_report(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def part_score(coarse_max: dict[str, float], thresholds: dict[str, float]) -> float:
    """The part's strongest coarse candidate relative to its class threshold (≥ 1: a candidate)."""
    return max((score / thresholds.get(name, 0.5) for name, score in coarse_max.items()), default=0.0)


def coarse_only(report: dict) -> dict | None:
    """Two-stage vs coarse-only at the same escape rate, from the report's per-part rows."""
    parts = report.get("parts") or []
    if not parts or any("coarse_max" not in p for p in parts):
        return None
    thresholds = report["models"]["detector"]["thresholds"]
    rows = [(part_score(p["coarse_max"], thresholds), bool(p["defective"])) for p in parts]
    defective = sum(d for _, d in rows)
    good = len(rows) - defective
    pl = report["part_level"]
    two_escape = pl["escapes"]

    def at(k: float) -> tuple[int, int]:
        escapes = sum(1 for s, d in rows if d and s < k)
        overkill = sum(1 for s, d in rows if not d and s >= k)
        return escapes, overkill

    levels = sorted({s for s, _ in rows if s > 0}) + [float("inf")]
    curve = [(k, *at(k)) for k in levels]  # k, escapes, overkill; escapes grow with k
    feasible = [(k, e, o) for k, e, o in curve if e <= two_escape]
    chosen = max(feasible, key=lambda row: row[0]) if feasible else None
    shipped = at(1.0)
    return {"defective_parts": defective, "good_parts": good,
            "two_stage": {"escapes": two_escape, "overkill": pl["overkill"], "good_to_review": pl["good_to_review"],
                          "defective_to_review": pl["defective_to_review"], "errors": pl["errors"]},
            "coarse_only_at_shipped_thresholds": {"k": 1.0, "escapes": shipped[0], "overkill": shipped[1]},
            "coarse_only_at_same_escape": (None if chosen is None else
                                           {"k": None if chosen[0] == float("inf") else round(chosen[0], 4),
                                            "escapes": chosen[1], "overkill": chosen[2]}),
            "curve": [{"k": (None if k == float("inf") else round(k, 4)), "escapes": e, "overkill": o}
                      for k, e, o in curve]}


def summarise(report: dict, path: Path) -> dict:
    pl = report["part_level"]
    return {"path": str(path), "lot": report["lot"], "models": report["models"], "part_level": pl,
            "detector": report["detector"], "end_to_end": report["end_to_end"], "timing": report.get("timing", {}),
            "command": report.get("command", ""), "seconds": report.get("seconds"),
            "plots": [p for p in report.get("plots", [])], "coarse_only": coarse_only(report)}
