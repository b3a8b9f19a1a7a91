"""`inspector bench` end to end on a tiny budget: the report has its sections, every figure is sane
(non-negative, with its denominator), the held-out comparison is computed from per-part data, and
the cycle's bounds come from the machine model, not from the times they bound.
Timings are measured, never asserted against a budget."""
import json
import math
import re

import pytest

from hardware.pose import StagePose
from hardware.sim.dynamics import AxisLimits, Dynamics, move_time_s, plan_time_s
from inspector import cli
from inspector.bench import BenchOptions, rerender, run_bench
from inspector.bench.cycle import plan_bounds, record_lot, time_lot
from inspector.bench.quality import coarse_only
from inspector.bench.run import FIRST_SEED
from inspector.demo import REFERENCE_RECIPE
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.path_plan import order_views
from inspector.recipe import Recipe

SECTIONS = ("## Machine and run", "## Summary", "## Cycle time per part", "## Inference latency and throughput",
            "## Quality on a held-out lot", "### Two-stage vs coarse-only at the same escape count", "## Soak",
            "## Peer comparison (Ultralytics YOLO)", "## What the figures expose", "## Method and caveats")


def _non_negative(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value >= 0


def _report(parts):
    return {"parts": parts, "summary": {
        "escape": {"count": sum(p["truth"] == "FAIL" and p["verdict"] == "PASS" for p in parts)},
        "line_overkill": {"count": sum(p["truth"] == "PASS" and p["verdict"] != "PASS" for p in parts)}}}


def test_coarse_only_matches_the_two_stage_escape_count():
    thresholds = {"scratch": 0.5, "dent": 0.4}
    parts = [  # the cycle's candidates (at or above the recipe's thresholds), truth by the rules, two-stage verdict
        {"coarse_max": {"scratch": 0.9}, "truth": "FAIL", "verdict": "FAIL"},  # 1.8 × its threshold
        {"coarse_max": {"dent": 0.8}, "truth": "FAIL", "verdict": "FAIL"},  # 2.0 ×
        {"coarse_max": {}, "truth": "FAIL", "verdict": "PASS"},  # the detector never proposed it: an escape
        {"coarse_max": {"scratch": 0.55}, "truth": "PASS", "verdict": "PASS"},  # 1.1 ×: cleared by the fine stage
        {"coarse_max": {"scratch": 0.95}, "truth": "PASS", "verdict": "PASS"},  # 1.9 ×
        {"coarse_max": {}, "truth": "PASS", "verdict": "PASS"},
    ]
    result = coarse_only(_report(parts), thresholds)
    assert result["defective_parts"] == 3 and result["good_parts"] == 3
    assert result["two_stage"] == {"escapes": 1, "overkill": 0}
    # recipe thresholds (k = 1): the same escape, but both good parts with a candidate fail
    assert result["coarse_only_at_recipe_thresholds"] == {"k": 1.0, "escapes": 1, "overkill": 2}
    # the loosest k that escapes no more than the two-stage cell: 1.8 (at 1.9 the 1.8 × scratch escapes)
    assert result["coarse_only_at_same_escape"] == {"k": 1.8, "escapes": 1, "overkill": 1}
    assert coarse_only(_report([]), thresholds) is None


def test_bench_cli_refuses_unknown_parts_to_skip(capsys):
    with pytest.raises(SystemExit, match="--skip"):
        cli.main(["bench", "--skip", "cycle,warp"])


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory):
    """A real two-part `inspector eval`, as the bench reads it."""
    from inspector.evaluation import EvalOptions, evaluate

    out = tmp_path_factory.mktemp("eval")
    evaluate(EvalOptions(recipe=REFERENCE_RECIPE, parts=2, workers=1, speed_factor=100.0, work=out),
             command="test eval", log=lambda line: None)
    return out / "report.json"


