"""The integrator workspace driven offscreen against a real virtual cell over its pseudo-terminals:
connect, home, jog, go to a view, set a light, live frame, add a view, edit thresholds and rules,
save a new version (diff, backup, audit), calibrate from a target image; roles and busy state."""
import json
import os
from pathlib import Path

import cv2
import pytest

pytest.importorskip("pytestqt")
from PyQt6.QtCore import Qt  # noqa: E402

from hardware.sim.cell import VirtualCell  # noqa: E402
from inspector.access import AccessControl, AccessDenied, Session  # noqa: E402
from inspector.calibration import render_dot_target  # noqa: E402
from inspector.devices import open_devices  # noqa: E402
from inspector.recipe import Recipe  # noqa: E402
from inspector.recipe_edit import save_recipe, set_class_policy  # noqa: E402
from inspector.results.sqlite_store import ResultStore  # noqa: E402
from inspector.schema import dump_toml  # noqa: E402
from inspector.station_config import StationConfig  # noqa: E402
from tests.access_helpers import staff  # noqa: E402
from ui.integrator_view import IntegratorView  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[1] / "models" / "housing-40x30.recipe.json"
INTEGRATOR: Session = None  # logged in by the `access` fixture: sessions come only from a login
OPERATOR: Session = None
WAIT_MS = 20_000


@pytest.fixture
def cell():
    with VirtualCell(seed=500_003, speed_factor=10) as cell:
        yield cell


@pytest.fixture
def devices(cell):
    devices = open_devices(StationConfig.from_dict(cell.station_config_dict()), virtual_cell=cell)
    yield devices
    devices.close()


@pytest.fixture
def access(tmp_path):
    global INTEGRATOR, OPERATOR
    with ResultStore(tmp_path / "results.db") as store:
        control = AccessControl(store)
        users = staff(control, ("ina", "integrator", "4711"), ("otto", "operator", "1234"),
                      ("ian", "integrator", "5678"))
        INTEGRATOR, OPERATOR = users["ina"], users["otto"]
        control.ian = users["ian"]
        yield control


@pytest.fixture
def recipe_file(tmp_path):
    """The reference recipe as version 1 (the tests follow its versions from there)."""
    data = json.loads(REFERENCE.read_text(encoding="utf-8"))
    data["recipe"]["version"] = 1
    path = tmp_path / "housing.recipe.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return path


@pytest.fixture
def view(qtbot, access, recipe_file, devices):
    view = IntegratorView(access, recipe_path=recipe_file, station_name="virtual-cell")
    qtbot.addWidget(view)
    view.resize(1280, 800)
    view.show()
    yield view
    view.set_devices(None)
    view.shutdown()


def position(view):
    """The stage-frame pose (machine position less the station's origin)."""
    return view.machine_state.pose.as_tuple() if view.machine_state else None


def near(values, expected, tolerance=0.01):  # the stage stops on motor steps (0.004 mm, 0.004°)
    return values is not None and all(abs(v - e) <= tolerance for v, e in zip(values, expected))


def wait_idle_at(qtbot, view, expected):
    qtbot.waitUntil(lambda: view.machine_state is not None and view.machine_state.state == "Idle"
                    and near(position(view), expected), timeout=WAIT_MS)


