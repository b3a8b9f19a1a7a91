"""`python -m ui station --sim | --config FILE` (what `inspector station` runs)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

SIZES = ((1280, 800), (1920, 1080), (1024, 768))  # the first without a suffix in the file name


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspector station", description="The inspection station (PyQt6): "
                                     "operator, QA and integrator workspaces behind a PIN login.")
    parser.add_argument("command", choices=["station"])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--sim", action="store_true",
                       help="run on the virtual cell (demo users operator/1111, qa/2222, integrator/3333 "
                            "are created on a result store without users)")
    where.add_argument("--config", metavar="FILE", help="station config (TOML/JSON) of a real machine")
    parser.add_argument("--parts", type=int, default=20, help="parts per Start (default 20)")
    parser.add_argument("--speed-factor", type=float, default=1.0, help="--sim: machine time runs this much faster")
    parser.add_argument("--db", default=os.path.join("out", "results.db"),
                        help="result store with the users, audit log and review queue (default out/results.db)")
    parser.add_argument("--archive", default=os.path.join("out", "archive"), help="image archive folder ('' for none)")
    parser.add_argument("--recipe", default=None, help="recipe selected at start (default: the reference recipe)")
    parser.add_argument("--models-dir", default=None, help="where recipes and models live (default: models/)")
    parser.add_argument("--seed", type=int, default=500_000, help="--sim: seed of the first part (default 500000)")
    parser.add_argument("--screenshot", metavar="DIR",
                        help="--sim: run 3 parts, write a PNG of each workspace at 1280x800, 1920x1080 and "
                             "1024x768 (the operator's mid-lot, the last verdict held while the next part runs), "
                             "and the GUI event-loop latency, then exit")
    args = parser.parse_args(argv)
    if args.screenshot and not args.sim:
        parser.error("--screenshot needs --sim")

    from PyQt6.QtGui import QFont
    from PyQt6.QtWidgets import QApplication

    from .station_window import StationWindow

    # The lot's threads (serial I/O, rendering, inference) share the interpreter lock with the GUI
    # thread; handing it over every 1 ms instead of 5 ms keeps the window's event loop prompt.
    sys.setswitchinterval(0.001)
    if args.screenshot and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")  # screenshots need no screen
    app = QApplication(sys.argv[:1])
    app.setFont(QFont("DejaVu Sans", 10))
    parts = min(args.parts, 3) if args.screenshot else args.parts
    window = StationWindow(parts=parts, speed_factor=args.speed_factor, db=args.db, archive=args.archive or None,
                           recipe=args.recipe, first_seed=args.seed, sim=args.sim, config=args.config,
                           models_dir=args.models_dir, demo_users=args.sim)
    # production waits for the recipe's masters at the start of the shift (inspector.golden); the screenshot
    # tour shows a production lot instead
    window.station.controller.golden_enabled = not args.screenshot
    window.operator.golden.refresh()
    window.resize(*SIZES[0])
    window.show()
    if args.screenshot:
        tour = ScreenshotTour(window, Path(args.screenshot))
        tour.begin()
    code = app.exec()
    return code


class ScreenshotTour:
    """Logs in as each demo user in turn and grabs that user's workspace in a representative state:
    the operator mid-lot (the last part's verdict held while the next part is inspected), QA with the
    review queue the lot produced, the integrator on the connected devices. Also writes the GUI
    event-loop latency measured during the lot (the grabs themselves are left out of it)."""

    def __init__(self, window, out: Path):
        from PyQt6.QtCore import QTimer

        self.window, self.out, self.timer = window, out, QTimer
        self.operator_snapped = False
        out.mkdir(parents=True, exist_ok=True)

    def later(self, ms: int, step) -> None:
        self.timer.singleShot(ms, lambda: self._guarded(step))

    def _guarded(self, step) -> None:
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - e.g. a result store whose users are not the demo users
            self.abort(f"{type(exc).__name__}: {exc}")

    def abort(self, why: str) -> None:
        from PyQt6.QtWidgets import QApplication

        print(f"inspector station --screenshot: {why}", file=sys.stderr)
        self.window.confirm_close = False  # nobody to ask: stop the lot and close
        self.window.close()
        QApplication.exit(1)

    def begin(self) -> None:
        station = self.window.station
        self.snap("login")
        station.message.connect(lambda text: self.abort(text) if text.startswith("connect failed") else None)
        if station.devices is None:
            station.devices_changed.connect(lambda _d: self.later(300, self.run_lot))
        else:
            self.later(300, self.run_lot)

    def login(self, name: str, pin: str) -> None:
        self.window.set_session(self.window.station.access.login(name, pin))

    def snap(self, name: str) -> None:
        from PyQt6.QtWidgets import QApplication

        for index, (width, height) in enumerate(SIZES):
            self.window.resize(width, height)
            for _ in range(5):
                QApplication.processEvents()
            suffix = "" if index == 0 else f"@{width}x{height}"
            self.window.grab().save(str(self.out / f"{name}{suffix}.png"))
        self.window.resize(*SIZES[0])

    def run_lot(self) -> None:
        station = self.window.station
        self.login("operator", "1111")
        self.window.latency.start()
        station.running_changed.connect(self._lot_state)
        station.part_started.connect(self._part_started)
        self.window.start()

    def _part_started(self, _event) -> None:
        """The second part has started: the first one's verdict is on the banner; grab the operator
        once the new part's first coarse frame is in."""
        if self.window.operator.last_record is not None and not self.operator_snapped:
            self.operator_snapped = True
            self.later(1200, self.operator_mid_lot)

    def operator_mid_lot(self) -> None:
        view, latency = self.window.operator, self.window.latency
        if view.last_record is not None:  # the override form filled in, as an operator would
            other = "PASS" if view.last_record.verdict != "PASS" else "FAIL"
            view.override_verdict.setCurrentText(other)
            view.override_reason.setText("re-checked under the microscope")
        running = self.window.station.running
        if running:
            latency.stop()  # the grabs (a resize and a render per size) are not the station's latency
        self.snap("operator")
        if running:
            latency.start()

    def _lot_state(self, running: bool, _paused: bool) -> None:
        if not running and self.window.station.fault:
            self.abort(f"the lot stopped: {self.window.station.fault}")
        elif not running:
            self.window.latency.stop()
            self.later(500, self.operator_done)

    def operator_done(self) -> None:
        station = self.window.station
        station.running_changed.disconnect(self._lot_state)
        station.part_started.disconnect(self._part_started)
        if not self.operator_snapped:  # a one-part lot: the operator after it
            self.operator_snapped = True
            self.operator_mid_lot()
        self.login("qa", "2222")
        self.later(800, self.qa_done)

    def qa_done(self) -> None:
        if self.window.qa is not None:
            self.window.qa.refresh()  # the review queue with the items the lot produced
            review = self.window.qa.review
            if review.model.gallery.rowCount():  # one item open, as a QA engineer works on it
                review.open_row(0)
        self.later(300, self._qa_snap)

    def _qa_snap(self) -> None:
        self.snap("qa")
        self.login("integrator", "3333")
        integrator = self.window.integrator
        if integrator is not None:  # the stage at the top view under the ring light, as when setting up
            try:
                integrator.go_to_view("top")
                integrator.lights.set_level("ring", 60)
            except Exception as exc:  # noqa: BLE001 - the screenshot still shows the workspace
                print(f"integrator workspace: {exc}")
            self.later(2500, self._integrator_snap_frame)
        else:
            self.later(500, self.integrator_done)

    def _integrator_snap_frame(self) -> None:
        try:
            self.window.integrator.live.snap_button.click()
        except Exception as exc:  # noqa: BLE001
            print(f"integrator workspace: {exc}")
        self.later(1500, self.integrator_done)

    def integrator_done(self) -> None:
        from PyQt6.QtWidgets import QApplication

        self.snap("integrator")
        summary = self.window.latency.summary() + " during a 3-part lot on the virtual cell"
        (self.out / "latency.txt").write_text(summary + "\n")
        print(summary)
        for line in self.window.station.log:
            print(line)
        self.window.close()
        QApplication.quit()


if __name__ == "__main__":
    sys.exit(main())
