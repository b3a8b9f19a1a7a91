"""A full disk never loses a part silently nor crashes the lot: no part starts without room for its
record and images (one-line alarm), a write that still hits a full disk makes the part ERROR in memory
with the reason and stops the lot, and what was committed stays. The image archive keeps NG longer
than PASS, prunes oldest first, and refuses names that would leave it."""
import json
import os
import re
import shutil
import sqlite3
import subprocess
import time
from collections import namedtuple
from dataclasses import replace

import numpy as np
import pytest

from hardware.sim.cell import VirtualCell
from inspector.archive import ImageArchive, check_path_part
from inspector.cycle import InspectionCycle
from inspector.demo import REFERENCE_RECIPE, run_lot
from inspector.devices import open_devices
from inspector.events import Alarm, VerdictReady
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.recipe import Recipe
from inspector.results import space
from inspector.results.sqlite_store import ResultStore, StoreWriteError
from inspector.station_config import StationConfig
from tests.test_result_store import SCRATCH, record

FULL = "database or disk is full"


class FullDisk:
    """The store's SQLite connection, with the disk filling up on demand as it did when probed: the
    part's INSERT fails with SQLITE_FULL and SQLite has rolled back by itself ('cannot rollback')."""

    def __init__(self, db):
        self.db, self.full = db, False

    def execute(self, sql, *args):
        if self.full and sql.startswith("INSERT INTO parts"):
            raise sqlite3.OperationalError(FULL)
        if self.full and sql == "ROLLBACK":
            self.db.execute(sql)
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")
        return self.db.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.db, name)


def test_a_full_database_is_one_line_and_keeps_what_was_committed(tmp_path):
    with ResultStore(tmp_path / "r.db") as store:
        store.write(record(1))
        store._db = disk = FullDisk(store._db)
        disk.full = True
        with pytest.raises(StoreWriteError) as raised:
            store.write(record(2, "FAIL", [SCRATCH]))
        assert FULL in str(raised.value) and "P00002" in str(raised.value) and "\n" not in str(raised.value)
        assert "cannot rollback" not in str(raised.value)
        disk.full = False
        assert store.count() == 1
        store.write(record(3))  # room again: the same store goes on
        assert [r.part_id for _, r in store.query()] == ["P00001", "P00003"]


def test_sqlite_size_limit_is_a_real_full_database(tmp_path):
    """SQLITE_FULL from SQLite itself (max_page_count), not a stand-in."""
    with ResultStore(tmp_path / "r.db") as store:
        store.write(record(1))
        pages = store._db.execute("PRAGMA page_count").fetchone()[0]
        store._db.execute(f"PRAGMA max_page_count = {pages}")
        big = replace(record(2), extra={"blob": "x" * 50_000})
        with pytest.raises(StoreWriteError, match="full"):
            store.write(big)
        assert store.count() == 1


# -- the lot ---------------------------------------------------------------------------------------------
@pytest.fixture
def rig(tmp_path, model_paths):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(data, source=str(tmp_path / "recipe.json"))
    with VirtualCell(speed_factor=50.0) as cell, ResultStore(tmp_path / "results.db") as store:
        station = StationConfig.from_dict(cell.station_config_dict())
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, Detector.open(str(model_paths[0])),
                                Classifier.open(str(model_paths[1])), store,
                                archive=ImageArchive(tmp_path / "archive", pass_sample_every=1))
        yield cell, cycle, store
        cycle.close()
        devices.close()


def test_disk_full_during_the_write_is_an_error_part_and_a_stopped_lot(rig):
    cell, cycle, store = rig
    disk = store._db = FullDisk(store._db)
    alarms, lines = [], []

    def watch(event):
        if isinstance(event, VerdictReady) and len(store.query()) == 2:
            disk.full = True
        elif isinstance(event, Alarm):
            alarms.append(event.message)

    cycle.events.subscribe(watch)
    tally = run_lot(cycle, 5, cell=cell, first_seed=40, out=lines.append)
    verdicts = [(r.verdict, r.reason) for r, _ in tally.rows]
    assert len(verdicts) == 3  # the lot stopped after the part it could not record
    last = tally.rows[-1][0]
    assert last.verdict == "ERROR" and "record not written" in last.reason and FULL in last.reason
    assert lines[-1] == f"stopped: result store {store.path}: part {last.part_id} not written: {FULL}"
    assert any(FULL in a for a in alarms) and cycle.alarm
    disk.full = False
    assert [r.part_id for _, r in store.query()] == [r.part_id for r, _ in tally.rows[:2]]  # committed stays


def test_no_part_starts_without_room_for_it(rig, monkeypatch):
    cell, cycle, store = rig
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(space.shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 100 * 10**6, 100 * 10**6))
    lines, alarms = [], []
    cycle.events.subscribe(lambda e: alarms.append(e.message) if isinstance(e, Alarm) else None)
    tally = run_lot(cycle, 3, cell=cell, first_seed=40, out=lines.append)
    assert tally.rows == [] and store.count() == 0
    stop = lines[-1]
    assert stop.startswith("stopped: disk nearly full: 100 MB free for the result journal") and "\n" not in stop
    assert "part not inspected" in stop and alarms and cycle.alarm


