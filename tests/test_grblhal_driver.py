"""The grblHAL driver against the emulator over real pseudo-terminals."""
import threading
import time

import pytest

from hardware.errors import ControllerAlarm, ControllerError, HardwareError, PortClosed, ProtocolError, ReadTimeout
from hardware.motion.base import Pose
from hardware.motion.grblhal import GrblHalController
from hardware.sim.dynamics import DEFAULT_LIMITS, Move
from hardware.sim.grbl_emulator import GrblEmulator
from hardware.sim.pty_device import PtyDevice
from hardware.transport import LineTransport


@pytest.fixture
def emulator():
    with GrblEmulator(speed_factor=1.0) as emu:
        yield emu


@pytest.fixture
def stage(emulator):
    controller = GrblHalController(LineTransport(emulator.port_path, name="motion", read_timeout_s=1.0),
                                   origin=emulator.stage_origin)
    controller.connect()
    yield controller
    controller.disconnect()


PARK = Pose(0.0, 0.0, 40.0, 0.0, 0.0)


def homed(stage, park=True):
    """Home (the stage ends at the switches, at the positive end of every axis), then go to PARK."""
    stage.home().wait(10)
    if park:
        stage.move_to(PARK).wait(10)
    return stage


def test_connect_reads_banner_axes_and_settings(stage):
    assert stage.axis_letters == "XYZAB" and stage.version == "1.1f.20250731"
    assert stage.axis_settings["x"].max_rate_per_min == pytest.approx(24000)
    assert stage.axis_settings["b"].acceleration_per_s2 == pytest.approx(3600)
    assert stage.settings[22] == "5"  # homing on, with the startup lock


def test_starts_locked_then_homes(stage):
    time.sleep(0.1)
    assert stage.status().state == "Alarm"
    with pytest.raises(ControllerError) as info:
        stage.command("G0 X1")
    assert info.value.code == 9 and "locked out during alarm" in str(info.value)
    status = stage.home()
    status.wait(10)
    assert status.success and stage.status().state == "Idle"


def test_five_axis_move_follows_machine_dynamics(emulator, stage):
    homed(stage, park=False)
    start = stage.position()
    target = Pose(60.0, -20.0, 50.0, 90.0, -45.0)
    samples = []
    stage.subscribe(lambda s: samples.append((emulator.clock(), s.state, s.pose.as_tuple())))
    began = emulator.clock()
    status = stage.move_to(target)
    assert not status.done  # returns at once; the move is followed in the background
    status.wait(10)
    finished = emulator.clock()
    assert stage.position() == target
    moving = [pos for _, state, pos in samples if state == "Run"]
    assert len(moving) >= 3
    xs = [pos[0] for pos in moving]
    assert all(b <= a + 1e-9 for a, b in zip(xs, xs[1:]))  # monotonic toward the target (homing left x at 99)
    assert any(target.x < x < start.x for x in xs)  # seen between start and target
    for pos in moving:  # one straight line in 5-D: every axis at the same fraction of its way
        fx = (pos[0] - start.x) / (target.x - start.x)
        fa = (pos[3] - start.a) / (target.a - start.a)
        assert fx == pytest.approx(fa, abs=0.02)
    expected = Move.plan(start.as_tuple(), target.as_tuple(), 0, list(DEFAULT_LIMITS.values())).duration
    assert expected <= finished - began < expected * 3 + 1.0  # machine seconds, generous for a loaded CI


def test_jog_and_jog_cancel(stage):
    homed(stage)
    stage.jog("x", 10.0, 6000).wait(5)
    assert stage.position().x == pytest.approx(10.0)
    status = stage.jog("x", 40.0, 600)  # 10 mm/s: takes 4 s
    time.sleep(0.3)
    stage.jog_cancel()
    status.wait(5)
    assert 10.0 < stage.position().x < 20.0


def test_feed_hold_and_resume(stage):
    homed(stage)
    status = stage.move_to(Pose(80.0, 0.0, 40.0, 0.0, 0.0), feed_per_min=1200)  # 20 mm/s
    time.sleep(0.3)
    stage.feed_hold()
    deadline = time.monotonic() + 3
    while not (stage.status().state == "Hold" and stage.status().substate == 0) and time.monotonic() < deadline:
        time.sleep(0.02)
    held = stage.position().x
    assert stage.status().state == "Hold" and 0 < held < 80 and not status.done
    time.sleep(0.2)
    assert stage.position().x == pytest.approx(held)  # stays put while held
    stage.resume()
    status.wait(10)
    assert stage.position().x == pytest.approx(80.0)


