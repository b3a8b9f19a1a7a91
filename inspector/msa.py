"""Measurement system analysis, as pure functions: crossed gauge R&R by the ANOVA method of the AIAG
MSA manual (4th ed.), bias against reference values, and attribute agreement of PASS/FAIL decisions.

Gauge R&R: measurements y[part, appraiser, trial]. Two-way ANOVA with the part × appraiser
interaction kept in the model (no pooling: without an F test to decide it by, keeping it is the
conservative choice — an interaction that is noise only adds to AV). Variance components:
  repeatability   σ²_EV = MS_E
  interaction     σ²_PA = max(0, (MS_PA − MS_E) / r)
  appraiser       σ²_A  = max(0, (MS_A − MS_PA) / (n r))
  part            σ²_P  = max(0, (MS_P − MS_PA) / (a r))
EV = σ_EV, AV = √(σ²_A + σ²_PA), GRR = √(EV² + AV²), PV = σ_P, TV = √(GRR² + PV²);
%GRR of the tolerance = 100 · 6 GRR / (USL − LSL); %GRR of the total variation = 100 GRR / TV;
ndc = ⌊1.41 · PV / GRR⌋. With one appraiser the model is one-way (parts), AV = 0.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np


@dataclass(frozen=True)
class GaugeRR:
    parts: int
    appraisers: int
    trials: int
    ev: float  # repeatability (σ, same unit as the data)
    av: float  # reproducibility (σ)
    grr: float
    pv: float  # part variation (σ)
    tv: float
    percent_tolerance: float  # 100 · 6 GRR / tolerance width
    percent_tv: float
    ndc: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def gauge_rr(y: np.ndarray, tolerance_width: float) -> GaugeRR:
    """Crossed gauge R&R of y[part, appraiser, trial] (ANOVA method, see the module docstring)."""
    y = np.asarray(y, dtype=float)
    if y.ndim != 3 or min(y.shape) < 1 or y.shape[0] < 2 or y.shape[2] < 2:
        raise ValueError(f"gauge R&R needs y[part, appraiser, trial] with ≥ 2 parts and ≥ 2 trials, got shape {y.shape}")
    if not np.all(np.isfinite(y)):
        raise ValueError("gauge R&R: every part must be measured in every trial (a value is missing)")
    n, a, r = y.shape
    grand = y.mean()
    part_means = y.mean(axis=(1, 2))
    appr_means = y.mean(axis=(0, 2))
    cell_means = y.mean(axis=2)
    ss_p = a * r * float(((part_means - grand) ** 2).sum())
    ss_a = n * r * float(((appr_means - grand) ** 2).sum())
    ss_cells = r * float(((cell_means - grand) ** 2).sum())
    ss_pa = ss_cells - ss_p - ss_a
    ss_e = float(((y - cell_means[:, :, None]) ** 2).sum())
    ms_e = ss_e / (n * a * (r - 1))
    if a == 1:
        var_ev, var_av = ms_e, 0.0
        var_p = max(0.0, (ss_p / (n - 1) - ms_e) / r)
    else:
        ms_p, ms_a, ms_pa = ss_p / (n - 1), ss_a / (a - 1), max(ss_pa, 0.0) / ((n - 1) * (a - 1))
        var_ev = ms_e
        var_pa = max(0.0, (ms_pa - ms_e) / r)
        var_av = max(0.0, (ms_a - ms_pa) / (n * r)) + var_pa
        var_p = max(0.0, (ms_p - ms_pa) / (a * r))
    ev, av, pv = math.sqrt(var_ev), math.sqrt(var_av), math.sqrt(var_p)
    grr = math.hypot(ev, av)
    tv = math.hypot(grr, pv)
    return GaugeRR(n, a, r, ev, av, grr, pv, tv,
                   100.0 * 6.0 * grr / tolerance_width if tolerance_width > 0 else math.inf,
                   100.0 * grr / tv if tv > 0 else 0.0,
                   int(1.41 * pv / grr) if grr > 0 else 0)


@dataclass(frozen=True)
class Bias:
    mean: float  # mean of measured − reference over every measurement
    worst_part: float  # the part whose mean error is largest in magnitude (signed)
    measurements: int


def bias(y: np.ndarray, reference: Sequence[float]) -> Bias:
    """Bias of y[part, ...] against each part's reference value."""
    y = np.asarray(y, dtype=float)
    ref = np.asarray(reference, dtype=float).reshape((-1,) + (1,) * (y.ndim - 1))
    errors = y - ref
    per_part = errors.reshape(len(y), -1).mean(axis=1)
    return Bias(float(errors.mean()), float(per_part[np.argmax(np.abs(per_part))]), int(errors.size))


def cohen_kappa(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Cohen's kappa of two binary ratings of the same items (1: perfect, 0: chance). NaN when both
    raters give one category only (agreement by chance is then certain)."""
    x, y = np.asarray(a, bool), np.asarray(b, bool)
    observed = float((x == y).mean())
    expected = float(x.mean() * y.mean() + (1 - x.mean()) * (1 - y.mean()))
    return (observed - expected) / (1 - expected) if expected < 1 else math.nan


def fleiss_kappa(ratings: np.ndarray) -> float:
    """Fleiss' kappa of binary ratings[item, rater] (agreement of the repeated decisions with each other)."""
    ratings = np.asarray(ratings, bool)
    m = ratings.shape[1]
    if m < 2:
        return math.nan
    yes = ratings.sum(axis=1).astype(float)
    counts = np.stack([yes, m - yes], axis=1)
    p_item = ((counts * (counts - 1)).sum(axis=1)) / (m * (m - 1))
    p_cat = counts.sum(axis=0) / counts.sum()
    expected = float((p_cat ** 2).sum())
    return (float(p_item.mean()) - expected) / (1 - expected) if expected < 1 else math.nan


@dataclass(frozen=True)
class Agreement:
    parts: int
    decisions: int
    self_agreeing_parts: int  # parts whose every decision was the same
    truth_agreeing_parts: int  # parts whose every decision matched the truth
    truth_agreeing_decisions: int
    errors: int  # decisions that were ERROR (counted as not PASS)
    kappa_truth: float  # Cohen's kappa of all decisions against the truth
    kappa_self: float  # Fleiss' kappa of the repeated decisions

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def attribute_agreement(verdicts: Sequence[Sequence[str]], truth: Sequence[str]) -> Agreement:
    """Agreement of PASS/not-PASS decisions: verdicts[part] holds every decision on that part (all
    sessions and trials), truth[part] the reference verdict."""
    passed = np.array([[v == "PASS" for v in row] for row in verdicts], bool)
    good = np.array([t == "PASS" for t in truth], bool)
    match = passed == good[:, None]
    flat_truth = np.repeat(good, passed.shape[1])
    return Agreement(parts=len(truth), decisions=int(passed.size),
                     self_agreeing_parts=int(np.all(passed == passed[:, :1], axis=1).sum()),
                     truth_agreeing_parts=int(match.all(axis=1).sum()),
                     truth_agreeing_decisions=int(match.sum()),
                     errors=sum(v == "ERROR" for row in verdicts for v in row),
                     kappa_truth=cohen_kappa(passed.ravel(), flat_truth), kappa_self=fleiss_kappa(passed))
