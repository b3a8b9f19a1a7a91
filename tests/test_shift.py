"""The shift's tally lives in the result store (a restarted station shows the shift's counters
again), and the virtual cell's serials continue after the store's highest one (no duplicates in
the QA gallery after a restart). Restart = a new StationController over the same store."""
import datetime as dt
from dataclasses import replace

import pytest

from inspector.results.records import DefectRecord, PartRecord
from inspector.results.sqlite_store import ResultStore
from inspector.shift import Shift, shift_at, shift_tally
from inspector.sim_serials import next_free_seed
from inspector.station import StationController
from tests.test_result_store_postgres import pg_url  # noqa: F401 - the throw-away PostgreSQL server


def at(day: int, hour: int, minute: int = 0) -> float:
    return dt.datetime(2026, 12, day, hour, minute).timestamp()


def part(serial: str, verdict: str, when: float, defects=()) -> PartRecord:
    return PartRecord(part_id=serial, serial=serial, started_at=when - 1, finished_at=when, station="t",
                      recipe_id="r", recipe_version=1, recipe_hash="h", model_versions={}, provider="CPU",
                      verdict=verdict, reason=f"{verdict.lower()} reason", defects=tuple(defects),
                      timings_s={"total": 1.5})


def dent(decision="defect") -> DefectRecord:
    return DefectRecord("dent", 0.9, "top", (1, 2, 3, 4), "fine", decision=decision)


@pytest.mark.parametrize("when, start, end", [
    (at(2, 6), at(2, 6), at(2, 14)),
    (at(2, 13, 59), at(2, 6), at(2, 14)),
    (at(2, 14), at(2, 14), at(2, 22)),
    (at(2, 23), at(2, 22), at(3, 6)),
    (at(2, 5, 59), at(1, 22), at(2, 6)),  # before the first start: the night shift that began yesterday
])
def test_shift_at_the_three_shifts(when, start, end):
    assert shift_at(when) == Shift(start, end)


def test_shift_at_refuses_hours_outside_a_day():
    with pytest.raises(ValueError, match="hours 0..23"):
        shift_at(at(2, 6), starts=(6, 25))


def test_shift_tally_reads_only_its_shift(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.write(part("SIM-000001", "FAIL", at(2, 5, 30), [dent()]))  # the night before
        store.write(part("SIM-000002", "PASS", at(2, 6, 10)))
        store.write(part("SIM-000003", "FAIL", at(2, 7), [dent(), dent(), dent("review")]))
        store.write(part("SIM-000004", "ERROR", at(2, 8)))
        store.write(part("SIM-000005", "PASS", at(2, 14, 1)))  # the next shift
        master = part("M-1", "FAIL", at(2, 7, 30), [dent()])
        store.write(replace(master, part_id="golden-scratch-master-20261202-073000"))  # a master: not production
        tally = shift_tally(store, shift_at(at(2, 9)))
    assert dict(tally.verdicts) == {"PASS": 1, "FAIL": 1, "ERROR": 1} and tally.parts == 3
    assert dict(tally.pareto) == {"dent": 2}  # decided defects only, of this shift's parts
    assert tally.cycle_times == [1.5, 1.5, 1.5]
    assert [s for s, _v, _r in tally.last] == ["SIM-000004", "SIM-000003", "SIM-000002"]  # newest first
    assert tally.shift.name.endswith("06:00–14:00")


def test_virtual_serials_continue_after_the_stores_highest(tmp_path):
    db = tmp_path / "r.db"
    with StationController(db=str(db), sim=True, first_seed=500_000) as station:
        assert station.next_seed == 500_000  # an empty store: the first seed
    with ResultStore(db) as store:
        for serial in ("SIM-500000", "SIM-500001", "SIM-099999", "LINE-7-999"):
            store.write(part(serial, "PASS", at(2, 7)))
        assert store.highest_serial("SIM-") == "SIM-500001"
    with StationController(db=str(db), sim=True, first_seed=500_000) as station:
        assert station.next_seed == 500_002  # restarted: no serial again
    with StationController(db=str(db), sim=True, first_seed=600_000) as station:
        assert station.next_seed == 600_000  # a higher first seed is kept


def test_highest_serial_orders_by_length_then_text(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        assert next_free_seed(store, 5) == 5
        for serial in ("SIM-999999", "SIM-1000000", "SIM_X-9", "SIMAB-12345678"):
            store.write(part(serial, "PASS", at(2, 7)))
        assert store.highest_serial("SIM-") == "SIM-1000000"
        assert store.highest_serial("SIM_") == "SIM_X-9"  # '_' in a prefix is itself, not a wildcard
        assert next_free_seed(store, 5) == 1_000_001


def test_shift_and_serials_on_postgresql(pg_url):
    with ResultStore(pg_url) as store:
        store._execute("TRUNCATE parts, defects RESTART IDENTITY")
        store.write(part("SIM-500007", "FAIL", at(2, 7), [dent()]))
        store.write(part("SIM-500003", "PASS", at(2, 8)))
        assert store.flush(30)
        tally = shift_tally(store, shift_at(at(2, 9)))
        assert dict(tally.verdicts) == {"PASS": 1, "FAIL": 1} and dict(tally.pareto) == {"dent": 1}
        assert store.highest_serial("SIM-") == "SIM-500007" and next_free_seed(store, 500_000) == 500_008
