"""Input channels: a light program's steps name their frames, a view stacks channels for the detector
(frames and photometric curvature), and loading refuses a view that cannot give the detector its input."""
import numpy as np
import pytest

from hardware.lights.base import LightProgram
from hardware.sim.geometry import COARSE_CAMERA
from hardware.sim.part import Defect, make_part
from inspector.channels import (LEGACY, check_view_channels, detector_input, extra_frame_name, provides,
                                record_frames)
from inspector.inference.detector import preprocess
from inspector.inference.model_package import Normalisation
from training.data.generate import coarse_input
from training.lights import DETECTOR_CHANNELS, coarse_program_dict, sim_segments

SEGMENTS = sim_segments()


def test_steps_are_named_by_channel_or_position_and_names_are_checked():
    program = LightProgram.from_dict("p", {"steps": [{"levels": {"coaxial": 30}}, {"levels": {"low_angle": 90}, "channel": "dark"}]})
    assert program.channel_names == ("step1", "dark")
    assert program.to_dict()["steps"][1]["channel"] == "dark"
    with pytest.raises(ValueError, match=r"program 'p' step 1: channel 'Dark'"):
        LightProgram.from_dict("p", {"steps": [{"levels": {"coaxial": 30}, "channel": "Dark"}]})
    with pytest.raises(ValueError, match="channel 'a' names more than one step"):
        LightProgram.from_dict("p", {"steps": [{"levels": {"coaxial": 3}, "channel": "a"}, {"levels": {"ring": 3}, "channel": "a"}]})


def test_derived_channels_need_three_segment_frames_with_directions():
    program = LightProgram.from_dict("coarse", coarse_program_dict())
    assert set(provides(program, SEGMENTS)) >= {"frame", "mixed", "bright", "dark", "curvature", "albedo"}
    assert "curvature" not in provides(program, {})  # no [lights.segments] in the station config
    assert check_view_channels("top", DETECTOR_CHANNELS, program, SEGMENTS, DETECTOR_CHANNELS, "d.onnx") is None
    problem = check_view_channels("top", DETECTOR_CHANNELS, program, {}, DETECTOR_CHANNELS, "d.onnx")
    assert "view 'top'" in problem and "'curvature'" in problem and "[lights.segments]" in problem
    problem = check_view_channels("top", LEGACY, program, SEGMENTS, DETECTOR_CHANNELS, "d.onnx")
    assert problem == "view 'top' stacks channels ['frame'] but detector d.onnx expects ['bright', 'dark', 'curvature']"


def test_every_frame_is_recorded_the_first_under_the_base_name():
    images = {}
    frames = {"mixed": np.zeros((2, 2), np.uint8), "dark": np.ones((2, 2), np.uint8)}
    record_frames(images, "coarse_top", frames)
    assert list(images) == ["coarse_top", extra_frame_name("dark", "coarse_top")] == ["coarse_top", "dark@coarse_top"]
    assert images["dark@coarse_top"] is frames["dark"]


def test_stack_follows_the_channel_order_and_curvature_sees_a_dent_concave():
    part = make_part(5, defects=(Defect(1, "dent", "top", 8.0, 3.0, 1.2, 1.2, 0.08),), fixture_error=(0, 0, 0))
    stack, result = coarse_input(part, "top")
    assert stack.shape == (COARSE_CAMERA.height_px, COARSE_CAMERA.width_px, 3) and stack.dtype == np.uint8
    box = next(t.box_px for t in result.truth if t.kind == "dent")
    x0, y0, x1, y1 = box
    cy, cx = (y0 + y1) // 2, (x0 + x1) // 2
    curvature = stack[:, :, 2].astype(int)
    centre = curvature[cy - 2:cy + 3, cx - 2:cx + 3].mean()
    flat = np.median(curvature[100:200, 300:700])
    assert abs(flat - 128) <= 3 and centre > flat + 20  # concave: brighter than flat metal
    # the bare first frame is the legacy input; a stack in another order is that order
    frames = {"mixed": stack[:, :, 0], "bright": stack[:, :, 0], "dark": stack[:, :, 1]}
    assert detector_input(LEGACY, frames, SEGMENTS, 0.05) is frames["mixed"]
    swapped = detector_input(("dark", "bright"), frames, SEGMENTS, 0.05)
    assert (swapped[:, :, 0] == stack[:, :, 1]).all() and (swapped[:, :, 1] == stack[:, :, 0]).all()
    with pytest.raises(ValueError, match="no frame for channel 'ring'"):
        detector_input(("dark", "ring"), frames, SEGMENTS, 0.05)