def test_a_tiny_floor_lets_the_lot_run(rig, monkeypatch):
    cell, cycle, store = rig
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(space.shutil, "disk_usage", lambda path: usage(10**10, 10**10 - 100 * 10**6, 100 * 10**6))
    store.min_free_mb = cycle.archive.min_free_mb = 1.0
    tally = run_lot(cycle, 1, cell=cell, first_seed=40, out=lambda _l: None)
    assert len(tally.rows) == 1 and store.count() == 1


def test_a_bad_serial_is_refused_in_one_line(rig):
    cell, cycle, store = rig
    assert cycle.before_part("../../etc/passwd") == "part id '../../etc/passwd': contains '/'; part not inspected"
    assert store.count() == 0


# -- a real full filesystem ------------------------------------------------------------------------------
@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root and mount(8)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_a_real_full_filesystem(small_tmpfs):
    store = ResultStore(small_tmpfs / "results.db", min_free_mb=0.5)
    try:
        filler = small_tmpfs / "filler"
        filler.write_bytes(b"\0" * (space.free_bytes(small_tmpfs) - 150_000))
        assert store.space_problem() is not None  # a part would not start
        written, failure = 0, None
        for i in range(1, 40):
            try:
                store.write(replace(record(i), extra={"blob": "x" * 20_000}))
                written += 1
            except StoreWriteError as exc:
                failure = str(exc)
                break
        assert failure is not None and written >= 1 and "\n" not in failure, failure
        assert "full" in failure or "No space" in failure, failure
        assert store.count() == written  # every committed part is still there
        filler.unlink()
        store.write(record(99))  # room again: no restart needed
        assert store.count() == written + 1
        archive = ImageArchive(small_tmpfs / "archive", min_free_mb=1.9)
        assert "image archive" in archive.space_problem()
    finally:
        store.close()


# -- the archive: retention, pruning, names --------------------------------------------------------------
def _part(archive, day, part_id, verdict, size=1000):
    folder = archive.root / day / part_id
    folder.mkdir(parents=True)
    (folder / "coarse_top.png").write_bytes(b"\0" * size)
    (folder / ".verdict").write_text(verdict)
    return folder


def test_retention_keeps_ng_longer_than_pass(tmp_path):
    archive = ImageArchive(tmp_path / "a", keep_pass_days=30, keep_ng_days=365, max_gb=None, min_free_mb=0)
    now = time.mktime(time.strptime("20240301", "%Y%m%d"))
    old_pass = _part(archive, "20240101", "P1", "PASS")
    old_fail = _part(archive, "20240101", "F1", "FAIL")
    old_error = _part(archive, "20240101", "E1", "ERROR")
    new_pass = _part(archive, "20240228", "P2", "PASS")
    ancient_fail = _part(archive, "20220101", "F0", "FAIL")
    pruned = archive.prune(now=now)
    assert pruned.parts == 2 and pruned.bytes == 2 * (1000 + 4)  # images + .verdict
    assert not old_pass.exists() and not ancient_fail.exists() and not ancient_fail.parent.exists()
    assert old_fail.exists() and old_error.exists() and new_pass.exists()


def test_over_the_size_cap_the_oldest_pass_go_first(tmp_path):
    archive = ImageArchive(tmp_path / "a", max_gb=3500 / 1e9, min_free_mb=0)
    now = time.mktime(time.strptime("20240105", "%Y%m%d"))
    parts = [_part(archive, "20240101", "F1", "FAIL"), _part(archive, "20240101", "P1", "PASS"),
             _part(archive, "20240102", "P2", "PASS"), _part(archive, "20240103", "F3", "FAIL"),
             _part(archive, "20240104", "P4", "PASS")]
    assert archive.prune(now=now).parts == 2
    assert [p.name for p in parts if p.exists()] == ["F1", "F3", "P4"]


def test_saving_writes_the_verdict_and_prunes_when_space_is_short(tmp_path, monkeypatch):
    archive = ImageArchive(tmp_path / "a", min_free_mb=500, max_gb=None)
    old = _part(archive, "20200101", "P0", "PASS", size=10)
    paths = archive.save("SN-1", {"coarse_top": np.zeros((8, 8), np.uint8)}, verdict="FAIL")
    assert (tmp_path / "a" / time.strftime("%Y%m%d") / "SN-1" / ".verdict").read_text() == "FAIL" and len(paths) == 1
    assert not old.exists()  # older than 30 days: pruned as parts are saved
    old = _part(archive, time.strftime("%Y%m%d"), "P1", "PASS")
    monkeypatch.setattr("inspector.archive.free_bytes", lambda _p: 10**6 if old.exists() else 10**12)  # short till P1 goes
    assert archive.space_problem() is None and not old.exists()
    assert (tmp_path / "a" / time.strftime("%Y%m%d") / "SN-1").exists()  # the NG part stays


@pytest.mark.parametrize("bad, why", [("../x", "contains '/'"), ("a/b", "contains '/'"), ("..", "not a name"),
                                      ("a\x00b", "NUL"), ("a\x07", "control character"), ("", "non-empty"),
                                      ("x" * 200, "at most 128"), ("a\\b", "'\\'")])
def test_names_that_would_leave_the_archive_are_refused(tmp_path, bad, why):
    with pytest.raises(ValueError, match="^serial .*" + re.escape(why)):
        check_path_part(bad, "serial")
    with pytest.raises(ValueError, match="part id"):
        ImageArchive(tmp_path / "a").save(bad, {"coarse_top": np.zeros((4, 4), np.uint8)})
    assert not (tmp_path / "x").exists()
    assert check_path_part("SN-2024_001.A", "serial") == "SN-2024_001.A"
