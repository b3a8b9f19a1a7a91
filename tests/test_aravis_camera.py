"""The Aravis (GigE Vision / USB3 Vision) camera backend against Aravis's own fake GigE Vision camera,
for real: each test runs tests/aravis_netns.py in a network namespace of its own (`unshare -n`), which
brings `lo` up, starts arv-fake-gv-camera-0.8 on 127.0.0.1 and drives it, so no packet leaves the
machine. Skipped, saying why, only where Aravis, its fake camera or `unshare -n` cannot be used."""
from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from hardware.cameras.aravis_camera import aravis_available
from inspector.schema import ConfigError
from inspector.station_config import StationConfig

ROOT = Path(__file__).resolve().parents[1]
HELPER = ROOT / "tests" / "aravis_netns.py"
FAKE = "arv-fake-gv-camera-0.8"


def _why_not() -> str | None:
    missing = aravis_available()
    if missing:
        return missing
    if shutil.which(FAKE) is None:
        return f"{FAKE} not found (Debian package aravis-tools)"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare (util-linux) or ip (iproute2) not found"
    probe = subprocess.run(["unshare", "-n", "--", "ip", "link", "set", "lo", "up"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"cannot make a network namespace (unshare -n needs root or user namespaces): {probe.stderr.strip()}"
    return None


WHY_NOT = _why_not()
needs_aravis = pytest.mark.skipif(WHY_NOT is not None, reason=f"Aravis fake camera unusable: {WHY_NOT}")


def in_namespace(*args: str, timeout: float = 90.0) -> tuple[dict, str]:
    done = subprocess.run(["unshare", "-n", "--", sys.executable, str(HELPER), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return json.loads(done.stdout.strip().splitlines()[-1]), output


@needs_aravis
def test_snaps_exposure_gain_roi_trigger_and_reconnect():
    found, output = in_namespace("camera")
    assert found["id"] == "Aravis-Fake-GV01"  # opened by IP address, found by discovery
    # the camera's own ranges, from its GenICam features, within the cell's
    assert found["device_limits"] == [[10.0, 10_000_000.0], [0.0, 10.0]]
    assert found["limits"] == [[10.0, 1_000_000.0], [0.1, 10.0]]
    assert "gain 50 is outside what '127.0.0.1' accepts: 0.1 to 10" in found["gain_refused"]
    dtype, shape, dim = found["dim"]
    assert dtype == "|u1" and shape == [2048, 2048]  # no ROI: the whole sensor
    _, _, bright = found["bright"]
    assert bright > dim + 50  # the fake camera's pattern scales with exposure × gain
    assert found["features"] == [8000.0, 4.0, "Software"]
    assert found["sequence"] == [1, 2]
    assert found["roi_shape"] == [240, 320]  # in the camera's region, not cropped afterwards
    # stopped: a clear error within a few seconds, no hang; reopening fails while it is away
    assert "the next trigger reconnects" in found["while_stopped"]
    assert found["error_after_s"] < 6.0
    assert "cannot open Aravis camera '127.0.0.1'" in found["reopen_while_stopped"]
    # restarted: reconnected, with the ROI, exposure and gain restored
    shape, mean, reconnects, exposure, gain = found["after_restart"]
    assert shape == [240, 320] and mean > 0 and reconnects == 1 and (exposure, gain) == (8000.0, 4.0)
    assert found["mono16"] == ["<u2", 65535]  # Mono16 as uint16 (opened by serial)


@needs_aravis
def test_camera_list_and_snap_write_the_test_pattern(tmp_path):
    import cv2

    _, output = in_namespace("cli", "camera", "list")
    assert '{"code": 0}' in output
    line = next(l for l in output.splitlines() if l.startswith("Aravis-Fake-GV01"))
    assert "serial=GV01" in line and "address=127.0.0.1" in line and "protocol=GigEVision" in line
    assert "exposure_us=10..1e+07" in line and "gain=0..10" in line

    out = tmp_path / "snap.png"
    _, output = in_namespace("cli", "camera", "snap", "--camera", "GV01", "--out", str(out),
                             "--exposure-us", "5000", "--gain", "2")
    assert '{"code": 0}' in output
    assert "2048×2048 Mono8 from Aravis-Fake-GV01, exposure 5000 µs, gain 2" in output
    image = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)
    assert image.shape == (2048, 2048) and image.dtype.name == "uint8"
    # the fake camera's test pattern: a diagonal ramp, not a flat or empty frame
    assert image.std() > 20 and len(set(image[100, :300].tolist())) > 50


@needs_aravis
def test_inspector_run_with_an_aravis_coarse_camera(tmp_path):
    recipe = ROOT / "models" / "housing-40x30.recipe.json"
    if not (ROOT / "models" / "detector.onnx").is_file():
        pytest.skip("needs the shipped models")
    found, output = in_namespace("run", str(tmp_path), str(recipe), timeout=180.0)
    assert found["code"] == 0, output
    assert 'backend = "aravis"' in found["config"] and 'source = "Aravis-Fake-GV01"' in found["config"]
    assert "dry run: virtual lights (gardasoft), virtual cameras (fine)" in output
    # a test pattern is no part: the plausibility check calls it ERROR, which is right
    assert "parts: 2  PASS 0  FAIL 0  ERROR 2" in output
    with sqlite3.connect(tmp_path / "r.db") as db:
        rows = db.execute("SELECT serial, verdict FROM parts ORDER BY id").fetchall()
    assert rows == [("SIM-500000", "ERROR"), ("SIM-500001", "ERROR")]


def test_station_config_takes_aravis_cameras_and_their_options():
    from hardware.sim.cell import station_config_dict

    data = station_config_dict("/dev/ttyUSB0", "/dev/ttyUSB1")
    data["cameras"]["coarse"].update(backend="aravis", source="192.168.10.20", pixel_format="Mono12",
                                     trigger="Line1", gain_limits=[0.5, 8.0])
    config = StationConfig.from_dict(data, source="station.toml")
    coarse = config.cameras["coarse"]
    assert coarse.options == {"pixel_format": "Mono12", "trigger": "Line1"} and coarse.gain_limits == (0.5, 8.0)
    assert StationConfig.from_dict(config.to_dict()).cameras["coarse"] == coarse
    data["cameras"]["coarse"]["trigger"] = "whenever"
    with pytest.raises(ConfigError, match="cameras.coarse.trigger: expected \"software\", \"off\" or a trigger line"):
        StationConfig.from_dict(data, source="station.toml")
    data["cameras"]["fine"]["pixel_format"] = "Mono8"
    del data["cameras"]["coarse"]["trigger"]
    with pytest.raises(ConfigError, match="cameras.fine.pixel_format: only used with backend = \"aravis\""):
        StationConfig.from_dict(data, source="station.toml")