def test_preprocess_normalises_each_channel_and_refuses_a_wrong_depth():
    stack = np.dstack([np.full((30, 40), v, np.uint8) for v in (0, 128, 255)])
    batch = preprocess(stack, Normalisation(1 / 255, (0.0, 0.5, 1.0), (1.0, 0.5, 1.0)), 32, 3)
    assert batch.shape == (1, 3, 32, 64)
    assert np.allclose(batch[0, :, 0, 0], [0.0, (128 / 255 - 0.5) / 0.5, 0.0], atol=1e-6)
    with pytest.raises(ValueError, match="stack of 3 channels, got an image of shape \\(30, 40\\)"):
        preprocess(stack[:, :, 0], Normalisation(), 32, 3)


def test_station_config_segments_are_checked_in_one_line():
    from hardware.sim.cell import station_config_dict
    from inspector.schema import ConfigError
    from inspector.station_config import StationConfig

    data = station_config_dict("/dev/null", "/dev/null")
    assert StationConfig.from_dict(data).lights.segments == SEGMENTS  # the virtual cell gives its directions
    for bad, message in (({"seg_x": [0, 40]}, "lights.segments.seg_x: not a segment light wired"),
                         ({"seg_n": [90, 95]}, r"lights.segments.seg_n: expected \[azimuth°, elevation° in \(0, 90\)\]"),
                         ({"seg_n": [90]}, "lights.segments.seg_n")):
        data["lights"]["segments"] = bad
        with pytest.raises(ConfigError, match=message):
            StationConfig.from_dict(data)


def _two_stage(recipe_data, model_paths, detector_path=None):
    from hardware.sim.cell import station_config_dict
    from inspector.demo import REFERENCE_RECIPE
    from inspector.inference.classifier import Classifier
    from inspector.inference.detector import Detector
    from inspector.recipe import Recipe
    from inspector.station_config import StationConfig
    from inspector.two_stage import TwoStage

    recipe_data["models"] = {"detector": str(detector_path or model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(recipe_data, source=str(REFERENCE_RECIPE))
    station = StationConfig.from_dict(station_config_dict("/dev/null", "/dev/null"))
    return TwoStage(recipe, station, Detector.open(str(detector_path or model_paths[0])), Classifier.open(str(model_paths[1])))


def test_the_shipped_recipe_feeds_the_shipped_detector_and_a_mismatch_is_refused_at_load(model_paths, tmp_path):
    import json

    from inspector.demo import REFERENCE_RECIPE
    from inspector.schema import ConfigError

    data = json.loads(REFERENCE_RECIPE.read_text())
    stages = _two_stage(json.loads(json.dumps(data)), model_paths)
    assert all(view.channels == stages.detector.channels for view in stages.recipe.views)
    if stages.detector.channels == LEGACY:
        pytest.skip("the detector under test takes the first frame only")
    for view in data["views"]:
        view.pop("channels", None)  # views that still take the first frame alone
    with pytest.raises(ConfigError, match=r"views\[0\]\.channels: view 'top' stacks channels \['frame'\] but detector "):
        _two_stage(json.loads(json.dumps(data)), model_paths)
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["light_programs"][data["views"][0]["light_program"]]["steps"] = [{"levels": {"coaxial": 50}, "channel": "bright"}]
    with pytest.raises(ConfigError, match="gives no channel 'dark'"):
        _two_stage(data, model_paths)


def test_a_detector_whose_metadata_names_other_channels_than_its_graph_takes_is_refused(model_paths, tmp_path):
    import onnx

    from inspector.inference.detector import Detector
    from inspector.inference.model_package import ModelContractError

    proto = onnx.load(str(model_paths[0]))
    depth = proto.graph.input[0].type.tensor_type.shape.dim[1].dim_value
    for prop in proto.metadata_props:
        if prop.key == "channels":
            prop.value = '["bright"]' if depth != 1 else '["bright", "dark"]'
            break
    else:
        proto.metadata_props.add(key="channels", value='["bright", "dark"]')
    onnx.save(proto, str(tmp_path / "detector.onnx"))
    with pytest.raises(ModelContractError, match="channel"):
        Detector.open(str(tmp_path / "detector.onnx"))


def test_a_further_step_whose_light_did_not_fire_is_implausible():
    from inspector.plausibility import ImplausibleFrame, check_step_frame

    part = make_part(5, defects=(), fixture_error=(0, 0, 0))
    from hardware.sim.geometry import face_view_pose
    from hardware.sim.render import render

    for face in ("top", "north"):  # dark field is the dimmest step; a side face the dimmest view
        dark = render(part, face_view_pose(face, COARSE_CAMERA), {"low_angle": 100.0}, COARSE_CAMERA, exposure_us=3000).image
        check_step_frame(dark, "dark")
    unlit = render(part, face_view_pose("top", COARSE_CAMERA), {}, COARSE_CAMERA, exposure_us=3000).image
    with pytest.raises(ImplausibleFrame, match="step 'seg_n': too dark: no light"):
        check_step_frame(unlit, "step 'seg_n'")
    with pytest.raises(ImplausibleFrame, match="saturat"):
        check_step_frame(np.full((40, 40), 255, np.uint8), "step 'bright'")
