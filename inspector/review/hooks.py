"""Label hooks: what starts retraining once enough new review labels have accumulated.
`LabelHook` (a command or a 'module:function' entry point fired with an export's path),
`HookResult` (what happened) and `RetrainTrigger` (when due: export into a fresh folder, fire,
record; never more than one at a time, and a failure never reaches the caller)."""
from __future__ import annotations

import importlib
import logging
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HookResult:
    ok: bool
    export_path: Path | None
    message: str
    labels: int  # new labels that triggered it


@dataclass(frozen=True)
class LabelHook:
    """Fires after `threshold` new labels: exports, then runs `command + [path]` or calls
    `entry_point` ('module:function') with the export path."""
    threshold: int
    command: list[str] | None = None
    entry_point: str | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threshold, int) or self.threshold < 1:
            raise ValueError(f"label hook: threshold must be a positive integer, got {self.threshold!r}")
        if (self.command is None) == (self.entry_point is None):
            raise ValueError("label hook: give exactly one of command or entry_point")
        if self.command is not None and (not self.command or not all(isinstance(c, str) for c in self.command)):
            raise ValueError(f"label hook: command must be a non-empty list of strings, got {self.command!r}")
        if self.entry_point is not None:
            module, _, func = self.entry_point.partition(":")
            if not module or not func:
                raise ValueError(f"label hook: entry point {self.entry_point!r} must be 'module:function'")

    def fire(self, path: Path) -> str:
        """Run the hook; raises on failure, returns a short description on success."""
        if self.command is not None:
            done = subprocess.run([*self.command, str(path)], capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout or "").strip()[-500:]
                raise RuntimeError(f"command {self.command[0]!r} exited with {done.returncode}: {tail}")
            return "command exited 0"
        assert self.entry_point is not None
        module_name, _, func_name = self.entry_point.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in func_name.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise TypeError(f"entry point {self.entry_point!r} is not callable")
        result = target(path)
        return f"entry point returned {result!r}"


class RetrainTrigger:
    """Fires `hook` when enough labels are pending. The queue supplies three calls: `pending()` (new
    labels since the last delivered export), `export(folder)` → (COCO path, highest label id), and
    `record(path, label_upto, ok, message)` (remember the export and whether the hook took it)."""

    def __init__(self, hook: LabelHook, export_root: Path, *, pending: Callable[[], int],
                 export: Callable[[Path], tuple[Path, int]],
                 record: Callable[[Path, int, bool | None, str | None], None]):
        self.hook, self.export_root = hook, export_root
        self._pending, self._export, self._record = pending, export, record
        self.last_result: HookResult | None = None
        self._lock = threading.Lock()

    def after_label(self) -> None:
        try:
            self.maybe_retrain()
        except Exception:  # noqa: BLE001 - the hook never takes the station down
            log.exception("review: retraining hook failed")

    def maybe_retrain(self, *, force: bool = False) -> HookResult | None:
        """Export and fire the hook when the new-label count reached its threshold (or `force`).
        Returns what happened (also kept as `last_result`), None when nothing was due."""
        if not self._lock.acquire(blocking=False):
            return None
        try:
            pending = self._pending()
            if pending < self.hook.threshold and not (force and pending):
                return None
            stamp = time.strftime("%Y%m%d_%H%M%S")
            out = self.export_root / f"review_{stamp}"
            n = 1
            while out.exists():
                n += 1
                out = self.export_root / f"review_{stamp}_{n}"
            try:
                path, upto = self._export(out)
            except Exception as exc:  # noqa: BLE001
                result = HookResult(False, None, f"export failed: {type(exc).__name__}: {exc}", pending)
                log.error("review: %s; the labels stay in the store and are exported next time", result.message)
                self.last_result = result
                return result
            try:
                message = self.hook.fire(path)
                result = HookResult(True, path, message, pending)
                log.info("review: %d new labels exported to %s; hook: %s", pending, path, message)
            except Exception as exc:  # noqa: BLE001
                result = HookResult(False, path, f"hook failed: {type(exc).__name__}: {exc}", pending)
                log.error("review: %s (export %s kept)", result.message, path)
            self._record(path, upto, result.ok, result.message[:2000])
            self.last_result = result
            return result
        finally:
            self._lock.release()
