"""The station shell offscreen on the virtual cell: PIN login and roles, a lot with pause and stop,
an operator override that reaches the review queue and the audit log, an injected machine alarm
in the alarm panel and Reset. The GUI event-loop latency is measured and printed, never asserted."""

import pytest

pytest.importorskip("PyQt6")

from inspector.access import AccessDenied, Session  # noqa: E402
from ui.alarm_panel import station_state  # noqa: E402
from ui.station_window import StationWindow  # noqa: E402


def open_window(qtbot, tmp_path, recipe, *, parts=3, demo_users=True, first_seed=500_000):
    window = StationWindow(parts=parts, speed_factor=10, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe),
                           demo_users=demo_users, first_seed=first_seed)
    qtbot.addWidget(window)
    window.resize(1280, 800)
    window.show()
    qtbot.waitUntil(lambda: window.station.devices is not None and not window.station.busy, timeout=60_000)
    return window


def login(window, name, pin):
    panel = window.login
    panel.user.setEditText(name)
    panel.pin.setText(pin)
    panel.button.click()


def test_pin_login_and_role_enforcement(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe)
    view = window.operator
    assert window.stack.currentWidget() is window.login
    assert not view.start_button.isEnabled()
    with pytest.raises(AccessDenied):
        window.station.start_lot()  # nobody logged in: the station refuses, whatever the buttons show

    login(window, "operator", "9999")
    assert window.stack.currentWidget() is window.login
    assert "wrong user name or PIN" in window.login.message.text()
    assert window.station.session is None

    login(window, "operator", "1111")
    assert window.stack.currentWidget() is window.tabs
    assert window.role_label.text() == "operator — operator"
    assert window.visible_workspaces() == ["Operator"]
    assert view.start_button.isEnabled()
    for action in ("edit_recipe", "jog", "review", "promote_model"):
        with pytest.raises(AccessDenied):
            window.station.session.require(action)  # the core refuses too
    if window.integrator is not None:
        assert not window.tabs.isTabVisible(window.page_of(window.integrator))
    if window.qa is not None:
        assert not window.tabs.isTabVisible(window.page_of(window.qa))

    assert not window.users_button.isVisible()

    window.logout_button.click()
    assert window.stack.currentWidget() is window.login and window.station.session is None
    login(window, "integrator", "3333")
    assert window.role_label.text() == "integrator — integrator"
    expected = ["Operator"] + (["Integrator"] if window.integrator is not None else [])
    assert window.visible_workspaces() == expected
    window.users_button.click()  # the integrator adds a user
    dialog = window.users_dialog
    dialog.name.setText("olga")
    dialog.role.setCurrentText("operator")
    dialog.pin.setText("5678")
    dialog.pin_again.setText("5678")
    dialog.add_button.click()
    assert "added olga" in dialog.message.text()
    assert window.station.access.login("olga", "5678") == Session("olga", "operator")
    window.logout_button.click()
    login(window, "qa", "2222")
    assert window.visible_workspaces() == ["Operator"] + (["QA review"] if window.qa is not None else [])


def test_fresh_store_commissions_the_first_integrator(qtbot, tmp_path, recipe):
    window = StationWindow(parts=1, speed_factor=10, db=str(tmp_path / "fresh.db"), archive=None,
                           recipe=str(recipe), connect=False)
    qtbot.addWidget(window)
    panel = window.login
    assert panel.commissioning and panel.pin_again.isVisibleTo(panel)
    panel.user.setEditText("ines")
    panel.pin.setText("4321")
    panel.pin_again.setText("4322")
    panel.button.click()
    assert "differ" in panel.message.text() and window.station.session is None
    panel.pin.setText("4321")
    panel.pin_again.setText("4321")
    panel.button.click()
    assert window.station.session == Session("ines", "integrator")
    assert window.station.access.users() == [("ines", "integrator")]
    assert not panel.commissioning


