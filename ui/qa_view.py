"""The QA engineer's workspace: three tabs, the review queue (`review_panel`: filters, gallery, the open
item of `review_item` with its canvas of `review_canvas`, COCO export), retrain & promote
(`promotion_panel`) and the defect kinds (`kinds_panel`: name a new kind, teach it). Thin: `qa_models`
holds the state and calls the core, which checks the session's role itself; `retrain_job` builds the retraining commands and refuses an export that cannot
train the chosen model.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QLabel, QTabWidget, QVBoxLayout, QWidget

from inspector.access import AccessControl, Session
from inspector.recipe import Recipe
from inspector.station_config import StationConfig

from .kinds_panel import KindsPanel
from .promotion_panel import PromotionPanel
from .qa_models import PromotionModel, ReviewModel
from .review_item import html as _html
from .review_panel import ReviewPanel

__all__ = ["QAView", "ReviewPanel", "PromotionPanel"]


class QAView(QWidget):
    """The QA engineer's workspace. `set_session` (called by the shell after login) enables what the
    role may do; the core refuses the rest anyway."""

    session_changed = pyqtSignal(object)

    def __init__(self, db: str, access: AccessControl, *, recipe_path: str | Path, models_dir: str | Path,
                 parent: QWidget | None = None, work_dir: str | Path | None = None,
                 station_config: StationConfig | None = None):
        super().__init__(parent)
        db = str(db)
        # absolute: where exports and jobs go must not depend on the directory the station was started from
        self.work_dir = (Path(work_dir) if work_dir is not None else (
            Path(db).parent / "qa" if "://" not in db else Path("out") / "qa")).resolve()
        self.access = access
        # the station's calibration (mm <-> px) for overlays and the review-set comparison; None: those
        # actions say so instead of guessing (the station window passes the --sim or --config one)
        try:  # the production recipe's kinds are known to the review queue from the start
            kinds = Recipe.load(recipe_path).kinds
        except (OSError, ValueError):
            kinds = ()  # the retrain & promote tab says what is wrong with the recipe
        self.review_model = ReviewModel(db, self, export_root=self.work_dir / "exports", station_config=station_config,
                                        kinds=kinds, recipe_path=recipe_path)
        self.promotion_model = PromotionModel(access, recipe_path, models_dir, parent=self)
        self.review = ReviewPanel(self.review_model)
        self.promotion = PromotionPanel(self.review_model, self.promotion_model, self.work_dir)
        self.session_label = QLabel()
        self.tabs = QTabWidget()
        self.tabs.addTab(self.review, "Review queue")
        self.tabs.addTab(self.promotion, "Retrain && promote")
        self.kinds = KindsPanel(self.review_model)
        self.tabs.addTab(self.kinds, "Defect kinds")
        self.kinds.teach_requested.connect(self._teach)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.session_label)
        layout.addWidget(self.tabs, 1)
        self.review_model.message.connect(lambda _text: self.promotion.update_view())
        self.set_session(None)
        self.refresh()

    def _teach(self, kind: str) -> None:
        self.tabs.setCurrentWidget(self.promotion)
        self.promotion.start_teaching(kind)

    @property
    def session(self) -> Session | None:
        return self.review_model.session

    def set_station_config(self, config: StationConfig | None) -> None:
        self.review_model.set_station_config(config)

    def set_session(self, session: Session | None) -> None:
        self.review_model.set_session(session)
        self.promotion_model.set_session(session)
        if session is None:
            self.session_label.setText("Not logged in: the queue is read-only.")
        else:
            may = "review, relabel, export, retrain and promote" if session.allows("review") else "view only"
            self.session_label.setText(f"Logged in as <b>{_html(session.user)}</b> ({session.role}): {may}.")
        self.promotion.update_view()
        self.session_changed.emit(session)

    def refresh(self) -> None:
        """Reload from the database (the station keeps writing parts)."""
        self.review.refresh()
        self.promotion.update_view()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.promotion.shutdown()
        super().closeEvent(event)
