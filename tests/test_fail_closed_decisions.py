"""Fail closed in the decision: a crop unlike the training data is `unknown` (review), never ok; a
defect measured just under a rule's size limit is reviewed, not tolerated; the rules judge the size
measured on the fine image; the record says which candidates each fine shot covered; implausible
frames part after part raise the station's alarm — all through the station's own code."""
import dataclasses
import json

import pytest

from hardware.sim.faults import FAULT_KINDS
from inspector.commissioning import write_recipe
from inspector.demo import REFERENCE_RECIPE, run_sim_lot
from inspector.events import Alarm, VerdictReady
from inspector.fine_size import FineSize
from inspector.planner import Candidate
from inspector.recipe import ClassPolicy, Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.two_stage import rule_size
from inspector.verdict import GREY_BAND_REASON, Finding, decide, failed_for_grey_band, judge_scores

RECIPE = Recipe.load(REFERENCE_RECIPE)
CLASSES = {"scratch": ClassPolicy(0.2, 0.6, (0.4, 0.6)), "dent": ClassPolicy(0.2, 0.6, (0.4, 0.6))}


@pytest.mark.parametrize("scores,novelty,limit,expected", [
    ({"ok": 0.95, "scratch": 0.05}, 9.0, 5.0, ("unknown", "review")),   # looks ok, but unlike anything seen
    ({"ok": 0.95, "scratch": 0.05}, 4.0, 5.0, ("scratch", "ok")),       # ok, and familiar
    ({"ok": 0.95, "scratch": 0.05}, None, 5.0, ("scratch", "ok")),      # a model without novelty: scores only
    ({"ok": 0.5, "scratch": 0.5}, 9.0, 5.0, ("unknown", "review")),     # grey band and novel: still review
    ({"ok": 0.1, "scratch": 0.9}, 9.0, 5.0, ("scratch", "defect")),     # a confident defect call stands
])
def test_novelty_turns_ok_into_unknown_review(scores, novelty, limit, expected):
    name, _, decision = judge_scores(scores, CLASSES, novelty, limit)
    assert (name, decision) == expected


def finding(size, cls="scratch", decision="defect"):
    return Finding(cls, 0.9, decision, "north", 0.0, 0.0, size)


def test_a_defect_just_under_a_rule_limit_is_reviewed_not_tolerated():
    margin = RECIPE.reimaging.size_uncertainty_mm
    near = decide([finding(0.1 - margin / 2)], RECIPE)
    assert near.verdict == "FAIL" and failed_for_grey_band(near.verdict, near.reason) and "below a rule's limit" in near.reason
    assert decide([finding(0.1 - 2 * margin)], RECIPE).verdict == "PASS"
    over = decide([finding(0.1)], RECIPE)
    assert over.verdict == "FAIL" and GREY_BAND_REASON not in over.reason


def test_unknown_findings_fail_to_review():
    verdict = decide([finding(0.3, "unknown", "review")], RECIPE)
    assert failed_for_grey_band(verdict.verdict, verdict.reason) and "(unknown)" in verdict.reason


def test_rules_judge_the_fine_size_unless_it_is_cut_off_by_the_frame():
    cand = Candidate("top", "top", "dent", 0.8, (0, 0, 6, 6), 0.0, 0.0, 0.30)
    fine = FineSize(0.12, 0.1, (0, 0, 12, 12), 100, 20.0, clipped=False)
    assert rule_size(cand, None) == 0.30
    assert rule_size(cand, fine) == 0.12
    assert rule_size(cand, dataclasses.replace(fine, clipped=True)) == 0.30


@pytest.fixture(scope="module")
def lot(tmp_path_factory):
    """Three parts with dead lights after one good part, on a recipe that raises the alarm after 2."""
    work = tmp_path_factory.mktemp("alarm")
    recipe = dataclasses.replace(RECIPE, plausibility=dataclasses.replace(RECIPE.plausibility, alarm_after=2))
    path = write_recipe(recipe, work / "recipe.json")
    events: list = []
    run_sim_lot(2, first_seed=300_000, speed_factor=50, recipe_path=path, db=work / "good.db", archive_dir=None,
                out=lambda line: None, on_event=events.append)
    run_sim_lot(3, first_seed=300_002, speed_factor=50, recipe_path=path, db=work / "dark.db", archive_dir=None,
                out=lambda line: None, on_event=events.append, faults=("dead-lights",))
    return work, events


def test_the_record_lists_what_each_fine_shot_covered(lot):
    work, events = lot
    records = [e.record for e in events if isinstance(e, VerdictReady) and e.record.verdict != "ERROR"]
    assert records and any(r.extra["fine_shots"] for r in records)
    for record in records:
        shots, sizes = record.extra["fine_shots"], record.extra["defects"]
        covered = sorted(i for shot in shots for i in shot["candidates"])
        assert covered == list(range(len(record.defects))) == list(range(len(sizes)))
        for shot in shots:
            assert all(record.defects[i].image_path == shot["image"] for i in shot["candidates"])
    with ResultStore(work / "good.db") as store:
        stored = store.query()[0][1]  # the extra survives the store
        assert json.loads(json.dumps(stored.extra)) == stored.extra and "fine_shots" in stored.extra


def test_implausible_parts_in_a_row_raise_the_alarm_and_stop_the_lot(lot):
    _, events = lot
    alarms = [e for e in events if isinstance(e, Alarm)]
    assert len(alarms) == 1 and alarms[0].part_id == "SIM-300003"
    assert "2 parts in a row with implausible frames" in alarms[0].message and "too dark" in alarms[0].message
    inspected = [e.record.serial for e in events if isinstance(e, VerdictReady)]
    assert inspected == ["SIM-300000", "SIM-300001", "SIM-300002", "SIM-300003"]  # SIM-300004 never started


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_no_pass_under_any_fault(kind, tmp_path, capsys):
    """`inspector run --sim --fault KIND`: every part ERROR (the first of them defective, the second good)."""
    from inspector.cli import main

    assert main(["run", "--sim", "--parts", "2", "--seed", "320000", "--speed-factor", "50", "--fault", kind,
                 "--db", str(tmp_path / "r.db"), "--archive", ""]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("SIM-")]
    assert len(lines) == 2 and all(" ERROR " in line and " PASS " not in line for line in lines), lines


def test_truth_judges_exact_sizes_without_the_measurement_margin():
    from hardware.sim.part import Defect, make_part
    from inspector.demo import truth_verdict

    stain = Defect(0, "stain", "east", 0.0, 0.0, 0.29, 0.2, 0.0)  # just under the 0.3 mm rule off the sealing face
    assert truth_verdict(make_part(1, defects=(stain,)), RECIPE) == "PASS"
    assert decide([finding(0.29, "stain")], RECIPE).verdict == "FAIL"  # measured, it is too close to call
