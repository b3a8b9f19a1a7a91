"""Leaving the cell safe before the station closes (the window closed during a lot, a service
shutting down): the lot stopped, the stage stopped, the lights off — each confirmed from the device
where it can be, and said in plain words. Part of StationController (inspector.station)."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from .station_events import StationState

log = logging.getLogger("inspector.station")


@dataclass(frozen=True)
class SafeStopReport:
    """What `safe_stop` did, one plain line per thing; `safe` only when every line is confirmed."""
    lines: tuple[str, ...]
    safe: bool

    def text(self) -> str:
        return "; ".join(self.lines)


class SafeStop:
    """Mixed into StationController: uses its lock, state, devices, stop() and wait_for()."""

    def safe_stop(self, timeout_s: float = 60.0) -> SafeStopReport:
        """Stop the lot (the part in progress ends ERROR, not fully inspected) and wait for it; then,
        with the devices to itself, stop the stage and switch every light off. Blocking: call it on a
        worker thread. Does not close anything (close() does); a device it could not make safe says so."""
        deadline = time.monotonic() + timeout_s
        lines: list[str] = []
        safe = True
        busy = self._state == StationState.BUSY
        self.stop()
        state = self.wait_for(StationState.READY, StationState.DONE, StationState.FAULT, StationState.OFFLINE,
                              timeout=timeout_s)
        if state == StationState.BUSY:
            lines.append(f"the lot did not stop within {timeout_s:g} s")
            safe = False
        elif busy:
            lines.append("lot stopped" + (f" (station fault: {self.fault_reason})" if state == StationState.FAULT else ""))
        else:
            lines.append("no lot running")
        if not self._work.acquire(timeout=max(0.1, deadline - time.monotonic())):
            lines.append("the devices stayed busy: stage and lights not confirmed")
            return SafeStopReport(tuple(lines), False)
        try:
            devices = self.devices
            if devices is None:
                lines.append("devices not connected")
                return SafeStopReport(tuple(lines), safe)
            try:
                devices.motion.stop()
                report = devices.motion.status().state
                moving = report in ("Run", "Jog", "Home")
                lines.append(f"stage {'still moving' if moving else 'stopped'} (controller reports {report})")
                safe = safe and not moving
            except Exception as exc:  # noqa: BLE001 - the next device is still made safe
                lines.append(f"stage not confirmed stopped: {type(exc).__name__}: {exc}")
                safe = False
            try:
                devices.lights.all_off()
                held = devices.lights.read_back()
                if held is None:
                    lines.append("lights off (commanded; this controller does not read back)")
                elif all(setting.percent <= 0 for setting in held.values()):
                    lines.append("lights off (read back from the controller)")
                else:
                    lines.append("lights NOT off: the controller reads back "
                                 + ", ".join(f"{c} {s.percent:g} %" for c, s in held.items() if s.percent > 0))
                    safe = False
            except Exception as exc:  # noqa: BLE001
                lines.append(f"lights not confirmed off: {type(exc).__name__}: {exc}")
                safe = False
        finally:
            self._work.release()
        report = SafeStopReport(tuple(lines), safe)
        log.info("safe stop: %s", report.text())
        return report
