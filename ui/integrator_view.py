"""The integrator workspace: connection state, jog / home / go to a view, lights per role, live view
with exposure and gain, the recipe editor (views, thresholds, grey band, rules; save as a new
version with the diff and a reason) and px → mm calibration.

The header (device pills, state, Connect) is `device_header`; the stage actions and the calibration
actions are the mixins `integrator_stage` and `integrator_calibration`. The three columns sit in a
splitter and reflow from a 1024x768 screen up (stage and lights scroll when the screen is short).

The station shell owns the devices and hands them over with `set_devices`. Every device call runs
on a worker thread (`DeviceWorker`); answers come back as signals. Roles are checked here to grey
out what a user may not do, and again in the core calls (`Session.require`, `save_recipe`,
`write_calibration`), so a forgotten check in the UI still cannot let an operator change a recipe.
"""
from __future__ import annotations

from pathlib import Path

from PyQt6.QtCore import QCoreApplication, Qt, QTimer, pyqtSignal
from PyQt6.QtGui import QFont
from PyQt6.QtWidgets import QFrame, QLabel, QScrollArea, QSizePolicy, QSplitter, QTabWidget, QVBoxLayout, QWidget

from hardware.motion.base import MachineState
from hardware.pose import StagePose
from inspector.access import AccessControl, AccessDenied, Session
from inspector.devices import Devices
from inspector.recipe import Recipe
from inspector.recipe_edit import NoChanges, RecipeConflict, save_recipe
from inspector.schema import ConfigError

from .calibration_panel import CalibrationPanel
from .device_header import DeviceHeader, is_connected
from .device_worker import DeviceWorker
from .integrator_calibration import CalibrationActions
from .integrator_stage import StageActions
from .jog_panel import JogPanel
from .light_panel import LightPanel
from .live_view import LiveView
from .recipe_editor import RecipeEditor, SaveRecipeDialog