def test_lot_pause_stop_and_override(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=6)
    station, view = window.station, window.operator
    login(window, "operator", "1111")
    window.latency.start()
    view.start_button.click()
    qtbot.waitUntil(lambda: sum(view.verdicts.values()) >= 1, timeout=120_000)
    assert view.last_record.verdict in ("PASS", "FAIL", "ERROR")
    assert view.alarm.state_label.text() == "Run"
    assert not view.recipe.isEnabled() and not view.start_button.isEnabled()
    if window.integrator is not None:
        assert window.integrator.busy  # no jogging while the cycle owns the devices

    view.pause_button.click()
    assert view.alarm.state_label.text() == "Hold" and view.pause_button.text() == "Resume"
    view.pause_button.click()
    assert view.alarm.state_label.text() == "Run" and view.pause_button.text() == "Pause"
    qtbot.waitUntil(lambda: sum(view.verdicts.values()) >= 2, timeout=120_000)
    view.stop_button.click()
    qtbot.waitUntil(lambda: not station.running, timeout=60_000)
    window.latency.stop()
    print("\n" + window.latency.summary())
    done = sum(view.verdicts.values())
    assert 2 <= done < 6
    assert "stopped by the operator" in station.log
    assert view.alarm.state_label.text() == "Idle" and view.start_button.isEnabled()
    if window.integrator is not None:
        assert not window.integrator.busy and window.integrator.devices is station.devices
    assert len(station.store.query()) == done  # every verdict shown was committed

    record, row = station.last_record, station.last_row
    other = "PASS" if record.verdict != "PASS" else "FAIL"
    view.override_verdict.setCurrentText(other)
    assert not view.override_button.isEnabled()  # a reason is required
    view.override_reason.setText("re-checked under the microscope")
    view.override_button.click()
    assert f"{record.verdict} → {other}" in view.override_status.text()
    items = station.review.items(kind="override")
    assert [(i.part_row, i.override_verdict) for i in items] == [(row, other)]
    assert station.review.effective_verdict(row) == other
    audit = station.access.audit(target=f"part:{row}")
    assert [(a.who, a.role, a.action, a.old, a.new, a.reason) for a in audit] == \
        [("operator", "operator", "override", record.verdict, other, "re-checked under the microscope")]


def test_injected_alarm_shows_and_reset_recovers(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=4)
    station, view = window.station, window.operator
    login(window, "operator", "1111")
    assert view.alarm.state_label.text() == "Idle" and not view.reset_button.isEnabled()
    captured = []
    station.view_captured.connect(captured.append)
    view.start_button.click()
    qtbot.waitUntil(lambda: len(captured) >= 2, timeout=120_000)
    armed = [True]

    def trip_during_a_move(state):  # the driver's reader thread: the stage reports Run, a move is pending
        if armed[0] and state.state == "Run":
            armed[0] = False
            station.cell.motion.inject_alarm(10)  # e-stop: a critical alarm, the controller locks

    unsubscribe = station.devices.motion.subscribe(trip_during_a_move)
    qtbot.waitUntil(lambda: not station.running, timeout=60_000)
    qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Alarm", timeout=10_000)
    unsubscribe()
    assert view.banner.text() == "ERROR"  # the part in progress was not fully inspected
    assert any(line.startswith("stopped: motion controller in alarm") for line in station.log)
    assert view.reset_button.isEnabled()
    assert "Alarm" in view.alarm.controller.text()
    assert "ALARM 10" in view.alarm.reason.text()
    assert not view.start_button.isEnabled()
    with pytest.raises(RuntimeError, match="Reset first"):
        station.start_lot()  # refused until Reset, whatever the buttons show

    view.reset_button.click()
    qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Idle" and not station.busy, timeout=30_000)
    assert not view.reset_button.isEnabled()
    before = sum(view.verdicts.values())
    view.start_button.click()  # homes first, then inspects
    qtbot.waitUntil(lambda: sum(view.verdicts.values()) > before, timeout=120_000)
    assert view.last_record.serial != "SIM-500000" and view.last_record.verdict in ("PASS", "FAIL")
    view.stop_button.click()
    qtbot.waitUntil(lambda: not station.running, timeout=60_000)


def test_station_state_rules():
    assert station_state(None, connected=False, running=False, paused=False, fault=None, homed=False).state == "Offline"
    assert station_state("Idle", connected=True, running=True, paused=True, fault=None, homed=True).state == "Hold"
    alarm = station_state("Alarm", connected=True, running=False, paused=False, fault="ALARM 10: e-stop", homed=True)
    assert (alarm.state, alarm.reason) == ("Alarm", "ALARM 10: e-stop")
    assert "homing" in station_state("Alarm", connected=True, running=False, paused=False, fault=None,
                                     homed=False).reason
    assert station_state("Idle", connected=False, running=False, paused=False, fault=None, homed=True).state == "Alarm"
    assert station_state("Run", connected=True, running=False, paused=False, fault=None, homed=True).state == "Run"
    idle_alarm = station_state("Alarm", connected=True, running=False, paused=False, fault=None, homed=True,
                               alarm="ALARM 1: Hard limit triggered.")
    assert idle_alarm.reason == "ALARM 1: Hard limit triggered."


