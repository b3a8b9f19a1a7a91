"""Faults on demand in the virtual cell: each kind does at the device level what it claims, through
the station's own drivers on the emulators' pseudo-terminals; and the light driver's read-back."""
import time

import cv2
import numpy as np
import pytest

from hardware.cameras.base import CameraError
from hardware.errors import ControllerError, ReadbackMismatch
from hardware.lights.base import LightStep
from hardware.lights.controller import ChannelSetting
from hardware.lights.gardasoft import GardasoftController, parse_status
from hardware.lights.template import TemplateLightController, TemplateProtocolSpec
from hardware.sim.cell import VirtualCell
from hardware.sim.faults import DEFOCUS_MM, FAULT_KINDS, SHIFT_MM
from hardware.sim.geometry import COARSE_CAMERA, face_view_pose
from hardware.sim.light_emulators import GardasoftEmulator, TemplateEmulator
from hardware.sim.part import FIXTURE_TOLERANCE, make_part
from hardware.transport import LineTransport
from inspector.devices import open_devices
from inspector.station_config import StationConfig

COARSE = LightStep({"coaxial": 35, "low_angle": 100, "ring": 10})  # the reference recipe's coarse program
BACKLIGHT = LightStep({"backlight": 60})
CROP = (slice(234, 534), slice(312, 712))  # inside the top face in the top view, nominal fixture
PART = make_part(3, fixture_error=(0.0, 0.0, 0.0))


@pytest.fixture(scope="module")
def station():
    with VirtualCell(seed=3, speed_factor=50.0, homing_required=False) as cell:
        devices = open_devices(StationConfig.from_dict(cell.station_config_dict(), source="cell"), virtual_cell=cell)
        try:
            devices.motion.move_to(face_view_pose("top", COARSE_CAMERA)).wait(20)
            devices.cameras["coarse"].configure(exposure_us=3000.0, gain=1.0)
            yield cell, devices
        finally:
            devices.close()


@pytest.fixture
def cell_devices(station):
    cell, devices = station
    cell.load_part(PART)
    yield cell, devices
    cell.clear_faults()


def snap(devices, step=COARSE, camera="coarse", timeout_s=2.0):
    devices.lights.apply(step)
    return devices.cameras[camera].snap(timeout_s)


@pytest.fixture(scope="module")
def normal(station):
    cell, devices = station
    cell.load_part(PART)
    return snap(devices)


def sharpness(image):
    """Strongest edges after light smoothing (the noise does not count)."""
    smooth = cv2.GaussianBlur(image.astype(np.float32), (0, 0), 2)
    gradient = np.hypot(cv2.Sobel(smooth, cv2.CV_32F, 1, 0), cv2.Sobel(smooth, cv2.CV_32F, 0, 1))
    return float(np.percentile(gradient, 99.5))


def left_edge(image):
    """First column of the part's silhouette against the backlight, in the middle rows."""
    profile = image[300:468].mean(axis=0)
    return int(np.argmax(profile < profile.max() / 2))


def test_dead_lights_read_back_fine_yet_the_frame_is_dark(cell_devices, normal):
    cell, devices = cell_devices
    cell.inject_fault("dead-lights")
    frame = snap(devices)  # apply reads the levels back: no error, the controller thinks it is lit
    held = devices.lights.read_back()
    assert held[1] == ChannelSetting("continuous", 35.0) and held[3] == ChannelSetting("continuous", 100.0)
    assert np.median(normal.image) > 80 and np.median(frame.image) < 5
    cell.load_part(4)
    assert np.median(snap(devices).image) < 5  # a state of the cell: the next part is dark too


def test_black_frames_are_zeros_without_error(cell_devices):
    cell, devices = cell_devices
    cell.inject_fault("black-frames")
    for seed in (5, 6):
        cell.load_part(seed)
        frame = snap(devices)
        assert frame.image.shape == (768, 1024) and not frame.image.any()


def test_saturated_frames_clip(cell_devices, normal):
    cell, devices = cell_devices
    cell.inject_fault("saturated")
    frame = snap(devices)
    assert frame.gain == 1.0  # the station set gain 1; the camera's is stuck high
    assert (normal.image[CROP] == 255).mean() < 0.05 and (frame.image[CROP] == 255).mean() > 0.8


def test_defocus_blurs(cell_devices, normal):
    cell, devices = cell_devices
    cell.inject_fault("defocus")
    frame = snap(devices)
    assert frame.meta["defocus_mm"] == pytest.approx(normal.meta["defocus_mm"] - DEFOCUS_MM)
    assert sharpness(frame.image) < 0.25 * sharpness(normal.image)


def test_no_part_gives_a_frame_of_the_empty_fixture(cell_devices, normal):
    cell, devices = cell_devices
    cell.inject_fault("no-part")
    assert cell.part is None and cell.load_part(7) is None and cell.part is None
    frame = snap(devices)  # a camera does not raise "no part": it shows the empty fixture
    assert frame.image.shape == (768, 1024) and frame.truth == ()
    assert 5 < np.median(frame.image) < 30 < np.median(normal.image[CROP])
    assert sharpness(frame.image) < 0.05 * sharpness(normal.image)  # nothing in it but noise
    cell.clear_faults()
    assert cell.part == make_part(7)  # the part meant for the fixture is back


