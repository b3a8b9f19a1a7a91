"""Open a model package: onnxruntime session on the chosen provider + its validated contract."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import onnxruntime as ort

from .model_package import ModelContractError, ModelInfo, parse_metadata
from .providers import ProviderChoice, create_session


@dataclass
class LoadedModel:
    info: ModelInfo
    session: ort.InferenceSession
    provider: ProviderChoice
    input_name: str

    def describe(self) -> str:
        return self.provider.describe(f"{self.info.task} model {self.info.name}")


def load_model(path: str | Path, *, task: str | None = None, class_names: Sequence[str] | None = None,
               prefer: Sequence[str] | None = None, intra_op_threads: int | None = None) -> LoadedModel:
    path = str(path)
    if not Path(path).is_file():
        raise ModelContractError(path, "file not found")
    try:
        session, choice = create_session(path, prefer=prefer, intra_op_threads=intra_op_threads)
    except Exception as exc:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph/RuntimeError types
        if isinstance(exc, ModelContractError):
            raise
        raise ModelContractError(path, f"onnxruntime cannot load it: {str(exc).splitlines()[0][:200]}") from exc
    info = parse_metadata(session.get_modelmeta().custom_metadata_map, path).require(task=task, class_names=class_names)
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelContractError(path, f"expected one input tensor, found {len(inputs)}")
    shape = inputs[0].shape
    channels = shape[1] if len(shape) == 4 else None
    named = info.extra.get("channels")  # a detector's stacked input channels (inspector.channels)
    depth = len(named) if isinstance(named, list) and named else 1
    if len(shape) != 4 or (isinstance(channels, int) and channels != depth):
        raise ModelContractError(path, f"input {inputs[0].name!r} has shape {shape}; the contract says NCHW with "
                                       f"{depth} mono channel(s) (N, {depth}, H, W)")
    for axis, expected in zip((2, 3), info.input_size):
        if expected and isinstance(shape[axis], int) and shape[axis] != expected:
            raise ModelContractError(path, f"input shape {shape} does not match metadata input_size {list(info.input_size)}")
    return LoadedModel(info=info, session=session, provider=choice, input_name=inputs[0].name)
