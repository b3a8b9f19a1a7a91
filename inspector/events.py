"""Cycle events, defined without Qt: a GUI adapts them to signals, a PLC bridge to its own I/O.
Callbacks run on the cycle's thread and must return quickly."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class PartStarted:
    part_id: str
    serial: str


@dataclass(frozen=True)
class ViewCaptured:
    part_id: str
    view: str
    image: Any  # np.ndarray of the coarse frame


@dataclass(frozen=True)
class CandidatesFound:
    part_id: str
    view: str
    candidates: tuple  # tuple[planner.Candidate, ...]


@dataclass(frozen=True)
class FineShotTaken:
    part_id: str
    index: int
    total: int
    image: Any
    decisions: tuple = ()  # (class, score, decision) per candidate in the shot
    boxes: tuple = ()  # (x0, y0, x1, y1) per candidate, in the fine image's pixels (clipped to it), as decisions


@dataclass(frozen=True)
class VerdictReady:
    part_id: str
    record: Any  # results.records.PartRecord, already committed to the store
    row: int


@dataclass(frozen=True)
class Fault:
    part_id: str
    reason: str


@dataclass(frozen=True)
class Alarm:
    """The station needs a person: e.g. several parts in a row with implausible frames."""
    part_id: str
    message: str


@dataclass
class EventBus:
    _subscribers: list[Callable[[object], None]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def subscribe(self, callback: Callable[[object], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(callback)

        def unsubscribe() -> None:
            with self._lock:
                if callback in self._subscribers:
                    self._subscribers.remove(callback)
        return unsubscribe

    def publish(self, event: object) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            callback(event)
