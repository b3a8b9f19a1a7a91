"""Execution-provider choice: TensorRT → CUDA → CPU, decided once per model load.

onnxruntime-gpu lists the GPU providers even on a machine without a GPU and, when asked for them,
prints pages of native loader errors before falling back. Here each GPU provider is tried only
when the NVIDIA driver is present, with the native output captured, and the outcome is one plain
line: "detector on CPU: CUDA not available (no NVIDIA driver: libcuda.so.1 not found)".
"""
from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator, Sequence

import onnxruntime as ort

GPU_PROVIDERS = (("TensorrtExecutionProvider", "TensorRT"), ("CUDAExecutionProvider", "CUDA"))
CPU = "CPUExecutionProvider"
SHORT_NAMES = {"TensorrtExecutionProvider": "TensorRT", "CUDAExecutionProvider": "CUDA", CPU: "CPU"}


@dataclass(frozen=True)
class ProviderChoice:
    provider: str  # the ORT provider the session runs on
    reason: str  # why not a faster one ("" when the first choice worked)

    @property
    def short_name(self) -> str:
        return SHORT_NAMES.get(self.provider, self.provider)

    def describe(self, what: str) -> str:
        line = f"{what} on {self.short_name}"
        return f"{line}: {self.reason}" if self.reason else line


def nvidia_driver_problem() -> str | None:
    """None when the NVIDIA driver library loads and sees a device; else the reason in words."""
    try:
        libcuda = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return "no NVIDIA driver: libcuda.so.1 not found"
    if libcuda.cuInit(0) != 0:
        return "NVIDIA driver present but cuInit failed: no usable GPU"
    count = ctypes.c_int(0)
    if libcuda.cuDeviceGetCount(ctypes.byref(count)) != 0 or count.value == 0:
        return "NVIDIA driver present but no GPU found"
    return None


def create_session(model: str | bytes, *, prefer: Sequence[str] | None = None,
                   intra_op_threads: int | None = None) -> tuple[ort.InferenceSession, ProviderChoice]:
    """Open `model` on the best provider that works. `prefer` narrows the candidates, e.g. ["CPU"]."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if intra_op_threads:
        options.intra_op_num_threads = intra_op_threads
    wanted = {name.lower() for name in prefer} if prefer else None
    available = set(ort.get_available_providers())
    reasons: list[tuple[str, str]] = []  # (provider short name, why it is not used)
    driver_problem = nvidia_driver_problem()
    for provider, short in GPU_PROVIDERS:
        if wanted is not None and short.lower() not in wanted:
            continue
        if provider not in available:
            reasons.append((short, "not in this onnxruntime build"))
            continue
        if driver_problem:
            reasons.append((short, driver_problem))
            continue
        with _captured_native_output() as captured:
            try:
                session = ort.InferenceSession(model, options, providers=[provider, CPU])
            except Exception as exc:  # noqa: BLE001 - ORT raises plain RuntimeError/Fail
                session, failure = None, str(exc)
            else:
                failure = ""
        if session is not None and session.get_providers()[0] == provider:
            return session, ProviderChoice(provider, "")
        reasons.append((short, _first_cause(failure or captured.read())))
    if wanted is not None and "cpu" not in wanted and reasons:
        raise RuntimeError(_summarise(reasons))
    session = ort.InferenceSession(model, options, providers=[CPU])
    return session, ProviderChoice(CPU, _summarise(reasons))


def _summarise(reasons: list[tuple[str, str]]) -> str:
    """TensorRT and CUDA usually fail for the same reason; say it once, naming CUDA."""
    if not reasons:
        return ""
    if len({why for _, why in reasons}) == 1:
        return f"{reasons[-1][0]} not available ({reasons[-1][1]})"
    return "; ".join(f"{short} not available ({why})" for short, why in reasons)


_CAUSE = re.compile(r"(lib[\w.+-]+\.so[\w.]*: cannot open shared object file|Require [^.]+\.|CUDA failure \d+: [^;\n]+)")


def _first_cause(text: str) -> str:
    match = _CAUSE.search(text)
    if match:
        return match.group(1).rstrip(".")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[0][:160] if lines else "unknown reason")


class _Captured:
    def __init__(self, handle):
        self._handle = handle

    def read(self) -> str:
        self._handle.seek(0)
        return self._handle.read().decode("utf-8", errors="replace")


@contextmanager
def _captured_native_output() -> Iterator[_Captured]:
    """Redirect fds 1 and 2 (native code writes there directly) into a temp file."""
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile() as sink:
        saved = [os.dup(1), os.dup(2)]
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield _Captured(sink)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
