"""The integrator workspace's stage actions: jog (buttons and arrow keys), home, unlock, stop and
go to a recipe view, each on the devices worker with the session checked in the job itself. A mixin
of `IntegratorView`, which owns the devices, the session and the workers."""
from __future__ import annotations

from PyQt6.QtCore import Qt

LINEAR_FEED_MM_PER_MIN = 3000.0
ROTARY_FEED_DEG_PER_MIN = 7200.0
KEY_JOGS = {  # key → (axis, direction), without and with Shift
    (Qt.Key.Key_Right, False): ("x", 1.0), (Qt.Key.Key_Left, False): ("x", -1.0),
    (Qt.Key.Key_Up, False): ("y", 1.0), (Qt.Key.Key_Down, False): ("y", -1.0),
    (Qt.Key.Key_PageUp, False): ("z", 1.0), (Qt.Key.Key_PageDown, False): ("z", -1.0),
    (Qt.Key.Key_Right, True): ("a", 1.0), (Qt.Key.Key_Left, True): ("a", -1.0),
    (Qt.Key.Key_Up, True): ("b", 1.0), (Qt.Key.Key_Down, True): ("b", -1.0),
}


class StageActions:
    def jog_axis(self, axis: str, distance: float) -> None:
        if not self._may_move():
            return
        feed = ROTARY_FEED_DEG_PER_MIN if axis in ("a", "b") else LINEAR_FEED_MM_PER_MIN
        session, motion = self.session, self.devices.motion

        def job():
            session.require("jog")
            return motion.jog(axis, distance, feed)

        self._submit(self.devices_worker, "jog", job)

    def home(self) -> None:
        if self._may_move():
            session, motion = self.session, self.devices.motion
            self.show_message("homing…")
            self._submit(self.devices_worker, "home", lambda: (session.require("jog"), motion.home())[1])

    def unlock(self) -> None:
        if self._may_move():
            session, motion = self.session, self.devices.motion
            self._submit(self.devices_worker, "unlock", lambda: (session.require("jog"), motion.unlock())[1])

    def stop(self) -> None:
        if self.devices is not None and not self.busy:
            motion = self.devices.motion
            self._submit(self.devices_worker, "stop", motion.stop)

    def go_to_view(self, name: str) -> None:
        recipe = self.recipe_editor.draft
        view = next((v for v in recipe.views if v.name == name), None) if recipe else None
        if view is None or not self._may_move():
            return
        session, motion = self.session, self.devices.motion
        self.show_message(f"moving to view {name!r}…")
        self._submit(self.devices_worker, f"goto:{name}", lambda: (session.require("jog"), motion.move_to(view.pose))[1])

    def keyPressEvent(self, event) -> None:  # noqa: N802 - Qt naming
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        jog = KEY_JOGS.get((Qt.Key(event.key()), shift))
        if jog is not None and self.jog.plus["x"].isEnabled():
            axis, sign = jog
            self.jog_axis(axis, sign * self.jog.step(axis))
            event.accept()
            return
        super().keyPressEvent(event)
