"""The station window. For now the operator workspace on the virtual cell; the QA and integrator
workspaces come next (issue 5)."""
from __future__ import annotations

from PyQt6.QtWidgets import QMainWindow, QTabWidget

from inspector.demo import REFERENCE_RECIPE, run_sim_lot

from .cycle_worker import CycleWorker
from .operator_view import OperatorView


class StationWindow(QMainWindow):
    def __init__(self, *, parts: int, speed_factor: float, db: str, archive: str | None, first_seed: int = 500_000,
                 recipe: str | None = None):
        super().__init__()
        self.setWindowTitle("Inspection station — virtual cell")
        self.operator = OperatorView()
        tabs = QTabWidget()
        tabs.addTab(self.operator, "Operator")
        self.setCentralWidget(tabs)
        self.cycle = None
        self.log: list[str] = []
        self._lot = dict(parts=parts, first_seed=first_seed, speed_factor=speed_factor,
                         recipe_path=recipe or REFERENCE_RECIPE, db=db, archive_dir=archive)
        self.worker: CycleWorker | None = None
        self.operator.start_button.clicked.connect(self.start)
        self.operator.pause_button.clicked.connect(self.toggle_pause)
        self.operator.stop_button.clicked.connect(self.stop)

    def start(self) -> None:
        if self.worker is not None and self.worker.thread.isRunning():
            return
        worker = CycleWorker(lambda publish: run_sim_lot(out=self.log.append, on_event=publish,
                                                         on_ready=self._keep_cycle, **self._lot))
        view = self.operator
        worker.part_started.connect(view.on_part_started)
        worker.view_captured.connect(view.on_view_captured)
        worker.candidates_found.connect(view.on_candidates)
        worker.fine_shot.connect(view.on_fine_shot)
        worker.verdict.connect(view.on_verdict)
        worker.errored.connect(lambda message: view.reason.setText(f"station fault: {message}"))
        self.worker = worker
        worker.start()

    def _keep_cycle(self, cycle) -> None:
        self.cycle = cycle

    def toggle_pause(self) -> None:
        if self.cycle is None:
            return
        if self.operator.pause_button.text() == "Pause":
            self.cycle.pause()
            self.operator.pause_button.setText("Resume")
        else:
            self.cycle.resume()
            self.operator.pause_button.setText("Pause")

    def stop(self) -> None:
        if self.cycle is not None:
            self.cycle.cancel()

    def closeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        self.stop()
        if self.worker is not None:
            self.worker.thread.quit()
            self.worker.thread.wait(30_000)
        super().closeEvent(event)
