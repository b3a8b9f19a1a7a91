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