def test_integrator_jogs_lights_views_edits_and_saves(qtbot, view, devices, cell, recipe_file, access):
    view.set_session(INTEGRATOR)
    view.set_devices(devices)
    qtbot.waitUntil(lambda: view.pills["motion"].state == "connected" and view.pills["lights"].state == "connected",
                    timeout=WAIT_MS)
    assert view.pills["coarse"].state == "ready" and view.pills["fine"].state == "ready"
    qtbot.waitUntil(lambda: view.machine_state is not None and view.machine_state.state == "Alarm", timeout=WAIT_MS)

    qtbot.mouseClick(view.jog.home_button, Qt.MouseButton.LeftButton)
    wait_idle_at(qtbot, view, cell.motion.home_position)  # at the switches, less the pull-off
    qtbot.waitUntil(lambda: view.last_message[0] == "homed", timeout=WAIT_MS)
    assert view.jog.readout["x"].toolTip() == "MPos -1.000"  # the controller's own count, for motion.origin

    view.jog.view_choice.setCurrentText("top")
    qtbot.mouseClick(view.jog.goto_button, Qt.MouseButton.LeftButton)
    wait_idle_at(qtbot, view, (0.0, 0.0, 56.0, 0.0, 0.0))

    view.jog.linear_step.setCurrentText("1 mm")
    qtbot.mouseClick(view.jog.plus["x"], Qt.MouseButton.LeftButton)
    wait_idle_at(qtbot, view, (1.0, 0.0, 56.0, 0.0, 0.0))
    qtbot.waitUntil(lambda: view.jog.readout["x"].text() == "+1.000", timeout=WAIT_MS)
    view.jog.rotary_step.setCurrentText("15°")
    qtbot.mouseClick(view.jog.plus["a"], Qt.MouseButton.LeftButton)
    wait_idle_at(qtbot, view, (1.0, 0.0, 56.0, 15.0, 0.0))
    qtbot.keyClick(view, Qt.Key.Key_PageUp)
    wait_idle_at(qtbot, view, (1.0, 0.0, 57.0, 15.0, 0.0))
    qtbot.keyClick(view, Qt.Key.Key_Left, Qt.KeyboardModifier.ShiftModifier)
    wait_idle_at(qtbot, view, (1.0, 0.0, 57.0, 0.0, 0.0))
    assert near(cell.motion.machine_pose().as_tuple(), (1.0, 0.0, 57.0, 0.0, 0.0))

    qtbot.mouseClick(view.jog.goto_button, Qt.MouseButton.LeftButton)
    wait_idle_at(qtbot, view, (0.0, 0.0, 56.0, 0.0, 0.0))

    # lights: the emulator's channel 1 (coaxial) follows the slider
    view.lights.set_level("coaxial", 60)
    view.lights.set_level("low_angle", 100)
    qtbot.waitUntil(lambda: cell.lights.channel_state()[1].mode == "continuous"
                    and cell.lights.channel_state()[1].percent == 60.0
                    and cell.lights.channel_state()[3].percent == 100.0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: view.lights.values["coaxial"].text() == "60 %", timeout=WAIT_MS)

    # live view: one frame of the coarse camera at the chosen exposure
    view.live.camera.setCurrentText("coarse")
    view.live.exposure.setValue(2500)
    qtbot.mouseClick(view.live.snap_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.live.frame is not None, timeout=WAIT_MS)
    frame = view.live.frame
    assert frame.image.shape == (768, 1024) and frame.exposure_us == 2500 and frame.meta["face"] == "top"
    assert "coarse #" in view.live.info.text()

    # add a view at the current pose (after a 2 mm jog in Y)
    view.jog.linear_step.setCurrentText("1 mm")
    qtbot.keyClick(view, Qt.Key.Key_Up)
    qtbot.keyClick(view, Qt.Key.Key_Up)
    wait_idle_at(qtbot, view, (0.0, 2.0, 56.0, 0.0, 0.0))
    editor = view.recipe_editor
    editor.new_view_name.setText("top-offset")
    qtbot.mouseClick(editor.add_view_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.draft.views[-1].name == "top-offset", timeout=WAIT_MS)
    added = editor.draft.views[-1]
    assert added.face == "top" and near(added.pose.as_tuple(), (0.0, 2.0, 56.0, 0.0, 0.0))
    assert added.exposure_us == 2500

    # thresholds and rules in the tables; a bad value is refused with the field named
    detect_before = editor.draft.classes["dent"].detect_threshold
    editor.set_threshold("dent", "Detect ≥", "0.25")
    assert editor.draft.classes["dent"].detect_threshold == 0.25
    grey_before = editor.draft.classes["dent"].grey_band
    editor.set_threshold("dent", "Grey low", "0.9")
    assert view.last_message[1] and "classes.dent.grey_band" in view.last_message[0]
    assert editor.draft.classes["dent"].grey_band == grey_before  # refused: unchanged
    editor.rules.item(0, 3).setText("1")
    assert editor.draft.rules[0].max_count == 1
    assert editor.changes_label.text() == "3 unsaved changes"

    # save: the dialog shows the diff and wants a reason; the file becomes version 2, v1 is kept
    qtbot.mouseClick(editor.save_button, Qt.MouseButton.LeftButton)
    dialog = view.save_dialog
    assert dialog is not None and dialog.isVisible()
    lines = [dialog.diff.item(i).text() for i in range(dialog.diff.count())]
    assert f"classes.dent.detect_threshold: {detect_before:g} → 0.25" in lines
    assert '+ views[5].name: "top-offset"' in lines  # an added view: one field a line, not one JSON line
    assert all(len(line) < 120 for line in lines), lines
    assert str(recipe_file.resolve()) in dialog.target_label.text()  # the file it overwrites, in full
    assert "housing.recipe.v1.json" in dialog.target_label.text()  # and where version 1 is kept
    assert not dialog.save_button.isEnabled()
    dialog.reason.setText("offset view for the gate mark; fewer missed dents")
    qtbot.mouseClick(dialog.save_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: editor.loaded.version == 2, timeout=WAIT_MS)
    saved = Recipe.load(recipe_file)
    assert saved.version == 2 and saved.views[-1].name == "top-offset"
    assert saved.classes["dent"].detect_threshold == 0.25 and saved.rules[0].max_count == 1
    assert Recipe.load(recipe_file.with_name("housing.recipe.v1.json")).version == 1
    entry = access.audit(target="recipe:housing-40x30")[0]
    assert (entry.who, entry.reason) == ("ina", "offset view for the gate mark; fewer missed dents")
    assert entry.new["fields"]["classes.dent.detect_threshold"] == 0.25
    assert entry.old["fields"]["classes.dent.detect_threshold"] == detect_before
    assert "saved housing-40x30 version 2" in view.last_message[0]
    assert editor.changes_label.text() == "no unsaved changes" and not editor.save_button.isEnabled()
    assert "top-offset" in [view.jog.view_choice.itemText(i) for i in range(view.jog.view_choice.count())]


