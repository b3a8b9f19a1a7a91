"""px → mm calibration from a dot-grid target: synthesised targets of known pitch, the virtual
cell's own frame (no target), and writing the result into a station config."""
import cv2
import numpy as np
import pytest

from hardware.sim.cell import station_config_dict
from inspector.access import AccessControl, AccessDenied, Session
from inspector.calibration import (CalibrationError, apply_calibration, attempt_calibration, calibrate_from_target,
                                   measure_pitch, render_dot_target, write_calibration)
from inspector.results.sqlite_store import ResultStore
from inspector.schema import dump_toml
from inspector.station_config import StationConfig
from tests.access_helpers import staff


@pytest.mark.parametrize("pitch_px,diameter_px,angle_deg,grid", [
    (20.0, 10.0, 0.0, None),
    (25.3, 12.0, 3.0, (15, 11)),
    (40.0, 22.0, -1.2, (9, 7)),
    (100.0, 50.0, 0.5, (7, 5)),
])
def test_pitch_is_found_to_a_small_fraction_of_a_pixel(pitch_px, diameter_px, angle_deg, grid):
    image = render_dot_target((768, 1024), pitch_px, diameter_px, angle_deg=angle_deg, grid=grid,
                              centre_px=(511.3, 380.7), noise_sigma=3.0, seed=7)
    m = measure_pitch(image)
    assert m.pitch_px == pytest.approx(pitch_px, abs=max(4 * m.pitch_px_std, 0.01))
    assert m.pitch_px_std < 0.01
    assert m.rotation_deg == pytest.approx(angle_deg, abs=0.05)
    assert m.pitch_u_px == pytest.approx(m.pitch_v_px, rel=1e-3)
    assert m.residual_px < 0.1
    if grid is not None:
        assert m.dots == grid[0] * grid[1]


def test_mm_per_px_and_its_uncertainty():
    # a 1 mm grid seen by a camera of 0.05 mm/px: 20 px pitch
    image = render_dot_target((768, 1024), 20.0, 9.0, angle_deg=0.7, grid=(31, 21), seed=1, noise_sigma=4.0)
    cal = calibrate_from_target(image, 1.0, camera="coarse")
    assert cal.mm_per_px == pytest.approx(0.05, rel=2e-4)
    assert 0 < cal.mm_per_px_std < 1e-5
    assert abs(cal.mm_per_px - 0.05) < 5 * cal.mm_per_px_std + 1e-6
    loose = calibrate_from_target(image, 1.0, pitch_tolerance_mm=0.001)
    assert loose.relative_uncertainty == pytest.approx(1e-3, rel=0.05)  # the target dominates
    assert "0.050000" in cal.summary() and "651 dots" in cal.summary()


def test_bright_dots_on_a_dark_plate_work_too():
    image = 255 - render_dot_target((600, 800), 30.0, 12.0, grid=(11, 9), seed=2)
    assert measure_pitch(image).pitch_px == pytest.approx(30.0, abs=0.01)


def test_no_target_is_an_error_that_says_so():
    import numpy as np

    with pytest.raises(CalibrationError, match="found 0 round dots, need at least 9"):
        measure_pitch(np.full((480, 640), 128, np.uint8))
    with pytest.raises(CalibrationError, match="target pitch: expected a positive number of mm, got -1"):
        calibrate_from_target(render_dot_target((300, 400), 20.0, 8.0), -1)


def test_a_virtual_cell_frame_of_the_part_is_no_target():
    from hardware.sim.geometry import COARSE_CAMERA
    from hardware.sim.part import make_part
    from hardware.sim.render import render
    from hardware.pose import StagePose

    frame = render(make_part(3), StagePose(0, 0, 56, 0, 0), {"coaxial": 35, "low_angle": 100, "ring": 10},
                   COARSE_CAMERA, exposure_us=3000).image
    with pytest.raises(CalibrationError):
        calibrate_from_target(frame, 1.0)



