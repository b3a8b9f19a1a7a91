"""`inspector eval` is the station: the same verdict per serial as `inspector run --sim`, scored
against the recipe's own rules, with the line's definitions of escape and overkill."""
import json
import sqlite3

import pytest

from hardware.sim.part import make_part
from inspector.cli import main
from inspector.demo import REFERENCE_RECIPE, truth_verdict
from inspector.evaluation import figures
from inspector.evaluation.report import BEGIN, END, replace_block
from inspector.recipe import Recipe


def test_eval_and_run_give_the_same_verdict_per_serial(tmp_path, capsys):
    """Done-when of the issue: `inspector eval --parts 6` and `inspector run --sim --seed 300000 --parts 6` agree
    serial by serial (verdict and reason), at different speed factors and worker counts."""
    assert main(["eval", "--parts", "6", "--workers", "2", "--out", str(tmp_path / "eval")]) == 0
    db = tmp_path / "run.db"
    assert main(["run", "--sim", "--seed", "300000", "--parts", "6", "--speed-factor", "20", "--db", str(db),
                 "--archive", ""]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "eval" / "report.json").read_text())
    with sqlite3.connect(db) as con:
        rows = con.execute("SELECT serial, verdict, reason FROM parts ORDER BY id").fetchall()
    assert [(p["serial"], p["verdict"], p["reason"]) for p in report["parts"]] == [tuple(r) for r in rows]
    assert [p["serial"] for p in report["parts"]] == [f"SIM-{300000 + i:06d}" for i in range(6)]
    assert {p["verdict"] for p in report["parts"]} <= {"PASS", "FAIL", "ERROR"}  # no REVIEW verdict of its own
    recipe = Recipe.load(REFERENCE_RECIPE)
    assert all(p["truth"] == truth_verdict(make_part(p["seed"]), recipe) for p in report["parts"])
    s = report["summary"]
    for key in ("escape", "line_overkill", "grey_band_good", "error"):
        assert set(s[key]) >= {"count", "of"} and 0 <= s[key]["count"] <= s[key]["of"]
    assert s["escape"]["of"] + s["line_overkill"]["of"] == 6 and s["error"]["of"] == 6
    assert report["recipe"]["hash"] == recipe.hash and report["models"]["detector"]["sha256"] == recipe.model_sha256("detector")
    assert "line overkill" in (tmp_path / "eval" / "report.md").read_text()


def test_truth_is_the_recipes_rules_not_any_defect():
    """Seed 300032 carries only a 0.076 mm burr: the recipe tolerates it, so the part is good by the rules."""
    part = make_part(300032)
    assert part.true_defects and all(d.size_mm < 0.1 for d in part.true_defects)
    assert truth_verdict(part, Recipe.load(REFERENCE_RECIPE)) == "PASS"


def _row(truth, verdict, grey=False):
    return {"truth": truth, "verdict": verdict, "grey_band": grey, "fine_shots": 2, "true_defects": []}


def test_line_overkill_counts_grey_band_and_error_and_escape_only_passes():
    rows = [_row("PASS", "PASS"), _row("PASS", "FAIL", grey=True), _row("PASS", "ERROR"), _row("PASS", "FAIL"),
            _row("FAIL", "PASS"), _row("FAIL", "ERROR"), _row("FAIL", "FAIL", grey=True)]
    s = figures.summary(rows)
    assert (s["line_overkill"]["count"], s["line_overkill"]["of"]) == (3, 4)
    assert (s["grey_band_good"]["count"], s["rule_fail_good"]["count"]) == (1, 1)
    assert (s["escape"]["count"], s["escape"]["of"]) == (1, 3)  # an ERROR is not an escape: it is not shipped
    assert (s["error"]["count"], s["error"]["of"]) == (2, 7)
    assert s["grey_band_defective"]["count"] == 1


