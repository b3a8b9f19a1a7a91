"""The motion interface every stage controller implements, and the types it speaks in."""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Callable

from ..pose import StagePose as Pose
from ..status import Status

AXES = ("x", "y", "z", "a", "b")
LINEAR_AXES = ("x", "y", "z")

__all__ = ["AXES", "LINEAR_AXES", "Pose", "AxisSettings", "MachineState", "MotionController"]


@dataclass(frozen=True)
class AxisSettings:
    steps_per_unit: float
    max_rate_per_min: float  # mm/min for X Y Z, deg/min for A B
    acceleration_per_s2: float  # mm/s² or deg/s²
    max_travel: float  # mm or deg


@dataclass(frozen=True)
class MachineState:
    state: str  # Idle, Run, Hold, Jog, Alarm, Door, Check, Home, Sleep, Tool
    substate: int | None = None
    machine_pos: tuple[float, ...] = (0.0,) * 5
    work_offset: tuple[float, ...] = (0.0,) * 5
    buffer: tuple[int, int] | None = None  # planner blocks free, serial bytes free
    feed: float = 0.0
    spindle: float = 0.0
    overrides: tuple[int, int, int] | None = None
    pins: str = ""
    received_at: float = 0.0  # time.monotonic() of the report
    extra: dict[str, str] = field(default_factory=dict)
    alarm: int | None = None  # the last ALARM:N the controller raised, kept until reset, unlock or homing
    alarm_meaning: str = ""
    origin: tuple[float, ...] = (0.0,) * 5  # MPos of the stage frame's zero (the station config's motion.origin)

    @property
    def alarm_text(self) -> str:
        """'ALARM N: meaning' of the last alarm ('' when none is pending)."""
        return "" if self.alarm is None else f"ALARM {self.alarm}: {self.alarm_meaning}"

    @property
    def work_pos(self) -> tuple[float, ...]:
        return tuple(m - o for m, o in zip(self.machine_pos, self.work_offset))

    @property
    def pose(self) -> Pose:
        """Where the stage is, in the stage frame the station's poses use (MPos less the origin)."""
        return Pose(*(m - o for m, o in zip(self.machine_pos[:5], self.origin)))


class MotionController(ABC):
    """A 5-axis stage. Slow actions return a Status at once; observers get every new MachineState."""

    axes: tuple[str, ...] = AXES

    def __init__(self) -> None:
        self._listeners: list[Callable[[MachineState], None]] = []

    def subscribe(self, callback: Callable[[MachineState], None]) -> Callable[[], None]:
        self._listeners.append(callback)
        return lambda: self._listeners.remove(callback) if callback in self._listeners else None

    def _notify(self, state: MachineState) -> None:
        for callback in list(self._listeners):
            callback(state)

    @abstractmethod
    def connect(self) -> None: ...

    @abstractmethod
    def disconnect(self) -> None: ...

    @abstractmethod
    def home(self, timeout_s: float | None = None) -> Status: ...

    @abstractmethod
    def move_to(self, pose: Pose, feed_per_min: float | None = None, timeout_s: float | None = None) -> Status: ...

    @abstractmethod
    def jog(self, axis: str, distance: float, feed_per_min: float, timeout_s: float | None = None) -> Status: ...

    @abstractmethod
    def jog_cancel(self) -> None: ...

    @abstractmethod
    def feed_hold(self) -> None: ...

    @abstractmethod
    def resume(self) -> None: ...

    @abstractmethod
    def stop(self) -> None:
        """Controlled stop now; pending motion is discarded, the position kept."""

    @abstractmethod
    def reset(self) -> None: ...

    @abstractmethod
    def unlock(self) -> None: ...

    @abstractmethod
    def status(self) -> MachineState: ...

    def position(self) -> Pose:
        return self.status().pose
