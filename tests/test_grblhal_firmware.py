"""The grblHAL driver against what real firmware does that is inconvenient (the emulator follows
grblHAL core; see tests/test_grbl_protocol.py for the sources): whole-step positions, work offsets
in the controller, WPos reports, sticky errors, late replies, garbled lines and reports."""
import math
import time

import pytest

from hardware.errors import ControllerAlarm, ControllerError, ProtocolError, ReadTimeout
from hardware.motion import grbl_protocol as proto
from hardware.motion.base import Pose
from hardware.motion.grbl_link import OutOfStep
from hardware.motion.grblhal import GrblHalController
from hardware.sim.grbl_emulator import GrblEmulator
from hardware.transport import LineTransport

PARK = Pose(0.0, 0.0, 40.0, 0.0, 0.0)


def connect(emulator, **options):
    stage = GrblHalController(LineTransport(emulator.port_path, name="motion", read_timeout_s=1.0),
                              origin=emulator.stage_origin, **options)
    stage.connect()
    return stage


def near(pose, target, tolerance):
    return all(abs(a - b) <= t for a, b, t in zip(pose.as_tuple(), target.as_tuple(), tolerance))


@pytest.mark.parametrize("steps", [250.0, 80.0])
def test_a_target_between_steps_arrives_within_half_a_step(steps):
    with GrblEmulator(speed_factor=20.0, steps_per_unit=steps) as emulator:
        stage = connect(emulator)
        try:
            stage.home().wait(10)
            assert stage.tolerance[0] == pytest.approx(0.5 / steps + 0.001, abs=1e-6)
            target = Pose(0.1234, -0.0061, 40.0017, 12.3456, -0.0049)
            stage.move_to(target).wait(10)
            assert near(stage.position(), target, stage.tolerance)
            assert stage.position() != target  # the controller really stopped on a step
            assert all(abs(v * steps - round(v * steps)) < 1e-6 for v in stage.status().machine_pos)
        finally:
            stage.disconnect()


def test_work_offsets_in_the_controller_do_not_move_the_stage_and_wpos_reports_are_read():
    """G54 set in the controller (persistent, maybe by another sender): the driver moves in G53 machine
    coordinates, so the pose is where the station meant; with $10=0 the reports carry WPos."""
    offset = (5.0, -3.0, 2.0, 0.0, 0.0)
    with GrblEmulator(speed_factor=20.0, work_offsets={"G54": offset}) as emulator:
        stage = connect(emulator)
        try:
            assert stage.status().work_offset == offset and stage.work_offsets["G54"] == offset
            stage.home().wait(10)
            stage.move_to(PARK).wait(10)
            assert near(stage.position(), PARK, stage.tolerance)
            assert near(Pose(*emulator.machine_pose().as_tuple()), PARK, stage.tolerance)  # physically there
            stage.command("$10=0")  # reports in WPos from now on; WCO only now and then
            target = Pose(10.0, 5.0, 30.0, 45.0, -10.0)
            stage.move_to(target).wait(10)
            assert near(stage.position(), target, stage.tolerance)
            assert near(Pose(*emulator.machine_pose().as_tuple()), target, stage.tolerance)
        finally:
            stage.disconnect()


def test_one_bad_line_costs_that_line_only():
    """grblHAL repeats error:N for every G-code line until an empty line (sticky errors): the driver
    clears it, so the next command runs."""
    with GrblEmulator(speed_factor=20.0, homing_required=False) as emulator:
        stage = connect(emulator)
        try:
            with pytest.raises(ControllerError) as info:
                stage.command("G0 X1 P2")
            assert info.value.code == 36 and "Unused value words" in info.value.meaning
            stage.command("G4 P0")  # would be error:36 again without the clearing empty line
            stage.move_to(PARK).wait(10)
        finally:
            stage.disconnect()


def test_a_move_garbled_on_the_line_is_sent_once_more():
    with GrblEmulator(speed_factor=20.0) as emulator:
        stage = connect(emulator)
        try:
            stage.home().wait(10)
            emulator.garble_next_line()
            stage.move_to(PARK).wait(10)
            assert near(stage.position(), PARK, stage.tolerance)
            sent = b"".join(emulator.received).decode(errors="replace")
            assert sent.count(proto.format_machine_move(tuple(v + o for v, o in zip(PARK.as_tuple(), emulator.stage_origin)))) == 2
        finally:
            stage.disconnect()


