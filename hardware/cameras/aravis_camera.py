"""GigE Vision and USB3 Vision cameras through GenICam, with Aravis 0.8 (GObject introspection).

Optional: needs Debian's `gir1.2-aravis-0.8` (or any Aravis 0.8 typelib) and PyGObject (the
`aravis` extra). Nothing here imports `gi` until a camera is listed or opened, so the rest of the
cell runs without it.

`source` names the camera as integrators see it: the Aravis device id (`Vendor-Model-Serial`, what
`inspector camera list` prints), the serial number, the IP address (a GigE camera on another subnet,
which discovery does not reach, is opened by address), or a USB3 Vision physical id.

Features are set through Aravis's camera API, which picks the GenICam feature the camera has:
ExposureTime or ExposureTimeAbs (µs), Gain or GainRaw (the camera's unit: dB or raw counts, not a
factor), PixelFormat (Mono8 → uint8, Mono12/Mono16 → uint16 images), the sensor region (ROI, in
hardware), TriggerMode/TriggerSource. Trigger `"software"` (default) sends TriggerSoftware at
`trigger()`; a line (`"Line0"`, `"Line1"`, …) arms the camera for the strobe controller's hardware
trigger, and `grab()` waits for that exposure; `"off"` free-runs and takes the next frame.

The camera's own limits (`limits()`) come from its GenICam features' min/max and are intersected
with the cell's (base.EXPOSURE_US_LIMITS, GAIN_LIMITS) and the station config's; `configure`
refuses a value outside them with a CameraError naming the range, so a recipe asking for an
exposure the camera cannot take fails at that view, not silently clamped by the camera.

A lost camera (cable pulled, camera power-cycled): the grab fails with a CameraError; the next
`trigger()` opens it anew (same `source`) and restores the settings, so a station's Reset and
retry works once the camera is back.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from .base import EXPOSURE_US_LIMITS, GAIN_LIMITS, Camera, CameraError, CameraSettings

PIXEL_FORMATS = ("Mono8", "Mono10", "Mono12", "Mono14", "Mono16")
TRIGGER_FREE_RUN = "off"
TRIGGER_SOFTWARE = "software"
N_BUFFERS = 4


def _aravis():
    """The Aravis module, or a CameraError saying what to install."""
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis  # type: ignore[attr-defined]
    except (ImportError, ValueError) as exc:
        raise CameraError(f"the aravis camera backend needs Aravis 0.8 and PyGObject "
                          f"(apt-get install gir1.2-aravis-0.8; pip install '.[aravis]'): {exc}") from None
    return Aravis


def aravis_available() -> str | None:
    """None when Aravis can be used, else why not."""
    try:
        _aravis()
    except CameraError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class DeviceInfo:
    id: str
    vendor: str
    model: str
    serial: str
    address: str
    protocol: str
    physical_id: str

    def matches(self, source: str) -> bool:
        return source in (self.id, self.serial, self.address, self.physical_id) and source != ""


def list_devices() -> list[DeviceInfo]:
    """Every camera Aravis discovers (GigE Vision broadcast on each interface, USB3 Vision)."""
    aravis = _aravis()
    aravis.update_device_list()
    devices = []
    for i in range(aravis.get_n_devices()):
        def get(what: str, i: int = i) -> str:
            value = getattr(aravis, f"get_device_{what}")(i)
            return "" if value is None else str(value)
        devices.append(DeviceInfo(id=get("id"), vendor=get("vendor"), model=get("model"), serial=get("serial_nbr"),
                                  address=get("address"), protocol=get("protocol"), physical_id=get("physical_id")))
    return devices


def _glib_error(exc: BaseException) -> str:
    return getattr(exc, "message", None) or str(exc) or type(exc).__name__


class AravisCamera(Camera):
    roi_in_camera = True  # the ROI is the camera's region (GenICam OffsetX/Y, Width/Height)

    def __init__(self, name: str, source: str | int, *, pixel_format: str = "Mono8", trigger: str = TRIGGER_SOFTWARE,
                 exposure_us_limits: tuple[float, float] = EXPOSURE_US_LIMITS,
                 gain_limits: tuple[float, float] = GAIN_LIMITS, n_buffers: int = N_BUFFERS,
                 pose_source: Callable[[], Any] | None = None):
        super().__init__(name, pose_source)
        if pixel_format not in PIXEL_FORMATS:
            raise CameraError(f"camera {name!r}: pixel format {pixel_format!r} is not one of {', '.join(PIXEL_FORMATS)}")
        self.source = str(source)
        self.pixel_format = pixel_format
        self.trigger_source = trigger
        self.config_limits = (tuple(exposure_us_limits), tuple(gain_limits))
        self.n_buffers = n_buffers
        self.info: DeviceInfo | None = None
        self._camera: Any = None
        self._stream: Any = None
        self._lost = threading.Event()  # set by Aravis's control-lost signal (its heartbeat thread)
        self._device_limits: tuple[tuple[float, float], tuple[float, float]] | None = None
        self._frame_count = 0
        self.reconnects = 0

    # -- discovery and opening ---------------------------------------------------------------------
    def _resolve(self, aravis) -> str:
        for info in list_devices():
            if info.matches(self.source):
                self.info = info
                return info.id
        return self.source  # not discovered (another subnet, a USB id): let Aravis try the name itself

    def open(self) -> None:
        if self._camera is not None:
            return
        aravis = _aravis()
        device_id = self._resolve(aravis)
        try:
            camera = aravis.Camera.new(device_id)
        except Exception as exc:  # noqa: BLE001 - GLib.Error: no such camera, refused, busy
            known = ", ".join(d.id for d in list_devices()) or "none found"
            raise CameraError(f"camera {self.name!r}: cannot open Aravis camera {self.source!r}: {_glib_error(exc)} "
                              f"(cameras found: {known})") from None
        self._camera = camera
        self._lost.clear()
        try:
            device = camera.get_device()
            device.connect("control-lost", lambda *_: self._lost.set())
            self._setup(aravis, camera)
        except CameraError:
            self._drop()
            raise
        except Exception as exc:  # noqa: BLE001
            self._drop()
            raise CameraError(f"camera {self.name!r}: setting up {self.source!r} failed: {_glib_error(exc)}") from None

    def _setup(self, aravis, camera) -> None:
        camera.stop_acquisition()
        available = list(camera.dup_available_pixel_formats_as_strings() or [])
        if self.pixel_format not in available:
            raise CameraError(f"camera {self.name!r}: {self.source!r} has no pixel format {self.pixel_format} "
                              f"(it has {', '.join(available)})")
        camera.set_pixel_format_from_string(self.pixel_format)
        self._device_limits = self._read_limits(camera)
        self._apply_trigger(camera)
        self._apply_settings(self.settings)
        camera.set_acquisition_mode(aravis.AcquisitionMode.CONTINUOUS)
        stream = camera.create_stream(None, None)
        if stream is None:
            raise CameraError(f"camera {self.name!r}: {self.source!r} gave no stream")
        payload = camera.get_payload()
        for _ in range(self.n_buffers):
            stream.push_buffer(aravis.Buffer.new_allocate(payload))
        self._stream = stream
        camera.start_acquisition()

    def _apply_trigger(self, camera) -> None:
        if self.trigger_source == TRIGGER_FREE_RUN:
            camera.clear_triggers()
            return
        source = "Software" if self.trigger_source == TRIGGER_SOFTWARE else self.trigger_source
        sources = list(camera.dup_available_trigger_sources() or [])
        if source not in sources:
            raise CameraError(f"camera {self.name!r}: {self.source!r} has no trigger source {source!r} "
                              f"(it has {', '.join(sources)})")
        camera.set_trigger(source)  # TriggerSelector FrameStart, TriggerMode On, TriggerSource

    def _read_limits(self, camera) -> tuple[tuple[float, float], tuple[float, float]]:
        limits = []
        for available, bounds, name in ((camera.is_exposure_time_available, camera.get_exposure_time_bounds, "exposure"),
                                        (camera.is_gain_available, camera.get_gain_bounds, "gain")):
            if not available():
                raise CameraError(f"camera {self.name!r}: {self.source!r} has no {name} feature "
                                  f"({'ExposureTime/ExposureTimeAbs' if name == 'exposure' else 'Gain/GainRaw'})")
            low, high = bounds()
            limits.append((float(low), float(high)))
        return limits[0], limits[1]

    def _drop(self, *, lost: bool = False) -> None:
        """Release the camera; `lost`: it does not answer, so do not wait on it to stop."""
        camera, stream = self._camera, self._stream
        self._camera = self._stream = None
        if camera is not None and not lost and not self._lost.is_set():
            try:
                camera.stop_acquisition()
            except Exception:  # noqa: BLE001 - a lost camera does not answer
                pass
        if lost or self._lost.is_set():
            # Releasing a lost GigE device waits out GVCP timeouts (about 10 s) to give up control; do it
            # off the caller's thread (PyGObject lets go of the GIL meanwhile), so the error comes at once.
            held = [camera, stream]
            del camera, stream
            threading.Thread(target=held.clear, name=f"aravis-release-{self.name}", daemon=True).start()
        # otherwise dropping the references here closes the stream and the control channel

    def close(self) -> None:
        self._drop()

    @property
    def connected(self) -> bool:
        return self._camera is not None and not self._lost.is_set()

    # -- limits and settings -----------------------------------------------------------------------
    def device_limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """(exposure µs, gain) min/max as the camera's GenICam features report them."""
        if self._device_limits is None:
            self.open()
        assert self._device_limits is not None
        return self._device_limits

    def limits(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """What this camera accepts here: its own features' range within the station config's and the cell's."""
        device = self.device_limits()
        result = []
        for own, configured in zip(device, self.config_limits):
            low, high = max(own[0], configured[0]), min(own[1], configured[1])
            if low > high:
                raise CameraError(f"camera {self.name!r}: the camera's range {own[0]:g} to {own[1]:g} does not meet "
                                  f"the station config's {configured[0]:g} to {configured[1]:g}")
            result.append((low, high))
        return result[0], result[1]

    def configure(self, exposure_us: float | None = None, gain: float | None = None, roi=None) -> CameraSettings:
        (exp_low, exp_high), (gain_low, gain_high) = self.limits() if self._camera is not None or \
            self._device_limits is not None else self.config_limits
        for what, value, low, high, unit in (("exposure_us", exposure_us, exp_low, exp_high, " µs"),
                                              ("gain", gain, gain_low, gain_high, "")):
            if value is not None and not low <= value <= high:
                raise CameraError(f"camera {self.name!r}: {what} {value:g}{unit} is outside what {self.source!r} "
                                  f"accepts: {low:g} to {high:g}{unit}")
        return super().configure(exposure_us=exposure_us, gain=gain, roi=roi)

    def _apply_settings(self, settings: CameraSettings) -> None:
        camera = self._camera
        if camera is None:
            return  # applied at the next open
        try:
            camera.set_exposure_time(settings.exposure_us)
            camera.set_gain(settings.gain)
            width, height = camera.get_sensor_size()
            x, y, w, h = settings.roi if settings.roi is not None else (0, 0, width, height)
            if x + w > width or y + h > height:
                raise CameraError(f"camera {self.name!r}: roi {settings.roi} exceeds the sensor ({width}×{height})")
            if (x, y, w, h) != tuple(camera.get_region()):
                self._set_region(camera, x, y, w, h)
        except CameraError:
            raise
        except Exception as exc:  # noqa: BLE001 - GLib.Error from the device
            raise CameraError(f"camera {self.name!r}: setting exposure/gain/roi failed: {_glib_error(exc)}") from None

    def _set_region(self, camera, x: int, y: int, w: int, h: int) -> None:
        """Width/Height and the payload size change only with the acquisition stopped; the stream's
        buffers are then reallocated."""
        running = self._stream is not None
        if running:
            camera.stop_acquisition()
            self._stream = None  # the old stream is released before a new one takes the stream channel
        camera.set_region(x, y, w, h)
        if running:
            aravis = _aravis()
            stream = camera.create_stream(None, None)
            payload = camera.get_payload()
            for _ in range(self.n_buffers):
                stream.push_buffer(aravis.Buffer.new_allocate(payload))
            self._stream = stream
            camera.start_acquisition()

    # -- acquisition ---------------------------------------------------------------------------------
    def _reconnect_if_lost(self) -> None:
        if self._camera is not None and self._lost.is_set():
            self._drop()
        if self._camera is None:
            was_open = self._device_limits is not None
            self.open()
            if was_open:
                self.reconnects += 1

    def _flush(self) -> None:
        """Give back frames that arrived before this trigger (free-run, a stray hardware pulse)."""
        assert self._stream is not None
        while True:
            buffer = self._stream.try_pop_buffer()
            if buffer is None:
                return
            self._stream.push_buffer(buffer)

    def _start_exposure(self) -> None:
        self._reconnect_if_lost()
        camera = self._camera
        self._flush()
        if self.trigger_source == TRIGGER_SOFTWARE:
            try:
                camera.software_trigger()
            except Exception as exc:  # noqa: BLE001 - the camera is gone
                self._drop(lost=True)
                raise CameraError(f"camera {self.name!r}: software trigger failed ({_glib_error(exc)}); "
                                  f"the next trigger reconnects") from None

    def _read_exposure(self, timeout_s: float) -> tuple[np.ndarray, tuple, dict]:
        aravis = _aravis()
        stream = self._stream
        if stream is None:
            raise CameraError(f"camera {self.name!r}: not open")
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            buffer = stream.timeout_pop_buffer(max(1, int(left * 1e6))) if left > 0 else None
            if buffer is None:
                lost = self._lost.is_set()
                self._drop(lost=lost)  # a camera that sends nothing is reopened at the next trigger
                raise CameraError(f"camera {self.name!r}: no frame from {self.source!r} within {timeout_s:g} s"
                                  + (" (control lost: cable or power)" if lost else "") + "; the next trigger reconnects")
            status = buffer.get_status()
            if status == aravis.BufferStatus.SUCCESS:
                break
            stream.push_buffer(buffer)  # an incomplete frame (lost packets): wait for the next within the timeout
            if self.trigger_source == TRIGGER_SOFTWARE and time.monotonic() < deadline:
                self._camera.software_trigger()
        try:
            image = self._to_array(buffer)
            meta = {"source": self.source, "pixel_format": self.pixel_format, "frame_id": buffer.get_frame_id(),
                    "device_timestamp_ns": buffer.get_timestamp(), "reconnects": self.reconnects}
        finally:
            stream.push_buffer(buffer)
        self._frame_count += 1
        return image, (), meta

    def _to_array(self, buffer) -> np.ndarray:
        width, height = buffer.get_image_width(), buffer.get_image_height()
        data = buffer.get_data()
        depth = 1 if self.pixel_format == "Mono8" else 2
        needed = width * height * depth
        if len(data) < needed:
            raise CameraError(f"camera {self.name!r}: frame of {len(data)} bytes, expected {needed} "
                              f"({width}×{height} {self.pixel_format})")
        dtype = np.uint8 if depth == 1 else np.dtype("<u2")
        return np.frombuffer(data, dtype=dtype, count=width * height).reshape(height, width).copy()
