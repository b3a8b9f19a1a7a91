"""The dot-grid calibration plate in the virtual cell: the station's own drivers move the stage and
set the lights, the real virtual cameras render the plate, and inspector.calibration measures each
camera's mm/px, which must be the camera's true scale."""
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from hardware.pose import StagePose
from hardware.sim.cell import VirtualCell
from hardware.sim.geometry import CAMERAS, COARSE_CAMERA, FINE_CAMERA, face_view_pose
from hardware.sim.part import FIXTURE_TOLERANCE, make_part
from hardware.sim.target import (COARSE_GRID, FINE_GRID, CalibrationTarget, chrome_coverage, make_target,
                                 render_target)
from inspector.calibration import CalibrationError, calibrate_from_target
from inspector.devices import open_devices
from inspector.station_config import StationConfig

TARGET = make_target(7)  # placed with a fixture error, so the grid is shifted and turned a little
LIGHTS = {"backlight": ("backlight", 60.0), "coaxial": ("coaxial", 100.0)}


@pytest.fixture(scope="module")
def station():
    """A running cell with the plate in the fixture, driven through the station's drivers."""
    with VirtualCell(speed_factor=10.0) as cell:
        cell.load_target(TARGET)
        devices = open_devices(StationConfig.from_dict(cell.station_config_dict(), source="cell"), virtual_cell=cell)
        try:
            devices.motion.home().wait(30)
            yield cell, devices
        finally:
            devices.close()


def snap(devices, role: str, pose: StagePose, light: str, level: float):
    devices.motion.move_to(pose).wait(30)
    devices.lights.all_off()
    devices.lights.set_level(light, level)
    return devices.cameras[role].snap()


def calibrate(frame, role: str):
    spec = CAMERAS[role]
    return calibrate_from_target(frame.image, frame.meta["target_pitch_mm"], camera=role,
                                 pitch_tolerance_mm=TARGET.pitch_tolerance_mm(spec))


def test_plate_values_suit_both_cameras():
    assert TARGET.pitch_mm(COARSE_CAMERA) == 1.0 and TARGET.pitch_mm(FINE_CAMERA) == 0.25
    for camera, grid in ((COARSE_CAMERA, COARSE_GRID), (FINE_CAMERA, FINE_GRID)):
        pitch_px, dot_px = grid.pitch_mm / camera.mm_per_px, grid.dot_diameter_mm / camera.mm_per_px
        assert 20 <= pitch_px <= 25 and 10 <= dot_px <= 12.5
        across = [math.floor(f / grid.pitch_mm) for f in camera.field_mm]
        assert across[0] * across[1] >= 700  # the camera's field holds hundreds of dots of its grid
    # the coarse dots left out make room for the fine patch, with a pitch to spare on every side
    for hole, fine in zip(COARSE_GRID.hole, FINE_GRID.extent_mm):
        assert (hole + 1) / 2 * COARSE_GRID.pitch_mm - fine / 2 >= COARSE_GRID.pitch_mm
    # the fine patch fills the fine camera's field even with the fixture error
    assert all(e / 2 > f / 2 + 0.5 for e, f in zip(FINE_GRID.extent_mm, FINE_CAMERA.field_mm))
    seeds = [make_target(s).fixture_error for s in range(100)]
    assert all(abs(e) <= t for err in seeds for e, t in zip(err, FIXTURE_TOLERANCE))
    assert len(set(seeds)) == 100 and make_target(3) == make_target(3)
    assert "1 mm pitch" in TARGET.describe() and "0.25 mm pitch" in TARGET.describe()


@pytest.mark.parametrize("role", ["coarse", "fine"])
@pytest.mark.parametrize("light", ["backlight", "coaxial"])
def test_each_camera_measures_its_true_scale(station, role, light):
    _, devices = station
    spec = CAMERAS[role]
    frame = snap(devices, role, TARGET.view_pose(spec), *LIGHTS[light])
    assert frame.meta["target"] == TARGET.serial and frame.meta["mm_per_px_true"] == spec.mm_per_px
    assert frame.meta["defocus_mm"] == 0.0 and frame.truth == ()
    Path("/tmp").joinpath(f"sim_target_{role}_{light}.png").write_bytes(cv2.imencode(".png", frame.image)[1].tobytes())

    cal = calibrate(frame, role)
    error = cal.mm_per_px - spec.mm_per_px
    assert abs(error) <= 3 * cal.mm_per_px_std, cal.summary()  # within the reported uncertainty (3σ)
    assert abs(error) / spec.mm_per_px < 50e-6, cal.summary()  # and within 50 ppm: 2.5 µm across the coarse field
    assert cal.relative_uncertainty < 2e-4
    assert cal.rotation_deg == pytest.approx(TARGET.fixture_error[2], abs=0.02)  # the plate's turn in the fixture
    assert cal.measurement.dots >= (1300 if role == "coarse" else 700)
    dark, bright = np.percentile(frame.image, [5, 95])
    assert bright - dark > 60  # chrome against glass: strong contrast under these lights


def test_the_camera_sees_what_the_stage_pose_makes_visible(station):
    _, devices = station
    home = TARGET.view_pose(COARSE_CAMERA)
    a = snap(devices, "coarse", home, "backlight", 60).image.astype(np.float32)
    b = snap(devices, "coarse", StagePose(home.x + 0.3, home.y - 0.2, home.z), "backlight", 60).image.astype(np.float32)
    (dx, dy), _ = cv2.phaseCorrelate(a, b)
    assert dx == pytest.approx(6.0, abs=0.3) and dy == pytest.approx(-4.0, abs=0.3)  # 0.3 mm, −0.2 mm at 0.05 mm/px
    # the coarse camera over the fine patch sees a grey square (5 px pitch): no usable grid
    patch = snap(devices, "coarse", StagePose(home.x, home.y, home.z), "backlight", 60)
    window = patch.image[384 - 60:384 + 60, 512 - 80:512 + 80]
    with pytest.raises(CalibrationError):
        calibrate_from_target(window, 1.0)
    # turned edge-on (A = 90°) the plate shows no dots at all
    edge = snap(devices, "coarse", face_view_pose("north", COARSE_CAMERA), "coaxial", 100)
    assert edge.meta["face"] == "edge"
    assert edge.image.mean() < 20 and edge.image.std() < 4  # a dark, featureless frame