def test_operator_cannot_jog_set_lights_or_save_and_the_core_refuses_too(qtbot, view, devices, cell, recipe_file,
                                                                         access):
    view.set_session(OPERATOR)
    view.set_devices(devices)
    qtbot.waitUntil(lambda: view.pills["motion"].state == "connected", timeout=WAIT_MS)
    assert not view.jog.plus["x"].isEnabled() and not view.jog.home_button.isEnabled()
    assert not view.lights.isEnabled() and not view.live.snap_button.isEnabled()
    assert not view.recipe_editor.save_button.isEnabled() and not view.recipe_editor.add_view_button.isEnabled()
    assert not view.calibration.file_button.isEnabled()
    before = cell.motion.machine_pose()
    view.jog_axis("x", 5.0)  # called past the UI: nothing is sent
    qtbot.keyClick(view, Qt.Key.Key_Right)
    assert cell.motion.machine_pose() == before

    # an edit that slipped past the UI is refused by the core when saved
    editor = view.recipe_editor
    editor.draft = set_class_policy(editor.draft, "dent", detect_threshold=0.9)
    assert view.save_draft("looks fine to me") is None
    assert view.last_message[1] and "otto (operator) may not edit recipe" in view.last_message[0]
    with pytest.raises(AccessDenied, match="may not edit recipe"):
        save_recipe(OPERATOR, editor.loaded, editor.draft, recipe_file, access, "sneaky")
    assert Recipe.load(recipe_file).version == 1 and access.audit(target="recipe:housing-40x30") == []

    view.set_session(None)
    assert not view.jog.stop_button.isEnabled() and not view.connect_button.isEnabled()
    view.set_session(INTEGRATOR)
    assert view.jog.plus["x"].isEnabled() and view.lights.isEnabled()


