"""The evaluation's figures from its per-part rows, each as a count of a denominator with a 95 %
Wilson score interval — as the line sees them:

- escape: parts the recipe's rules FAIL on their true defects (truth FAIL) that the cell PASSed;
- line overkill: parts whose true defects the rules tolerate (truth PASS) that the cell did not
  PASS — rule FAILs, grey-band FAILs and ERRORs alike, since the line ships none of them;
- grey band (good parts): of those, the ones failed only for uncertain findings;
- error: parts of the lot that ended as ERROR;
- per true defect: whether the coarse detector proposed it (recall per class and size bin), and
  what became of it end to end (defect call, review, cleared as ok, proposed but not imaged,
  never proposed).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterable

SIZE_BINS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5), (0.5, 1.0), (1.0, math.inf))
OUTCOMES = ("defect", "review", "ok", "not imaged", "not proposed")


def size_bin(size_mm: float) -> str:
    for low, high in SIZE_BINS:
        if low <= size_mm < high:
            return bin_name(low, high)
    return bin_name(*SIZE_BINS[-1])


def bin_name(low: float, high: float) -> str:
    return f"≥{low:g} mm" if math.isinf(high) else f"{low:g}–{high:g} mm"


def bin_names() -> list[str]:
    return [bin_name(low, high) for low, high in SIZE_BINS]


def wilson(count: int, of: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (sensible at 0/n and n/n, unlike the normal one)."""
    if of <= 0:
        return (0.0, 1.0)
    p = count / of
    centre = (p + z * z / (2 * of)) / (1 + z * z / of)
    half = z * math.sqrt(p * (1 - p) / of + z * z / (4 * of * of)) / (1 + z * z / of)
    return (max(0.0, centre - half), min(1.0, centre + half))


def share(count: int, of: int) -> dict[str, Any]:
    low, high = wilson(count, of)
    return {"count": int(count), "of": int(of), "rate": (count / of) if of else None,
            "ci95": [round(low, 4), round(high, 4)]}


def text(figure: dict[str, Any]) -> str:
    """'2.7 % (7/263; 95 % CI 1.3–5.4 %)'."""
    if not figure["of"]:
        return f"– ({figure['count']}/0)"
    low, high = figure["ci95"]
    return (f"{100 * figure['rate']:.1f} % ({figure['count']}/{figure['of']}; "
            f"95 % CI {100 * low:.1f}–{100 * high:.1f} %)")


def short(figure: dict[str, Any]) -> str:
    """'2.7 % (7/263)'."""
    return f"{100 * figure['rate']:.1f} % ({figure['count']}/{figure['of']})" if figure["of"] else f"– ({figure['count']}/0)"


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    bad = [r for r in rows if r["truth"] == "FAIL"]
    good = [r for r in rows if r["truth"] == "PASS"]
    verdicts = Counter((r["truth"], r["verdict"]) for r in rows)
    return {
        "escape": share(sum(r["verdict"] == "PASS" for r in bad), len(bad)),
        "line_overkill": share(sum(r["verdict"] != "PASS" for r in good), len(good)),
        "grey_band_good": share(sum(bool(r["grey_band"]) for r in good), len(good)),
        "rule_fail_good": share(sum(r["verdict"] == "FAIL" and not r["grey_band"] for r in good), len(good)),
        "error": share(sum(r["verdict"] == "ERROR" for r in rows), len(rows)),
        "grey_band_defective": share(sum(bool(r["grey_band"]) for r in bad), len(bad)),
        "parts": len(rows), "truth_fail": len(bad), "truth_pass": len(good),
        "with_true_defects": sum(bool(r["true_defects"]) for r in rows),
        "with_tolerated_defects_only": sum(bool(r["true_defects"]) for r in good),
        "verdicts": {f"truth {t} → {v}": n for (t, v), n in sorted(verdicts.items())},
        "fine_shots": {"total": sum(r["fine_shots"] for r in rows),
                       "per_part": round(sum(r["fine_shots"] for r in rows) / len(rows), 2) if rows else None},
        "false_candidates": {"total": sum(r.get("false_candidates", 0) for r in rows), "parts": len(rows),
                             "per_part": round(sum(r.get("false_candidates", 0) for r in rows) / len(rows), 2)
                             if rows else None},
    }


def defect_tables(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Per class and size bin: how many true defects were proposed (recall) and each end-to-end outcome."""
    outcome: dict[str, Counter] = defaultdict(Counter)
    recall: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0]))
    for row in rows:
        for d in row["true_defects"]:
            proposed = d["outcome"] != "not proposed"
            for cls in (d["kind"], "all"):
                for b in (size_bin(d["size_mm"]), "all"):
                    cell = recall[cls][b]
                    cell[0] += proposed
                    cell[1] += 1
            for key in (d["kind"], size_bin(d["size_mm"]), "all"):
                outcome[key][d["outcome"]] += 1
    classes = sorted(c for c in recall if c != "all") + ["all"] * ("all" in recall)
    return {"recall": {cls: {b: share(*cell) for b, cell in recall[cls].items()} for cls in classes},
            "outcome": {key: {o: share(counts.get(o, 0), sum(counts.values())) for o in OUTCOMES}
                        for key, counts in outcome.items()}}