def test_tiny_bench_writes_a_report_with_sane_figures(tmp_path, tiny_eval):
    options = BenchOptions(out=tmp_path, work=tmp_path / "work", parts=2, speed_factor=10.0, latency_repeats=2,
                           soak_parts=4, soak_minutes=10.0, soak_cached_parts=1, eval_report=tiny_eval,
                           command="inspector bench (test)")
    result = run_bench(options, log=lambda line: None)
    text = result.report.read_text(encoding="utf-8")
    for section in SECTIONS:
        assert section in text, section
    assert "load average" in text and "**commit**" in text and "`inspector bench (test)`" in text
    assert re.search(r"\(\d+/\d+\)", text), "rates come with their counts"
    assert "Not run" in text or "**Not run.**" in text  # the peer comparison says it was not run

    data = json.loads((tmp_path / "work" / "bench.json").read_text())
    assert data["machine"]["cores"] >= 1 and data["machine"]["cpu_model"]

    cycle = data["cycle"]
    assert cycle["parts"] == 2 and len(cycle["rows"]) == 2
    assert cycle["replay_misses"] == 0 and cycle["replayed_frames"] > 0
    dynamics = Dynamics.of({a: AxisLimits(v["max_rate"], v["acceleration"], 0, 0) for a, v in
                            cycle["dynamics"]["axes"].items()}, cycle["dynamics"]["settle_s"])
    for row in cycle["rows"]:
        for key in ("motion", "exposure", "detect", "detect_wait", "planning", "classify", "total"):
            assert _non_negative(row[key]), (key, row[key])
        assert row["motion"] > 0 and row["exposure"] > 0
        assert row["bound_coarse"] > 0 and row["bound_plan"] > 0
        assert row["bound_coarse"] <= row["bound_plan"] + 1e-9
        # the plan bound is the model's time of the logged poses, not a measured figure
        assert row["plan_motion"] == pytest.approx(plan_time_s(row["plan_poses"], dynamics))
        assert row["bound_plan"] == pytest.approx(row["plan_motion"] + row["plan_exposure"])
        assert len(row["plan_poses"]) == 1 + data["recipe"]["views"] + row["fine_shots"]
        assert row["motion_overhead"] == pytest.approx(row["motion"] - row["plan_motion"] / cycle["speed_factor"])
        assert row["bound_best"] <= row["bound_plan"] + 1e-9
        assert row["verdict"] in ("PASS", "FAIL", "ERROR")
    assert "lower_bound" not in cycle["stages"] and "lower bound" not in text
    assert "plan bound" in text and "coarse-pass bound" in text and "Cycle / plan bound" in text
    assert 0.0 <= cycle["critical_share_overall"] <= 1.0

    cpu = data["latency"]["CPU"]
    assert cpu["available"] and cpu["detector"]["calls"] == 2 and _non_negative(cpu["detector"]["ms"]["median"])
    assert set(cpu["classifier"]) == {"1", "8", "32"}
    for entry in cpu["classifier"].values():
        assert _non_negative(entry["ms"]["median"]) and entry["session_calls"] >= 1
    for name, entry in data["latency"].items():
        assert entry["available"] or entry["reason"], name  # a provider that cannot run says why

    soak = data["soak"]
    assert soak["parts"] == soak["target_parts"] == 4 and soak["stopped_by"] == "target"
    assert soak["write_ms"]["n"] == 4 and _non_negative(soak["write_ms"]["median"])
    assert sum(soak["verdicts"].values()) == 4 and soak["replay_misses"] == 0
    assert soak["samples"] >= 2 and soak["rss_mb"]["end"] > 0 and soak["fds"]["end"] > 0

    quality = data["quality"]
    summary = quality["report"]["summary"]
    assert quality["how"] == "read" and summary["parts"] == 2
    assert summary["escape"]["of"] + summary["line_overkill"]["of"] == 2
    assert quality["coarse_only"] is not None  # the evaluation records per-part coarse scores
    assert "line overkill" in text and "inspector eval --publish" in text  # the block --publish renews

    assert {p.name for p in result.plots} >= {"cycle_breakdown.png", "latency.png", "soak.png"}
    for plot in result.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"docs/bench/{plot.name}" in text

    assert {"cycle_timeline.png"} <= {p.name for p in result.plots} and "one part's timeline" in text
    assert cycle["driver_sync"]["dwell"]["n"] == cycle["driver_sync"]["polls"]["n"] > 0
    compared = rerender(tmp_path / "work" / "bench.json", tmp_path / "cmp", baseline=tmp_path / "work" / "bench.json")
    both = compared.report.read_text(encoding="utf-8")  # --report-from with --baseline: before and after
    assert "### Before and after" in both and "| cycle (measured) |" in both and "+0 %" in both
    assert (tmp_path / "cmp" / "docs" / "bench" / "cycle_before_after.png").is_file()
    again = rerender(tmp_path / "work" / "bench.json", tmp_path / "again")  # --report-from, new format
    assert again.report.read_text(encoding="utf-8").count("plan bound") == text.count("plan bound")
    old = dict(data, cycle=dict(cycle, stages={k: v for k, v in cycle["stages"].items() if not k.startswith("bound")}))
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ValueError, match="old format"):
        rerender(tmp_path / "old.json", tmp_path / "old")


