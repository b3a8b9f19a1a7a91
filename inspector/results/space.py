"""Free space before a part starts: its record and images must fit above a floor, so a full disk
stops the lot with one line instead of losing a part half-written."""
from __future__ import annotations

import shutil
from pathlib import Path


def existing_ancestor(path: str | Path) -> Path:
    """The path itself or its nearest existing parent (a store or archive not created yet)."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def free_bytes(path: str | Path) -> int:
    return shutil.disk_usage(existing_ancestor(path)).free


def free_space_problem(path: str | Path, floor_bytes: float, what: str) -> str | None:
    """One line when the filesystem holding `path` has less than `floor_bytes` free, else None."""
    free = free_bytes(path)
    if free >= floor_bytes:
        return None
    return (f"disk nearly full: {free / 1e6:.0f} MB free for the {what} ({path}), "
            f"{floor_bytes / 1e6:.0f} MB needed; free space there")