def test_alarm_while_idle_shows_its_reason(qtbot, tmp_path, recipe):
    """No lot running, a limit switch trips: the alarm panel names the controller's alarm, not a
    generic reason, and Reset clears it."""
    window = open_window(qtbot, tmp_path, recipe)
    station, view = window.station, window.operator
    login(window, "operator", "1111")
    station.cell.motion.inject_alarm(1)
    qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Alarm", timeout=10_000)
    qtbot.waitUntil(lambda: "ALARM 1" in view.alarm.reason.text(), timeout=10_000)
    assert "Hard limit" in view.alarm.reason.text() and view.reset_button.isEnabled()
    view.reset_button.click()
    qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Idle" and not station.busy, timeout=30_000)
    assert "ALARM" not in view.alarm.reason.text()


def test_config_station_on_ports_homes_at_start(qtbot, tmp_path, recipe):
    """`--config`: the station opens the ports a station config names (here the emulators' pseudo-
    terminals, cameras replaying files), shows 'homing required', and Start homes, then inspects."""
    import cv2
    import numpy as np

    from hardware.sim.cell import VirtualCell
    from inspector.access import AccessControl
    from inspector.results.sqlite_store import ResultStore
    from inspector.station_config import StationConfig

    folders = {}
    for role, (w, h) in (("coarse", (1024, 768)), ("fine", (800, 600))):
        folders[role] = tmp_path / role
        folders[role].mkdir()
        for i in range(12):
            cv2.imwrite(str(folders[role] / f"{i:03d}.png"), np.full((h, w), 90, np.uint8))
    db = tmp_path / "r.db"
    with ResultStore(db) as store:
        access = AccessControl(store)
        access.add_user("ines", "integrator", "4321", by=access.system_session("commissioning"))
        access.add_user("olga", "operator", "5678", by=access.login("ines", "4321"))
    with VirtualCell(seed=500_000, speed_factor=10) as cell:
        data = cell.station_config_dict(name="line-3")
        for role in ("coarse", "fine"):
            data["cameras"][role].update(backend="images", source=str(folders[role]))
        config = tmp_path / "station.toml"
        StationConfig.from_dict(data, source="test").save(config)
        window = StationWindow(parts=1, speed_factor=10, db=str(db), archive=None, recipe=str(recipe), sim=False,
                               config=str(config), demo_users=True)
        qtbot.addWidget(window)
        window.show()
        station, view = window.station, window.operator
        qtbot.waitUntil(lambda: station.devices is not None and not station.busy, timeout=60_000)
        assert station.cell is None and [n for n, _ in station.access.users()] == ["ines", "olga"]  # no demo users
        assert window.login.hint.text() == ""
        qtbot.waitUntil(lambda: view.alarm.state_label.text() == "Alarm", timeout=10_000)
        assert "homing required" in view.alarm.reason.text()
        login(window, "olga", "5678")
        view.start_button.click()
        qtbot.waitUntil(lambda: sum(view.verdicts.values()) == 1, timeout=120_000)
        qtbot.waitUntil(lambda: not station.running, timeout=30_000)
        assert station.last_record.serial.startswith("line-3-") and station.last_record.station == "line-3"
        assert view.alarm.state_label.text() == "Idle"
        window.close()


def test_config_station_without_its_machine_shows_why(qtbot, tmp_path, recipe):
    """A station config whose ports are not there: the window opens, the alarm panel names the port."""
    from hardware.sim.cell import station_config_dict
    from inspector.station_config import StationConfig

    config = tmp_path / "station.toml"
    StationConfig.from_dict(station_config_dict(str(tmp_path / "no-such-port"), str(tmp_path / "no-lights")),
                            source="test").save(config)
    window = StationWindow(parts=1, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe), sim=False,
                           config=str(config))
    qtbot.addWidget(window)
    window.show()
    view = window.operator
    qtbot.waitUntil(lambda: window.station.fault is not None and not window.station.busy, timeout=30_000)
    assert view.alarm.state_label.text() == "Offline"
    assert "connect failed" in view.alarm.reason.text() and "no-such-port" in view.alarm.reason.text()
    assert view.reset_button.isEnabled()  # Reset tries to connect again


