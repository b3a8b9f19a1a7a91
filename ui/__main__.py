"""`python -m ui station --sim` (what `inspector station --sim` runs)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="inspector station", description="The operator station (PyQt6).")
    parser.add_argument("command", choices=["station"])
    parser.add_argument("--sim", action="store_true", required=True, help="run on the virtual cell")
    parser.add_argument("--parts", type=int, default=20)
    parser.add_argument("--speed-factor", type=float, default=1.0)
    parser.add_argument("--db", default=os.path.join("out", "results.db"))
    parser.add_argument("--archive", default=os.path.join("out", "archive"))
    parser.add_argument("--recipe", default=None)
    parser.add_argument("--seed", type=int, default=500_000, help="seed of the first part (default 500000)")
    parser.add_argument("--screenshot", metavar="DIR", help="run a few parts, write a PNG of each workspace, exit")
    args = parser.parse_args(argv)

    from PyQt6.QtCore import QTimer
    from PyQt6.QtWidgets import QApplication

    from .station_window import StationWindow

    app = QApplication(sys.argv[:1])
    parts = min(args.parts, 3) if args.screenshot else args.parts
    window = StationWindow(parts=parts, speed_factor=args.speed_factor, db=args.db, archive=args.archive or None,
                           recipe=args.recipe, first_seed=args.seed)
    window.resize(1280, 800)
    window.show()
    if args.screenshot:
        out = Path(args.screenshot)
        out.mkdir(parents=True, exist_ok=True)

        def snap() -> None:
            window.grab().save(str(out / "operator.png"))
            window.close()
            app.quit()

        window.start()
        window.worker.finished.connect(lambda: QTimer.singleShot(300, snap))
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
