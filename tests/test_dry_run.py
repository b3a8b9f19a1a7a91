"""`inspector run --config` as a dry run: the stage is a real controller (here the grblHAL emulator on its
own pty, standing in for one, with a G54 offset left in it), lights and cameras are virtual; the whole
cycle runs against the controller and the verdicts are scored against the virtual parts' truth."""
import re

import pytest

from hardware.sim.cell import station_config_dict
from hardware.sim.grbl_emulator import GrblEmulator
from inspector.cli import main
from inspector.devices import open_devices
from inspector.station_config import StationConfig


@pytest.mark.parametrize("light_protocol", ["gardasoft", "template"])
def test_dry_run_on_a_real_stage_with_virtual_lights_and_cameras(tmp_path, recipe, capsys, light_protocol):
    with GrblEmulator(speed_factor=200.0, work_offsets={"G54": (5.0, 0.0, 0.0, 0.0, 0.0)}) as controller:
        data = station_config_dict(controller.port_path, "virtual", light_protocol, name="dry-run",
                                   origin=list(controller.stage_origin))
        config = tmp_path / "station.toml"
        StationConfig.from_dict(data, source="test").save(config)
        assert 'url = "virtual"' in config.read_text()
        code = main(["run", "--config", str(config), "--parts", "2", "--seed", "500000", "--recipe", str(recipe),
                     "--db", str(tmp_path / "r.db"), "--archive", ""])
    out = capsys.readouterr().out
    assert code == 0, out
    assert (f"stage grblhal on {controller.port_path}; dry run: virtual lights ({light_protocol}), "
            "virtual cameras (coarse, fine)") in out
    parts = re.findall(r"^(SIM-\d+)\s+(PASS|FAIL|ERROR)\s.*\| truth (PASS|FAIL):", out, re.MULTILINE)
    assert [serial for serial, _, _ in parts] == ["SIM-500000", "SIM-500001"], out
    assert all(verdict == truth for _, verdict, truth in parts), out


def test_virtual_lights_need_the_virtual_cell():
    station = StationConfig.from_dict(station_config_dict("/dev/ttyUSB0", "virtual"), source="station.toml")
    with pytest.raises(ValueError, match='station.toml: lights.url is "virtual": the lights need the virtual cell'):
        open_devices(station)


def test_dry_run_refuses_virtual_cameras_behind_real_lights(tmp_path, capsys):
    config = tmp_path / "station.toml"
    StationConfig.from_dict(station_config_dict("/dev/ttyUSB0", "/dev/ttyUSB1"), source="test").save(config)
    assert main(["run", "--config", str(config), "--parts", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"inspector run: {config}: cameras.coarse.backend: a virtual camera sees only virtual lights, but "
                   "lights.url is a real port (set lights.url = \"virtual\", or give the camera a real backend)"]


@pytest.mark.parametrize("argv, message", [
    ([], "one of the arguments --sim --config is required"),
    (["--sim", "--config", "station.toml"], "argument --config: not allowed with argument --sim"),
    (["--config", "station.toml", "--work-offset", "1,2,3,4,5"], "argument --work-offset: only with --sim"),
    (["--sim", "--work-offset", "1,2,3"], "argument --work-offset: '1,2,3': expected 5 comma-separated values"),
    (["--sim", "--reply-latency-ms", "200-30"], "argument --reply-latency-ms: '200-30': the low end is above"),
    (["--sim", "--reply-latency-ms=-5-10"], "argument --reply-latency-ms: '-5-10': a latency cannot be negative"),
    (["--sim", "--reply-latency-ms", "nan-5"], "argument --reply-latency-ms: 'nan-5': expected finite"),
])
def test_run_options_fail_in_one_line_naming_the_option(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", *argv])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("inspector run: error: ") and message in last
