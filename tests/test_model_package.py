"""The model contract: real ONNX files in the real onnxruntime; refusals name the file and the problem."""
import subprocess
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from inspector.inference.loaded_model import load_model
from inspector.inference.model_package import ModelContractError, ModelInfo, Normalisation, metadata_for

INFO = ModelInfo(path="", task="classify", class_names=("ok", "scratch", "dent"), input_size=(32, 32),
                 input_layout="NCHW", colour="mono", normalisation=Normalisation(1 / 255, (0.5,), (0.25,)),
                 version="1.2.0", training_data_fingerprint="sha256:abc", thresholds={"scratch": 0.6, "dent": 0.5},
                 grey_band={"scratch": (0.4, 0.6)}, metrics={"accuracy": 0.97}, extra={"stride": 4})


def tiny_model(path, props=None, channels=1, size=32):
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", channels, size, size])
    y = helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 3])
    pooled = helper.make_node("GlobalAveragePool", ["image"], ["pooled"])
    flat = helper.make_node("Flatten", ["pooled"], ["flat"])
    weights = helper.make_tensor("w", TensorProto.FLOAT, [channels, 3], [1.0, 2.0, 3.0] * channels)
    matmul = helper.make_node("MatMul", ["flat", "w"], ["scores"])
    graph = helper.make_graph([pooled, flat, matmul], "tiny", [x], [y], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    for key, value in (props if props is not None else metadata_for(INFO)).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(path))
    return path


def test_round_trip_and_inference(tmp_path):
    loaded = load_model(tiny_model(tmp_path / "cls.onnx"), task="classify", class_names=["scratch"])
    info = loaded.info
    assert info.class_names == ("ok", "scratch", "dent") and info.input_size == (32, 32)
    assert info.grey_band["scratch"] == (0.4, 0.6) and info.extra == {"stride": 4}
    assert info.normalisation.std == (0.25,) and info.metrics["accuracy"] == 0.97
    out = loaded.session.run(None, {loaded.input_name: np.ones((2, 1, 32, 32), np.float32)})[0]
    assert out.shape == (2, 3) and np.allclose(out[0], [1, 2, 3])
    assert loaded.provider.short_name == "CPU"
    assert loaded.describe().startswith("classify model cls@1.2.0 on CPU")


@pytest.mark.parametrize("mutate,problem", [
    (lambda p: p.pop("class_names"), "lacks class_names"),
    (lambda p: p.update(task="segment"), "'task' is 'segment'"),
    (lambda p: p.update(class_names="[ok"), "'class_names' is not valid JSON"),
    (lambda p: p.update(thresholds='{"burr": 0.5}'), "names class 'burr'"),
    (lambda p: p.update(grey_band='{"dent": [0.7, 0.2]}'), "grey band for 'dent'"),
    (lambda p: p.update(input_size="[32]"), "input_size"),
    (lambda p: p.update(contract="other/9"), "contract"),
])
def test_bad_metadata_is_refused_naming_file(tmp_path, mutate, problem):
    props = metadata_for(INFO)
    mutate(props)
    path = tiny_model(tmp_path / "bad.onnx", props)
    with pytest.raises(ModelContractError) as info:
        load_model(path)
    assert str(path) in str(info.value) and problem in str(info.value)


def test_model_without_contract(tmp_path):
    path = tiny_model(tmp_path / "plain.onnx", props={})
    with pytest.raises(ModelContractError, match="plain.onnx: metadata_props lacks contract"):
        load_model(path)


def test_recipe_mismatch(tmp_path):
    path = tiny_model(tmp_path / "cls.onnx")
    with pytest.raises(ModelContractError, match="is a 'classify' model, the recipe needs a 'detect' model"):
        load_model(path, task="detect")
    with pytest.raises(ModelContractError, match="no class 'burr'"):
        load_model(path, class_names=["scratch", "burr"])


def test_input_shape_must_match_contract(tmp_path):
    with pytest.raises(ModelContractError, match="NCHW with 1 mono channel"):
        load_model(tiny_model(tmp_path / "rgb.onnx", channels=3))
    with pytest.raises(ModelContractError, match="does not match metadata input_size"):
        load_model(tiny_model(tmp_path / "big.onnx", size=64))


def test_corrupt_and_missing_files(tmp_path):
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07garbage" * 50)
    with pytest.raises(ModelContractError, match="corrupt.onnx: onnxruntime cannot load it"):
        load_model(corrupt)
    with pytest.raises(ModelContractError, match="file not found"):
        load_model(tmp_path / "nope.onnx")


def test_provider_choice_is_one_plain_line(tmp_path):
    """No native error wall on a machine without a GPU: the process prints nothing at load."""
    path = tiny_model(tmp_path / "cls.onnx")
    code = ("from inspector.inference.loaded_model import load_model;"
            f"m = load_model({str(path)!r}); print(m.describe())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    from inspector.inference.providers import nvidia_driver_problem
    if nvidia_driver_problem():
        assert lines[0].startswith("classify model cls@1.2.0 on CPU: CUDA not available (")
