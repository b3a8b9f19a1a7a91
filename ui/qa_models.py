"""View-models of the QA workspace: the review queue as a filtered gallery with the open item, and
the retrain → compare → promote flow. Widgets bind to these; every change goes through the core
(`ReviewQueue.for_session`, `inspector.promotion`), which checks the session's role itself."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PyQt6.QtCore import QAbstractListModel, QModelIndex, QObject, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QIcon, QImage, QPainter, QPixmap

from inspector.access import AccessControl, AccessDenied, Session
from inspector.promotion import (HELDOUT_LOT, MODEL_ROLES, REVIEW_SET, Comparison, GateResult, GateRule,
                                 ModelPair, Promotion, SetFigures, gate, promote, write_candidate_recipe)
from inspector.planner import face_mm_to_pixel
from inspector.recipe import Recipe
from inspector.results.sqlite_store import ResultStore
from inspector.channels import LEGACY
from inspector.review import OK, CoarseStack, Label, ReviewItem, ReviewQueue, stacked_channels
from inspector.station_config import CameraConfig, StationConfig


THUMB = QSize(168, 126)
VERDICT_COLOURS = {"PASS": "#1f8a3b", "FAIL": "#c0392b", "ERROR": "#d68910"}
DECISION_COLOURS = {"defect": "#e74c3c", "review": "#f1c40f", "ok": "#3498db", "nuisance": "#3498db",
                    "added": "#2ecc71", "rejected": "#95a5a6"}


# -- overlays -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Overlay:
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in the image's pixels
    kind: str  # a key of DECISION_COLOURS
    text: str
    defect_index: int | None = None


NO_STATION_CONFIG = ("no station config: QA needs the station's camera calibration to map mm to pixels; "
                     "start the station with --config STATION.toml (or --sim for the virtual cell)")


def needs_calibration(item: ReviewItem, image_path: str) -> bool:
    """Whether drawing `item` on `image_path` maps calls from face mm onto a coarse frame."""
    stem = Path(image_path).stem
    return any(d.image_path != stem and stem == f"coarse_{d.view}" for d in item.defects)


def overlays_for(item: ReviewItem, image_path: str, labels: list[Label],
                 coarse_camera: CameraConfig | None) -> list[Overlay]:
    """Boxes to draw on one archived image: the station's calls (fine boxes on their fine shot,
    mapped from face mm onto the coarse frame of their view with the station's `coarse_camera`
    calibration; not drawn there when it is None), their latest label, and added boxes."""
    stem = Path(image_path).stem
    latest = latest_labels(labels)
    found: list[Overlay] = []
    for index, d in enumerate(item.defects):
        label = latest.get(index)
        kind = "rejected" if label == OK else d.decision if d.decision in DECISION_COLOURS else "ok"
        text = f"{index}: {label or d.defect_class}" + ("" if label else f" {d.score:.2f}")
        if d.image_path == stem:
            found.append(Overlay(tuple(float(v) for v in d.box_px), kind, text, index))
        elif stem == f"coarse_{d.view}" and coarse_camera is not None:
            cx, cy = face_mm_to_pixel(coarse_camera, *d.position_mm)
            half = max(8.0, d.size_mm / coarse_camera.calibration.mm_per_px / 2 + 4)
            found.append(Overlay((cx - half, cy - half, cx + half, cy + half), kind, text, index))
    for lb in labels:
        if lb.action == "add_box" and lb.box_px and lb.image_path and Path(lb.image_path).stem == stem:
            found.append(Overlay(tuple(float(v) for v in lb.box_px), "added", f"+ {lb.new} ({lb.who})"))
    return found


def latest_labels(labels: list[Label]) -> dict[int, str]:
    """defect index → its latest class label (a defect class or 'ok')."""
    latest: dict[int, str] = {}
    for lb in labels:
        if lb.action in ("confirm", "reject", "change_class") and lb.defect_index is not None and lb.new:
            latest[lb.defect_index] = lb.new
    return latest


# -- gallery ------------------------------------------------------------------------------------------
class ReviewGalleryModel(QAbstractListModel):
    """Review items as thumbnails (the item's first coarse frame) with serial, verdict and kind."""

    ItemRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._items: list[ReviewItem] = []
        self._icons: dict[tuple[str, str], QIcon] = {}

    def set_items(self, items: list[ReviewItem]) -> None:
        self.beginResetModel()
        self._items = list(items)
        self.endResetModel()

    def items(self) -> list[ReviewItem]:
        return list(self._items)

    def rowCount(self, parent: QModelIndex = QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self._items)

    def data(self, index: QModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or not 0 <= index.row() < len(self._items):
            return None
        item = self._items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            what = item.kind.replace("_", " ") + ("" if item.defect_index is None else f" #{item.defect_index}")
            done = " ✓" if item.status == "done" else ""
            return f"{item.serial}{done}\n{item.verdict} · {what}"
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icon(item)
        if role == Qt.ItemDataRole.ToolTipRole:
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(item.finished_at))
            return f"item {item.id} · part {item.part_id} · {when}\nrecipe {item.recipe_id} v{item.recipe_version}\n{item.reason}"
        if role == self.ItemRole:
            return item
        return None

    def _icon(self, item: ReviewItem) -> QIcon:
        path = thumbnail_source(item)
        key = (path or "", item.verdict)
        if key not in self._icons:
            pixmap = QPixmap(THUMB)
            pixmap.fill(QColor("#2b2b2b"))
            painter = QPainter(pixmap)
            if path:
                image = QImage(path)
                if not image.isNull():
                    scaled = image.scaled(THUMB, Qt.AspectRatioMode.KeepAspectRatio,
                                          Qt.TransformationMode.SmoothTransformation)
                    painter.drawImage((THUMB.width() - scaled.width()) // 2, (THUMB.height() - scaled.height()) // 2,
                                      scaled)
            else:
                painter.setPen(QColor("#bbbbbb"))
                painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter, "no images")
            painter.fillRect(0, 0, THUMB.width(), 6, QColor(VERDICT_COLOURS.get(item.verdict, "#888888")))
            painter.end()
            self._icons[key] = QIcon(pixmap)
        return self._icons[key]


