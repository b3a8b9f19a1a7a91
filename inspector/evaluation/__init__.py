"""Held-out evaluation by the station's own cycle (`inspector eval`); see lot.py for how a part is
inspected, figures.py for what each figure means and report.py for where it is published."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from .lot import HELDOUT_FIRST_SEED, EvalOptions, inspect_lot
from .report import assemble, publish, write


def evaluate(options: EvalOptions, *, command: str = "", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Inspect the lot, write report.json + report.md to `options.work`, return the report."""
    started = time.time()
    rows = inspect_lot(options, log)
    report = assemble(rows, options.recipe, first_seed=options.first_seed, speed_factor=options.speed_factor,
                      workers=options.workers, seconds=time.time() - started, command=command)
    write(report, Path(options.work))
    return report


__all__ = ["EvalOptions", "HELDOUT_FIRST_SEED", "evaluate", "publish", "write"]
