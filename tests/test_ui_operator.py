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
