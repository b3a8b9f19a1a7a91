"""`inspector inspect` maps pixels to mm only with a calibration it was given: without --station it
stops with one line naming what is missing (exit 2, no traceback); --sim uses the virtual cell's
explicitly and replays a rendered face image."""
import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from inspector.cli import main
from inspector.demo import REFERENCE_RECIPE

ROOT = Path(__file__).resolve().parents[1]
MISSING = ("inspector inspect: needs --station STATION.toml (the camera calibration that maps pixels to mm); "
           "pass --sim to use the virtual cell's")


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    """The top face of a part with defects, rendered by the virtual cell's coarse camera under the
    recipe's light for that view and upscaled to the fine camera's scale (what `inspect IMAGE
    --face top` expects)."""
    from hardware.sim.gallery import showcase_defects
    from hardware.sim.geometry import COARSE_CAMERA, FINE_CAMERA, face_view_pose
    from hardware.sim.part import make_part
    from hardware.sim.render import render
    from inspector.recipe import Recipe

    recipe = Recipe.load(REFERENCE_RECIPE)
    top = next(v for v in recipe.views if v.face == "top")
    part = make_part(7, defects=showcase_defects())
    image = render(part, face_view_pose("top", COARSE_CAMERA), recipe.light_programs[top.light_program]["steps"][0]["levels"],
                   COARSE_CAMERA, exposure_us=top.exposure_us, seed=7).image
    scale = COARSE_CAMERA.mm_per_px / FINE_CAMERA.mm_per_px
    path = tmp_path_factory.mktemp("face") / "face.png"
    cv2.imwrite(str(path), cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC))
    return path


def test_without_station_one_line_and_exit_2(tmp_path):
    image = tmp_path / "face.png"  # never read: the calibration is checked first
    done = subprocess.run([sys.executable, "-m", "inspector.cli", "inspect", str(image)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.strip() == MISSING and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_unreadable_station_one_line_and_exit_2(tmp_path, capsys):
    code = main(["inspect", str(tmp_path / "face.png"), "--station", str(tmp_path / "missing.toml")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("inspector inspect: --station:") and "missing.toml" in err


def test_station_and_sim_exclude_each_other(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["inspect", "face.png", "--sim", "--station", str(tmp_path / "s.toml")])
    assert exc.value.code == 2 and "not allowed with argument" in capsys.readouterr().err


def test_sim_replays_a_rendered_face(face_png, model_paths, tmp_path, capsys):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(data))
    code = main(["inspect", str(face_png), "--sim", "--face", "top", "--recipe", str(recipe), "--json"])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    if data["views"][0].get("channels", ["frame"]) != ["frame"]:  # a detector on a channel stack: one image cannot feed it
        assert code != 0 and "one image cannot feed detector" in captured.out + captured.err
        return
    assert code == 0 and len(out) == 1
    result = json.loads(out[0])
    assert result["verdict"] == "FAIL" and "burr" in result["reason"]  # the showcase part has defects beyond every rule


def test_black_white_and_blurred_images_are_errors_with_the_reason(face_png, tmp_path, capsys):
    """The shipped recipe is commissioned: a frame unlike its good frames is never judged."""
    image = cv2.imread(str(face_png), cv2.IMREAD_GRAYSCALE)
    files = {"black.png": image * 0, "white.png": image * 0 + 255, "blurred.png": cv2.GaussianBlur(image, (0, 0), 15)}
    for name, pixels in files.items():
        cv2.imwrite(str(tmp_path / name), pixels)
    code = main(["inspect", "--sim", "--face", "top", *(str(tmp_path / name) for name in files)])
    lines = capsys.readouterr().out.strip().splitlines()
    assert code == 0 and len(lines) == 3
    for line, expected in zip(lines, ("too dark", "saturated", "out of focus")):
        assert ": ERROR — implausible image " in line and expected in line, line
