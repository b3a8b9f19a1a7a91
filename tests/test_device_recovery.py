"""Faults on the serial links of the virtual cell, and the station's one Reset (Devices.recover)
that brings both controllers back: a burst of line noise on the stage's port, a stage controller
that stopped answering mid-line, a light controller whose USB port was lost and came back."""
import time

import pytest

from hardware.errors import HardwareError, PortClosed
from hardware.lights.base import LightStep
from hardware.motion.base import Pose
from hardware.sim.cell import VirtualCell
from inspector.devices import open_devices
from inspector.station_config import StationConfig

PARK = Pose(0.0, 0.0, 40.0, 0.0, 0.0)
AWAY = Pose(20.0, -10.0, 45.0, 90.0, 30.0)
LIT = LightStep({"coaxial": 70})


@pytest.fixture
def cell_devices():
    with VirtualCell(speed_factor=20.0) as cell:
        devices = open_devices(StationConfig.from_dict(cell.station_config_dict(), source="cell"), virtual_cell=cell)
        try:
            devices.motion.home().wait(20)
            yield cell, devices
        finally:
            devices.close()


def works(devices) -> None:
    """One move each way and a light change, all checked by the drivers."""
    devices.motion.move_to(AWAY).wait(20)
    devices.motion.move_to(PARK).wait(20)
    devices.lights.apply(LIT)
    devices.lights.all_off()


def test_noise_burst_on_the_stage_port_recovers_with_one_reset(cell_devices):
    cell, devices = cell_devices
    works(devices)
    for target in (AWAY, PARK, AWAY):  # noise while moving: a reply may be lost to it, and the move with it
        status = devices.motion.move_to(target)
        cell.motion.noise_burst(200)
        try:
            status.wait(20)
        except HardwareError:
            pass
    while cell.motion.is_moving:  # (a Reset while moving would cost the homing: ALARM:3)
        time.sleep(0.01)
    assert devices.motion.link.dropped_lines > 0
    notes = devices.recover()
    assert notes == []  # homed before: nothing more to do
    assert devices.motion.connected
    works(devices)


def test_a_controller_that_stopped_answering_recovers_with_one_reset(cell_devices):
    cell, devices = cell_devices
    cell.motion.mute = True
    with pytest.raises(HardwareError):
        devices.motion.move_to(AWAY).wait(20)
    cell.motion.mute = False
    with pytest.raises(HardwareError, match="never came"):
        devices.motion.move_to(AWAY).wait(20)
    assert not devices.motion.connected  # out of step: the lot stops here (inspector.demo.machine_fault)
    devices.recover()
    works(devices)


def test_lost_light_port_is_reopened_by_reset(cell_devices):
    cell, devices = cell_devices
    works(devices)
    cell.lights.vanish()  # USB adapter unplugged
    with pytest.raises(PortClosed):
        devices.lights.apply(LIT, force=True)
    with pytest.raises(HardwareError):
        devices.recover()  # still unplugged: Reset says so (the stage was reset all the same)
    cell.lights.replug()  # plugged back in: same path, new tty
    assert devices.recover() == []
    works(devices)


def test_reset_before_homing_says_the_stage_must_be_homed():
    with VirtualCell(speed_factor=20.0) as cell:
        devices = open_devices(StationConfig.from_dict(cell.station_config_dict(), source="cell"), virtual_cell=cell)
        try:
            (note,) = devices.recover()
            assert "must be homed" in note
        finally:
            devices.close()
