"""What the station controller says: its states, fault codes, results and events (the vocabulary of
the window, `inspector serve` and the PLC servers alike; see inspector.station)."""
from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from hardware.errors import HardwareError

FAULT_NONE, FAULT_DEVICES, FAULT_MACHINE, FAULT_PART, FAULT_STORE, FAULT_MODELS, FAULT_CELL = range(7)
FAULT_CODES = {
    FAULT_NONE: "no fault",
    FAULT_DEVICES: "devices not connected (connect, homing or reset failed)",
    FAULT_MACHINE: "machine alarm (stage controller in alarm or link lost)",
    FAULT_PART: "part fault (hardware or unexpected error during a part)",
    FAULT_STORE: "store/disk alarm (record not written, or no space)",
    FAULT_MODELS: "models or recipe could not load",
    FAULT_CELL: "cell alarm (implausible frames part after part)",
}


class StationState(str, Enum):
    OFFLINE = "offline"
    READY = "ready"
    BUSY = "busy"
    DONE = "done"
    FAULT = "fault"


@dataclass(frozen=True)
class PartResult:
    serial: str
    part_id: str
    verdict: str  # PASS / FAIL / ERROR
    defects: int  # defects called (defect or review)
    cycle_ms: int
    row: int  # the record's row in the store (0: not recorded, e.g. an invalid serial)
    reason: str
    recipe: str  # recipe id


@dataclass(frozen=True)
class StateChanged:
    state: StationState
    fault_code: int
    reason: str


@dataclass(frozen=True)
class InspectionDone:
    result: PartResult


@dataclass(frozen=True)
class ModelsReady:
    """The selected recipe's models are loaded: one line per model (name, version, provider)."""
    lines: tuple[str, ...]


@dataclass(frozen=True)
class Homed:
    """The stage finished homing."""


@dataclass(frozen=True)
class LotFinished:
    """The operator's lot ended (all parts, stopped, or on a fault)."""
    tally: Any  # demo.LotTally, or None when the lot did not run
    fault: str | None


def _hardware_error_names() -> set[str]:
    names: set[str] = set()
    todo = [HardwareError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _is_part_fault(reason: str) -> bool:
    """An ERROR reason the cycle wrote for an exception ('Kind: text') that is a hardware error or an
    unexpected error of ours — not an implausible frame or an incomplete inspection (plain text)."""
    kind, sep, _rest = reason.partition(": ")
    if not sep or not kind.isidentifier():
        return False
    if kind in _hardware_error_names():
        return True
    import builtins

    return isinstance(getattr(builtins, kind, None), type) and issubclass(getattr(builtins, kind), Exception)