def test_soft_limit_alarm_and_unlock(stage):
    homed(stage)
    status = stage.move_to(Pose(500.0, 0.0, 40.0, 0.0, 0.0))
    with pytest.raises(ControllerAlarm) as info:
        status.wait(5)
    assert info.value.code == 2 and "exceeds machine travel" in str(info.value)
    stage.unlock()
    stage.move_to(Pose(5.0, 0.0, 40.0, 0.0, 0.0)).wait(5)
    assert stage.position().x == pytest.approx(5.0)


def test_jog_beyond_travel_is_error_15(stage):
    homed(stage)
    status = stage.jog("b", 200.0, 3000)
    with pytest.raises(ControllerError) as info:
        status.wait(5)
    assert info.value.code == 15 and "Jog target exceeds machine travel" in info.value.meaning


def test_injected_alarm_fails_the_move(emulator, stage):
    homed(stage)
    status = stage.move_to(Pose(90.0, 0.0, 40.0, 0.0, 0.0), feed_per_min=600)
    time.sleep(0.2)
    emulator.inject_alarm(1)
    with pytest.raises(ControllerAlarm, match="Hard limit"):
        status.wait(5)


def test_port_vanishing_mid_move_fails_promptly(emulator, stage):
    homed(stage)
    status = stage.move_to(Pose(90.0, 0.0, 40.0, 0.0, 0.0), feed_per_min=600)
    time.sleep(0.2)
    emulator.vanish()
    started = time.monotonic()
    with pytest.raises(PortClosed):
        status.wait(5)
    assert time.monotonic() - started < 3
    with pytest.raises(PortClosed):
        stage.command("$I")


def test_silent_controller_times_out(emulator, stage):
    homed(stage)
    emulator.mute = True
    started = time.monotonic()
    with pytest.raises(ReadTimeout, match="no reply to '\\$I' within 1 s"):
        stage.command("$I")
    status = stage.move_to(Pose(1.0, 0.0, 40.0, 0.0, 0.0))
    with pytest.raises(ReadTimeout):
        status.wait(5)
    assert time.monotonic() - started < 6


class Garbage(PtyDevice):
    def on_bytes(self, data):
        if b"\x18" in data:
            self.send(b"GrblHAL 1.1f ['$' or '$HELP' for help]\r\n")
        elif b"$I" in data:
            self.send(b"\x07\x13 \xfe\xfe%%%% line noise\r\n")


def test_garbage_instead_of_a_reply_is_dropped_and_the_command_times_out():
    """Noise is never taken for a reply; the line it replaced is missed, and said so."""
    with Garbage("noise") as device:
        controller = GrblHalController(LineTransport(device.port_path, name="motion", read_timeout_s=0.5))
        with pytest.raises(ReadTimeout, match=r"no reply to '\$I'"):
            controller.connect()
        assert controller.link.dropped_lines == 1 and "line noise" in controller.link.last_dropped
        controller.disconnect()


def test_wrong_device_without_banner():
    class Mute(PtyDevice):
        def on_bytes(self, data):
            pass

    with Mute("mute") as device:
        controller = GrblHalController(LineTransport(device.port_path, name="motion", read_timeout_s=0.5),
                                       connect_timeout_s=0.5)
        with pytest.raises(ReadTimeout, match="no grblHAL banner"):
            controller.connect()
        controller.disconnect()


def test_controller_without_needed_axes():
    with GrblEmulator() as emulator:
        controller = GrblHalController(LineTransport(emulator.port_path, name="motion"), required_axes="XYZABC")
        with pytest.raises(ProtocolError, match="missing C"):
            controller.connect()


def test_no_threads_left_after_disconnect(emulator):
    before = threading.active_count()
    controller = GrblHalController(LineTransport(emulator.port_path, name="motion"))
    controller.connect()
    controller.disconnect()
    time.sleep(0.1)
    assert threading.active_count() <= before


