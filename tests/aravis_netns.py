"""Runs inside a network namespace of its own (`unshare -n -- python tests/aravis_netns.py SCENARIO …`,
started by tests/test_aravis_camera.py): brings `lo` up, starts Aravis's fake GigE Vision camera on
127.0.0.1, runs one scenario against it and prints its findings as JSON on the last line. No packet
leaves the namespace. Scenarios:

  camera            the driver: snaps, exposure and gain, ROI, Mono16, software trigger, limits,
                    the camera stopped and restarted (reconnect)
  cli ARGS…         `inspector ARGS…` (e.g. camera list); prints its exit code
  run DIR RECIPE    `inspector run --config` with an aravis coarse camera, a grblHAL emulator as the
                    stage, virtual lights and a virtual fine camera
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FAKE = "arv-fake-gv-camera-0.8"
SERIAL = "GV01"


def start_camera() -> subprocess.Popen:
    from hardware.cameras.aravis_camera import list_devices

    process = subprocess.Popen([FAKE, "-i", "127.0.0.1", "-s", SERIAL], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline:
        if any(d.serial == SERIAL for d in list_devices()):
            return process
        if process.poll() is not None:
            raise SystemExit(f"{FAKE} exited with {process.returncode}")
        time.sleep(0.1)
    process.kill()
    raise SystemExit(f"{FAKE} not discovered on 127.0.0.1 within 10 s")


def stop_camera(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def scenario_camera() -> dict:
    from hardware.cameras.aravis_camera import AravisCamera
    from hardware.cameras.base import CameraError

    found: dict = {}
    process = start_camera()
    camera = AravisCamera("coarse", "127.0.0.1")  # by IP address
    try:
        camera.open()
        found["id"] = camera.info.id if camera.info else None
        found["device_limits"] = camera.device_limits()
        found["limits"] = camera.limits()
        camera.configure(exposure_us=1000.0, gain=1.0)
        dim = camera.snap(timeout_s=5.0)
        camera.configure(exposure_us=8000.0, gain=4.0)
        bright = camera.snap(timeout_s=5.0)
        found["dim"] = [dim.image.dtype.str, list(dim.image.shape), float(dim.image.mean())]
        found["bright"] = [bright.image.dtype.str, list(bright.image.shape), float(bright.image.mean())]
        found["features"] = [camera._camera.get_exposure_time(), camera._camera.get_gain(),
                             camera._camera.get_trigger_source()]
        found["sequence"] = [dim.sequence, bright.sequence]
        try:
            camera.configure(gain=50.0)
        except CameraError as exc:
            found["gain_refused"] = str(exc)
        camera.configure(roi=(16, 8, 320, 240))
        found["roi_shape"] = list(camera.snap(timeout_s=5.0).image.shape)
        # the camera goes away (cable pulled, power cycled): a clear error, then a reconnect when it is back
        stop_camera(process)
        t0 = time.monotonic()
        try:
            camera.snap(timeout_s=1.0)
            found["while_stopped"] = "frame"
        except CameraError as exc:
            found["while_stopped"] = str(exc)
        found["error_after_s"] = time.monotonic() - t0
        try:
            camera.snap(timeout_s=1.0)
        except CameraError as exc:
            found["reopen_while_stopped"] = str(exc)
        process = start_camera()
        again = camera.snap(timeout_s=5.0)
        found["after_restart"] = [list(again.image.shape), float(again.image.mean()), camera.reconnects,
                                  camera._camera.get_exposure_time(), camera._camera.get_gain()]
    finally:
        camera.close()
    sixteen = AravisCamera("fine", SERIAL, pixel_format="Mono16")  # by serial
    try:
        frame = sixteen.snap(timeout_s=5.0)
        found["mono16"] = [frame.image.dtype.str, int(frame.image.max())]
    finally:
        sixteen.close()
        stop_camera(process)
    return found


def scenario_cli(args: list[str]) -> dict:
    from inspector.cli import main

    process = start_camera()
    try:
        code = main(args)
    finally:
        stop_camera(process)
    return {"code": code}


def scenario_run(folder: str, recipe: str) -> dict:
    from hardware.sim.cell import station_config_dict
    from hardware.sim.grbl_emulator import GrblEmulator
    from inspector.cli import main
    from inspector.station_config import StationConfig

    root = Path(folder)
    process = start_camera()
    try:
        with GrblEmulator(speed_factor=200.0) as controller:
            data = station_config_dict(controller.port_path, "virtual", "gardasoft", name="aravis-run",
                                       origin=list(controller.stage_origin))
            coarse = data["cameras"]["coarse"]
            coarse.update(backend="aravis", source=f"Aravis-Fake-{SERIAL}", pixel_format="Mono8", trigger="software")
            config = root / "station.toml"
            StationConfig.from_dict(data, source="test").save(config)
            code = main(["run", "--config", str(config), "--parts", "2", "--seed", "500000", "--recipe", recipe,
                         "--db", str(root / "r.db"), "--archive", str(root / "archive")])
    finally:
        stop_camera(process)
    return {"code": code, "config": config.read_text()}


def main() -> int:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    name, args = sys.argv[1], sys.argv[2:]
    if name == "camera":
        found = scenario_camera()
    elif name == "cli":
        found = scenario_cli(args)
    elif name == "run":
        found = scenario_run(*args)
    else:
        raise SystemExit(f"unknown scenario {name!r}")
    print(json.dumps(found), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