def test_integrator_disconnects_and_connects_the_devices(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe)
    if window.integrator is None:
        pytest.skip("no integrator workspace in this checkout")
    station, integrator = window.station, window.integrator
    login(window, "integrator", "3333")
    assert integrator.devices is station.devices is not None
    integrator.disconnect_requested.emit()
    assert station.devices is None and integrator.devices is None
    assert window.operator.alarm.state_label.text() == "Offline"
    integrator.connect_requested.emit()
    qtbot.waitUntil(lambda: station.devices is not None and not station.busy, timeout=60_000)
    assert integrator.devices is station.devices
    qtbot.waitUntil(lambda: window.operator.alarm.state_label.text() == "Idle", timeout=10_000)


def test_screenshot_command_writes_each_workspace(tmp_path, recipe):
    """`inspector station --sim --screenshot DIR` as the README runs it, in its own process."""
    import os
    import subprocess
    import sys

    from PyQt6.QtGui import QImage

    out = tmp_path / "ui"
    run = subprocess.run([sys.executable, "-m", "inspector.cli", "station", "--sim", "--speed-factor", "10",
                          "--recipe", str(recipe), "--db", str(tmp_path / "r.db"), "--archive", "",
                          "--screenshot", str(out)],
                         env={**os.environ, "QT_QPA_PLATFORM": "offscreen"}, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    names = ["login", "operator"]
    from ui.station_window import IntegratorView, QAView
    names += (["qa"] if QAView is not None else []) + (["integrator"] if IntegratorView is not None else [])
    for name in names:
        for suffix, size in (("", (1280, 800)), ("@1920x1080", (1920, 1080)), ("@1024x768", (1024, 768))):
            image = QImage(str(out / f"{name}{suffix}.png"))
            assert (image.width(), image.height()) == size, f"{name}{suffix}.png"
    latency = (out / "latency.txt").read_text()
    assert latency.startswith("GUI event-loop latency (20 ms timer, ") and " samples)" in latency
    print("\n" + latency.strip())


def test_stop_right_after_start_ends_the_lot(qtbot, tmp_path, recipe):
    window = open_window(qtbot, tmp_path, recipe, parts=5)
    station, view = window.station, window.operator
    login(window, "operator", "1111")
    view.start_button.click()
    view.stop_button.click()  # before the cycle may even exist: the lot still stops
    qtbot.waitUntil(lambda: not station.running, timeout=60_000)
    assert sum(view.verdicts.values()) <= 1 and "stopped by the operator" in station.log
    assert view.start_button.isEnabled() and view.alarm.state_label.text() == "Idle"


def test_qa_workspace_fits_the_station_screen(qtbot, tmp_path, recipe):
    """Logged in as QA at 1280x800 the review queue needs neither scroll bar (the filters, the
    image and the item panel with its buttons all fit), and at 1920x1080 it fills the window."""
    window = StationWindow(parts=1, db=str(tmp_path / "r.db"), archive=None, recipe=str(recipe), demo_users=True,
                           connect=False)
    qtbot.addWidget(window)
    window.show()
    window.set_session(window.station.access.login("qa", "2222"))
    qa = window.qa
    if qa is None:
        pytest.skip("no QA workspace in this build")
    page = window.tabs.widget(window.page_of(qa))
    window.tabs.setCurrentWidget(page)
    assert qa.minimumSizeHint().width() <= 1262  # 1280 less the frame and a vertical scroll bar
    for width, height in ((1280, 800), (1920, 1080)):
        window.resize(width, height)
        qtbot.waitUntil(lambda: window.width() == width and page.viewport().width() > 0)
        for _ in range(5):
            qtbot.wait(10)
        assert not page.horizontalScrollBar().isVisible(), f"{width}x{height}: {qa.minimumSizeHint()}"
        assert not page.verticalScrollBar().isVisible(), f"{width}x{height}: {qa.heightForWidth(page.width())}"
        side = qa.review.splitter.widget(2)
        for button in (qa.review.confirm_button, qa.review.reject_button, qa.review.change_button,
                       qa.review.add_box_button, qa.review.export_button):
            right = button.mapTo(page.viewport(), button.rect().bottomRight())
            assert right.x() <= page.viewport().width() and right.y() <= page.viewport().height(), button.text()
        assert side.width() >= side.minimumSizeHint().width()
    window.close()
