"""The integrator workspace's calibration actions: the virtual cell's plate in or out, measuring a
live frame or an image file on the camera worker (the result — or the reason and hints when the frame
was no usable target — comes back with the frame and the dots found, for the panel to draw), and
writing the result into the station config. A mixin of `IntegratorView`, which owns the devices, the
session, the workers and the message line."""
from __future__ import annotations

from inspector.access import AccessDenied
from inspector.calibration import CalibrationAttempt, CalibrationError, attempt_calibration, write_calibration
from inspector.schema import ConfigError
from inspector.station_config import StationConfig


class CalibrationActions:
    def _virtual_cell(self):
        """The virtual cell behind the cameras, when this station runs on one (it can hold a calibration plate)."""
        scene = getattr(self.devices.cameras.get("coarse"), "scene", None) if self.devices else None
        return scene if hasattr(scene, "load_target") else None

    def _place_plate(self, inside: bool) -> None:
        cell = self._virtual_cell()
        if cell is None:
            return
        if inside:
            cell.load_target()
            self.calibration.set_plate_pitch({role: pitch for role in self.devices.cameras
                                              if (pitch := cell.target_pitch_mm(role))})
            self.show_message(f"calibration plate in the fixture: {cell.target.describe()}; "
                              f"light it with the backlight or coaxial light")
        else:
            cell.unload_target()
            self.show_message("calibration plate out; the part is back in the fixture")

    def _calibrate_live(self, camera_name: str, pitch_mm: float) -> None:
        if self.devices is None or self.busy or camera_name not in self.devices.cameras:
            self.calibration.show_error(f"no camera {camera_name!r} connected")
            return
        session, camera = self.session, self.devices.cameras[camera_name]

        def job():
            session.require("calibrate")
            return attempt_calibration(camera.snap().image, pitch_mm, camera=camera_name)

        self.calibration.output.setText("measuring…")
        self._submit(self.camera_worker, "calibrate", job)

    def _calibrate_file(self, path: str, camera_name: str, pitch_mm: float) -> None:
        session = self.session
        if session is None:
            self.calibration.show_error("log in to calibrate")
            return

        def job():
            import cv2

            session.require("calibrate")
            image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
            if image is None:
                raise CalibrationError(f"{path}: not an image file that can be read")
            return attempt_calibration(image, pitch_mm, camera=camera_name)

        self.calibration.output.setText("measuring…")
        self._submit(self.camera_worker, "calibrate", job)

    def _calibration_measured(self, attempt: CalibrationAttempt) -> None:
        self.calibration.show_attempt(attempt)
        if attempt.ok:
            self.show_message(f"calibration measured — {attempt.calibration.summary()}")
        else:
            self.show_message(f"calibration failed: {attempt.error}", True)

    def _write_calibration(self, rotation: bool) -> None:
        result = self.calibration.result
        if result is None or self.session is None:
            return
        if self.station_config_path is None:
            self.show_message("no station config file to write the calibration into", True)
            return
        try:
            config = write_calibration(self.session, self.station_config_path, result, self.access,
                                       rotation=rotation)
        except (AccessDenied, CalibrationError, ConfigError, ValueError, OSError) as exc:
            self.show_message(f"calibration not written: {exc}", True)
            return
        self.show_message(f"calibration written to {self.station_config_path.name}: {result.summary()}")
        self._show_current_calibration(config)
        self.calibration_written.emit(config)

    def _show_current_calibration(self, config: StationConfig | None = None) -> None:
        if config is None and self.station_config_path is not None:
            try:
                config = StationConfig.load(self.station_config_path)
            except (ConfigError, ValueError, OSError):
                config = None
        if config is None:
            self.calibration.show_current("no station config file to write into" if self.station_config_path is None
                                          else f"{self.station_config_path.name} could not be read")
            return
        self.calibration.show_current(", ".join(f"{role} {cam.calibration.mm_per_px:.6g} mm/px"
                                                for role, cam in config.cameras.items()))