def test_plan_bounds_of_the_reference_recipe():
    """Hand-made pose sequences on the reference recipe: exposures from the recipe, moves from the model."""
    recipe = Recipe.load(REFERENCE_RECIPE)
    views = [v.pose for v in recipe.views]
    home, dynamics = (0.0, 0.0, 40.0, 0.0, 0.0), Dynamics()
    steps = lambda name: len(recipe.light_programs[name]["steps"])  # noqa: E731
    coarse_exposure = sum(v.exposure_us * steps(v.light_program) for v in recipe.views) / 1e6
    fine_exposure = recipe.reimaging.exposure_us * steps(recipe.reimaging.light_program) / 1e6
    cost = lambda a, b: move_time_s(a, b, dynamics)  # noqa: E731
    views = order_views(StagePose(*home), views, lambda p: p, cost)  # the shortest order from home
    nothing = plan_bounds(recipe, home, views, dynamics)  # a detector that proposes nothing
    assert nothing["bound_plan"] == pytest.approx(nothing["bound_coarse"]) == pytest.approx(nothing["bound_best"])
    assert nothing["bound_coarse"] == pytest.approx(plan_time_s([home, *views], dynamics) + coarse_exposure)
    recipe_order = plan_bounds(recipe, home, [v.pose for v in recipe.views], dynamics)
    assert recipe_order["bound_coarse"] == nothing["bound_coarse"] <= recipe_order["bound_plan"]
    last = views[-1]
    fine = StagePose(last.x + 5.0, last.y, last.z, last.a, last.b)
    one_shot = plan_bounds(recipe, home, [*views, fine], dynamics)
    # one fine shot 5 mm along X from the last view: a triangle 2 √(5/3000) + settle, and its exposure
    added = 2 * math.sqrt(5 / 3000) + dynamics.settle_s + fine_exposure
    assert one_shot["bound_plan"] == pytest.approx(nothing["bound_plan"] + added)
    assert one_shot["bound_coarse"] == nothing["bound_coarse"] and one_shot["fine_cost"] == pytest.approx(added)
    assert one_shot["bound_best"] == pytest.approx(one_shot["bound_plan"])  # nothing better for that shot
    # the same shot taken after going back to its face from the first view costs more than the best plan
    back = plan_bounds(recipe, home, [*views, views[0], fine], dynamics)
    assert back["bound_best"] == pytest.approx(one_shot["bound_best"])
    assert back["bound_best"] < back["bound_plan"]


@pytest.fixture(scope="module")
def one_part_tape(tmp_path_factory):
    recipe = Recipe.load(REFERENCE_RECIPE)
    detector = Detector.open(str(recipe.model_path("detector")))
    classifier = Classifier.open(str(recipe.model_path("classifier")))
    work = tmp_path_factory.mktemp("cycle")
    tape, _ = record_lot(recipe, detector, classifier, [FIRST_SEED + 1], work, log=lambda line: None)
    return recipe, detector, classifier, tape, work


def test_bounds_do_not_depend_on_measured_timings(one_part_tape):
    """The same part at two speed factors: measured times differ, the model's bounds are the same."""
    recipe, detector, classifier, tape, work = one_part_tape
    rows = [time_lot(recipe, detector, classifier, tape, work / str(sf), speed_factor=sf, log=lambda line: None).parts[0]
            for sf in (20.0, 200.0)]
    assert rows[0]["plan_poses"] == rows[1]["plan_poses"]
    for key in ("bound_plan", "bound_coarse", "plan_motion", "plan_exposure"):
        assert rows[0][key] == rows[1][key] > 0, key
