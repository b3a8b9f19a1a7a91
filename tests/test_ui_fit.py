"""The QA and integrator workspaces as their users meet them in the station window at 1024x768 and
1280x800: every action button of every inner tab is fully inside the window (not clipped by a scroll
area, a splitter or the screen edge), and a long retraining error does not push Promote off-screen.
Screenshots go to $SHOTS_DIR when set (to look at), never compared."""
import os
from pathlib import Path

import pytest

pytest.importorskip("PyQt6")

from PyQt6.QtCore import QRect  # noqa: E402
from PyQt6.QtWidgets import QAbstractButton, QTabWidget, QWidget  # noqa: E402

from ui.station_window import StationWindow  # noqa: E402

SHOTS = os.environ.get("SHOTS_DIR")


def clipped_by(widget: QWidget, top: QWidget) -> str | None:
    """The first ancestor (up to `top`) whose rectangle does not hold all of `widget`; None if none."""
    rect = QRect(widget.mapTo(top, widget.rect().topLeft()), widget.size())
    parent = widget.parentWidget()
    while parent is not None:
        box = QRect(parent.mapTo(top, parent.rect().topLeft()), parent.size())
        if not box.contains(rect):
            return f"{type(parent).__name__} {parent.objectName()} {box} does not hold {rect}"
        if parent is top:
            return None
        parent = parent.parentWidget()
    return None


def tab_states(root: QWidget):
    """Show each page of each tab widget under `root` in turn (one level deep is what these views have)."""
    tabs = [t for t in root.findChildren(QTabWidget)]
    yield "default"
    for tab in tabs:
        for index in range(tab.count()):
            tab.setCurrentIndex(index)
            yield f"{tab.tabText(index)}"
        tab.setCurrentIndex(0)


def open_window(qtbot, tmp_path, recipe, user, pin, width, height):
    window = StationWindow(parts=1, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe), demo_users=True,
                           connect=False)
    qtbot.addWidget(window)
    window.resize(width, height)
    window.show()
    window.set_session(window.station.access.login(user, pin))
    return window


def settle(qtbot):
    for _ in range(5):
        qtbot.wait(10)


def off_screen_buttons(qtbot, window, workspace, tag):
    page = window.tabs.widget(window.page_of(workspace))
    window.tabs.setCurrentWidget(page)
    missing = []
    for state in tab_states(workspace):
        settle(qtbot)
        if SHOTS:
            window.grab().save(str(Path(SHOTS) / f"{tag}-{state.replace(' ', '_').replace('&', '')}.png"))
        buttons = [b for b in workspace.findChildren(QAbstractButton) if b.isVisible() and b.text()]
        assert buttons, state
        for button in buttons:
            why = clipped_by(button, window)
            if why:
                missing.append(f"[{state}] {button.text()!r}: {why}")
    return missing


@pytest.mark.parametrize("size", [(1024, 768), (1280, 800)])
def test_qa_workspace_every_action_on_screen(qtbot, tmp_path, recipe, size):
    window = open_window(qtbot, tmp_path, recipe, "qa", "2222", *size)
    if window.qa is None:
        pytest.skip("no QA workspace in this build")
    qa = window.qa
    # a long error line in the retraining log and the step label: Promote stays on screen
    long_error = "error: " + "the trainer said something very long about tensors and shapes " * 12
    qa.promotion.log.appendPlainText(long_error)
    qa.promotion.step_label.setText(long_error)
    assert off_screen_buttons(qtbot, window, qa, f"qa-{size[0]}x{size[1]}") == []
    qa.tabs.setCurrentWidget(qa.promotion)
    settle(qtbot)
    assert clipped_by(qa.promotion.promote_button, window) is None
    window.close()


@pytest.mark.parametrize("size", [(1024, 768), (1280, 800)])
def test_integrator_workspace_every_action_on_screen(qtbot, tmp_path, recipe, size):
    window = open_window(qtbot, tmp_path, recipe, "integrator", "3333", *size)
    if window.integrator is None:
        pytest.skip("no integrator workspace in this build")
    assert off_screen_buttons(qtbot, window, window.integrator, f"integrator-{size[0]}x{size[1]}") == []
    window.close()
