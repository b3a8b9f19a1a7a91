"""The emulated controller's planner and steppers: straight-line moves queued in machine
coordinates (MPos), positions in whole motor steps, feed hold / resume / jog cancel, the homing
move and the settle time after each move. Machine time in, positions out; no protocol here."""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Callable

from .dynamics import AxisLimits, Move

Quantise = Callable[[tuple[float, ...]], tuple[float, ...]]


@dataclass
class _Pending:
    move: Move
    jog: bool
    feed_per_s: float | None = None  # the programmed feed (None: rapid), to resume after a hold
    hold_fraction: float | None = None  # set while a feed hold or jog cancel brings it to rest


class Planner:
    def __init__(self, position: tuple[float, ...], limits: list[AxisLimits], settle_s: float, quantise: Quantise):
        self.limits = limits
        self.settle_s = settle_s
        self.quantise = quantise
        self.position = quantise(position)  # where the axes rest (between moves)
        self.queue: deque[tuple[tuple[float, ...], float | None, bool]] = deque()  # (target, feed/s, jog)
        self.current: _Pending | None = None
        self.homing: Move | None = None
        self.holding = False
        self.settle_until = 0.0

    # -- commands ----------------------------------------------------------------------------------
    def add(self, target: tuple[float, ...], feed_per_s: float | None, jog: bool) -> None:
        """Queue a move to `target`, rounded to whole steps (planner.c plan_buffer_line)."""
        self.queue.append((self.quantise(target), feed_per_s, jog))

    def home(self, end: tuple[float, ...], started_at: float, seek_per_s: float) -> None:
        limits = [AxisLimits(min(lim.max_rate, seek_per_s), lim.acceleration, lim.minimum, lim.maximum)
                  for lim in self.limits]
        self.homing = Move.plan(self.position, end, started_at, limits, feed_per_s=None)

    def hold(self, now: float) -> None:
        """Feed hold: decelerate to rest on the path; a jog is cancelled instead."""
        if self.current is None and not self.queue:
            return
        if self.current is not None:
            if self.current.jog:
                self.cancel_jog(now)
                return
            self._stop_on_path(now)
        self.holding = True

    def resume(self) -> None:
        self.holding = False  # at once, or once at rest (advance requeues the remainder)

    def cancel_jog(self, now: float) -> None:
        if self.current is not None and self.current.jog:
            self._stop_on_path(now)
        self.queue = deque(item for item in self.queue if not item[2])

    def halt(self, now: float) -> None:
        """Stop dead (reset, alarm): the position is kept, everything queued is gone."""
        self.position = self.position_at(now)
        self.current = None
        self.homing = None
        self.queue.clear()
        self.holding = False

    # -- time ------------------------------------------------------------------------------------
    def advance(self, now: float) -> bool:
        """Move machine time on; True when a homing move ended just now."""
        homed = False
        if self.homing is not None and now >= self.homing.started_at + self.homing.duration:
            self.position = self.quantise(self.homing.target)
            self.homing = None
            homed = True
        pending = self.current
        if pending is not None:
            move = pending.move
            if pending.hold_fraction is not None:
                if move.fraction(now) >= pending.hold_fraction:
                    self.position = self.quantise(_at_fraction(move, pending.hold_fraction))
                    self.current = None
                    if pending.jog:  # a stopped jog is discarded
                        self.holding = False
                        self.queue = deque(item for item in self.queue if not item[2])
                    else:  # remember the rest of the way for the resume
                        self.queue.appendleft((move.target, pending.feed_per_s, False))
                    self.settle_until = now + self.settle_s
            elif now >= move.started_at + move.duration:
                self.position = move.target
                self.current = None
                self.settle_until = now + self.settle_s
        if self.current is None and self.queue and not self.holding and self.homing is None:
            target, feed, jog = self.queue.popleft()
            self.current = _Pending(Move.plan(self.position, target, now, self.limits, feed), jog, feed)
        return homed

    # -- state -------------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.current is not None or bool(self.queue) or self.homing is not None

    def settled(self, now: float) -> bool:
        return not self.busy and now >= self.settle_until

    def state(self, now: float) -> tuple[str, int | None]:
        """Home, Hold:0/1 (at rest / stopping), Jog, Run (settling included) or Idle."""
        if self.homing is not None:
            return "Home", None
        if self.holding:
            return "Hold", 0 if self.current is None else 1
        if self.current is not None or self.queue or now < self.settle_until:
            if self.current is not None and self.current.jog or any(j for *_, j in self.queue):
                return "Jog", None
            return "Run", None
        return "Idle", None

    def position_at(self, now: float) -> tuple[float, ...]:
        if self.homing is not None:
            return self.quantise(self.homing.position(max(now, self.homing.started_at)))
        pending = self.current
        if pending is None:
            return self.position
        if pending.hold_fraction is not None and pending.move.fraction(now) >= pending.hold_fraction:
            return self.quantise(_at_fraction(pending.move, pending.hold_fraction))
        return self.quantise(pending.move.position(now))

    def feed_at(self, now: float) -> float:
        """Path speed of the governing axis now, units/min (the FS field)."""
        pending = self.current
        if pending is None or pending.hold_fraction is not None and pending.move.fraction(now) >= pending.hold_fraction:
            return 0.0
        return pending.move.speed(now) * 60.0

    def _stop_on_path(self, now: float) -> None:
        assert self.current is not None
        move = self.current.move
        self.current.hold_fraction = min(1.0, _fraction_of(move.stop_target(now), move))


def _at_fraction(move: Move, fraction: float) -> tuple[float, ...]:
    return tuple(s + (t - s) * fraction for s, t in zip(move.start, move.target))


def _fraction_of(point: tuple[float, ...], move: Move) -> float:
    g = move.governing_axis
    span = move.target[g] - move.start[g]
    return 1.0 if span == 0 else (point[g] - move.start[g]) / span
