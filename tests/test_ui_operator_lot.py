"""The operator during a lot, offscreen on the virtual cell: the last verdict stays on the banner
while the next part runs, Stop answers in the same event-loop turn, and closing the window during a
lot asks first and leaves the cell safe (the real QMessageBox, answered by clicking its buttons)."""
import numpy as np
import pytest

pytest.importorskip("PyQt6")

from PyQt6.QtWidgets import QMessageBox  # noqa: E402

from inspector.events import FineShotTaken, PartStarted, VerdictReady  # noqa: E402
from inspector.results.records import DefectRecord, PartRecord  # noqa: E402
from ui.operator_view import OperatorView  # noqa: E402
from ui.station_window import StationWindow  # noqa: E402


def open_window(qtbot, tmp_path, recipe, *, parts):
    window = StationWindow(parts=parts, speed_factor=10, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe),
                           demo_users=True)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitUntil(lambda: window.station.devices is not None and not window.station.busy, timeout=60_000)
    window.set_session(window.station.access.login("operator", "1111"))
    return window


def record(part: str, serial: str, verdict: str, reason: str = "", defects=()) -> PartRecord:
    return PartRecord(part_id=part, serial=serial, started_at=0.0, finished_at=0.0, station="t", recipe_id="r",
                      recipe_version=1, recipe_hash="h", model_versions={}, provider="CPU", verdict=verdict,
                      reason=reason, defects=tuple(defects), timings_s={"total": 1.0})


def test_verdict_stays_while_the_next_part_runs_and_stop_answers_at_once(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=4)
    view = window.operator
    window.start()
    # the first verdict is in and the next part has started
    qtbot.waitUntil(lambda: view.last_record is not None and view.activity.text().startswith("▶")
                    and view.last_record.serial not in view.activity.text(), timeout=120_000)
    first = view.last_record
    assert view.banner.text() == first.verdict  # not grey, not '…': the last verdict holds
    assert view.verdict_serial.text() == first.serial
    assert view.history.entries[0].serial == first.serial and view.history.entries[0].verdict == first.verdict
    assert "inspecting SIM-" in view.activity.text()

    view.stop_button.click()  # no event processing between the click and the checks
    assert not view.stop_button.isEnabled() and not view.pause_button.isEnabled()
    assert not view.start_button.isEnabled()
    assert view.alarm.state_label.text() == "Stopping"
    assert view.activity.text().startswith("■ stopping")
    qtbot.waitUntil(lambda: not window.station.running, timeout=60_000)
    assert view.alarm.state_label.text() == "Idle" and view.start_button.isEnabled()
    last = view.last_record
    # the fine pane shows the last part's own shot or none: never an earlier part's defect box
    assert view._fine_part in (None, last.part_id)
    if view._fine_part is None:
        assert view.fine.source is None and f"no fine shot of {last.serial}" in view.fine_caption.text()


def test_fine_pane_never_shows_the_previous_parts_box_under_a_new_verdict(qtbot):
    view = OperatorView()
    qtbot.addWidget(view)
    view.show()
    frame = np.zeros((120, 160), np.uint8)
    view.on_part_started(PartStarted("A", "SIM-1"))
    view.on_fine_shot(FineShotTaken("A", 0, 1, frame, (("scratch", 0.9, "defect"),), ((40, 40, 80, 80),)))
    view.on_verdict(VerdictReady("A", record("A", "SIM-1", "FAIL", defects=[
        DefectRecord("scratch", 0.9, "top", (40, 40, 80, 80), "fine")]), 1))
    assert view.fine.source is not None and view.banner.text() == "FAIL"
    view.on_part_started(PartStarted("B", "SIM-2"))
    assert view.banner.text() == "FAIL" and view.verdict_serial.text() == "SIM-1"  # held while B runs
    assert "previous part, SIM-1" in view.fine_caption.text()
    view.on_verdict(VerdictReady("B", record("B", "SIM-2", "ERROR", "cancelled by operator: part not fully inspected"), 2))
    assert view.banner.text() == "ERROR" and view.verdict_serial.text() == "SIM-2"
    assert view.fine.source is None and "no fine shot of SIM-2" in view.fine_caption.text()
    assert [(e.serial, e.verdict) for e in view.history.entries] == [("SIM-2", "ERROR"), ("SIM-1", "FAIL")]


