"""The operator workspace in real Qt (offscreen) on the virtual cell: parts run on a worker thread,
verdicts reach the window through signals, and the window stays usable."""
import json

import pytest

pytest.importorskip("PyQt6")

from inspector.demo import REFERENCE_RECIPE  # noqa: E402
from ui.station_window import StationWindow  # noqa: E402


def test_operator_runs_parts_and_shows_verdicts(qtbot, tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = tmp_path / "recipe.json"
    recipe.write_text(json.dumps(data))
    window = StationWindow(parts=2, speed_factor=10, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe),
                           demo_users=True)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    window.set_session(window.station.access.login("operator", "1111"))
    qtbot.waitUntil(lambda: window.station.devices is not None, timeout=60_000)
    assert window.operator.banner.text() == "READY"
    window.operator.start_button.click()
    qtbot.waitUntil(lambda: sum(window.operator.verdicts.values()) == 2, timeout=120_000)
    assert window.operator.banner.text() in ("PASS", "FAIL", "ERROR")
    assert "parts 2" in window.operator.counters.text()
    assert "on CPU" in window.operator.provider.text()
    assert window.operator.coarse.pixmap() is not None and not window.operator.coarse.pixmap().isNull()
    qtbot.waitUntil(lambda: not window.station.running, timeout=30_000)
    assert window.grab().save(str(tmp_path / "operator.png"))


def test_fine_shot_shows_the_candidate_box(qtbot):
    """The fine shot is drawn with its candidates' boxes, in the colour of the classifier's decision."""
    import numpy as np

    from inspector.events import FineShotTaken
    from ui.operator_view import OperatorView

    view = OperatorView()
    qtbot.addWidget(view)
    view.resize(1280, 760)
    view.show()
    frame = np.zeros((480, 640), np.uint8)

    def red_pixels():
        image = view.fine.pixmap().toImage()
        return sum(1 for y in range(0, image.height(), 2) for x in range(0, image.width(), 2)
                   if (lambda c: c.red() > 150 and c.green() < 90)(image.pixelColor(x, y)))

    view.on_fine_shot(FineShotTaken("P-1", 0, 1, frame, (("scratch", 0.9, "defect"),)))
    assert red_pixels() == 0  # no box given: nothing drawn
    view.on_fine_shot(FineShotTaken("P-1", 0, 1, frame, (("scratch", 0.9, "defect"),), ((200, 150, 440, 330),)))
    assert red_pixels() > 50