class IntegratorView(StageActions, CalibrationActions, QWidget):
    connect_requested = pyqtSignal()  # the shell opens the devices of its station config, then set_devices
    disconnect_requested = pyqtSignal()
    recipe_saved = pyqtSignal(object)  # inspector.recipe_edit.SaveResult
    calibration_written = pyqtSignal(object)  # the updated StationConfig

    def __init__(self, access: AccessControl, *, recipe_path: str | Path, station_name: str = "",
                 parent=None) -> None:
        super().__init__(parent)
        self.access = access
        self.recipe_path = Path(recipe_path)
        self.station_name = station_name
        self.station_config_path: Path | None = None
        self.session: Session | None = None
        self.devices: Devices | None = None
        self.busy = False
        self.machine_state: MachineState | None = None
        self.last_message = ("", False)
        self.save_dialog: SaveRecipeDialog | None = None
        self.setFont(QFont("DejaVu Sans", 10))
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)

        self.devices_worker = DeviceWorker("integrator-devices")  # motion + lights: short serial commands
        self.camera_worker = DeviceWorker("integrator-cameras")  # grabs and calibration: heavier, separate
        for worker in (self.devices_worker, self.camera_worker):
            worker.done.connect(lambda tag, result, gen, w=worker: self._on_done(w, tag, result, gen))
            worker.failed.connect(lambda tag, message, gen, w=worker: self._on_failed(w, tag, message, gen))
        self._poll = QTimer(self)
        self._poll.setInterval(200)
        self._poll.timeout.connect(self._request_poll)

        # -- header: connection state, machine state, who is logged in
        self.header = DeviceHeader(station_name)
        self.pills, self.state_label, self.session_label = (self.header.pills, self.header.state_label,
                                                            self.header.session_label)
        self.connect_button, self.disconnect_button = self.header.connect_button, self.header.disconnect_button
        self.connect_button.clicked.connect(self.connect_requested)
        self.disconnect_button.clicked.connect(self.disconnect_requested)

        # -- left: stage and lights; centre: live view; right: recipe and calibration
        self.jog = JogPanel()
        self.lights = LightPanel()
        left = QVBoxLayout()
        left.addWidget(self.jog)
        left.addWidget(self.lights)
        left.addStretch(1)
        left.setContentsMargins(0, 0, 0, 0)
        left_widget = QWidget()
        left_widget.setLayout(left)
        # stage and lights scroll (many light channels) rather than push the workspace off a short screen
        self.left_scroll = QScrollArea()
        self.left_scroll.setWidget(left_widget)
        self.left_scroll.setWidgetResizable(True)
        self.left_scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.left_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.left_scroll.setMinimumWidth(left_widget.minimumSizeHint().width()
                                         + self.left_scroll.verticalScrollBar().sizeHint().width())

        self.live = LiveView()
        self.recipe_editor = RecipeEditor()
        self.calibration = CalibrationPanel()
        self.side_tabs = QTabWidget()
        self.side_tabs.addTab(self.recipe_editor, "Recipe")
        self.side_tabs.addTab(self.calibration, "Calibration")
        self.side_tabs.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)

        # three columns in a splitter: the live view takes what the screen has beyond the other two
        self.body = QSplitter(Qt.Orientation.Horizontal)
        self.body.setChildrenCollapsible(False)
        self.body.addWidget(self.left_scroll)
        self.body.addWidget(self.live)
        self.body.addWidget(self.side_tabs)
        self.body.setStretchFactor(0, 0)
        self.body.setStretchFactor(1, 1)
        self.body.setStretchFactor(2, 0)
        self.body.setSizes([self.left_scroll.minimumWidth(), 480, 470])
        self.message_label = QLabel("")
        self.message_label.setWordWrap(True)
        self.message_label.setMinimumHeight(22)
        layout = QVBoxLayout(self)
        layout.addWidget(self.header)
        layout.addWidget(self.body, 1)
        layout.addWidget(self.message_label)

        # -- wiring
        self.jog.jog_requested.connect(self.jog_axis)
        self.jog.home_requested.connect(self.home)
        self.jog.unlock_requested.connect(self.unlock)
        self.jog.stop_requested.connect(self.stop)
        self.jog.goto_view_requested.connect(self.go_to_view)
        self.lights.levels_requested.connect(self._set_levels)
        self.lights.all_off_requested.connect(self._all_off)
        self.live.grab_wanted.connect(self._grab)
        self.recipe_editor.message.connect(self.show_message)
        self.recipe_editor.changed.connect(self._recipe_changed)
        self.recipe_editor.add_view_requested.connect(self._add_view_requested)
        self.recipe_editor.save_requested.connect(self.request_save)
        self.calibration.measure_live_requested.connect(self._calibrate_live)
        self.calibration.measure_file_requested.connect(self._calibrate_file)
        self.calibration.write_requested.connect(self._write_calibration)
        self.calibration.plate_requested.connect(self._place_plate)
        app = QCoreApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)

        self.reload_recipe()
        self._show_current_calibration()
        self._show_disconnected()
        self._update_enabled()

    # == public API ==================================================================================
    def set_devices(self, devices: Devices | None) -> None:
        """The shell hands over its connected devices (None: not connected). Old devices are no
        longer touched once this returns (pending jobs drained, late answers ignored)."""
        self.live.live_button.setChecked(False)
        self._poll.stop()
        for worker in (self.devices_worker, self.camera_worker):
            worker.new_generation()
            worker.wait_idle(10.0)
        self.devices = devices
        self.machine_state = None
        if devices is None:
            self._show_disconnected()
        else:
            self.lights.set_roles(list(devices.lights.channels))
            self.live.set_cameras(list(devices.cameras))
            for role in ("coarse", "fine"):
                if role in devices.cameras:
                    self.pills[role].set_state("ready", "#1b8a3a")
                else:
                    self.pills[role].set_state("missing", "#78909c")
            self._submit(self.devices_worker, "lights-read", lambda lights=devices.lights: lights.levels())
            self.calibration.offer_plate(self._virtual_cell() is not None)
            self._request_poll()
            self._poll.start()
        self._update_enabled()

    def set_busy(self, busy: bool) -> None:
        """A lot is running: no jogging, no light changes, no live grabs (the cycle owns the devices)."""
        self.busy = bool(busy)
        if self.busy:
            self.live.live_button.setChecked(False)
        self._update_enabled()

    def set_session(self, session: Session | None) -> None:
        self.session = session
        self.session_label.setText("not logged in" if session is None else f"{session.user} ({session.role})")
        self._update_enabled()

    def set_station_config(self, path: str | Path | None) -> None:
        """The station config file that calibration results are written into (None: not writable)."""
        self.station_config_path = Path(path) if path is not None else None
        self._show_current_calibration()
        self._update_enabled()

    def reload_recipe(self) -> None:
        try:
            recipe = Recipe.load(self.recipe_path)
        except (ConfigError, ValueError, OSError) as exc:
            self.show_message(f"recipe not loaded: {exc}", True)
            return
        self.recipe_editor.set_recipe(recipe)

    def shutdown(self) -> None:
        """Stop polling and live view and end the worker threads (call before the devices close)."""
        self._poll.stop()
        self.live.live_button.setChecked(False)
        for worker in (self.devices_worker, self.camera_worker):
            worker.new_generation()
            worker.shutdown()

    # == lights ======================================================================================
    def _set_levels(self, levels: dict) -> None:
        if self.devices is None or self.busy or not self._allows("lights"):
            return
        session, lights = self.session, self.devices.lights

        def job():
            session.require("lights")
            for role, percent in levels.items():
                lights.set_level(role, percent)
            return lights.levels()

        self._submit(self.devices_worker, "lights", job)

    def _all_off(self) -> None:
        if self.devices is None or self.busy or not self._allows("lights"):
            return
        session, lights = self.session, self.devices.lights
        self._submit(self.devices_worker, "lights",
                     lambda: (session.require("lights"), lights.all_off(), lights.levels())[2])

    # == live view ===================================================================================
    def _grab(self, camera_name: str, exposure_us: float, gain: float) -> None:
        if self.devices is None or self.busy or camera_name not in self.devices.cameras:
            return
        if self.camera_worker.pending("grab"):
            return  # never build a backlog: the next tick asks again
        camera = self.devices.cameras[camera_name]

        def job():
            if camera.settings.exposure_us != exposure_us or camera.settings.gain != gain:
                camera.configure(exposure_us=exposure_us, gain=gain)
            return camera.snap()

        self._submit(self.camera_worker, "grab", job)

    # == recipe ======================================================================================
    def _add_view_requested(self, name: str, light_program: str, camera: str) -> None:
        if self.devices is None:
            self.show_message("adding a view needs the stage: connect first", True)
            return
        if not self._allows("edit_recipe"):
            self.show_message("adding a view needs the integrator role", True)
            return
        motion = self.devices.motion
        exposure, gain = float(self.live.exposure.value()), float(self.live.gain.value())
        self._pending_view = (name, light_program, camera, exposure, gain)
        self._submit(self.devices_worker, "pose", motion.position)

    def request_save(self) -> None:
        """Show the diff and ask for a reason; Save writes the new version (see `save_draft`)."""
        editor = self.recipe_editor
        if editor.loaded is None or editor.draft is None:
            return
        changes = editor.changes()
        if not changes:
            self.show_message("nothing to save: no changes", True)
            return
        dialog = SaveRecipeDialog(editor.draft, editor.loaded.version + 1, changes, self, path=self.recipe_path)
        dialog.accepted.connect(lambda: self.save_draft(dialog.reason.text()))
        self.save_dialog = dialog
        dialog.open()

    def save_draft(self, reason: str):
        """Save the editor's draft as the next version (the core checks the role and refuses no-ops)."""
        editor = self.recipe_editor
        if self.session is None:
            self.show_message("log in to save a recipe", True)
            return None
        try:
            result = save_recipe(self.session, editor.loaded, editor.draft, self.recipe_path, self.access, reason)
        except (AccessDenied, NoChanges, RecipeConflict, ValueError, OSError) as exc:
            self.show_message(f"not saved: {exc}", True)
            return None
        editor.set_recipe(result.recipe)
        backup = f"; version {result.recipe.version - 1} kept as {result.backup.name}" if result.backup else ""
        self.show_message(f"saved {result.recipe.id} version {result.recipe.version} "
                          f"({len(result.changes) - 1} field(s) changed){backup}")
        self.recipe_saved.emit(result)
        return result

    def _recipe_changed(self) -> None:
        draft = self.recipe_editor.draft
        self.jog.set_views([v.name for v in draft.views] if draft else [])

    # == worker answers ==============================================================================
    def _submit(self, worker: DeviceWorker, tag: str, job) -> None:
        worker.submit(tag, job)

    def _request_poll(self) -> None:
        devices = self.devices
        if devices is None or self.devices_worker.pending("poll"):
            return

        def job():
            return (devices.motion.status(), is_connected(devices.motion), is_connected(devices.lights))

        self._submit(self.devices_worker, "poll", job)

    def _on_done(self, worker: DeviceWorker, tag: str, result, generation: int) -> None:
        if generation != worker.generation:
            return
        if tag == "poll":
            state, motion_ok, lights_ok = result
            self._show_state(state, motion_ok, lights_ok)
        elif tag in ("lights", "lights-read"):
            self.lights.show_levels(result)
        elif tag == "grab":
            self.live.show_frame(result)
        elif tag == "pose":
            name, light_program, camera, exposure, gain = self._pending_view
            self.recipe_editor.add_view_at(StagePose(*result.as_tuple()), name, light_program, camera, exposure, gain)
        elif tag == "calibrate":
            self._calibration_measured(result)
        elif tag == "home":
            self.show_message("homed")
        elif tag.startswith("goto:"):
            self.show_message(f"at view {tag[5:]!r}")
        elif tag == "unlock":
            self.show_message("alarm cleared")

    def _on_failed(self, worker: DeviceWorker, tag: str, message: str, generation: int) -> None:
        if generation != worker.generation:
            return
        if tag == "grab":
            self.live.show_error(message)
            return
        if tag == "calibrate":
            self.calibration.show_error(message)
        if tag == "poll":
            self.pills["motion"].set_state("fault", "#c62828")
        what = {"jog": "jog refused", "home": "homing failed", "lights": "light not set", "pose": "no position",
                "calibrate": "calibration failed", "unlock": "unlock failed", "stop": "stop failed"}
        self.show_message(f"{what.get(tag.split(':')[0], tag + ' failed')}: {message}", True)

    # == display =====================================================================================
    def show_message(self, text: str, error: bool = False) -> None:
        self.last_message = (text, error)
        self.message_label.setText(text)
        self.message_label.setStyleSheet("color: #b71c1c; font-weight: bold;" if error else "color: #1b5e20;")

    def _show_state(self, state: MachineState, motion_ok: bool, lights_ok: bool) -> None:
        self.machine_state = state
        self.header.show_state(state, motion_ok, lights_ok)
        if state.state == "Alarm" and not self.last_message[1] and "home" not in self.last_message[0]:
            why = getattr(state, "alarm_text", "")
            self.show_message(f"the stage is in alarm{' (' + why + ')' if why else ''}: home it "
                              "(or Unlock after checking why)", True)
        self.jog.show_position(state.pose.as_tuple(), state.machine_pos[:5])

    def _show_disconnected(self) -> None:
        self.header.show_disconnected()
        self.jog.show_position(None)
        self.lights.set_roles(())
        self.live.set_cameras([])

    def _allows(self, action: str) -> bool:
        return self.session is not None and self.session.allows(action)

    def _may_move(self) -> bool:
        return self.devices is not None and not self.busy and self._allows("jog")

    def _update_enabled(self) -> None:
        connected = self.devices is not None
        idle = connected and not self.busy
        self.jog.set_motion_enabled(idle and self._allows("jog"))
        self.jog.stop_button.setEnabled(idle and self.session is not None)
        self.lights.setEnabled(idle and self._allows("lights"))
        self.live.set_enabled_for_use(idle and self._allows("connect"))
        editable = self._allows("edit_recipe")
        self.recipe_editor.set_editable(editable)
        self.recipe_editor.set_can_add_view(connected and editable)
        self.calibration.set_permissions(measure_live=idle and self._allows("calibrate"),
                                         measure=self._allows("calibrate"),
                                         write=self._allows("calibrate") and self.station_config_path is not None)
        self.connect_button.setEnabled(not connected and not self.busy and self._allows("connect"))
        self.disconnect_button.setEnabled(connected and not self.busy and self._allows("connect"))