def test_busy_and_disconnected_states(qtbot, view, devices):
    view.set_session(INTEGRATOR)
    assert view.pills["motion"].state == "not connected" and not view.jog.plus["x"].isEnabled()
    assert view.connect_button.isEnabled() and not view.disconnect_button.isEnabled()
    with qtbot.waitSignal(view.connect_requested, timeout=1000):
        qtbot.mouseClick(view.connect_button, Qt.MouseButton.LeftButton)
    view.set_devices(devices)
    qtbot.waitUntil(lambda: view.pills["motion"].state == "connected", timeout=WAIT_MS)
    view.live.live_button.setChecked(True)
    view.set_busy(True)
    assert not view.jog.plus["a"].isEnabled() and not view.lights.isEnabled()
    assert not view.live.live_button.isChecked() and not view.live.snap_button.isEnabled()
    assert view.recipe_editor.thresholds.editTriggers() != view.recipe_editor.thresholds.EditTrigger.NoEditTriggers
    view.set_busy(False)
    assert view.jog.plus["a"].isEnabled() and view.lights.isEnabled() and view.live.snap_button.isEnabled()
    view.set_devices(None)
    assert all(p.state == "not connected" for p in view.pills.values())
    assert not view.jog.plus["x"].isEnabled() and view.jog.readout["x"].text() == "–"


def test_calibrate_from_a_target_image_and_write_the_station_config(qtbot, view, devices, cell, tmp_path, access):
    station = tmp_path / "station.toml"
    station.write_text(dump_toml(cell.station_config_dict()), encoding="utf-8")
    target = tmp_path / "target.png"
    # a 0.5 mm dot grid seen by a fine camera of 0.0098 mm/px
    cv2.imwrite(str(target), render_dot_target((600, 800), 0.5 / 0.0098, 22.0, angle_deg=0.4, grid=(13, 9), seed=5))
    view.set_session(INTEGRATOR)
    view.set_station_config(station)
    assert "fine 0.01 mm/px" in view.calibration.current.text()
    view.side_tabs.setCurrentWidget(view.calibration)
    view.calibration.camera.setCurrentText("fine")
    view.calibration.pitch.setValue(0.5)
    view.calibration.measure_file(str(target))
    qtbot.waitUntil(lambda: view.calibration.result is not None, timeout=WAIT_MS)
    result = view.calibration.result
    assert result.camera == "fine" and result.mm_per_px == pytest.approx(0.0098, rel=1e-4)
    assert "117 dots" in view.calibration.output.text()
    assert view.calibration.write_button.isEnabled()
    with qtbot.waitSignal(view.calibration_written, timeout=WAIT_MS):
        qtbot.mouseClick(view.calibration.write_button, Qt.MouseButton.LeftButton)
    assert StationConfig.load(station).cameras["fine"].calibration.mm_per_px == pytest.approx(0.0098, rel=1e-4)
    assert access.audit()[0].action == "calibrate"

    # the virtual cell shows a part, not a target: a live measurement says so
    view.set_devices(devices)
    view.calibration.camera.setCurrentText("coarse")
    view.calibration.output.setText("")
    qtbot.mouseClick(view.calibration.live_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: view.calibration.output.text() not in ("", "measuring…"), timeout=WAIT_MS)
    assert "dot" in view.calibration.output.text()
    assert view.calibration.result is None and not view.calibration.write_button.isEnabled()


