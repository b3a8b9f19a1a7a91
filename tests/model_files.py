"""Test helper: a candidate model pair made from a production pair by re-versioning one model."""
import shutil
from pathlib import Path


def candidate_pair(models: Path, out: Path, role: str, version: str) -> Path:
    """`out`/{detector,classifier}.onnx: the production pair in `models`, with `role`'s model carrying
    `version` in its metadata (a different file, same weights)."""
    import onnx

    out.mkdir()
    for name in ("detector", "classifier"):
        if name != role:
            shutil.copy(models / f"{name}.onnx", out / f"{name}.onnx")
    proto = onnx.load(str(models / f"{role}.onnx"))
    for prop in proto.metadata_props:
        if prop.key == "version":
            prop.value = version
    onnx.save(proto, str(out / f"{role}.onnx"))
    return out