@pytest.mark.parametrize("count, of, low, high", [(0, 10, 0.0, 0.2775), (10, 10, 0.7225, 1.0), (7, 263, 0.0130, 0.0539),
                                                  (41, 237, 0.1302, 0.2263)])
def test_wilson_interval(count, of, low, high):
    lo, hi = figures.wilson(count, of)
    assert lo == pytest.approx(low, abs=2e-4) and hi == pytest.approx(high, abs=2e-4)
    assert figures.text(figures.share(count, of)).endswith(f"{100 * hi:.1f} %)")


def test_size_bins_cover_every_size():
    assert [figures.size_bin(s) for s in (0.0, 0.099, 0.1, 0.3, 0.75, 1.0, 7.0)] == \
        ["0–0.1 mm", "0–0.1 mm", "0.1–0.25 mm", "0.25–0.5 mm", "0.5–1 mm", "≥1 mm", "≥1 mm"]


def test_published_block_is_replaced_and_a_document_without_one_is_named(tmp_path):
    doc = tmp_path / "README.md"
    doc.write_text(f"# Title\n\n{BEGIN}\nold figures 9.7 %\n{END}\n\nrest\n")
    replace_block(doc, ["- **escape**: new"])
    text = doc.read_text()
    assert "9.7" not in text and "- **escape**: new" in text and text.endswith(f"{END}\n\nrest\n")
    (tmp_path / "plain.md").write_text("no markers\n")
    with pytest.raises(ValueError, match=r"plain\.md: no generated block"):
        replace_block(tmp_path / "plain.md", ["x"])


def test_eval_rejects_bad_options_in_one_line(capsys):
    for argv, text in ((["eval", "--parts", "0"], "--parts must be at least 1"),
                       (["eval", "--speed-factor", "0"], "--speed-factor must be in"),
                       (["eval", "--workers", "0"], "--workers must be at least 1")):
        with pytest.raises(SystemExit, match=text):
            main(argv)


def test_published_figures_are_the_report_and_the_report_is_of_the_shipped_recipe():
    """README, BENCHMARKS.md and the model cards carry exactly the block rendered from docs/eval/report.json,
    and that report was measured with the reference recipe and models as they are now (else: re-run
    `inspector eval --parts 500 --publish`)."""
    from inspector.demo import PROJECT_ROOT
    from inspector.evaluation.report import headline

    report = json.loads((PROJECT_ROOT / "docs" / "eval" / "report.json").read_text())
    block = "\n".join([BEGIN, *headline(report), END])
    for doc in ("README.md", "BENCHMARKS.md", "models/detector.card.md", "models/classifier.card.md"):
        assert block in (PROJECT_ROOT / doc).read_text(encoding="utf-8"), doc
    recipe = Recipe.load(REFERENCE_RECIPE)
    assert report["recipe"]["hash"] == recipe.hash
    assert {role: m["sha256"] for role, m in report["models"].items()} == recipe.model_pins
    s = report["summary"]
    assert len(report["parts"]) == s["parts"] == s["escape"]["of"] + s["line_overkill"]["of"]
    assert s["escape"]["count"] == sum(p["truth"] == "FAIL" and p["verdict"] == "PASS" for p in report["parts"])


def test_false_candidates_are_those_on_no_true_defect():
    from types import SimpleNamespace as NS

    from inspector.evaluation.probe import PartWatch, false_candidates

    truth = (NS(box_px=(100, 100, 110, 110), is_nuisance=False), NS(box_px=(300, 300, 304, 304), is_nuisance=True))
    on_defect, on_dust, on_nothing = NS(box_px=(104, 104, 120, 120)), NS(box_px=(300, 300, 305, 305)), NS(box_px=(500, 5, 509, 9))
    watch = PartWatch(truth_by_view={"top": truth}, candidates_by_view={"top": (on_defect, on_dust, on_nothing),
                                                                         "north": (on_defect,)})
    assert false_candidates(watch) == 3  # a nuisance is no defect; a view with no true defect has only false ones