@pytest.mark.parametrize("role", ["coarse", "fine"])
def test_defocus_beyond_the_depth_of_field_widens_the_uncertainty(station, role):
    _, devices = station
    spec = CAMERAS[role]
    sharp = calibrate(snap(devices, role, TARGET.view_pose(spec, z_offset_mm=0.9 * spec.depth_of_field_mm),
                           "backlight", 60), role)
    blurred_frame = snap(devices, role, TARGET.view_pose(spec, z_offset_mm=1.5 * spec.depth_of_field_mm),
                         "backlight", 60)
    # the stage stops on a motor step (250 steps/mm): within half a step of the target
    assert blurred_frame.meta["defocus_mm"] == pytest.approx(1.5 * spec.depth_of_field_mm, abs=0.5 / 250 + 1e-9)
    blurred = calibrate(blurred_frame, role)
    statistical = [c.measurement.pitch_px_std / c.measurement.pitch_px for c in (sharp, blurred)]
    assert statistical[1] > 1.5 * statistical[0]  # the fit's own uncertainty grows with the blur
    assert abs(sharp.mm_per_px - spec.mm_per_px) <= 3 * sharp.mm_per_px_std  # inside the depth of field: unchanged
    assert abs(blurred.mm_per_px - spec.mm_per_px) / spec.mm_per_px < 200e-6


@pytest.mark.parametrize("role", ["coarse", "fine"])
def test_far_out_of_focus_the_measurement_refuses_or_covers_the_truth(station, role):
    cell, devices = station
    spec = CAMERAS[role]
    camera = cell.camera(role)  # a fresh camera: the same noise on every run, whatever ran before
    camera.configure(exposure_us=2000)
    devices.lights.all_off()
    devices.lights.set_level("backlight", 60)
    devices.motion.move_to(TARGET.view_pose(spec, z_offset_mm=5 * spec.depth_of_field_mm)).wait(30)
    wrong = []
    for _ in range(6):
        try:
            cal = calibrate(camera.snap(), role)
        except CalibrationError:
            continue  # refused: good
        if abs(cal.mm_per_px - spec.mm_per_px) > 3 * cal.mm_per_px_std:
            wrong.append(cal.summary())
    assert not wrong, "\n".join(wrong)


def test_a_cell_with_the_target_goes_back_to_parts():
    with VirtualCell(seed=11, speed_factor=10.0) as cell:
        part = cell.part
        assert part is not None and cell.target is None and cell.target_pitch_mm("coarse") is None

        target = cell.load_target(5)
        assert target == make_target(5) and cell.target is target and cell.part is None
        assert cell.target_pitch_mm("coarse") == 1.0 and cell.target_pitch_mm("fine") == 0.25
        assert cell.snapshot(2000).target is target and cell.snapshot(2000).part is None
        cell.load_target()  # put in again: another placement; the part stays set aside
        assert cell.target == make_target(1) and cell.target.fixture_error != target.fixture_error
        assert cell.unload_target() == part and cell.target is None
        assert cell.part is part and cell.snapshot(2000).target is None

        cell.load_target(TARGET)
        cell.load_part(12)  # loading a part takes the plate out; nothing is set aside any more
        assert cell.target is None and cell.part == make_part(12) and cell.unload_target() == make_part(12)
        cell.load_part(None)
        assert cell.part is None and cell.target is None


def test_the_part_frame_is_no_target_after_unloading(station):
    cell, devices = station
    try:
        cell.unload_target()
        cell.load_part(make_part(3))
        frame = snap(devices, "coarse", face_view_pose("top", COARSE_CAMERA), "backlight", 60)
        assert frame.meta["part_serial"] == "SIM-000003" and "target" not in frame.meta
        with pytest.raises(CalibrationError):
            calibrate_from_target(frame.image, 1.0)
    finally:
        cell.load_target(TARGET)


def test_render_is_deterministic_and_validates_lights():
    pose = TARGET.view_pose(FINE_CAMERA)
    a = render_target(TARGET, pose, {"coaxial": 80}, FINE_CAMERA, exposure_us=2000, seed=1).image
    b = render_target(TARGET, pose, {"coaxial": 80}, FINE_CAMERA, exposure_us=2000, seed=1).image
    assert np.array_equal(a, b)
    with pytest.raises(ValueError, match="unknown light role"):
        render_target(TARGET, pose, {"laser": 10}, FINE_CAMERA, exposure_us=2000)
    # the fine patch replaces the coarse dots at the centre; coverage is a dot's area fraction
    u, v = np.meshgrid(np.linspace(-20, 20, 801), np.linspace(-15, 15, 601))
    cover = chrome_coverage(CalibrationTarget("x", 0), u.astype(np.float32), v.astype(np.float32), 0.05)
    centre, outer = cover[300 - 60:300 + 60, 400 - 80:400 + 80], cover[20:140, 20:180]
    expected = math.pi / 4 * 0.5 ** 2  # dot diameter half the pitch
    assert centre.mean() == pytest.approx(expected, rel=0.1) and outer.mean() == pytest.approx(expected, rel=0.1)