def test_a_late_reply_is_never_taken_for_the_next_commands():
    with GrblEmulator(speed_factor=20.0, homing_required=False, reply_latency_s=(0.15, 0.15)) as emulator:
        stage = connect(emulator)
        try:
            with pytest.raises(ReadTimeout):
                stage.command("$I", timeout_s=0.05)
            lines = stage.command("$G")  # the late `ok` of $I is dropped, not paired with $G
            assert lines and lines[0].startswith("[GC:")
            assert stage.connected
        finally:
            stage.disconnect()


def test_a_reply_that_never_comes_puts_the_link_out_of_step_until_reset():
    with GrblEmulator(speed_factor=20.0, homing_required=False) as emulator:
        stage = connect(emulator)
        try:
            emulator.mute = True
            with pytest.raises(ReadTimeout):
                stage.command("$I", timeout_s=0.2)
            emulator.mute = False
            with pytest.raises(OutOfStep, match="Reset resynchronises"):
                stage.command("$G")
            assert not stage.connected
            stage.reset()
            assert stage.connected and stage.command("$G")[0].startswith("[GC:")
        finally:
            stage.disconnect()


def test_the_alarm_a_reset_causes_is_kept():
    with GrblEmulator(speed_factor=1.0, homing_required=False) as emulator:
        stage = connect(emulator)
        try:
            stage.move_to(Pose(50.0, 0.0, 40.0, 0.0, 0.0), feed_per_min=600)
            time.sleep(0.2)
            stage.reset()  # while moving: ALARM:3
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and stage.status().state != "Alarm":
                time.sleep(0.02)
            state = stage.status()
            assert (state.state, state.alarm) == ("Alarm", 3) and "Reset while in motion" in state.alarm_meaning
        finally:
            stage.disconnect()


def test_a_truncated_report_does_not_end_a_move_early():
    with GrblEmulator(speed_factor=2.0, homing_required=False) as emulator:
        stage = connect(emulator)
        try:
            status = stage.move_to(Pose(60.0, 0.0, 40.0, 90.0, 45.0))
            time.sleep(0.05)
            emulator.truncate_next_report()
            status.wait(10)
            assert near(stage.position(), Pose(60.0, 0.0, 40.0, 90.0, 45.0), stage.tolerance)
            assert stage.link.dropped_lines >= 1 and "3 axes" in stage.link.last_dropped
        finally:
            stage.disconnect()


def test_bad_values_and_settings_are_refused():
    with GrblEmulator(speed_factor=20.0, homing_required=False) as emulator:
        stage = connect(emulator)
        try:
            for bad in (math.nan, math.inf):
                with pytest.raises(ValueError, match="finite"):
                    stage.move_to(Pose(bad, 0.0, 40.0))
            stage.command("$13=1")
        finally:
            stage.disconnect()
        with pytest.raises(ProtocolError, match=r"reports inches \(\$13=1\)"):
            connect(emulator)


def test_unlock_before_homing_says_homing_is_required():
    with GrblEmulator(speed_factor=20.0) as emulator:
        stage = connect(emulator)
        try:
            with pytest.raises(ControllerError) as info:
                stage.unlock()
            assert info.value.code == 46 and info.value.meaning == "Home machine to continue."
            stage.home().wait(10)
            with pytest.raises(ControllerAlarm) as alarm:
                stage.move_to(Pose(150.0, 0.0, 40.0)).wait(5)  # beyond the envelope: ALARM:2
            assert alarm.value.code == 2
        finally:
            stage.disconnect()


@pytest.mark.parametrize("line", ["<Idle|MPos:1.000,2.000,nan,0.000,0.000|FS:0,0>", "<Idle|MPos:1,2,inf>",
                                  "<Idle|MPos:1.000,2.000,3.000|FS:0,0>"])
def test_status_reports_with_bad_numbers_or_axes_are_refused(line):
    with pytest.raises(ValueError):
        proto.parse_status(line, axes=5)
