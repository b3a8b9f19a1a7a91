"""What the emulated grblHAL prints of itself: its `$$` settings with their defaults for this stage,
`$I` build info, `$G` parser state and status reports, in the formats report.c and settings.c print
them."""
from __future__ import annotations

from typing import Mapping

from ..motion.grbl_protocol import format_status

from .dynamics import AxisLimits

BUILD = "1.1f.20250731"
# settings printed as integers (masks, booleans, counts); the rest are floats with 3 decimals
INTEGER_SETTINGS = frozenset({1, 2, 3, 4, 5, 6, 10, 13, 20, 21, 22, 23, 26, 30, 31, 32, 40})
HOMING_ENABLE, HOMING_INIT_LOCK, HOMING_FORCE_ORIGIN = 1, 4, 8  # $22 bits (settings.h homing_settings_flags_t)
REPORT_MASK = 511  # $10: MPos, Bf, Ln, FS, Pn, WCO, Ov, probe, sync on WCO change (config.h defaults)


def store_setting(number: int, value: float) -> str:
    return str(int(value)) if number in INTEGER_SETTINGS else f"{value:.3f}"


def format_setting(number: int, stored: str) -> str:
    return f"${number}={stored}"


def default_settings(limits: Mapping[str, AxisLimits], homing_required: bool, steps_per_unit: float) -> dict[int, str]:
    """grblHAL's defaults where they suit a fast inspection stage (config.h has 500 mm/min, 10 mm/s²
    and 200 mm travel for a small router): steps per unit 250 as in config.h, the stage's own rates,
    accelerations and travels, homing on with the startup lock, soft limits on."""
    values: dict[int, float] = {0: 10.0, 1: 25, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 10: REPORT_MASK, 11: 0.010, 12: 0.002,
                                13: 0, 20: 1 if homing_required else 0, 21: 0,
                                22: HOMING_ENABLE | HOMING_INIT_LOCK if homing_required else 0, 23: 0,
                                24: 25.0, 25: 24000.0, 26: 250, 27: 1.0, 30: 1000, 31: 0, 32: 0, 40: 0}
    for i, axis in enumerate("xyzab"):
        lim = limits[axis]
        values[100 + i] = steps_per_unit
        values[110 + i] = lim.max_rate * 60
        values[120 + i] = lim.acceleration
        values[130 + i] = lim.maximum - lim.minimum
    return {number: store_setting(number, value) for number, value in values.items()}


def build_info(settings: Mapping[int, str], axes: str = "XYZAB") -> list[str]:
    """`$I` (report.c report_build_info); OPT letter L says the homing init lock is off."""
    letters = "VNMS" + ("" if int(settings[22]) & HOMING_INIT_LOCK else "L")
    return [f"[VER:{BUILD}:]", f"[OPT:{letters},35,1023,{len(axes)},0]", f"[AXS:{len(axes)}:{axes}]",
            "[NEWOPT:ENUMS,RT+,HOME,SED]", "[FIRMWARE:grblHAL]"]


def modal_words(motion: int | None, wcs: str, inches: bool, absolute: bool, feed: float | None) -> list[str]:
    """`$G` words (report.c report_gcode_modes): S prints as `S0.` (ftoa with no decimals)."""
    return [f"G{80 if motion is None else motion}", wcs, "G17", "G20" if inches else "G21",
            "G90" if absolute else "G91", "G94", "G49", "G98", "G50", "M5", "M9", "T0",
            f"F{int(feed or 0)}", "S0."]


class StatusReports:
    """report.c `report_realtime_status`: `$10` chooses the fields (bit 0 MPos or WPos, bit 1 Bf,
    bit 5 WCO, bit 6 Ov); WCO comes in the 11th report after the banner, then every 10 reports idle and
    30 busy, and in the next report after any offset change; Ov every 10 (idle) or 20 (busy), never
    in the same report as WCO."""

    def __init__(self) -> None:
        self.force_wco = False
        self.restart()

    def restart(self) -> None:
        """The banner zeroes both counters (report_init_message)."""
        self._wco_in, self._ov_in = 10, 0

    def status(self, state: str, substate: int | None, position: tuple[float, ...], wco: tuple[float, ...],
               mask: int, blocks_free: int, feed: float) -> str:
        busy = state not in ("Idle", "Alarm")
        wco_due = bool(mask & 32) and (self.force_wco or self._wco_in <= 0)
        if wco_due:
            self.force_wco, self._wco_in = False, 30 if busy else 10
        else:
            self._wco_in = min(self._wco_in, 10) - 1 if not busy else self._wco_in - 1
        ov_due = bool(mask & 64) and not wco_due and self._ov_in <= 0
        self._ov_in = (20 if busy else 10) - 1 if ov_due else self._ov_in - 1
        if not mask & 1:
            position = tuple(p - o for p, o in zip(position, wco))
        return format_status(state, position, substate=substate, buffer=(blocks_free, 1023) if mask & 2 else None,
                             feed=feed, work_offset=wco if wco_due else None,
                             overrides=(100, 100, 100) if ov_due else None, work_position=not mask & 1)
