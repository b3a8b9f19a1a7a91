"""What the figures were measured on — the host, and the machine model the cycle's bounds are
computed with — and what a process holds (memory, threads, open files).

Linux /proc first (no extra dependency); elsewhere the probes return None and the report says so."""
from __future__ import annotations

import os
import platform
import subprocess
import sys
import threading
from pathlib import Path

from hardware.sim.dynamics import AXIS_ORDER


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def memory_total_mb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def load_average() -> tuple[float, float, float] | None:
    try:
        return tuple(round(v, 2) for v in os.getloadavg())  # type: ignore[return-value]
    except OSError:
        return None


def git_commit(root: Path) -> str:
    """HEAD's short hash, with '+local changes' when the working tree differs from it."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    return head + (" + local changes" if dirty else "")


def machine_info(root: Path) -> dict:
    import onnxruntime as ort

    return {"cpu_model": cpu_model(), "cores": usable_cores(), "logical_cpus": os.cpu_count(),
            "memory_mb": memory_total_mb(), "os": f"{platform.system()} {platform.release()}",
            "python": sys.version.split()[0], "onnxruntime": ort.__version__,
            "providers_in_build": list(ort.get_available_providers()), "commit": git_commit(root),
            "load_average_start": load_average()}


# -- process probes ---------------------------------------------------------------------------------
def _status_field(name: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def rss_mb() -> float | None:
    """Resident memory of this process in MiB."""
    kb = _status_field("VmRSS")
    return None if kb is None else kb / 1024.0


def os_threads() -> int | None:
    """Threads of this process as the kernel counts them (onnxruntime's native pools included)."""
    return _status_field("Threads")


def python_threads() -> int:
    return threading.active_count()


def open_files() -> int | None:
    """Open file descriptors (files, sockets, pseudo-terminals) of this process."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


# -- the machine model the cycle bounds use -------------------------------------------------------------
def dynamics_figures(dynamics) -> dict:
    """A `hardware.sim.dynamics.Dynamics` as plain figures for bench.json and the report."""
    return {"settle_s": dynamics.settle_s,
            "axes": {a: {"max_rate": lim.max_rate, "acceleration": lim.acceleration}
                     for a, lim in zip(AXIS_ORDER, dynamics.limits)}}


def describe_dynamics(figures: dict | None) -> str:
    """'X/Y/Z 400 mm/s, 3000 mm/s²; A/B 360 °/s, 3600 °/s²; settle 30 ms after every move'."""
    axes = (figures or {}).get("axes") or {}
    if not axes:
        return "the virtual cell's dynamics model"
    groups: dict[tuple, list[str]] = {}
    for name, ax in axes.items():
        groups.setdefault((ax["max_rate"], ax["acceleration"]), []).append(name.upper())
    unit = lambda names: "°" if set(names) <= {"A", "B"} else "mm"  # noqa: E731
    parts = [f"{'/'.join(n)} {r:g} {unit(n)}/s, {acc:g} {unit(n)}/s²" for (r, acc), n in groups.items()]
    return f"{'; '.join(parts)}; settle {1000 * figures['settle_s']:g} ms after every move"
