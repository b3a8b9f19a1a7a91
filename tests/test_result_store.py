"""The SQLite result store: real file, one transaction per part, survives a killed writer."""
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

import pytest

from inspector.results.records import DefectRecord, PartRecord
from inspector.results.sqlite_store import ResultStore


def record(i, verdict="PASS", defects=()):
    return PartRecord(part_id=f"P{i:05d}", serial=f"SN{i:05d}", started_at=1_700_000_000 + 3 * i,
                      finished_at=1_700_000_004 + 3 * i, station="cell-01", recipe_id="housing", recipe_version=2,
                      recipe_hash="sha256:r", model_versions={"detector": "1.0", "classifier": "1.1"},
                      provider="CPU", verdict=verdict, reason="" if verdict == "PASS" else "scratch 0.4 mm on top",
                      defects=tuple(defects), timings_s={"total": 3.9, "motion": 2.5}, image_paths=("a.png",))


SCRATCH = DefectRecord("scratch", 0.91, "top", (10, 12, 40, 15), "fine", "top", (1.5, -2.0), 0.4, "defect", "f.png")
DUST = DefectRecord("dust", 0.8, "top", (100, 100, 104, 104), "fine", "top", (5.0, 5.0), 0.05, "nuisance")


def test_write_and_read_back_every_field(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        row = store.write(record(1, "FAIL", [SCRATCH, DUST]))
        assert store.get(row) == record(1, "FAIL", [SCRATCH, DUST])
        journal = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"


def test_filters_yield_and_pareto(tmp_path, tmp_path_factory):
    with ResultStore(tmp_path / "results.db") as store:
        for i in range(10):
            store.write(record(i, "FAIL" if i % 3 == 0 else "PASS", [SCRATCH] if i % 3 == 0 else [DUST]))
        store.write(record(99, "ERROR"))
        assert store.count() == 11
        assert [r.part_id for _, r in store.query(verdict="FAIL")] == ["P00000", "P00003", "P00006", "P00009"]
        assert len(store.query(defect_class="scratch")) == 4
        assert store.query(defect_class="dust") == []  # nuisances are not defects
        assert store.defects_by_class() == [("scratch", 4, 4)]
        hours = store.yield_by_hour()
        assert sum(p for _, p, _, _ in hours) == 6 and sum(e for *_, e in hours) == 1
        out = tmp_path / "out.csv"
        assert store.export_csv(out, store.query(verdict="FAIL")) == 4
        lines = out.read_text().splitlines()
        assert lines[0].startswith("row,part_id") and "scratch" in lines[1] and len(lines) == 5


def test_invalid_verdict_is_refused():
    with pytest.raises(ValueError, match="verdict 'MAYBE'"):
        record(1, "MAYBE")


def test_failed_transaction_leaves_nothing_half_written(tmp_path):
    with ResultStore(tmp_path / "results.db") as store:
        bad = DefectRecord("scratch", 0.9, "top", (1, 2, 3), "fine")  # box too short → insert fails
        with pytest.raises(Exception):
            store.write(record(1, "FAIL", [bad]))
        assert store.count() == 0
        store.write(record(2))
        assert store.count() == 1


def test_kill_mid_lot_loses_no_committed_record(tmp_path):
    db = tmp_path / "results.db"
    progress = tmp_path / "committed.txt"
    writer = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {os.getcwd()!r})
        from tests.test_result_store import record, SCRATCH
        from inspector.results.sqlite_store import ResultStore
        store = ResultStore({str(db)!r})
        i = 0
        while True:
            store.write(record(i, "FAIL", [SCRATCH] * 3))
            with open({str(progress)!r}, "a") as f:
                f.write(f"{{i}}\\n")
            i += 1
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not progress.exists() or len(progress.read_text().split()) < 20):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    committed = len(progress.read_text().split())
    assert committed >= 20
    raw = sqlite3.connect(db)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
    with ResultStore(db) as store:
        rows = store.query()
        assert len(rows) >= committed  # every acknowledged commit is there (one more may have landed)
        assert all(len(r.defects) == 3 for _, r in rows)  # no part without its defects
