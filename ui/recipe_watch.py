"""Noticing a newer version of the running recipe: the integrator saved it (in this window or
another), or someone replaced the file. The operator is told and chooses — load it (between lots,
never during one) or keep running the current version — the station never switches silently.

`RecipeWatch` follows one recipe file with a QFileSystemWatcher (and its folder: a save replaces
the file by a rename, which a watcher on the file alone loses) and reads only the file's head
(id and version) after a short settle delay, on the GUI thread: a small local JSON file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from PyQt6.QtCore import QFileSystemWatcher, QObject, QTimer, pyqtSignal


@dataclass(frozen=True)
class NewerRecipe:
    path: Path
    recipe_id: str
    running: int  # the version the station runs
    on_disk: int  # the newer version in the file


def recipe_head(path: Path) -> tuple[str, int] | None:
    """(id, version) from a recipe file's "recipe" block; None while it does not read (e.g. mid-write)."""
    try:
        head = json.loads(Path(path).read_text(encoding="utf-8"))["recipe"]
        return str(head["id"]), int(head["version"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class RecipeWatch(QObject):
    """Emits `newer(NewerRecipe)` once per version on disk newer than `running_version()`."""

    newer = pyqtSignal(object)

    def __init__(self, running_version: Callable[[Path], int | None], settle_ms: int = 300) -> None:
        super().__init__()
        self.running_version = running_version
        self.path: Path | None = None
        self.announced: int | None = None  # the newest version already announced for `path`
        self._watcher = QFileSystemWatcher(self)
        self._watcher.fileChanged.connect(self._changed)
        self._watcher.directoryChanged.connect(self._folder_changed)
        self._stamp: tuple[int, int] | None = None  # (inode, mtime ns) of the file when last read
        self._settle = QTimer(self)
        self._settle.setSingleShot(True)
        self._settle.setInterval(settle_ms)
        self._settle.timeout.connect(self.check_now)

    def watch(self, path: str | Path) -> None:
        """Follow `path` (the recipe just selected); what is there now is what the operator picked."""
        path = Path(path)
        old = self._watcher.files() + self._watcher.directories()
        if old:
            self._watcher.removePaths(old)
        self.path, self.announced, self._stamp = path, None, self._file_stamp(path)
        if path.exists():
            self._watcher.addPath(str(path))
        if path.parent.is_dir():
            self._watcher.addPath(str(path.parent))

    def _changed(self, _where: str) -> None:
        self._settle.start()  # a save is several file events: read once they have settled

    def _folder_changed(self, _where: str) -> None:
        """Another file in the folder (a result store's journal, say) is no reason to read the recipe."""
        if self.path is not None and self._file_stamp(self.path) != self._stamp:
            self._settle.start()

    @staticmethod
    def _file_stamp(path: Path) -> tuple[int, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_ino, stat.st_mtime_ns

    def check_now(self) -> NewerRecipe | None:
        path = self.path
        if path is None:
            return None
        if path.exists() and str(path) not in self._watcher.files():
            self._watcher.addPath(str(path))  # replaced by a rename: follow the new file
        self._stamp = self._file_stamp(path)
        head = recipe_head(path)
        running = self.running_version(path)
        if head is None or running is None:
            return None
        recipe_id, version = head
        if version <= running or version == self.announced:
            return None
        self.announced = version
        newer = NewerRecipe(path, recipe_id, running, version)
        self.newer.emit(newer)
        return newer
