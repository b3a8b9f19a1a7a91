"""The golden-sample check: the recipe's masters validate; a master passes only with its expected
verdict and defects; the station refuses production until the masters passed, again after a Reset
from a fault and when the recipe or its models change; every check is audited; the operator
workspace shows it and its Start is blocked until the masters pass (real Qt, offscreen)."""
import copy
import json

import pytest

from inspector.demo import REFERENCE_RECIPE
from inspector.golden import GoldenGate, judge_master
from inspector.golden_masters import Master
from inspector.recipe import Recipe
from inspector.schema import ConfigError
from inspector.station import StationController, StationState

GOOD = Master("good", "SIM-1", "PASS", (), 1)
SCRATCHED = Master("scratch", "SIM-2", "FAIL", ("scratch",), 2)


def test_masters_in_the_reference_recipe_and_their_validation():
    recipe = Recipe.load(REFERENCE_RECIPE)
    assert {m.expect for m in recipe.masters} == {"PASS", "FAIL"}
    assert all(m.sim_seed is not None for m in recipe.masters)
    data = json.loads(REFERENCE_RECIPE.read_text())
    for change, message in (({"defects": ["scratch"]}, "masters[0].defects: a master expected to PASS"),
                            ({"expect": "MAYBE"}, "masters[0].expect: expected one of"),
                            ({"serial": ""}, "masters[0].serial"),
                            ({"name": data["masters"][1]["name"]}, "masters[1].name: master")):
        bad = copy.deepcopy(data)
        if "name" in change:
            bad["masters"][1]["name"] = bad["masters"][0]["name"]
        else:
            bad["masters"][0].update(change)
        with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
            Recipe.from_dict(bad, source="r.json")


def test_judging_a_master():
    assert judge_master(GOOD, "PASS", "no defects", ()).ok
    assert not judge_master(GOOD, "FAIL", "1 dent", ("dent",)).ok
    assert judge_master(SCRATCHED, "FAIL", "1 scratch", ("scratch", "dent")).ok
    missed = judge_master(SCRATCHED, "FAIL", "1 dent", ("dent",))
    assert not missed.ok and "scratch not called" in missed.why
    assert not judge_master(SCRATCHED, "ERROR", "camera", ()).ok


def test_the_gate_opens_for_one_recipe_and_model_set():
    gate = GoldenGate()
    key = ("housing", "7", "sha256:x", "detector=d@1")
    assert "start of shift" in gate.pending(key, [GOOD, SCRATCHED])
    assert gate.pending(key, []) is None  # a recipe without masters is not gated
    failed = gate.settle(key, [GOOD, SCRATCHED], [judge_master(GOOD, "PASS", "", ()),
                                                  judge_master(SCRATCHED, "PASS", "no defects", ())])
    assert not failed.passed and "masters failed: scratch" in gate.pending(key, [GOOD, SCRATCHED])
    passed = gate.settle(key, [GOOD, SCRATCHED], [judge_master(GOOD, "PASS", "", ()),
                                                  judge_master(SCRATCHED, "FAIL", "", ("scratch",))])
    assert passed.passed and gate.pending(key, [GOOD, SCRATCHED]) is None
    promoted = key[:3] + ("detector=d@2",)
    assert "models changed" in gate.pending(promoted, [GOOD, SCRATCHED])
    gate.require("start of shift")
    assert "start of shift" in gate.pending(key, [GOOD, SCRATCHED])
    partial = gate.settle(key, [GOOD, SCRATCHED], [judge_master(GOOD, "PASS", "", ())])
    assert not partial.passed and "scratch: not inspected" in partial.reason


def test_station_refuses_production_until_the_masters_pass(tmp_path, recipe):
    from inspector.access import AccessControl

    with StationController(db=str(tmp_path / "r.db"), sim=True, speed_factor=200, recipes={1: recipe},
                           golden_check=True) as station:
        events = []
        station.subscribe(events.append)
        station.start()
        assert station.wait_for(StationState.READY, timeout=60) == StationState.READY
        assert "start of shift" in station.golden_block()
        refused = station.commands_refused
        assert not station.inspect("P-1") and not station.run_lot(1)
        assert station.commands_refused == refused + 2 and station.state == StationState.READY
        assert station.run_golden_check(who=("qa1", "qa"))
        assert station.wait_for(StationState.BUSY, timeout=5) in (StationState.BUSY, StationState.READY)
        assert station.wait_for(StationState.READY, timeout=120) == StationState.READY
        checked = [e for e in events if type(e).__name__ == "GoldenChecked"]
        assert checked and checked[-1].passed, [r.line() for r in checked[-1].results]
        assert station.golden_block() is None
        assert station.inspect("P-1")
        assert station.wait_for(StationState.DONE, timeout=60) == StationState.DONE
        rows = AccessControl(station.store).audit(action="golden_check")
        assert rows and rows[0].who == "qa1" and rows[0].new["passed"] is True
        assert {m["name"] for m in rows[0].new["masters"]} == {m.name for m in Recipe.load(recipe).masters}
        station.acknowledge()
        station._set_state(StationState.FAULT, 3, "camera lost")  # as a crash mid-part leaves it
        assert station.reset()
        assert station.wait_for(StationState.READY, timeout=60) == StationState.READY
        assert "Reset after a fault" in station.golden_block()
        station.start_shift()
        assert "start of shift" in station.golden_block()


def test_operator_start_is_blocked_until_the_masters_pass(qtbot, tmp_path, recipe):
    pytest.importorskip("PyQt6")
    from ui.station_window import StationWindow

    window = StationWindow(parts=1, speed_factor=50, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe),
                           demo_users=True)
    qtbot.addWidget(window)
    window.station.controller.golden_enabled = True
    window.resize(1280, 900)
    window.show()
    window.set_session(window.station.access.login("operator", "1111"))
    qtbot.waitUntil(lambda: window.station.devices is not None and window.station.controller.state.value == "ready",
                    timeout=60_000)
    panel = window.operator.golden
    panel.refresh()
    assert panel.state == "required" and "start of shift" in panel.status.text()
    qtbot.waitUntil(lambda: "Golden check" in window.operator.start_reason.text(), timeout=10_000)
    assert not window.operator.start_button.isEnabled()
    with pytest.raises(RuntimeError, match="check the masters first"):
        window.station.start_lot()  # what Start would do
    assert window.station.controller.last_record is None  # nothing inspected
    panel.check_button.click()
    qtbot.waitUntil(lambda: panel.state in ("open", "failed"), timeout=120_000)
    assert panel.state == "open", panel.status.text()
    assert panel.results.count() == len(Recipe.load(recipe).masters)
    assert "parts 0" in window.operator.counters.text()  # masters are shown, not counted as production
    assert window.grab().save(str(tmp_path / "golden.png"))
    qtbot.waitUntil(window.operator.start_button.isEnabled, timeout=10_000)
    before = sum(window.operator.verdicts.values())  # the masters' verdicts were shown too
    window.operator.start_button.click()
    qtbot.waitUntil(lambda: sum(window.operator.verdicts.values()) == before + 1, timeout=120_000)
    qtbot.waitUntil(lambda: not window.station.running, timeout=30_000)
