"""The bench's figures as PNG (matplotlib, Agg backend, imported only here and only when drawing;
without matplotlib the report is written without figures and says so)."""
from __future__ import annotations

from pathlib import Path

SEGMENTS = (("motion", "motion", "#4c72b0"), ("exposure", "exposure", "#55a868"),
            ("detect_wait", "detect on critical path", "#c44e52"), ("planning", "planning", "#8172b2"),
            ("classify_wait", "classify on critical path", "#dd8452"), ("other", "other", "#937860"))


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg", force=True)  # never a Qt backend in the core
    import matplotlib.pyplot as plt

    return plt


def save_figure(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_all(data: dict, plots_dir: Path) -> list[Path]:
    plt = _pyplot()
    if plt is None:
        return []
    plots = []
    from .cycle_report import before_after, timeline

    for fn in (cycle_breakdown, timeline, before_after, latency_bars, soak_series, coarse_only_curve):
        path = fn(plt, data, plots_dir)
        if path is not None:
            plots.append(path)
    return plots


def cycle_breakdown(plt, data: dict, plots_dir: Path) -> Path | None:
    c = data.get("cycle")
    if not c or not c.get("rows"):
        return None
    rows, st, sf = c["rows"], c["stages"], c["speed_factor"]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1.4, 1]})
    means = {k: st.get(k, {}).get("mean", 0.0) for k, _, _ in SEGMENTS}
    moves = st["plan_motion"]["mean"] / sf  # the model's move time, in wall seconds at this speed factor
    overhead = means["motion"] - moves
    segments = [("motion", f"motion: the same moves by the dynamics model {moves:.3f} s", SEGMENTS[0][2], moves, None),
                ("motion", f"motion overhead: serial round trips + status polls {overhead:.3f} s",
                 SEGMENTS[0][2], max(overhead, 0.0), "//")]
    segments += [(key, f"{label} {means[key]:.3f} s", colour, means[key], None) for key, label, colour in SEGMENTS[1:]]
    left = 0.0
    for _, label, colour, width, hatch in segments:
        ax1.barh(2, width, left=left, color=colour, label=label, hatch=hatch, edgecolor="white" if hatch else None)
        left += width
    for y, prefix in ((1, "plan"), (0, "coarse")):  # machine-model bounds, drawn in wall seconds at this speed factor
        motion, exposure = st[f"{prefix}_motion"]["mean"] / sf, st[f"{prefix}_exposure"]["mean"] / sf
        ax1.barh(y, motion, color=SEGMENTS[0][2], alpha=0.6)
        ax1.barh(y, exposure, left=motion, color=SEGMENTS[1][2], alpha=0.6)
    unit = "s" if sf == 1 else f"s (machine s / {sf:g})"
    ax1.set_yticks([0, 1, 2], [f"coarse-pass bound\n(model) {st['bound_coarse']['mean'] / sf:.2f} {unit}",
                               f"plan bound\n(model) {st['bound_plan']['mean'] / sf:.2f} {unit}",
                               f"measured cycle\n{st['total']['mean']:.2f} s"])
    ax1.set_xlabel(f"wall seconds per part (mean of {len(rows)} parts, speed factor {sf:g})")
    ax1.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2, fontsize=8)
    ax1.set_title(f"Where the cycle time goes (cycle / plan bound {c.get('ratio_of_means') or 0:.2f})")
    order = sorted(range(len(rows)), key=lambda i: rows[i]["total"])
    x = range(len(rows))
    ax2.plot(x, [rows[i]["total"] for i in order], "o-", label="measured cycle", color="#333333", ms=3)
    ax2.plot(x, [rows[i]["bound_plan"] / sf for i in order], "s-", label="plan bound (machine model)", color="#4c72b0", ms=3)
    ax2.plot(x, [rows[i]["bound_coarse"] / sf for i in order], "^--", label="coarse-pass bound (machine model)",
             color="#55a868", ms=3)
    ax2.set_xlabel("parts, sorted by cycle time")
    ax2.set_ylabel("wall s")
    ax2.set_title("Per part")
    ax2.legend(fontsize=8)
    return save_figure(plt, fig, plots_dir / "cycle_breakdown.png")


