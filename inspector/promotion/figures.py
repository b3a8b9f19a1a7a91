"""Part-level figures on one set, the held-out report reader, and the regression gate.

Figures carry the hash of the recipe that produced them, so the gate can refuse a comparison whose
candidate figures came from any recipe other than the candidate recipe it would promote.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

REVIEW_SET = "review set"  # the gate side of the review labels (never trained on)
HELDOUT_LOT = "held-out lot"
SETS = (REVIEW_SET, HELDOUT_LOT)


@dataclass(frozen=True)
class SetFigures:
    """Part-level escape and line overkill on one set, always with their denominators."""
    set_name: str
    defective_parts: int
    good_parts: int
    escapes: int  # defective parts PASSed
    overkill: int  # good parts not PASSed (grey band and ERROR included: the line does not ship them)
    skipped: int = 0  # parts that could not be judged (named in `notes`)
    notes: tuple[str, ...] = ()
    parts: tuple[str, ...] = ()  # serials judged, in order (both recipes must see the same parts)
    recipe_hash: str = ""  # the recipe these figures were produced with ('' when unknown)

    @property
    def escape_rate(self) -> float:
        return self.escapes / self.defective_parts if self.defective_parts else 0.0

    @property
    def overkill_rate(self) -> float:
        return self.overkill / self.good_parts if self.good_parts else 0.0

    def escape_text(self) -> str:
        return _fraction(self.escapes, self.defective_parts)

    def overkill_text(self) -> str:
        return _fraction(self.overkill, self.good_parts)

    def as_dict(self) -> dict[str, Any]:
        return {"set": self.set_name, "defective_parts": self.defective_parts, "good_parts": self.good_parts,
                "escapes": self.escapes, "overkill": self.overkill, "skipped": self.skipped,
                "notes": list(self.notes), "parts": list(self.parts), "recipe_hash": self.recipe_hash}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SetFigures":
        return cls(data["set"], int(data["defective_parts"]), int(data["good_parts"]), int(data["escapes"]),
                   int(data["overkill"]), int(data.get("skipped", 0)), tuple(data.get("notes", ())),
                   tuple(data.get("parts", ())), str(data.get("recipe_hash", "")))


def _fraction(n: int, d: int) -> str:
    return f"{n}/{d} ({100.0 * n / d:.1f} %)" if d else f"{n}/0 (–)"


# -- the held-out lot ----------------------------------------------------------------------------------
def eval_command(recipe_path: str | Path, *, parts: int, out: str | Path, python: str = sys.executable) -> list[str]:
    """The held-out evaluation of one recipe (its models, thresholds and grey band) as a command line:
    the station's own cycle on the virtual cell, `DIR/report.json` out."""
    return [python, "-m", "inspector.cli", "eval", "--recipe", str(recipe_path), "--parts", str(int(parts)),
            "--out", str(out)]


def figures_from_eval_report(path: str | Path, *, recipe_hash: str | None = None) -> SetFigures:
    """The held-out lot's part-level figures from `inspector eval`'s report.json. With `recipe_hash`,
    a report made with any other recipe is refused (it would score settings the gate is not asked about)."""
    path = Path(path)
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
        summary = report["summary"]
        escape, overkill = summary["escape"], summary["line_overkill"]
        made_with = str(report.get("recipe", {}).get("hash", ""))
        figures = SetFigures(HELDOUT_LOT, int(escape["of"]), int(overkill["of"]), int(escape["count"]),
                             int(overkill["count"]), parts=tuple(str(p["serial"]) for p in report.get("parts", ())),
                             recipe_hash=made_with)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{path}: not a held-out evaluation report ({type(exc).__name__}: {exc})") from None
    if recipe_hash is not None and made_with != recipe_hash:
        raise ValueError(f"{path}: made with recipe {made_with or '(unknown)'}, expected {recipe_hash}")
    lot = report.get("lot", {})
    lot_text = ", ".join(f"{k} {v}" for k, v in lot.items()) if isinstance(lot, dict) else str(lot)
    return replace(figures, notes=(f"lot: {lot_text or '?'}",))


# -- the gate -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GateRule:
    overkill_margin: float = 0.02  # candidate overkill rate may exceed production's by this much (absolute)

    def describe(self) -> str:
        return (f"Promote only if, on the review set (gate side) and on the held-out lot, the candidate recipe lets "
                f"through no more defective parts (escapes) than production, and its overkill is at most "
                f"{100 * self.overkill_margin:.1f} percentage points above production's.")


@dataclass(frozen=True)
class Comparison:
    """Production vs candidate figures per set. `candidate_recipe_hash` names the one candidate recipe
    the figures are about; `candidate_models` its pinned model digests; `production_recipe_hash` the
    production recipe compared against (a promotion refuses when either changed since)."""
    production: dict[str, SetFigures]
    candidate: dict[str, SetFigures]
    candidate_recipe_hash: str = ""
    production_recipe_hash: str = ""
    candidate_models: dict[str, str] = field(default_factory=dict)  # role → sha256 (64 hex)
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class GateResult:
    passed: bool
    failures: tuple[str, ...]
    checks: tuple[str, ...]  # one line per figure compared, pass or fail

    def message(self) -> str:
        return "gate passed" if self.passed else "gate failed: " + "; ".join(self.failures)


def gate(comparison: Comparison, rule: GateRule = GateRule(), sets: Sequence[str] = SETS) -> GateResult:
    """The rule on each of `sets` (default both: a promotion needs both; the teaching loop on the
    virtual cell, which has no review set, asks for the held-out lot alone and says so)."""
    failures, checks = [], []
    for name in sets:
        prod, cand = comparison.production.get(name), comparison.candidate.get(name)
        if prod is None or cand is None:
            failures.append(f"{name}: not evaluated for {'production' if prod is None else 'the candidate'}")
            continue
        for who, figures, expected in (("candidate", cand, comparison.candidate_recipe_hash),
                                       ("production", prod, comparison.production_recipe_hash)):
            if expected and figures.recipe_hash != expected:
                failures.append(f"{name}: {who} figures come from recipe {figures.recipe_hash or '(unknown)'}, "
                                f"not the {who} recipe {expected}")
        if (prod.defective_parts, prod.good_parts) != (cand.defective_parts, cand.good_parts):
            failures.append(f"{name}: the two recipes were judged on different parts "
                            f"({prod.defective_parts}+{prod.good_parts} vs {cand.defective_parts}+{cand.good_parts})")
            continue
        line = f"{name} escapes: candidate {cand.escape_text()} vs production {prod.escape_text()}"
        if cand.escapes > prod.escapes:
            failures.append(line)
        checks.append(("✗ " if cand.escapes > prod.escapes else "✓ ") + line)
        limit = prod.overkill_rate + rule.overkill_margin
        worse = cand.overkill_rate > limit + 1e-12
        line = (f"{name} overkill: candidate {cand.overkill_text()} vs production {prod.overkill_text()} "
                f"(limit {100 * limit:.1f} %)")
        if worse:
            failures.append(line)
        checks.append(("✗ " if worse else "✓ ") + line)
    return GateResult(not failures, tuple(failures), tuple(checks))
