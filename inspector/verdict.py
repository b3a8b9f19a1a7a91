"""Verdict rules: from classified findings to PASS / FAIL, as pure functions.

A fine-stage score at or above the class's accept threshold is a defect; a score in the grey
band goes to review, and a part with anything under review is not PASS. Rules count defects of a
class at or above a minimum size in mm within a zone; more than `max_count` fails the part. A
defect class without any rule fails on any occurrence: a recipe tolerates only what it says.
A dimensional feature out of its tolerance fails the part with the value; one that could not be
measured makes a part that would pass ERROR (`judge_dimensions`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from .dimensions import Measurement
from .recipe import ANY_ZONE, ClassPolicy, Recipe, Rule

OK = "ok"
UNKNOWN = "unknown"  # a crop unlike the training data: review, never ok
GREY_BAND_REASON = "in the grey band"  # in the reason of a part failed only for uncertain findings


@dataclass(frozen=True)
class Finding:
    defect_class: str  # the classifier's best non-ok class, or "ok"
    score: float
    decision: str  # defect | review | ok
    face: str
    u_mm: float
    v_mm: float
    size_mm: float
    view: str = ""


@dataclass(frozen=True)
class Verdict:
    verdict: str  # PASS | FAIL
    reason: str
    violations: tuple[str, ...] = ()


def judge_scores(class_scores: Mapping[str, float], classes: Mapping[str, ClassPolicy], novelty: float | None = None,
                 novelty_limit: float | None = None) -> tuple[str, float, str]:
    """(class, score, decision) for one fine crop from the classifier's per-class probabilities. A
    crop beyond the novelty limit (unlike anything the classifier was trained on) is not cleared as
    ok: it is `unknown`, under review; a confident defect call stands."""
    candidates = [(score, name) for name, score in class_scores.items() if name != OK and name in classes]
    if not candidates:
        name, score, decision = OK, float(class_scores.get(OK, 1.0)), OK
    else:
        score, name = max(candidates)
        policy = classes[name]
        low, high = policy.grey_band
        decision = "defect" if score >= policy.accept_threshold else "review" if low <= score < high else OK
    if decision != "defect" and novelty is not None and novelty_limit is not None and novelty > novelty_limit:
        return UNKNOWN, score, "review"
    return name, score, decision


def decide(findings: Sequence[Finding], recipe: Recipe, *, size_uncertainty_mm: float | None = None) -> Verdict:
    """The part's verdict. Sizes within `size_uncertainty_mm` (default: the recipe's, for measured
    sizes; 0 for exact ones such as a part's true defects) below a rule's limit go to review."""
    defects = [f for f in findings if f.decision == "defect"]
    violations: list[str] = []
    ruled_classes = {rule.defect_class for rule in recipe.rules}
    for rule in recipe.rules:
        counted = [f for f in defects if f.defect_class == rule.defect_class and f.size_mm >= rule.min_size_mm
                   and _in_zone(f, rule, recipe)]
        if len(counted) > rule.max_count:
            where = "" if rule.zone == ANY_ZONE else f" in zone {rule.zone}"
            largest = max(f.size_mm for f in counted)
            violations.append(f"{len(counted)} {rule.defect_class} ≥ {rule.min_size_mm:.2f} mm{where} "
                              f"(allowed {rule.max_count}; largest {largest:.2f} mm on {counted[0].face})")
    unruled = sorted({f.defect_class for f in defects} - ruled_classes)
    for name in unruled:
        count = sum(f.defect_class == name for f in defects)
        violations.append(f"{count} {name} (no rule tolerates this class)")
    if violations:
        return Verdict("FAIL", "; ".join(violations), tuple(violations))
    margin = recipe.reimaging.size_uncertainty_mm if size_uncertainty_mm is None else size_uncertainty_mm
    near = [f for rule in recipe.rules for f in defects if f.defect_class == rule.defect_class
            and rule.min_size_mm - margin <= f.size_mm < rule.min_size_mm and _in_zone(f, rule, recipe)]
    if near and margin > 0:
        largest = max(near, key=lambda f: f.size_mm)
        return Verdict("FAIL", f"{len(near)} defect(s) {GREY_BAND_REASON} of size: within {margin:.2f} mm below a "
                               f"rule's limit (largest {largest.defect_class} {largest.size_mm:.3f} mm on {largest.face}): "
                               "to review")
    review = [f for f in findings if f.decision == "review"]
    if review:
        classes = ", ".join(sorted({f.defect_class for f in review}))
        return Verdict("FAIL", f"{len(review)} uncertain finding(s) {GREY_BAND_REASON} ({classes}): to review")
    return Verdict("PASS", f"{len(defects)} tolerated defect(s)" if defects else "no defects")


def judge_dimensions(verdict: Verdict, measurements: Sequence[Measurement], recipe: Recipe) -> Verdict:
    """The verdict with the recipe's dimensional features applied: every feature out of tolerance is a
    violation (FAIL, with its value); a feature the recipe names but that was not measured makes a part
    otherwise PASS (or FAIL only for the grey band) ERROR — a dimension not seen is no evidence."""
    features = recipe.dimensions.features
    if not features:
        return verdict
    by_name = {m.feature: m for m in measurements}
    violations, missing = [], []
    for feature in features:
        m = by_name.get(feature.name)
        if m is None or m.value_mm is None:
            missing.append(f"{feature.name} not measured" + (f" ({m.reason})" if m is not None and m.reason else ""))
        elif not m.in_tolerance:
            violations.append(f"{feature.name} {m.value_mm:.3f} mm out of tolerance "
                              f"({m.nominal_mm:.3f} ± {m.tolerance_mm:.3f} mm)")
    if violations:
        found = verdict.violations if verdict.verdict == "FAIL" else ()
        return Verdict("FAIL", "; ".join((*found, *violations)) if found else "; ".join(violations),
                       (*found, *violations))
    if missing and (verdict.verdict == "PASS" or failed_for_grey_band(verdict.verdict, verdict.reason)):
        return Verdict("ERROR", "dimensions: " + "; ".join(missing) + ": part not fully measured")
    return verdict


def failed_for_grey_band(verdict: str, reason: str) -> bool:
    """True when a recorded FAIL came only from grey-band findings (the line does not ship it either)."""
    return verdict == "FAIL" and GREY_BAND_REASON in reason  # rule violations give their own reason instead


def _in_zone(finding: Finding, rule: Rule, recipe: Recipe) -> bool:
    if rule.zone == ANY_ZONE:
        return True
    return recipe.zones[rule.zone].contains(finding.face, finding.u_mm, finding.v_mm)
