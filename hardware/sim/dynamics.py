"""Machine dynamics of the emulated stage: straight-line 5-axis moves with trapezoidal velocity
profiles, the slowest axis governing, and a settle time before the axes are in position.
Pure functions of machine time (seconds)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AxisLimits:
    max_rate: float  # units/s
    acceleration: float  # units/s²
    minimum: float
    maximum: float


# DESIGN.md §4 starting values: X/Y/Z 400 mm/s, 3000 mm/s²; A/B 360 °/s, 3600 °/s²; B ±90°.
DEFAULT_LIMITS = {
    "x": AxisLimits(400.0, 3000.0, -100.0, 100.0),
    "y": AxisLimits(400.0, 3000.0, -60.0, 60.0),
    "z": AxisLimits(400.0, 3000.0, 0.0, 80.0),
    "a": AxisLimits(360.0, 3600.0, -360.0, 360.0),
    "b": AxisLimits(360.0, 3600.0, -90.0, 90.0),
}
SETTLE_S = 0.030


def trapezoid_time(distance: float, max_rate: float, acceleration: float) -> float:
    distance = abs(distance)
    if distance == 0:
        return 0.0
    if distance >= max_rate * max_rate / acceleration:
        return distance / max_rate + max_rate / acceleration
    return 2 * math.sqrt(distance / acceleration)


def trapezoid_position(t: float, distance: float, max_rate: float, acceleration: float) -> float:
    """Distance travelled at time t along a trapezoidal (or triangular) profile."""
    if distance <= 0:
        return 0.0
    total = trapezoid_time(distance, max_rate, acceleration)
    if t >= total:
        return distance
    peak = min(max_rate, math.sqrt(distance * acceleration))
    ramp = peak / acceleration
    if t < ramp:
        return 0.5 * acceleration * t * t
    if t < total - ramp:
        return 0.5 * acceleration * ramp * ramp + peak * (t - ramp)
    remaining = total - t
    return distance - 0.5 * acceleration * remaining * remaining


@dataclass(frozen=True)
class Move:
    """A straight-line move in 5-D; every axis follows the governing axis' normalised profile."""

    start: tuple[float, ...]
    target: tuple[float, ...]
    started_at: float
    rates: tuple[float, ...]  # effective per-axis max rate (units/s)
    accels: tuple[float, ...]

    @classmethod
    def plan(cls, start, target, started_at: float, limits: list[AxisLimits], feed_per_s: float | None = None) -> "Move":
        delta = np.abs(np.subtract(target, start))
        norm = float(np.linalg.norm(delta))
        rates = []
        for d, lim in zip(delta, limits):
            rate = lim.max_rate
            if feed_per_s is not None and norm > 0:
                rate = min(rate, feed_per_s * d / norm) if d > 0 else rate
            rates.append(max(rate, 1e-6))
        return cls(tuple(map(float, start)), tuple(map(float, target)), started_at, tuple(rates),
                   tuple(lim.acceleration for lim in limits))

    @property
    def governing_axis(self) -> int:
        times = [trapezoid_time(t - s, r, a) for s, t, r, a in zip(self.start, self.target, self.rates, self.accels)]
        return int(np.argmax(times))

    @property
    def duration(self) -> float:
        g = self.governing_axis
        return trapezoid_time(self.target[g] - self.start[g], self.rates[g], self.accels[g])

    def fraction(self, now: float) -> float:
        g = self.governing_axis
        distance = abs(self.target[g] - self.start[g])
        if distance == 0:
            return 1.0
        return trapezoid_position(now - self.started_at, distance, self.rates[g], self.accels[g]) / distance

    def position(self, now: float) -> tuple[float, ...]:
        f = self.fraction(now)
        return tuple(s + (t - s) * f for s, t in zip(self.start, self.target))

    def speed(self, now: float, dt: float = 1e-4) -> float:
        """Path speed of the governing axis (units/s) — used to plan a stop."""
        g = self.governing_axis
        distance = abs(self.target[g] - self.start[g])
        t = now - self.started_at
        a = trapezoid_position(t, distance, self.rates[g], self.accels[g])
        b = trapezoid_position(t + dt, distance, self.rates[g], self.accels[g])
        return (b - a) / dt

    def stop_target(self, now: float) -> tuple[float, ...]:
        """Where the axes come to rest if a controlled stop starts now (feed hold, jog cancel)."""
        g = self.governing_axis
        distance = abs(self.target[g] - self.start[g])
        if distance == 0:
            return self.target
        speed = self.speed(now)
        stopping = speed * speed / (2 * self.accels[g])
        f = min(1.0, self.fraction(now) + stopping / distance)
        return tuple(s + (t - s) * f for s, t in zip(self.start, self.target))


AXIS_ORDER = "xyzab"


@dataclass(frozen=True)
class Dynamics:
    """The machine model a plan is timed with: per-axis limits in x, y, z, a, b order and the settle
    time after every move — the parameters the emulator moves by."""

    limits: tuple[AxisLimits, ...] = tuple(DEFAULT_LIMITS[a] for a in AXIS_ORDER)
    settle_s: float = SETTLE_S

    @classmethod
    def of(cls, limits: dict[str, AxisLimits], settle_s: float) -> "Dynamics":
        return cls(tuple(limits[a] for a in AXIS_ORDER), float(settle_s))


def _coords(pose) -> tuple[float, ...]:
    return tuple(float(v) for v in (pose.as_tuple() if hasattr(pose, "as_tuple") else pose))


def move_time_s(start, target, dynamics: Dynamics = Dynamics()) -> float:
    """Machine seconds of one rapid (G0) move as the emulator runs it: a trapezoid per axis at its own
    max rate, the slowest axis governing, then the settle time (after every commanded move)."""
    return Move.plan(_coords(start), _coords(target), 0.0, list(dynamics.limits)).duration + dynamics.settle_s


def plan_time_s(poses, dynamics: Dynamics = Dynamics()) -> float:
    """Machine seconds to move through `poses` in order: poses[0] is where the stage stands, each
    following pose is one move. A pure function of the poses and the machine model."""
    poses = list(poses)
    return sum(move_time_s(a, b, dynamics) for a, b in zip(poses, poses[1:]))


def within(limits: list[AxisLimits], target: tuple[float, ...]) -> bool:
    return all(lim.minimum - 1e-9 <= v <= lim.maximum + 1e-9 for lim, v in zip(limits, target))
