"""The stage controller's auxiliary I/O for cells without a PLC: OK/NG/ERROR lamps on digital outputs
(grblHAL M62–M65) and a part-present sensor read with M66 (gcode.c `IoMCode_*`; the result comes in
the next status report as `|In:<value>`, -1 on timeout: report.c `report_realtime_status`)."""
import threading

import pytest

from hardware.errors import ControllerError
from hardware.motion.grblhal import GrblHalController
from hardware.sim.grbl_emulator import GrblEmulator
from hardware.transport import LineTransport
from tests.test_grbl_protocol import replay


@pytest.fixture
def stage():
    with GrblEmulator(speed_factor=20.0, homing_required=False) as emulator:
        controller = GrblHalController(LineTransport(emulator.port_path, name="motion", read_timeout_s=1.0),
                                       origin=emulator.stage_origin)
        controller.connect()
        yield emulator, controller
        controller.disconnect()


def test_io_protocol_table():
    with GrblEmulator(speed_factor=20.0, homing_required=False) as emulator:
        emulator.set_input(1, True)
        replay(emulator, [
            (b"M64P2\n", ["ok"]), (b"M65P2\n", ["ok"]),
            (b"M64\n", ["error:28"]), (b"\n", ["ok"]),  # no port
            (b"M64P9\n", ["error:39"]), (b"\n", ["ok"]),  # beyond the board's outputs
            (b"M66P1L0\n", ["ok"]),
            (b"?", ["<Idle|MPos:-100.000,-60.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0|Ov:100,100,100|In:1>"]),
            (b"?", ["<Idle|MPos:-100.000,-60.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0>"]),  # once
            (b"M66P0L3Q0.05\n", ["ok"]),  # input 0 never goes high: times out
            (b"?", ["<Idle|MPos:-100.000,-60.000,-40.000,-360.000,-90.000|Bf:35,1023|FS:0,0|In:-1>"]),
            (b"M66P0L3\n", ["error:39"]), (b"\n", ["ok"]),  # waiting needs a timeout
            (b"M66P0L7Q1\n", ["error:39"]),
        ])
        assert emulator.aux_outputs == [False] * 4


def test_lamps_and_part_present_through_the_driver(stage):
    emulator, controller = stage
    controller.set_output(0, True)
    assert emulator.aux_outputs[0]
    controller.set_output(0, False)
    assert not emulator.aux_outputs[0]
    assert controller.wait_input(1, timeout_s=0.1) == -1  # no part: timed out
    threading.Timer(0.1, lambda: emulator.set_input(1, True)).start()
    assert controller.wait_input(1, timeout_s=2.0) == 1  # the part arrives while waiting
    assert controller.wait_input(1, mode="now", timeout_s=0.1) == 1
    with pytest.raises(ControllerError) as info:
        controller.set_output(7, True)
    assert info.value.code == 39
    with pytest.raises(ValueError, match="mode"):
        controller.wait_input(1, mode="sideways")


def test_a_cell_without_a_plc_lights_its_verdict_and_waits_for_the_part(tmp_path, recipe):
    """The station config's [io]: the controller shows each result on the OK/NG/ERROR lamps (outputs
    0/1/2 of the stage controller) and inspects only when the part-present sensor (input 0) sees a part."""
    from hardware.sim.cell import station_config_dict
    from inspector.station import StationController, StationState
    from inspector.station_config import StationConfig

    with GrblEmulator(speed_factor=200.0) as emulator:
        data = station_config_dict(emulator.port_path, "virtual", name="no-plc", origin=list(emulator.stage_origin))
        data["io"] = {"ok_output": 0, "ng_output": 1, "error_output": 2, "part_present_input": 0,
                      "part_present_timeout_s": 0.3}
        config = tmp_path / "station.toml"
        StationConfig.from_dict(data, source="test").save(config)
        assert StationConfig.load(config).io.part_present == 0
        with StationController(db=str(tmp_path / "r.db"), config=config, recipes={1: recipe}) as station:
            station.start()
            assert station.state == StationState.READY, station.fault_reason
            assert station.inspect("SN-EMPTY")  # nothing in the fixture: the sensor stays low
            station.wait_for(StationState.DONE, timeout=30)
            result = station.last_result
            assert result.verdict == "ERROR" and "no part present: input 0" in result.reason
            assert emulator.aux_outputs[:3] == [False, False, True]  # the ERROR lamp
            station.acknowledge()
            emulator.set_input(0, True)  # a part arrives
            assert station.inspect("SN-1")
            station.wait_for(StationState.DONE, timeout=60)
            verdict = station.last_result.verdict
            lamp = {"PASS": 0, "FAIL": 1, "ERROR": 2}[verdict]
            assert [i for i, on in enumerate(emulator.aux_outputs[:3]) if on] == [lamp], verdict