def thumbnail_source(item: ReviewItem) -> str | None:
    """The image that shows the item best: the coarse frame of the view of its first call."""
    coarse = [p for p in item.image_paths if Path(p).stem.startswith("coarse_")]
    index = item.defect_index if item.defect_index is not None else next(
        (i for i, d in enumerate(item.defects) if d.decision in ("defect", "review")), None)
    if index is not None and index < len(item.defects):
        wanted = f"coarse_{item.defects[index].view}"
        for p in coarse:
            if Path(p).stem == wanted:
                return p
    return coarse[0] if coarse else (item.image_paths[0] if item.image_paths else None)


# -- the review queue -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewFilters:
    verdict: str | None = None
    defect_class: str | None = None
    grey_only: bool = False
    since: float | None = None
    until: float | None = None
    recipe_id: str | None = None
    status: str | None = None


class ReviewModel(QObject):
    """The queue, its filters, the open item and its labels; relabels go through the core as the
    logged-in user."""

    items_changed = pyqtSignal()
    current_changed = pyqtSignal()  # the open item or its labels changed
    session_changed = pyqtSignal()
    kinds_changed = pyqtSignal()  # QA named a new defect kind
    message = pyqtSignal(str)
    errored = pyqtSignal(str)

    def __init__(self, db: str, parent: QObject | None = None, *, export_root: str | Path | None = None,
                 station_config: StationConfig | None = None, kinds: tuple[str, ...] = (),
                 recipe_path: str | Path | None = None):
        super().__init__(parent)
        self.station_config = station_config  # a StationConfig: its calibration maps mm <-> px; None: not known
        self.recipe_path = recipe_path  # the production recipe: what its detector's coarse input is (exports)
        self.store = ResultStore(db)
        self.queue = ReviewQueue(self.store, export_root=export_root, kinds=kinds)  # kinds: the recipe's
        self.gallery = ReviewGalleryModel(self)
        self.filters = ReviewFilters(status="open")
        self.session: Session | None = None
        self.current: ReviewItem | None = None
        self.labels: list[Label] = []
        self._seen_row = 0

    def close(self) -> None:
        self.store.close()

    def set_station_config(self, config: StationConfig | None) -> None:
        """The station's config (e.g. after the integrator rewrote its calibration); redraws the item."""
        self.station_config = config
        self.current_changed.emit()

    @property
    def coarse_camera(self) -> CameraConfig | None:
        return None if self.station_config is None else self.station_config.cameras["coarse"]

    # -- session -------------------------------------------------------------------------------
    def set_session(self, session: Session | None) -> None:
        self.session = session
        self.session_changed.emit()

    def allows(self, action: str) -> bool:
        return self.session is not None and self.session.allows(action)

    def _actions(self):
        if self.session is None:
            raise AccessDenied("log in first: reviewing needs a QA session")
        return self.queue.for_session(self.session)

    # -- listing -------------------------------------------------------------------------------
    def refresh(self) -> int:
        """Enqueue parts the station committed since the last refresh, then reload the gallery.
        Returns the number of new items."""
        before = len(self.queue.items())
        _, self._seen_row = self.queue.enqueue_committed(after_row=self._seen_row)
        self.reload()
        added = len(self.queue.items()) - before
        self.message.emit(f"refreshed: {added} new item(s), {self.gallery.rowCount()} shown")
        return added

    def set_filters(self, filters: ReviewFilters) -> None:
        self.filters = filters
        self.reload()

    def reload(self) -> None:
        f = self.filters
        items = self.queue.items(verdict=f.verdict, defect_class=f.defect_class, grey_only=f.grey_only, since=f.since,
                                 until=f.until, recipe_id=f.recipe_id, status=f.status)
        self.gallery.set_items(items[-500:])
        self.items_changed.emit()
        if self.current is not None:
            self.open(self.current.id)

    def recipe_ids(self) -> list[str]:
        return self.queue.recipe_ids()

    # -- the open item -------------------------------------------------------------------------
    def open(self, item_id: int | None) -> None:
        if item_id is None:
            self.current, self.labels = None, []
        else:
            self.current = self.queue.get(item_id)
            self.labels = self.queue.labels(part_row=self.current.part_row)
        self.current_changed.emit()

    def defect_label(self, index: int) -> str | None:
        return latest_labels(self.labels).get(index)

    # -- actions (the core checks the role) ----------------------------------------------------
    def _do(self, what: str, call) -> Any:
        if self.current is None:
            self.errored.emit(f"{what}: open an item first")
            return None
        try:
            result = call(self._actions(), self.current.id)
        except (AccessDenied, ValueError) as exc:
            self.errored.emit(f"{what}: {exc}")
            return None
        self.open(self.current.id)
        self.message.emit(f"{what}: done as {self.session.user if self.session else '?'}")
        return result

    def confirm(self, defect_index: int) -> int | None:
        return self._do(f"confirm defect {defect_index}", lambda a, i: a.confirm(i, defect_index))

    def reject(self, defect_index: int) -> int | None:
        return self._do(f"reject defect {defect_index}", lambda a, i: a.reject(i, defect_index))

    def change_class(self, defect_index: int, new_class: str, name: str | None = None) -> int | None:
        """`name` (class 'unknown' only) names the new kind."""
        return self._do(f"defect {defect_index} → {new_class}" + (f" ({name})" if name else ""),
                        lambda a, i: a.change_class(i, defect_index, new_class, name=name))

    def add_box(self, image_path: str, box: tuple[int, int, int, int], defect_class: str) -> int | None:
        return self._do(f"missed {defect_class} on {Path(image_path).stem}",
                        lambda a, i: a.add_box(i, image_path, box, defect_class))

    def note(self, text: str) -> int | None:
        return self._do("note", lambda a, i: a.note(i, text))

    def close_item(self) -> int | None:
        result = self._do("close item", lambda a, i: a.close(i))
        if result is not None:
            self.reload()
        return result

    def coarse_stack(self) -> CoarseStack | None:
        """What the export builds coarse images with: the production recipe's channel stacks when its views
        stack channels (with the station's segment lights and calibration), else None (the frames as archived)."""
        if self.recipe_path is None:
            return None
        recipe = Recipe.load(self.recipe_path)
        channels = stacked_channels(recipe)
        if channels == LEGACY:
            return None
        if self.station_config is None:
            raise ValueError(f"the production detector takes stacks of {list(channels)}, built with the station's "
                             f"lights and calibration: {NO_STATION_CONFIG}")
        return CoarseStack(recipe, self.station_config)

    def export(self, out_dir: str | Path | None = None) -> Path | None:
        out = Path(out_dir) if out_dir else self.queue.export_root.resolve() / time.strftime("review_%Y%m%d_%H%M%S")
        try:
            path = self._actions().export_coco(out, coarse_stack=self.coarse_stack())
        except (AccessDenied, ValueError, OSError) as exc:
            self.errored.emit(f"export: {exc}")
            return None
        images = len(json.loads(path.read_text(encoding="utf-8"))["images"])
        self.message.emit(f"exported {images} labelled image(s) → {path}")
        return path