def test_part_shifted_moves_the_outline(cell_devices):
    cell, devices = cell_devices
    before = left_edge(snap(devices, BACKLIGHT).image)
    cell.inject_fault("part-shifted")
    assert cell.part.fixture_error == (SHIFT_MM, 0.0, 0.0) and SHIFT_MM > 5 * FIXTURE_TOLERANCE[0]
    after = left_edge(snap(devices, BACKLIGHT).image)
    assert after - before == pytest.approx(SHIFT_MM / COARSE_CAMERA.mm_per_px, abs=1)
    cell.load_part(8)
    assert cell.part.fixture_error[0] == SHIFT_MM  # the next part sits off too
    cell.clear_faults()
    assert cell.part == make_part(8)


def test_light_nak_makes_the_driver_raise(cell_devices):
    cell, devices = cell_devices
    devices.lights.all_off()
    cell.inject_fault("light-nak")
    with pytest.raises(ControllerError, match=r"^lights: error 1 for 'RS\d,[\d.]+': a parameter value is invalid$"):
        devices.lights.apply(COARSE)
    assert all(state.mode == "off" for state in cell.lights.channel_state().values())
    cell.clear_faults()
    devices.lights.apply(COARSE)  # the channel the error left unknown is sent again
    assert cell.lights.channel_state()[1].percent == 35


def test_camera_timeout_raises_within_its_timeout(cell_devices):
    cell, devices = cell_devices
    cell.inject_fault("camera-timeout")
    for _ in range(2):
        started = time.monotonic()
        with pytest.raises(CameraError, match=r"^camera 'coarse': no frame within 0.2 s"):
            snap(devices, timeout_s=0.2)
        assert time.monotonic() - started < 1.5


def test_unknown_kind_is_one_line_listing_the_kinds(station):
    cell, _ = station
    with pytest.raises(ValueError) as info:
        cell.inject_fault("smoke")
    message = str(info.value)
    assert "\n" not in message and "'smoke'" in message and all(kind in message for kind in FAULT_KINDS)
    with pytest.raises(ValueError, match="no camera 'side'"):
        cell.inject_fault("defocus", camera="side")


# -- light read-back -------------------------------------------------------------------------------------
WIRING = {"coaxial": 1, "ring": 2, "low_angle": 3}


@pytest.mark.parametrize("echo", [True, False], ids=["serial ST", "ethernet STc"])
def test_read_back_names_a_channel_the_unit_ignored(echo):
    with GardasoftEmulator(echo=echo) as unit:
        driver = GardasoftController(LineTransport(unit.port_path, name="lights", read_timeout_s=0.5), WIRING,
                                     echo=echo)
        driver.connect()
        try:
            driver.apply(COARSE)
            unit.ignored = {3}  # the unit acknowledges settings for output 3 but keeps what it had
            with pytest.raises(ReadbackMismatch, match=r"^lights: channel 3 \(low_angle\) reads back continuous "
                                                       r"100 % but continuous 60 % was set$"):
                driver.apply(LightStep({"coaxial": 35, "low_angle": 60}))
            unit.ignored = set()
            driver.apply(LightStep({"coaxial": 35, "low_angle": 60}))  # left unknown, so sent again
            assert unit.channel_state()[3].percent == 60
        finally:
            driver.disconnect()


def test_status_lines_parse():
    lines = ["CH 1, MD 0, S 35.00%, DL 0.000ms, PU 0.000ms", "CH 2, MD 1, S 90.00%, DL 0.010ms, PU 0.400ms",
             "TM 0, TP 20.00ms"]
    assert parse_status(lines, device="lights") == {1: ChannelSetting("continuous", 35.0),
                                                    2: ChannelSetting("strobe", 90.0)}


def test_protocol_without_read_back_is_not_checked():
    spec = TemplateProtocolSpec.from_dict({"set_level": "L{channel},{value:03d}", "reply": "^ACK$",
                                           "value_max": 100, "line_end": "\n"})
    with TemplateEmulator(spec, [1, 2]) as unit:
        driver = TemplateLightController(LineTransport(unit.port_path, name="acme", read_timeout_s=0.5), spec,
                                         {"coaxial": 1, "ring": 2})
        driver.connect()
        try:
            unit.ignored = {1}
            driver.apply(LightStep({"coaxial": 50}))  # nothing to read back with: no error
            assert driver.read_back() is None and unit.channel_state()[1].percent == 0
        finally:
            driver.disconnect()


def test_cli_run_takes_faults_and_the_lot_refuses_unknown_ones(tmp_path):
    from inspector.cli import build_parser
    from inspector.demo import run_sim_lot

    args = build_parser().parse_args(["run", "--sim", "--parts", "4", "--fault", "dead-lights", "--fault", "no-part"])
    assert args.fault == ["dead-lights", "no-part"] and build_parser().parse_args(["run", "--sim"]).fault == []
    with pytest.raises(ValueError, match="unknown fault kind 'smoke'"):  # before a model is loaded or a port opened
        run_sim_lot(1, first_seed=0, speed_factor=20, recipe_path=tmp_path / "none.json", db=tmp_path / "r.db",
                    archive_dir=None, faults=["smoke"])