def test_alarm_while_idle_is_kept_in_the_state_until_cleared(emulator, stage):
    """An alarm with nothing pending (a limit switch hit at rest) still names itself: the code and
    meaning stay in every following state until reset (critical alarm) or `$X` clears them."""
    homed(stage)
    seen = []
    stage.subscribe(seen.append)
    emulator.inject_alarm(1)  # hard limit: critical, needs a reset
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (stage.status().state == "Alarm" and stage.status().alarm == 1):
        time.sleep(0.02)
    asked = time.monotonic()
    time.sleep(0.2)  # later status reports keep it
    state = stage.status()
    assert state.received_at > asked and (state.state, state.alarm) == ("Alarm", 1)
    assert "Hard limit" in state.alarm_meaning and state.alarm_text.startswith("ALARM 1: Hard limit")
    assert any(s.alarm == 1 for s in seen)
    # the locked controller ignores every line: a command names the alarm at once instead of timing out
    with pytest.raises(ControllerAlarm, match="Hard limit"):
        stage.command("G90 G0 X1")
    stage.unlock()  # reset, then $X
    assert stage.status().alarm is None and stage.status().alarm_text == ""

    emulator.inject_alarm(5)  # not critical: `$X` alone clears it
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and stage.status().alarm != 5:
        time.sleep(0.02)
    assert stage.status().alarm == 5
    stage.unlock()
    time.sleep(0.1)
    assert stage.status().alarm is None and seen[-1].alarm is None


def sent_lines(stage) -> list[str]:
    """Log every line the driver writes (the transport's write_line wrapped)."""
    log: list[str] = []
    write = stage.transport.write_line

    def logged(line, *args, **kwargs):
        log.append(line)
        return write(line, *args, **kwargs)

    stage.transport.write_line = logged
    return log


@pytest.mark.parametrize("sync", [True, False])
def test_a_move_ends_at_its_target_with_or_without_the_dwell(emulator, stage, sync):
    """With `sync_moves` the driver follows each move with `G4 P0` (answered when the planner is empty)
    and checks the position on the next report; without, the status polls alone end the move."""
    homed(stage)
    stage.sync_moves = sync
    log = sent_lines(stage)
    target = Pose(12.3457, -4.2, 38.0, 30.0, -10.0)  # between motor steps: arrives within half a step
    stage.move_to(target).wait(5)
    assert stage.position().x == pytest.approx(12.3457, abs=0.003) and stage.position().a == pytest.approx(30.0, abs=0.01)
    assert ("G4 P0" in log) is sync
    stage.move_to(PARK).wait(5)  # the link is free for the next move at once


def test_a_reset_ends_a_command_still_waiting_for_its_reply(emulator, stage):
    """A dwell (the `G4 P0` after a move, here a long one) waits for a reply that a soft reset means will
    never come: the reset must end that wait at once, or every later command would queue behind it
    until its timeout. (A reset during motion also raises ALARM:3, which ends it too.)"""
    homed(stage)
    failed: list[BaseException] = []

    def dwell():
        try:
            stage.command("G4 P5", timeout_s=10)
        except HardwareError as exc:
            failed.append(exc)

    waiter = threading.Thread(target=dwell)
    waiter.start()
    time.sleep(0.2)
    started = time.monotonic()
    stage.reset()
    waiter.join(2)
    assert not waiter.is_alive() and isinstance(failed[0], ControllerError) and "reset" in str(failed[0])
    assert any(line.startswith("[VER:") for line in stage.command("$I"))
    assert time.monotonic() - started < 2.0  # not after the dwell's 10 s timeout


def test_an_alarm_during_a_move_ends_it_at_once_and_frees_the_link(emulator, stage):
    homed(stage)
    status = stage.move_to(Pose(90.0, 0.0, 40.0, 0.0, 0.0), feed_per_min=600)  # 9 s at 10 mm/s
    time.sleep(0.2)
    emulator.inject_alarm(1)
    started = time.monotonic()
    with pytest.raises(ControllerAlarm, match="Hard limit"):
        status.wait(5)
    assert time.monotonic() - started < 0.5
    stage.unlock()
    stage.move_to(Pose(5.0, 0.0, 40.0, 0.0, 0.0)).wait(5)
    assert time.monotonic() - started < 3.0
