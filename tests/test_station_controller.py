"""The Qt-free station controller in-process on the virtual cell: its states, refused commands
(counted, never executed), recipe selection, acknowledge, an invalid serial as an ERROR result,
a machine alarm as a fault with Reset, and the operator's lot."""
import threading

import pytest

from inspector.events import VerdictReady
from inspector.station import (FAULT_MACHINE, InspectionDone, LotFinished, StateChanged, StationController,
                               StationState)

S = StationState


@pytest.fixture
def controller(tmp_path, recipe):
    c = StationController(db=str(tmp_path / "r.db"), sim=True, speed_factor=200, recipes={1: recipe, 7: recipe})
    yield c
    c.close()


def test_states_refusals_recipes_and_acknowledge(controller):
    events = []
    controller.subscribe(events.append)
    assert controller.state == S.OFFLINE
    assert controller.inspect("SN-1") is False and controller.commands_refused == 1  # not started
    assert controller.acknowledge() is False and controller.commands_refused == 2
    assert controller.select_recipe(7) and controller.recipe_no == 7  # offline: allowed
    assert controller.select_recipe(3) is False and controller.recipe_no == 7  # unknown
    refused = controller.commands_refused
    controller.start()
    controller.start()  # idempotent
    assert controller.state == S.READY, controller.fault_reason

    assert controller.inspect("SN-1", recipe_no=1) is True
    assert controller.state in (S.BUSY, S.DONE)
    assert controller.inspect("SN-2") is False or controller.state == S.DONE  # never a second part at once
    assert controller.wait_for(S.DONE, S.FAULT, timeout=120) == S.DONE, controller.fault_reason
    result = controller.last_result
    assert result.serial == "SN-1" and result.verdict in ("PASS", "FAIL", "ERROR") and result.row > 0
    assert result.cycle_ms > 0
    assert controller.inspect("SN-2") is False  # DONE: the result has not been acknowledged
    assert controller.select_recipe(1) is True  # between parts
    assert controller.reset() is True and controller.wait_for(S.READY, S.FAULT, timeout=60) == S.READY
    assert controller.last_result is None
    assert controller.commands_refused >= refused + 1

    assert controller.inspect("") is True  # an empty serial: a result, not a refusal
    assert controller.wait_for(S.DONE, S.FAULT, timeout=30) == S.DONE
    assert controller.last_result.verdict == "ERROR" and "serial" in controller.last_result.reason
    assert controller.acknowledge() is True and controller.state == S.READY and controller.last_result is None
    assert controller.acknowledge() is False

    assert controller.inspect("SN-3", recipe_no=9) is True  # unknown recipe: ERROR result
    assert controller.wait_for(S.DONE, timeout=30) == S.DONE
    assert "recipe 9 unknown" in controller.last_result.reason
    controller.acknowledge()

    done = [e for e in events if isinstance(e, InspectionDone)]
    assert [e.result.serial for e in done] == ["SN-1", "", "SN-3"]
    states = [e.state for e in events if isinstance(e, StateChanged)]
    assert states[:3] == [S.READY, S.BUSY, S.DONE]
    assert any(isinstance(e, VerdictReady) for e in events)  # the cycle's events come through


def test_machine_alarm_faults_and_reset_recovers(controller):
    controller.start()
    controller.cell.motion.inject_alarm(1)
    assert controller.wait_for(S.FAULT, timeout=10) == S.FAULT
    assert controller.fault_code == FAULT_MACHINE and "alarm" in controller.fault_reason
    assert controller.inspect("SN-1") is False
    assert controller.reset() is True
    assert controller.wait_for(S.READY, S.FAULT, timeout=60) == S.READY
    assert controller.fault_code == 0


def test_lot_runs_on_a_worker_and_can_stop(controller):
    controller.start()
    finished = threading.Event()
    lots = []
    controller.subscribe(lambda e: isinstance(e, LotFinished) and (lots.append(e), finished.set()))
    assert controller.run_lot(2) is True
    assert controller.state == S.BUSY
    assert controller.run_lot(2) is False and controller.inspect("X") is False
    assert finished.wait(120)
    assert controller.state == S.READY and lots[0].fault is None and len(lots[0].tally.rows) == 2
    assert controller.next_seed == 500_002
