"""The operator's shift: which shift a moment belongs to, and the shift's tally (verdict counters,
cycle times, defect Pareto, the last parts) as the result store holds it — so a station restarted
in the middle of a shift shows the shift's counters again, not zeros.

The store is the one place the counters live: every part is committed there before its verdict is
shown, so the tally of a shift is a read of its time window, never a second copy to keep in step."""
from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

SHIFT_STARTS = (6, 14, 22)  # local hours at which a shift begins (three 8-hour shifts)
LAST_PARTS = 10  # parts kept for the operator's verdict history


@dataclass(frozen=True)
class Shift:
    start: float  # unix time, inclusive
    end: float  # unix time, exclusive

    @property
    def name(self) -> str:
        """'2026-12-01 06:00–14:00', local time."""
        start, end = dt.datetime.fromtimestamp(self.start), dt.datetime.fromtimestamp(self.end)
        return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}"

    def contains(self, when: float) -> bool:
        return self.start <= when < self.end


def shift_at(when: float, starts: Sequence[int] = SHIFT_STARTS) -> Shift:
    """The shift (local time) that `when` (unix time) falls in; `starts` are whole hours, ascending."""
    hours = sorted({int(h) for h in starts})
    if not hours or hours[0] < 0 or hours[-1] > 23:
        raise ValueError(f"shift starts must be hours 0..23, got {list(starts)}")
    moment = dt.datetime.fromtimestamp(when)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    bounds = [day - dt.timedelta(days=1) + dt.timedelta(hours=hours[-1])]
    bounds += [day + dt.timedelta(hours=h) for h in hours] + [day + dt.timedelta(days=1, hours=hours[0])]
    for begin, finish in zip(bounds, bounds[1:]):
        if begin <= moment < finish:
            return Shift(begin.timestamp(), finish.timestamp())
    raise AssertionError("unreachable: the bounds cover the day")  # pragma: no cover


@dataclass
class ShiftTally:
    """What the operator's counters show for one shift."""
    shift: Shift
    verdicts: Counter = field(default_factory=Counter)
    pareto: Counter = field(default_factory=Counter)  # defect class -> defects decided 'defect'
    cycle_times: list[float] = field(default_factory=list)
    last: list[tuple[str, str, str]] = field(default_factory=list)  # (serial, verdict, reason), newest first

    @property
    def parts(self) -> int:
        return sum(self.verdicts.values())

    def add(self, serial: str, verdict: str, reason: str, cycle_s: float, defect_classes: Sequence[str] = ()) -> None:
        self.verdicts[verdict] += 1
        self.cycle_times.append(cycle_s)
        self.pareto.update(defect_classes)
        self.last.insert(0, (serial, verdict, reason))
        del self.last[LAST_PARTS:]


def shift_tally(store: Any, shift: Shift) -> ShiftTally:
    """The tally of `shift` from the result store: its production parts and their defects (master
    inspections of the golden check are not production)."""
    from .golden import GOLDEN_PART_PREFIX

    tally = ShiftTally(shift)
    for serial, verdict, reason, cycle_s in store.verdict_rows(shift.start, shift.end,
                                                               skip_part_prefix=GOLDEN_PART_PREFIX):
        tally.add(serial, verdict, reason, cycle_s)
    tally.pareto = Counter({name: count for name, count, _parts in
                            store.defects_by_class(shift.start, shift.end, skip_part_prefix=GOLDEN_PART_PREFIX)})
    return tally