def test_closing_during_a_lot_asks_and_leaves_the_cell_safe(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=6)
    station, view = window.station, window.operator
    window.start()
    qtbot.waitUntil(lambda: view.last_record is not None, timeout=120_000)

    window.close()
    assert window.isVisible() and window.close_dialog is not None
    window.close_dialog.button(QMessageBox.StandardButton.No).click()
    assert window.close_dialog is None and window.isVisible()
    assert station.running and not window._closing  # No: nothing happened, the lot goes on
    done = sum(view.verdicts.values())
    qtbot.waitUntil(lambda: sum(view.verdicts.values()) > done, timeout=120_000)

    window.close()
    window.close_dialog.button(QMessageBox.StandardButton.Yes).click()
    assert view.activity.text().startswith("■ closing")
    qtbot.waitUntil(lambda: window.safe_report is not None, timeout=120_000)
    report = window.safe_report
    assert report.safe, report.text()
    assert report.lines[0] == "lot stopped"
    assert report.lines[1].startswith("stage stopped (controller reports ")
    assert report.lines[2].startswith("lights off")
    cell = station.cell
    assert cell is not None and all(c.percent == 0 for c in cell.lights.channel_state().values())  # the emulator itself
    assert window.isVisible() and "The cell is safe" in window.close_dialog.text()
    window.close_dialog.button(QMessageBox.StandardButton.Ok).click()
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=60_000)
    assert station.controller.state.value == "offline"
    assert "stopped by the operator" in station.log


def test_a_recipe_that_cannot_load_keeps_start_off_with_the_reason(qtbot, tmp_path, recipe):
    """Not READY with Start on, not a machine Alarm to Reset: 'Not ready' with the reason; picking a
    recipe that loads makes the station ready again."""
    import json

    models = tmp_path / "recipes"
    models.mkdir()
    good = models / "good.recipe.json"
    good.write_text(recipe.read_text())
    data = json.loads(recipe.read_text())
    data["models"]["detector"] = str(tmp_path / "gone" / "detector.onnx")
    bad = models / "bad.recipe.json"
    bad.write_text(json.dumps(data))
    window = StationWindow(parts=1, speed_factor=10, db=str(tmp_path / "r.db"), archive=None, recipe=str(bad),
                           models_dir=str(models), demo_users=True)
    qtbot.addWidget(window)
    window.show()
    window.set_session(window.station.access.login("operator", "1111"))
    station, view = window.station, window.operator
    qtbot.waitUntil(lambda: station.devices is not None and not station.busy, timeout=60_000)
    assert view.alarm.state_label.text() == "Not ready" and view.banner.text() == "NOT READY"
    assert "bad.recipe.json" in view.alarm.reason.text()
    assert not view.start_button.isEnabled() and not view.reset_button.isEnabled()
    assert view.start_reason.isVisible() and "bad.recipe.json" in view.start_reason.text()
    assert "detector.onnx" in view.start_reason.text()  # the file that is missing
    assert station.controller.fault_code == 5  # the PLC interfaces still see 'models or recipe could not load'

    view.recipe.setCurrentIndex(view.recipe.findData(str(good)))
    qtbot.waitUntil(lambda: view.start_button.isEnabled(), timeout=60_000)
    assert view.alarm.state_label.text() == "Idle" and not view.start_reason.isVisible()
    assert station.controller.state.value == "ready" and view.banner.text() == "READY"

    view.recipe.setCurrentIndex(view.recipe.findData(str(bad)))  # picked while ready: checked before any Start
    qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Not ready", timeout=60_000)
    assert not view.start_button.isEnabled() and "bad.recipe.json" in view.start_reason.text()
    assert station.controller.state.value == "ready"  # nothing ran, nothing faulted


def test_a_newer_recipe_version_is_announced_and_loads_only_when_chosen(qtbot, tmp_path, recipe):
    """The integrator saves the running recipe anew during a lot: the operator gets a notice and a
    choice; Load waits for the lot's end (its parts stay on the old version); Keep keeps it, with a
    reminder. Never a silent switch."""
    from dataclasses import replace

    from inspector.recipe import Recipe
    from inspector.recipe_edit import save_recipe

    window = open_window(qtbot, tmp_path, recipe, parts=3)
    station, view, controller = window.station, window.operator, window.station.controller
    integrator = station.access.login("integrator", "3333")

    def save_anew(note: str) -> int:
        old = Recipe.load(recipe)
        return save_recipe(integrator, old, replace(old, description=old.description + note), recipe,
                           station.access, note).recipe.version

    first = controller.loaded_recipe[1]
    assert view.recipe_version.text() == f"v{first}" and not view.recipe_notice.isVisible()
    window.start()
    qtbot.waitUntil(lambda: station.running and view.last_record is not None, timeout=120_000)
    second = save_anew(" (lot)")
    qtbot.waitUntil(lambda: view.recipe_notice.isVisible(), timeout=10_000)
    text = view.recipe_notice_text.text()
    assert f"version {second}" in text and f"runs version {first}" in text and "not during this one" in text
    assert view.recipe_load_button.text() == f"Load version {second} after this lot"
    view.recipe_load_button.click()
    assert "loads when this lot ends" in view.recipe_notice_text.text()
    assert controller.loaded_recipe[1] == first  # not mid-lot
    qtbot.waitUntil(lambda: not station.running, timeout=120_000)
    qtbot.waitUntil(lambda: (controller.loaded_recipe or (None, 0))[1] == second and not station.busy,
                    timeout=60_000)
    assert not view.recipe_notice.isVisible() and view.recipe_version.text() == f"v{second}"
    assert {r.recipe_version for _row, r in station.store.query()} == {first}  # the lot ran on one version

    third = save_anew(" (idle)")  # saved between lots: the choice again; Keep keeps
    qtbot.waitUntil(lambda: view.recipe_notice.isVisible(), timeout=10_000)
    assert view.recipe_load_button.text() == f"Load version {third} now"
    view.recipe_keep_button.click()
    assert view.recipe_notice.isVisible() and not view.recipe_keep_button.isVisible()  # a reminder stays
    assert "not loaded" in view.recipe_notice_text.text() and view.recipe_version.text() == f"v{second} (v{third} saved)"
    window.start()
    qtbot.waitUntil(lambda: not station.running and sum(view.verdicts.values()) == 6, timeout=180_000)
    assert {r.recipe_version for _row, r in station.store.query()} == {first, second}
    view.recipe_load_button.click()
    qtbot.waitUntil(lambda: (controller.loaded_recipe or (None, 0))[1] == third and not station.busy, timeout=60_000)
    assert not view.recipe_notice.isVisible() and view.recipe_version.text() == f"v{third}"


