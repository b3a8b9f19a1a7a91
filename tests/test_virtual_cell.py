"""The whole virtual cell through the station's own path: station config → real drivers on
pseudo-terminals → stage moves and lights → the virtual camera sees what they make visible."""
import re
import signal
import subprocess
import sys
import time

import pytest

from hardware.sim.cell import VirtualCell
from hardware.sim.geometry import COARSE_CAMERA, FINE_CAMERA, face_point_pose, face_view_pose
from hardware.sim.part import Defect, make_part
from hardware.transport import LineTransport
from hardware.motion.grblhal import GrblHalController
from inspector.devices import open_devices
from inspector.schema import ConfigError
from inspector.station_config import StationConfig


@pytest.mark.parametrize("light_protocol", ["gardasoft", "template"])
def test_station_drives_the_cell_and_sees_what_it_lit(tmp_path, light_protocol):
    dent = Defect(0, "dent", "top", 5.0, -4.0, 0.4, 0.4, 0.05)
    with VirtualCell(speed_factor=5.0, light_protocol=light_protocol) as cell:
        cell.load_part(make_part(3, defects=(dent,), fixture_error=(0.0, 0.0, 0.0)))
        path = tmp_path / "station.toml"
        StationConfig.from_dict(cell.station_config_dict(), source="cell").save(path)
        devices = open_devices(StationConfig.load(path), virtual_cell=cell)
        try:
            devices.motion.home().wait(20)
            devices.motion.move_to(face_view_pose("top", COARSE_CAMERA)).wait(20)
            devices.lights.set_level("coaxial", 80)
            coarse = devices.cameras["coarse"].snap()
            assert coarse.image.shape == (768, 1024) and coarse.meta["face"] == "top"
            assert coarse.pose == face_view_pose("top", COARSE_CAMERA)
            assert [b.kind for b in coarse.truth] == ["dent"]
            lit = coarse.image[434:534, 662:762].mean()
            devices.lights.all_off()
            dark = devices.cameras["coarse"].snap().image[434:534, 662:762].mean()
            assert lit > 100 and dark < 15  # the camera sees the light the driver set over serial (off the centre hole)

            devices.motion.move_to(face_point_pose("top", dent.u_mm, dent.v_mm, FINE_CAMERA)).wait(20)
            devices.lights.set_level("low_angle", 100)
            fine = devices.cameras["fine"].snap()
            (box,) = fine.truth
            cx, cy = (box.box_px[0] + box.box_px[2]) / 2, (box.box_px[1] + box.box_px[3]) / 2
            assert abs(cx - 400) < 3 and abs(cy - 300) < 3  # the stage put the dent on the fine axis
            assert fine.image[int(cy) - 25:int(cy) + 25, int(cx) - 25:int(cx) + 25].max() > 60
        finally:
            devices.close()


def test_virtual_camera_needs_the_cell(tmp_path):
    with VirtualCell() as cell:
        config = StationConfig.from_dict(cell.station_config_dict())
        with pytest.raises(ValueError, match="camera 'coarse' is virtual"):
            open_devices(config)


def test_bad_template_in_station_config_names_the_field():
    with VirtualCell(light_protocol="template") as cell:
        data = cell.station_config_dict()
        data["lights"]["template"]["set_level"] = "S{chan}"
        with pytest.raises(ConfigError, match="lights.template.set_level: unknown placeholder"):
            StationConfig.from_dict(data, source="station.toml")


def test_inspector_sim_serves_ports_to_another_process(tmp_path):
    """`inspector sim` in its own process; this test connects the real driver to the printed port."""
    station = tmp_path / "station.toml"
    proc = subprocess.Popen([sys.executable, "-m", "inspector.cli", "sim", "--speed-factor", "10",
                             "--station-out", str(station)], stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not any("Ctrl-C" in line for line in lines):
            lines.append(proc.stdout.readline())
        motion_port = next(re.search(r"(/\S+/port)\b", line).group(1) for line in lines if "motion" in line)
        assert StationConfig.load(station).motion.url == motion_port
        stage = GrblHalController(LineTransport(motion_port, name="motion"))
        stage.connect()
        stage.home().wait(10)
        assert stage.status().state == "Idle"
        stage.disconnect()
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "virtual cell stopped" in out