def latency_bars(plt, data: dict, plots_dir: Path) -> Path | None:
    lat = {k: v for k, v in (data.get("latency") or {}).items() if v.get("available")}
    if not lat:
        return None
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    names = list(lat)
    med = [lat[n]["detector"]["ms"]["median"] for n in names]
    p95 = [lat[n]["detector"]["ms"]["p95"] for n in names]
    ax1.bar(names, med, color="#4c72b0", label="median")
    ax1.scatter(names, p95, color="#c44e52", zorder=3, label="p95")
    ax1.set_ylabel("ms per coarse frame")
    ax1.set_title(f"Detector ({lat[names[0]]['detector']['input']})")
    ax1.legend(fontsize=8)
    width = 0.8 / len(names)
    for i, n in enumerate(names):
        batches = list(lat[n]["classifier"])
        ax2.bar([j + i * width for j in range(len(batches))], [lat[n]["classifier"][b]["ms"]["median"] for b in batches],
                width, label=n)
        ax2.set_xticks([j + (len(names) - 1) * width / 2 for j in range(len(batches))], [f"batch {b}" for b in batches])
    ax2.set_ylabel("ms per call (median)")
    ax2.set_title("Classifier")
    ax2.legend(fontsize=8)
    return save_figure(plt, fig, plots_dir / "latency.png")


def soak_series(plt, data: dict, plots_dir: Path) -> Path | None:
    s = data.get("soak")
    if not s or not s.get("series", {}).get("samples"):
        return None
    samples = s["series"]["samples"]
    x = [p["part"] for p in samples]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    axes[0].plot(x, [p["rss_mb"] for p in samples], color="#4c72b0")
    axes[0].set_title("Resident memory")
    axes[0].set_ylabel("MiB")
    axes[1].plot(x, [p["threads"] for p in samples], label="threads (kernel)", color="#c44e52")
    axes[1].plot(x, [p["python_threads"] for p in samples], label="threads (Python)", color="#dd8452")
    axes[1].plot(x, [p["fds"] for p in samples], label="open file descriptors", color="#55a868")
    axes[1].set_title("Threads and open files")
    axes[1].legend(fontsize=8)
    writes = s["series"]["write_ms"]
    axes[2].plot(range(1, len(writes) + 1), writes, ".", ms=2, color="#8172b2", alpha=0.5)
    axes[2].set_yscale("log")
    axes[2].set_title("Result-store write per part (committed)")
    axes[2].set_ylabel("ms")
    for ax in axes:
        ax.set_xlabel("parts")
    fig.suptitle(f"Soak: {s['parts']} parts at speed factor {s['speed_factor']:g}", fontsize=10)
    return save_figure(plt, fig, plots_dir / "soak.png")


def coarse_only_curve(plt, data: dict, plots_dir: Path) -> Path | None:
    q = (data.get("quality") or {}).get("coarse_only")
    if not q or not q.get("curve"):
        return None
    d, g = q["defective_parts"], q["good_parts"]
    esc = [100 * r["escapes"] / d if d else 0 for r in q["curve"]]
    ovk = [100 * r["overkill"] / g if g else 0 for r in q["curve"]]
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot(esc, ovk, "-", color="#4c72b0", label="coarse only (detector threshold × k swept)")
    t = q["two_stage"]
    ax.scatter([100 * t["escapes"] / d if d else 0], [100 * t["overkill"] / g if g else 0], color="#c44e52", zorder=3,
               label="two-stage (the station)")
    same = q.get("coarse_only_at_same_escape")
    if same:
        label = "coarse only, same escapes" + (f" (k={same['k']:.2f})" if same["k"] is not None else "")
        ax.scatter([100 * same["escapes"] / d if d else 0], [100 * same["overkill"] / g if g else 0], marker="s",
                   color="#4c72b0", zorder=3, label=label)
    ax.set_xlabel(f"escape % (of {d} parts the rules fail)")
    ax.set_ylabel(f"line overkill % (of {g} good parts)")
    ax.set_title("What the fine stage buys")
    ax.legend(fontsize=8)
    return save_figure(plt, fig, plots_dir / "quality_two_stage_vs_coarse.png")
