"""Small summary statistics, with the count always alongside."""
from __future__ import annotations

import math
from typing import Iterable


def percentile(values: Iterable[float], q: float) -> float:
    data = sorted(values)
    if not data:
        return math.nan
    k = (len(data) - 1) * q / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def summary(values: Iterable[float]) -> dict:
    data = [float(v) for v in values]
    if not data:
        return {"n": 0, "mean": math.nan, "median": math.nan, "p95": math.nan, "min": math.nan, "max": math.nan}
    return {"n": len(data), "mean": sum(data) / len(data), "median": percentile(data, 50),
            "p95": percentile(data, 95), "min": min(data), "max": max(data)}
