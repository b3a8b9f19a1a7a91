"""Simple cells without a PLC: OK / NG / ERROR signal lamps on the stage controller's digital
outputs and a part-present sensor on one of its inputs (grblHAL M64/M65 and M66; see
hardware.motion.grblhal `set_output` / `wait_input`)."""
from __future__ import annotations

from dataclasses import dataclass

LAMP_OF = {"PASS": "ok", "FAIL": "ng", "ERROR": "error"}


@dataclass(frozen=True)
class LampWiring:
    """Output ports of the lamps and input port of the part-present sensor (None: not wired)."""

    ok: int | None = None
    ng: int | None = None
    error: int | None = None
    part_present: int | None = None
    part_present_timeout_s: float = 10.0

    @property
    def lamps(self) -> dict[str, int]:
        return {name: port for name, port in (("ok", self.ok), ("ng", self.ng), ("error", self.error))
                if port is not None}


class SignalLamps:
    """One lamp for the last verdict, the others off; all off while a part is being inspected."""

    def __init__(self, motion, wiring: LampWiring):
        self.motion, self.wiring = motion, wiring

    def show(self, verdict: str | None) -> None:
        wanted = LAMP_OF.get(verdict or "")
        for name, port in self.wiring.lamps.items():
            self.motion.set_output(port, name == wanted)

    def part_present(self) -> bool:
        """Waits (up to the wiring's timeout) for the sensor; True without a sensor wired."""
        if self.wiring.part_present is None:
            return True
        return self.motion.wait_input(self.wiring.part_present, mode="high",
                                      timeout_s=self.wiring.part_present_timeout_s) == 1