def test_a_recipe_saved_elsewhere_meanwhile_is_not_overwritten(qtbot, view, recipe_file, access):
    view.set_session(INTEGRATOR)
    editor = view.recipe_editor
    editor.set_threshold("burr", "Detect ≥", "0.35")
    on_disk = Recipe.load(recipe_file)
    save_recipe(access.ian, on_disk, set_class_policy(on_disk, "stain", detect_threshold=0.2),
                recipe_file, access, "from the other station")
    assert view.save_draft("mine") is None
    assert "holds 'housing-40x30' version 2, but the edit started from version 1" in view.last_message[0]
    qtbot.mouseClick(editor.revert_button, Qt.MouseButton.LeftButton)
    assert editor.loaded.version == 2 and editor.changes() == []
    assert editor.draft.classes["stain"].detect_threshold == 0.2
    assert "version 2 reloaded" in view.last_message[0]


def test_calibrate_live_on_the_virtual_cells_plate(qtbot, view, devices, cell):
    view.set_session(INTEGRATOR)
    view.set_devices(devices)
    panel = view.calibration
    view.side_tabs.setCurrentWidget(panel)
    assert panel.plate_button.isVisibleTo(view)
    panel.camera.setCurrentText("coarse")
    panel.plate_button.click()
    assert cell.target is not None and panel.pitch.value() == 1.0
    assert panel.plate_pitch_mm == {"coarse": 1.0, "fine": 0.25}
    devices.lights.all_off()
    devices.lights.set_level("backlight", 60)
    devices.motion.home(60).wait(65)
    devices.motion.move_to(cell.target.view_pose(devices.cameras["coarse"].spec)).wait(30)
    panel.output.setText("")
    qtbot.mouseClick(panel.live_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.output.text() not in ("", "measuring…"), timeout=WAIT_MS)
    assert panel.result is not None, panel.output.text()
    assert panel.result.mm_per_px == pytest.approx(0.05, rel=1e-3)
    assert len(panel.frame_dots) == panel.result.measurement.dots and panel.frame.source is not None
    assert not panel.hints.isVisible()

    # lights off: no "two dots fell on one grid node" alone, but what to do, and the frame it measured
    devices.lights.all_off()
    panel.output.setText("")
    qtbot.mouseClick(panel.live_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: panel.output.text() not in ("", "measuring…"), timeout=WAIT_MS)
    assert panel.result is None and not panel.write_button.isEnabled()
    assert panel.hints.isVisible() and "backlight" in panel.hints.text() and "nearly black" in panel.hints.text()
    assert "'top' view" in panel.hints.text()
    assert panel.frame.source is not None and panel.frame.source.width() == 1024  # the frame that was measured
    assert view.last_message[1] and "calibration failed" in view.last_message[0]
    view.grab().save(str(Path(os.environ.get("SHOTS_DIR", "/tmp")) / "integrator-calibration-lights-off.png"))
    panel.camera.setCurrentText("fine")
    assert panel.pitch.value() == 0.25
    panel.plate_button.click()
    assert cell.target is None and cell.part is not None


def test_connected_workspace_fits_a_1024x768_screen(qtbot, view, devices):
    """Connected (every light channel listed), in the space the station window gives a workspace at
    1024x768 (its page viewport, 1020x666): every button of every tab is fully on screen."""
    from PyQt6.QtWidgets import QAbstractButton

    from tests.test_ui_fit import clipped_by, tab_states
    view.set_session(INTEGRATOR)
    view.set_devices(devices)
    qtbot.waitUntil(lambda: view.pills["motion"].state == "connected", timeout=WAIT_MS)
    view.resize(1020, 666)
    qtbot.wait(20)
    assert (view.width(), view.height()) == (1020, 666), view.minimumSizeHint()  # not held wider by a minimum
    clipped = []
    for state in tab_states(view):
        qtbot.wait(20)
        for button in (b for b in view.findChildren(QAbstractButton) if b.isVisible() and b.text()):
            if why := clipped_by(button, view):
                clipped.append(f"[{state}] {button.text()}: {why}")
    assert view.lights.isVisible() and clipped == []
