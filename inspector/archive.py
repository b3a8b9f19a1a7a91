"""Image archive: coarse frames and fine shots of NG and ERROR parts, and a sample of PASS parts.

Layout: root/YYYYMMDD/part_id/<image>.png, with a `.verdict` file per part. Retention: PASS parts are
kept `keep_pass_days`, NG (FAIL/ERROR) parts `keep_ng_days`; above `max_gb` in all, or below
`min_free_mb` free on its filesystem, the oldest parts go first (PASS before NG). Pruning runs at most
every `prune_every_s` as parts are saved, and whenever a part would not fit (`space_problem`)."""
from __future__ import annotations

import logging
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .results.space import free_bytes

log = logging.getLogger(__name__)

MAX_NAME = 128
_DAY = re.compile(r"^\d{8}$")
_BYTES_PER_PART_GUESS = 16_000_000  # a part with every step of its captures: about 14 MB of PNGs (35 coarse frames)


def check_path_part(value: object, what: str) -> str:
    """`value` as one safe folder name, or ValueError in one line naming it (a station name or part
    serial that would escape the archive, or that no filesystem takes)."""
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} {value!r}: must be a non-empty text")
    if len(value) > MAX_NAME:
        raise ValueError(f"{what} {value[:40]!r}…: {len(value)} characters, at most {MAX_NAME}")
    if value in (".", ".."):
        raise ValueError(f"{what} {value!r}: not a name")
    for bad, why in (("/", "'/'"), ("\\", "'\\'"), ("\x00", "NUL")):
        if bad in value:
            raise ValueError(f"{what} {value!r}: contains {why}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{what} {value!r}: contains a control character")
    return value


@dataclass(frozen=True)
class Pruned:
    parts: int
    bytes: int


class ImageArchive:
    def __init__(self, root: str | Path, pass_sample_every: int = 20, *, keep_pass_days: float = 30.0,
                 keep_ng_days: float = 365.0, max_gb: float | None = 50.0, min_free_mb: float = 500.0,
                 prune_every_s: float = 600.0):
        self.root = Path(root)
        self.pass_sample_every = pass_sample_every  # 0: keep no PASS images
        self.keep_pass_days, self.keep_ng_days = keep_pass_days, max(keep_ng_days, keep_pass_days)
        self.max_gb, self.min_free_mb, self.prune_every_s = max_gb, min_free_mb, prune_every_s
        self.last_part_bytes = _BYTES_PER_PART_GUESS
        self._pass_count = 0
        self._last_prune = 0.0

    def wants(self, verdict: str) -> bool:
        if verdict != "PASS":
            return True
        self._pass_count += 1
        return self.pass_sample_every > 0 and (self._pass_count - 1) % self.pass_sample_every == 0

    def save(self, part_id: str, images: dict[str, np.ndarray], verdict: str | None = None) -> list[str]:
        """Write `name → image` as PNGs under root/YYYYMMDD/part_id/; returns the paths. `verdict` sets
        how long they are kept (none given: as NG, the longer)."""
        check_path_part(part_id, "part id")
        for name in images:
            check_path_part(name, f"part {part_id}: image name")
        folder = self.root / time.strftime("%Y%m%d") / part_id
        folder.mkdir(parents=True, exist_ok=True)
        paths, written = [], 0
        for name, image in images.items():
            path = folder / f"{name}.png"
            if not cv2.imwrite(str(path), image):
                raise OSError(f"archive: cannot write {path}")
            written += path.stat().st_size
            paths.append(str(path))
        (folder / ".verdict").write_text(verdict or "NG")
        if written:
            self.last_part_bytes = written
        if time.time() - self._last_prune >= self.prune_every_s:
            self.prune()
        return paths

    # -- space and retention ------------------------------------------------------------------------
    def space_problem(self) -> str | None:
        """Why the next part's images would not fit above the free-space floor (after pruning), or None."""
        need = self.min_free_mb * 1e6 + self.last_part_bytes
        if free_bytes(self.root) >= need:
            return None
        self.prune()
        free = free_bytes(self.root)
        if free >= need:
            return None
        return (f"disk nearly full: {free / 1e6:.0f} MB free for the image archive ({self.root}) after pruning, "
                f"{need / 1e6:.0f} MB needed; free space there")

    def prune(self, now: float | None = None) -> Pruned:
        """Remove parts past their retention, then the oldest (PASS first) while the archive is over
        `max_gb` or its filesystem under `min_free_mb` free."""
        now = time.time() if now is None else now
        self._last_prune = time.time()
        parts = self._parts()
        removed, freed = 0, 0
        keep: list[tuple[float, bool, Path, int]] = []
        for when, ng, folder in parts:
            age_days = (now - when) / 86400
            if age_days > (self.keep_ng_days if ng else self.keep_pass_days):
                freed += self._remove(folder)
                removed += 1
            else:
                keep.append((when, ng, folder, _size(folder)))
        total = sum(k[3] for k in keep)
        over = (lambda: total > self.max_gb * 1e9) if self.max_gb is not None else (lambda: False)
        floor = self.min_free_mb * 1e6 + self.last_part_bytes
        if over() or (self.root.exists() and free_bytes(self.root) < floor):
            for when, ng, folder, size in sorted(keep, key=lambda k: (k[1], k[0])):  # PASS first, oldest first
                if not over() and free_bytes(self.root) >= floor:
                    break
                freed += self._remove(folder)
                removed += 1
                total -= size
        if removed:
            log.info("archive %s: pruned %d parts (%.1f MB)", self.root, removed, freed / 1e6)
        return Pruned(removed, freed)

    def _parts(self) -> list[tuple[float, bool, Path]]:
        """(time, is NG, folder) of every archived part."""
        found = []
        if not self.root.is_dir():
            return found
        for day in self.root.iterdir():
            if not day.is_dir() or not _DAY.match(day.name):
                continue
            try:
                day_end = time.mktime(time.strptime(day.name, "%Y%m%d")) + 86400
            except ValueError:
                continue
            for folder in day.iterdir():
                if not folder.is_dir():
                    continue
                try:
                    verdict = (folder / ".verdict").read_text().strip()
                except OSError:
                    verdict = "NG"
                when = min(day_end, folder.stat().st_mtime)
                found.append((when, verdict != "PASS", folder))
        return found

    @staticmethod
    def _remove(folder: Path) -> int:
        size = _size(folder)
        shutil.rmtree(folder, ignore_errors=True)
        try:
            folder.parent.rmdir()  # the day folder, once empty
        except OSError:
            pass
        return size


def _size(folder: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total
