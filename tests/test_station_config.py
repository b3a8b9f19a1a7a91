"""Station config: a valid file loads into typed objects; each kind of mistake names file + field."""
import textwrap

import pytest

from inspector.schema import ConfigError
from inspector.station_config import StationConfig

VALID = """
[station]
name = "cell-01"

[motion]
protocol = "grblhal"
url = "/dev/ttyUSB0"
timeout_s = 3

[lights]
protocol = "gardasoft"
url = "socket://10.0.0.5:4001"
channels = { coaxial = 1, ring = 2, low_angle = 3, backlight = 4 }

[cameras.coarse]
backend = "opencv"
source = 0
width_px = 1024
height_px = 768
calibration = { mm_per_px = 0.05, optical_axis_mm = [0, 0] }

[cameras.fine]
backend = "images"
source = "replay/fine/*.png"
width_px = 800
height_px = 600
exposure_us = 1500
calibration = { mm_per_px = 0.01, optical_axis_mm = [60.0, 0.5], rotation_deg = 0.3 }
"""


def write(tmp_path, text, name="station.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_valid_file_loads(tmp_path):
    config = StationConfig.load(write(tmp_path, VALID))
    assert config.name == "cell-01"
    assert config.motion.timeout_s == 3.0 and config.motion.baudrate == 115200
    assert config.lights.channels["backlight"] == 4
    assert config.cameras["fine"].calibration.rotation_deg == pytest.approx(0.3)
    assert config.fine_offset_mm == pytest.approx((60.0, 0.5))


def test_round_trip_through_dict(tmp_path):
    config = StationConfig.load(write(tmp_path, VALID))
    again = StationConfig.from_dict(config.to_dict(), source="again")
    assert again.to_dict() == config.to_dict()


@pytest.mark.parametrize("old,new,field,expected", [
    ('protocol = "grblhal"', 'protocol = "marlin"', "motion.protocol", "expected one of 'grblhal'"),
    ("mm_per_px = 0.05", "mm_per_px = -0.05", "cameras.coarse.calibration.mm_per_px", "positive"),
    ("optical_axis_mm = [0, 0]", "optical_axis_mm = [0]", "cameras.coarse.calibration.optical_axis_mm",
     "list of 2 numbers"),
    ("low_angle = 3", "low_angel = 3", "lights.channels.low_angel", "unknown light role"),
    ("timeout_s = 3", "timeout_s = 3\nspeed = 9", "motion.speed", "unknown field"),
    ("width_px = 800", 'width_px = "800"', "cameras.fine.width_px", "expected an integer"),
    ('url = "/dev/ttyUSB0"', 'url = ""', "motion.url", "empty"),
])
def test_errors_name_file_field_and_expectation(tmp_path, old, new, field, expected):
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(ConfigError) as info:
        StationConfig.load(path)
    message = str(info.value)
    assert str(path) in message and field in message and expected in message


def test_missing_fine_camera(tmp_path):
    text = VALID[: VALID.index("[cameras.fine]")]
    with pytest.raises(ConfigError, match="cameras.fine: missing table"):
        StationConfig.load(write(tmp_path, text))


def test_syntax_error_names_file(tmp_path):
    path = write(tmp_path, "[station\nname=1")
    with pytest.raises(ConfigError, match="station.toml: not valid TOML"):
        StationConfig.load(path)


def test_template_protocol_keeps_its_table(tmp_path):
    text = VALID.replace('protocol = "gardasoft"', 'protocol = "template"') + textwrap.dedent("""
    [lights.template]
    set_level = "S{channel}{value:04d}#"
    """)
    config = StationConfig.load(write(tmp_path, text))
    assert config.lights.template == {"set_level": "S{channel}{value:04d}#"}


def test_json_station_file(tmp_path):
    import json
    config = StationConfig.load(write(tmp_path, VALID))
    path = tmp_path / "station.json"
    path.write_text(json.dumps(config.to_dict()))
    assert StationConfig.load(path) == StationConfig.from_dict(config.to_dict(), source=str(path))


def test_review_hook_section(tmp_path):
    text = VALID + '\n[review_hook]\nevery = 25\ncommand = ["retrain.sh", "--quick"]\n'
    config = StationConfig.load(write(tmp_path, text))
    assert config.review_hook.every == 25 and config.review_hook.command == ("retrain.sh", "--quick")
    assert StationConfig.from_dict(config.to_dict()).review_hook == config.review_hook
    with pytest.raises(ConfigError, match="review_hook.entry_point: expected 'module:function'"):
        StationConfig.load(write(tmp_path, VALID + '\n[review_hook]\nentry_point = "oops"\n'))
    with pytest.raises(ConfigError, match="review_hook.command: a review hook needs"):
        StationConfig.load(write(tmp_path, VALID + '\n[review_hook]\nevery = 3\n'))


def test_recipe_numbers_for_the_plc(tmp_path):
    """`[recipes]` maps the PLC's recipe_no to recipe files (relative to the config's folder); `inspector
    serve --recipe N=FILE` does the same from the command line."""
    import argparse

    from hardware.sim.cell import station_config_dict
    from inspector.serve_command import _numbered_recipe

    data = station_config_dict("/dev/ttyUSB0", "/dev/ttyUSB1")
    data["recipes"] = {"1": "housing.recipe.json", "12": "/srv/recipes/cover.recipe.json"}
    config = StationConfig.from_dict(data, source=str(tmp_path / "station.toml"))
    assert config.recipes == {1: str(tmp_path / "housing.recipe.json"), 12: "/srv/recipes/cover.recipe.json"}
    data["recipes"] = {"0": "x.json"}
    with pytest.raises(ConfigError, match="recipes.0: expected a recipe number 1–65535"):
        StationConfig.from_dict(data, source="station.toml")
    assert _numbered_recipe("3=a/b.json") == (3, "a/b.json")
    with pytest.raises(argparse.ArgumentTypeError, match="expected N=FILE"):
        _numbered_recipe("three=a.json")
