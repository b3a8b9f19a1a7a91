"""What both training loops share: fixed seeds, thread budget, checkpoints with resume, progress."""
from __future__ import annotations

import json
import os
import random
import sys
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch

try:  # progress bars when tqdm is installed (the `train` extra has it); plain lines otherwise
    from tqdm import tqdm as _tqdm
except ImportError:  # pragma: no cover
    _tqdm = None


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


def set_threads(threads: int) -> None:
    torch.set_num_threads(max(1, threads))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))


class Progress:
    """A progress bar over steps that also prints a line for logs when not on a terminal."""

    def __init__(self, total: int, initial: int = 0, desc: str = "", enabled: bool = True):
        self.total, self.step, self.desc = total, initial, desc
        self._bar = None
        if enabled and _tqdm is not None:
            self._bar = _tqdm(total=total, initial=initial, desc=desc, dynamic_ncols=True, file=sys.stderr,
                              mininterval=1.0 if sys.stderr.isatty() else 30.0)
        self._enabled = enabled

    def update(self, **metrics: float) -> None:
        self.step += 1
        if self._bar is not None:
            self._bar.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()}, refresh=False)
            self._bar.update(1)

    def write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=sys.stderr)
        elif self._enabled:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def config_dict(config: Any) -> dict[str, Any]:
    data = asdict(config) if is_dataclass(config) else dict(config)
    def plain(value: Any) -> Any:
        if isinstance(value, Path):
            return str(value)
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value
    return {k: plain(v) for k, v in data.items()}


def save_checkpoint(path: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None,
                    scheduler: Any, step: int, config: Any, extra: dict[str, Any] | None = None,
                    rng: np.random.Generator | None = None) -> Path:
    """Atomic write (temp file + rename): an interrupted save never leaves a broken checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {"model": model.state_dict(), "step": step, "config": config_dict(config), "extra": extra or {},
             "optimizer": optimizer.state_dict() if optimizer else None,
             "scheduler": scheduler.state_dict() if scheduler is not None else None,
             "torch_rng": torch.get_rng_state(), "numpy_rng": rng.bit_generator.state if rng is not None else None}
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def load_checkpoint(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    return torch.load(path, map_location="cpu", weights_only=False)


def restore(state: dict[str, Any], *, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None,
            scheduler: Any = None, rng: np.random.Generator | None = None) -> int:
    model.load_state_dict(state["model"])
    if optimizer is not None and state.get("optimizer"):
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state.get("scheduler"):
        scheduler.load_state_dict(state["scheduler"])
    if state.get("torch_rng") is not None:
        torch.set_rng_state(state["torch_rng"])
    if rng is not None and state.get("numpy_rng"):
        rng.bit_generator.state = state["numpy_rng"]
    return int(state["step"])


def warmup_cosine(optimizer: torch.optim.Optimizer, total_steps: int, warmup: int) -> torch.optim.lr_scheduler.LambdaLR:
    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.02 + 0.98 * 0.5 * (1 + np.cos(np.pi * min(progress, 1.0)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def write_json(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=_jsonable) + "\n", encoding="utf-8")
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Iterable):
        return list(value)
    raise TypeError(f"not JSON-serialisable: {type(value).__name__}")
