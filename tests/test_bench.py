"""`inspector bench` end to end on a tiny budget: the report has its sections, every figure is sane
(non-negative, with its denominator), and the held-out comparison is computed from per-part data.
Timings are measured, never asserted against a budget."""
import json
import math
import re

import pytest

from inspector import cli
from inspector.bench import BenchOptions, run_bench
from inspector.bench.quality import coarse_only

SECTIONS = ("## Machine and run", "## Summary", "## Cycle time per part", "## Inference latency and throughput",
            "## Quality on a held-out lot", "### Two-stage vs coarse-only at the same escape rate", "## Soak",
            "## Peer comparison (Ultralytics YOLO)", "## What the figures expose", "## Method and caveats")


def _non_negative(value):
    return value is not None and not (isinstance(value, float) and math.isnan(value)) and value >= 0


def _report(parts):
    thresholds = {"scratch": 0.5, "dent": 0.4}
    return {"parts": parts, "models": {"detector": {"thresholds": thresholds}},
            "part_level": {"escapes": sum(p["defective"] and p["verdict"] == "PASS" for p in parts),
                           "overkill": sum(not p["defective"] and p["verdict"] == "FAIL" for p in parts),
                           "good_to_review": 0, "defective_to_review": 0, "errors": 0}}


def test_coarse_only_matches_the_two_stage_escape_rate():
    parts = [  # (coarse scores, defective, two-stage verdict)
        {"coarse_max": {"scratch": 0.9}, "defective": True, "verdict": "FAIL"},
        {"coarse_max": {"dent": 0.3}, "defective": True, "verdict": "FAIL"},  # 0.75 × its threshold
        {"coarse_max": {}, "defective": True, "verdict": "PASS"},  # the detector never saw it: an escape
        {"coarse_max": {"scratch": 0.45}, "defective": False, "verdict": "PASS"},  # 0.9 ×: cleared by the fine stage
        {"coarse_max": {"scratch": 0.6}, "defective": False, "verdict": "PASS"},  # 1.2 ×
        {"coarse_max": {}, "defective": False, "verdict": "PASS"},
    ]
    result = coarse_only(_report(parts))
    assert result["defective_parts"] == 3 and result["good_parts"] == 3
    assert result["two_stage"] == {"escapes": 1, "overkill": 0, "good_to_review": 0, "defective_to_review": 0,
                                   "errors": 0}
    # shipped thresholds (k = 1): the dent at 0.75 × escapes too, the 1.2 × good part is overkill
    assert result["coarse_only_at_shipped_thresholds"] == {"k": 1.0, "escapes": 2, "overkill": 1}
    # to escape no more than the two-stage cell (1), k must come down to 0.75: two good parts fail
    assert result["coarse_only_at_same_escape"] == {"k": 0.75, "escapes": 1, "overkill": 2}
    assert coarse_only(_report([{k: v for k, v in p.items() if k != "coarse_max"} for p in parts])) is None


def test_bench_cli_refuses_unknown_parts_to_skip(capsys):
    with pytest.raises(SystemExit, match="--skip"):
        cli.main(["bench", "--skip", "cycle,warp"])


@pytest.fixture(scope="module")
def tiny_eval(tmp_path_factory):
    """A real two-part evaluation from the training package, as the bench reads it."""
    pytest.importorskip("torch")
    from training.evaluate import evaluate_lot

    from inspector.demo import PROJECT_ROOT

    out = tmp_path_factory.mktemp("eval")
    evaluate_lot(PROJECT_ROOT / "models" / "detector.onnx", PROJECT_ROOT / "models" / "classifier.onnx", parts=2,
                 split="smoke", out=out, threads=1, progress=False, command="test eval")
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
    for row in cycle["rows"]:
        for key in ("motion", "exposure", "detect", "detect_wait", "planning", "classify", "total", "lower_bound"):
            assert _non_negative(row[key]), (key, row[key])
        assert row["motion"] > 0 and row["exposure"] > 0
        assert row["total"] + 1e-3 >= row["lower_bound"]  # motion and exposure are parts of the cycle
        assert row["detect_wait"] <= row["detect"] + 1e-3 or row["detect"] == 0
        assert row["verdict"] in ("PASS", "FAIL", "ERROR")
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
    assert quality["how"] == "read" and quality["part_level"]["parts"] == 2
    pl = quality["part_level"]
    assert 0 <= pl["escapes"] <= pl["defective_parts"] and 0 <= pl["overkill"] <= pl["good_parts"]
    assert pl["defective_parts"] + pl["good_parts"] == 2
    assert quality["coarse_only"] is not None  # the evaluation records per-part coarse scores

    assert {p.name for p in result.plots} >= {"cycle_breakdown.png", "latency.png", "soak.png"}
    for plot in result.plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"docs/bench/{plot.name}" in text
