"""The operator's side of a recipe saved anew: a notice with a choice in the operator workspace.

Load the new version now (when a lot runs: as soon as it ends, never in the middle of one), or keep
running the current version — then a one-line reminder stays, with the Load button, until the new
version runs. The version the station runs is shown beside the recipe; when it changes for another
reason (Reset and Connect read the file again) the status bar says so."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from PyQt6.QtCore import QObject

from .recipe_watch import NewerRecipe, RecipeWatch, recipe_head


class RecipeNotice(QObject):
    def __init__(self, station, view, say: Callable[[str], None]) -> None:
        super().__init__()
        self.station, self.view, self.say = station, view, say
        self.watch = RecipeWatch(self.running_version)
        self.offer: NewerRecipe | None = None  # the newer version offered and not loaded yet
        self.kept = False  # the operator chose to keep the current version
        self.queued = False  # Load pressed during a lot: loads when the lot ends
        self._picked: dict[Path, int] = {}  # recipe file -> version when the operator picked it
        self._shown: int | None = None
        self.watch.newer.connect(self._newer)
        view.recipe_load_button.clicked.connect(self.load)
        view.recipe_keep_button.clicked.connect(self.keep)
        station.running_changed.connect(self._running_changed)
        station.models_changed.connect(lambda _lines: self.show_version())
        self.follow(station.recipe_path)

    def running_version(self, path: Path) -> int | None:
        """The version of `path` the station runs: its cycle's, else the one in the file when picked."""
        loaded = self.station.controller.loaded_recipe
        if loaded is not None and Path(loaded[0]) == Path(path):
            return loaded[1]
        return self._picked.get(Path(path))

    def follow(self, path: str | Path) -> None:
        """The operator picked `path`: what is in it now is what they chose."""
        path = Path(path)
        head = recipe_head(path)
        if head is not None:
            self._picked[path] = head[1]
        self.offer, self.kept, self.queued, self._shown = None, False, False, None
        self.view.recipe_notice.setVisible(False)
        self.watch.watch(path)
        self.show_version()

    def _newer(self, newer: NewerRecipe) -> None:
        self.offer, self.kept, self.queued = newer, False, False
        self._show_notice()

    def _show_notice(self) -> None:
        offer, view = self.offer, self.view
        if offer is None:
            view.recipe_notice.setVisible(False)
            return
        running = self.station.running
        if self.queued:
            text = (f"{offer.recipe_id} version {offer.on_disk} loads when this lot ends; the parts of this lot "
                    f"are inspected with version {offer.running}.")
        elif self.kept:
            text = f"Running {offer.recipe_id} version {offer.running}; version {offer.on_disk} is saved but not loaded."
        else:
            text = (f"A newer version of the running recipe was saved: {offer.recipe_id} version {offer.on_disk} "
                    f"(this station runs version {offer.running})."
                    + (" It can load between lots, not during this one." if running else ""))
        view.recipe_notice_text.setText(text)
        view.recipe_load_button.setText(f"Load version {offer.on_disk}" + (" after this lot" if running else " now"))
        view.recipe_load_button.setVisible(not self.queued)
        view.recipe_keep_button.setText(f"Keep version {offer.running}")
        view.recipe_keep_button.setVisible(not self.kept and not self.queued)
        view.recipe_notice.setVisible(True)
        self.show_version()

    def load(self) -> None:
        if self.offer is None:
            return
        if self.station.running:
            self.queued = True
            self._show_notice()
            return
        self._apply()

    def keep(self) -> None:
        if self.offer is not None:
            self.kept = True
            self.say(f"keeping {self.offer.recipe_id} version {self.offer.running}; version "
                     f"{self.offer.on_disk} is not loaded")
            self._show_notice()

    def _apply(self) -> None:
        offer = self.offer
        self.queued = False
        if offer is None or not self.station.select_recipe(offer.path, reload=True):
            self._show_notice()  # refused (the station said why): the choice stays open
            return
        self._picked[offer.path] = offer.on_disk
        self.offer, self.kept = None, False
        self.view.recipe_notice.setVisible(False)
        self.station.controller.load_recipe()  # the cycle from the file now (READY/DONE; else the next lot)
        self.say(f"{offer.recipe_id} version {offer.on_disk} loaded for the next parts")
        self.show_version()

    def _running_changed(self, running: bool, _paused: bool) -> None:
        if not running and self.queued:
            self._apply()
        elif self.offer is not None:
            self._show_notice()

    def show_version(self) -> None:
        """The running version beside the recipe; a version that changed without the notice is said."""
        path = self.station.recipe_path
        version = self.running_version(path)
        offer = self.offer
        if offer is not None and version is not None and version >= offer.on_disk:
            self.offer, self.kept, self.queued = None, False, False  # e.g. Reset read the file again
            self.view.recipe_notice.setVisible(False)
            offer = None
        if version is not None and self._shown is not None and version != self._shown:
            self.say(f"recipe {Path(path).name}: now running version {version} (was {self._shown})")
        self._shown = version
        text = f"v{version}" if version is not None else ""
        if offer is not None:
            text += f" (v{offer.on_disk} saved)"
        self.view.recipe_version.setText(text)