def test_a_frame_that_is_no_target_comes_with_hints_and_the_dots_found():
    """What a person at the station gets back: the frame, the dots found (to draw) and, for a frame
    that is no usable target, the reason and what to change — lights, contrast, view."""
    target = render_dot_target((480, 640), 24.0, 10.0, grid=(15, 11), seed=3)
    good = attempt_calibration(target, 1.0)
    assert good.ok and not good.hints and good.calibration.measurement.dots == 165
    assert good.dots_px.shape == (165, 2) and good.image is target
    rng = np.random.default_rng(4)
    lights_off = np.clip(rng.normal(1.0, 1.0, (480, 640)), 0, 255).astype(np.uint8)
    dark = attempt_calibration(lights_off, 1.0)
    assert not dark.ok and dark.error and dark.calibration is None
    assert "nearly black" in dark.hints[0] and "backlight" in dark.hints[0]
    assert "'top' view" in dark.hints[-1]
    flat = np.clip(rng.normal(127.0, 4.0, (480, 640)), 0, 255).astype(np.uint8)  # backlight on, no plate in view
    grey = attempt_calibration(flat, 1.0)
    assert not grey.ok and "almost no contrast" in grey.hints[0] and "'top' view" in grey.hints[-1]
    burnt = np.full((480, 640), 255, np.uint8)
    burnt[::40, ::40] = 0
    assert "saturated" in attempt_calibration(burnt, 1.0).hints[0]
    scattered = render_dot_target((480, 640), 24.0, 10.0, grid=(15, 11), seed=3).copy()
    scattered[:, 320:] = 200  # half a target is still a target; the dots found come back either way
    assert attempt_calibration(scattered, 1.0).dots_px.shape[1] == 2
    with pytest.raises(CalibrationError, match="target pitch"):
        attempt_calibration(target, 0)  # a typo in the pitch is no frame problem: it still raises

@pytest.fixture
def station_file(tmp_path):
    path = tmp_path / "station.toml"
    path.write_text(dump_toml(station_config_dict("/dev/null-motion", "/dev/null-lights")), encoding="utf-8")
    return path


def test_write_calibration_updates_the_config_and_the_audit(tmp_path, station_file):
    image = render_dot_target((600, 800), 50.0, 20.0, grid=(13, 9), seed=4)  # 0.5 mm pitch at 0.01 mm/px
    cal = calibrate_from_target(image, 0.5, camera="fine")
    before = StationConfig.load(station_file)
    in_memory = apply_calibration(before, cal)
    assert in_memory.cameras["fine"].calibration.mm_per_px == pytest.approx(0.01, rel=1e-4)
    assert in_memory.cameras["coarse"] == before.cameras["coarse"]
    with ResultStore(tmp_path / "r.db") as store:
        access = AccessControl(store)
        users = staff(access, ("ina", "integrator", "4711"), ("otto", "operator", "1234"))
        with pytest.raises(AccessDenied, match="may not calibrate"):
            write_calibration(users["otto"], station_file, cal, access)
        with pytest.raises(AccessDenied, match="calibrate refused: the session of 'ina' was not issued by a login"):
            write_calibration(Session("ina", "integrator"), station_file, cal, access)
        assert StationConfig.load(station_file) == before
        updated = write_calibration(users["ina"], station_file, cal, access, reason="new lens")
        assert updated.cameras["fine"].calibration.mm_per_px == pytest.approx(0.01, rel=1e-4)
        assert StationConfig.load(station_file).cameras["fine"] == updated.cameras["fine"]
        entry = access.audit()[0]
        assert (entry.action, entry.target, entry.reason) == ("calibrate", "station:virtual-cell:camera:fine",
                                                               "new lens")
        assert entry.old["mm_per_px"] == 0.01 and entry.new["dots"] == 117
    with pytest.raises(CalibrationError, match="cameras.side: no such camera"):
        apply_calibration(before, calibrate_from_target(image, 0.5, camera="side"))


def test_scattered_blobs_are_not_taken_for_a_grid():
    rng = np.random.default_rng(3)
    image = np.full((480, 640), 220, np.uint8)
    for x, y in rng.uniform((20, 20), (620, 460), (40, 2)):
        cv2.circle(image, (int(x), int(y)), 6, 30, -1)
    with pytest.raises(CalibrationError, match="regular grid"):
        measure_pitch(image)
