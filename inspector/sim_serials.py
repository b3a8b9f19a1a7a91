"""Serials of the virtual cell that stay unique across restarts: a virtual part's serial is
SIM-<seed>, so a station that started again from the same first seed would mark the same serials
on new parts in the same result store (and the QA gallery would show each twice). The next seed
continues after the highest SIM serial the store holds."""
from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

PREFIX = "SIM-"


def next_free_seed(store: Any, first_seed: int) -> int:
    """`first_seed`, or one past the highest SIM-<seed> serial in `store` when that is higher. A
    store that cannot be read now (a PostgreSQL server down) leaves `first_seed`, with a warning:
    a repeated serial is then flagged on its record, as any repeat is."""
    try:
        highest = store.highest_serial(PREFIX)
    except Exception as exc:  # noqa: BLE001 - the station starts anyway
        log.warning("virtual serials: could not read the highest %s serial (%s); starting at seed %d",
                    PREFIX, exc, first_seed)
        return first_seed
    if highest is None:
        return first_seed
    digits = highest[len(PREFIX):]
    if not digits.isdigit():
        log.warning("virtual serials: %r is not %s<number>; starting at seed %d", highest, PREFIX, first_seed)
        return first_seed
    following = int(digits) + 1
    if following > first_seed:
        log.info("virtual serials: the store holds %s; the next virtual part is seed %d", highest, following)
        return following
    return first_seed