def test_a_restarted_station_keeps_the_shifts_counters_and_new_serials(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=2)
    view = window.operator
    window.start()
    qtbot.waitUntil(lambda: not window.station.running and sum(view.verdicts.values()) == 2, timeout=120_000)
    counters, pareto = view.counters.text(), dict(view.pareto)
    history = [(e.serial, e.verdict) for e in view.history.entries]
    window.close()  # no lot running: closes without asking
    assert not window.isVisible()

    again = open_window(qtbot, tmp_path, recipe, parts=1)  # the same result store
    view = again.operator
    qtbot.waitUntil(lambda: sum(view.verdicts.values()) == 2, timeout=30_000)
    assert view.counters.text().splitlines()[0] == counters.splitlines()[0]  # parts, PASS, FAIL, ERROR
    assert dict(view.pareto) == pareto
    assert [(e.serial, e.verdict) for e in view.history.entries] == history
    again.start()
    qtbot.waitUntil(lambda: not again.station.running and sum(view.verdicts.values()) == 3, timeout=120_000)
    serials = [r.serial for _row, r in again.station.store.query()]
    assert len(serials) == 3 and len(set(serials)) == 3, serials  # no serial issued twice
    assert serials[-1] == "SIM-500002"


def test_every_operator_action_is_inside_the_window_at_1024x768(qtbot, tmp_path, recipe):
    """The smallest station screen, with everything the operator workspace can show at once: the
    newer-recipe notice, the reason Start is off, the override form. Nothing off-screen or squashed."""
    window = StationWindow(parts=1, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe), demo_users=True,
                           connect=False)
    qtbot.addWidget(window)
    window.show()
    window.set_session(window.station.access.login("operator", "1111"))
    view = window.operator
    view.recipe_notice_text.setText("A newer version of the running recipe was saved: housing-40x30 version 8 "
                                    "(this station runs version 7). It can load between lots, not during this one.")
    view.recipe_notice.setVisible(True)
    for width, height in ((1024, 768), (1280, 800)):
        window.resize(width, height)
        qtbot.waitUntil(lambda: window.width() == width and window.height() == height, timeout=5_000)
        for _ in range(5):
            qtbot.wait(10)
        assert view.start_reason.isVisible() and "not connected" in view.start_reason.text()
        shown = [view.start_button, view.pause_button, view.stop_button, view.reset_button, view.recipe,
                 view.recipe_load_button, view.recipe_keep_button, window.logout_button, view.banner, view.history,
                 view.details.tabBar()]
        for page, widgets in ((view.pareto_list, [view.pareto_list]), (view.golden, [view.golden.check_button]),
                              (view.override_button.parentWidget(), [view.override_verdict, view.override_reason,
                                                                     view.override_button]),
                              (view.provider, [view.provider])):
            view.details.setCurrentWidget(page)  # one click on its tab
            qtbot.wait(10)
            for widget in shown + widgets:
                assert widget.isVisible(), type(widget).__name__
                top_left = widget.mapTo(window, widget.rect().topLeft())
                bottom_right = widget.mapTo(window, widget.rect().bottomRight())
                where = (width, type(widget).__name__, getattr(widget, "text", lambda: "")(), bottom_right)
                assert 0 <= top_left.x() and bottom_right.x() < window.width(), where
                assert 0 <= top_left.y() and bottom_right.y() < window.height(), where
                assert widget.height() >= min(widget.minimumSizeHint().height(), 24), where
        tabs = view.details.tabBar()  # every tab's label on screen in full: no scroll arrow, no elision
        assert tabs.sizeHint().width() <= tabs.width(), (width, tabs.sizeHint(), tabs.width())
        assert tabs.tabRect(tabs.count() - 1).right() < tabs.width()
    window.close()