# -- retrain, compare, promote -------------------------------------------------------------------------
class PromotionModel(QObject):
    """Holds the candidate pair, the candidate recipe built from it (its pins and thresholds: what the
    gate scores and what a promotion writes), the comparison and the gate verdict; promotes through the core."""

    changed = pyqtSignal()
    message = pyqtSignal(str)
    errored = pyqtSignal(str)

    def __init__(self, access: AccessControl, recipe_path: str | Path, models_dir: str | Path,
                 rule: GateRule = GateRule(), parent: QObject | None = None):
        super().__init__(parent)
        self.access, self.recipe_path, self.models_dir, self.rule = access, Path(recipe_path), Path(models_dir), rule
        self.session: Session | None = None
        self.candidate: ModelPair | None = None
        self.candidate_recipe: Path | None = None  # written by `prepare_candidate`
        self.comparison: Comparison | None = None
        self.gate_result: GateResult | None = None
        self.production_figures: dict[str, SetFigures] = {}
        self.candidate_figures: dict[str, SetFigures] = {}

    def production(self) -> ModelPair:
        return ModelPair.from_recipe(self.recipe_path)

    def set_session(self, session: Session | None) -> None:
        self.session = session
        self.changed.emit()

    def set_candidate(self, pair: ModelPair | None) -> None:
        if pair != self.candidate:
            self.candidate, self.candidate_recipe = pair, None
            self.production_figures, self.candidate_figures = {}, {}
            self.comparison, self.gate_result = None, None
        self.changed.emit()

    def prepare_candidate(self) -> Path:
        """Write the candidate recipe (production's recipe, the candidate models pinned, their own
        thresholds and grey band) beside the candidate models; both sets are scored with it."""
        if self.candidate is None:
            raise ValueError("no candidate folder")
        self.candidate_recipe = Path(write_candidate_recipe(self.recipe_path, self.candidate).source)
        return self.candidate_recipe

    def set_figures(self, which: str, figures: SetFigures) -> None:
        """Record one set's figures for 'production' or 'candidate'; the gate is re-evaluated when
        both sets are there for both pairs."""
        (self.production_figures if which == "production" else self.candidate_figures)[figures.set_name] = figures
        if all(name in self.production_figures and name in self.candidate_figures for name in (REVIEW_SET, HELDOUT_LOT)):
            candidate = Recipe.load(self.candidate_recipe) if self.candidate_recipe is not None else None
            self.set_comparison(Comparison(
                dict(self.production_figures), dict(self.candidate_figures),
                candidate_recipe_hash=candidate.hash if candidate else "",
                production_recipe_hash=Recipe.load(self.recipe_path).hash,
                candidate_models={r: candidate.model_sha256(r) or "" for r in MODEL_ROLES} if candidate else {}))
        else:
            self.changed.emit()

    def set_comparison(self, comparison: Comparison | None) -> None:
        self.comparison = comparison
        if comparison is not None:
            self.production_figures, self.candidate_figures = dict(comparison.production), dict(comparison.candidate)
        self.gate_result = gate(comparison, self.rule) if comparison is not None else None
        self.changed.emit()

    def can_promote(self) -> bool:
        return (self.session is not None and self.session.allows("promote_model") and self.candidate is not None
                and self.gate_result is not None and self.gate_result.passed)

    def promote(self, reason: str) -> Promotion | None:
        if self.candidate_recipe is None or self.comparison is None:
            self.errored.emit("promote: compare a candidate first")
            return None
        if self.session is None:
            self.errored.emit("promote: log in first")
            return None
        try:
            result = promote(self.session, self.access, self.candidate_recipe, self.comparison,
                             recipe_path=self.recipe_path, reason=reason, rule=self.rule)
        except (AccessDenied, ValueError, OSError) as exc:
            self.errored.emit(str(exc))
            return None
        self.message.emit(result.message)
        self.comparison, self.gate_result = None, None  # production changed: compare again before another promotion
        self.changed.emit()
        return result
