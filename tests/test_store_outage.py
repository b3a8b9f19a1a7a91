"""Durable results whatever the PostgreSQL server does: every part is committed to the station's
journal first and forwarded in order, exactly once, across a server stop mid-lot; a re-send after an
ambiguous failure is not duplicated. A throw-away server with Debian's binaries (skipped with the
reason where they are missing). INSPECTOR_OUTAGE_S sets the lot test's outage (default 4 s)."""
import glob
import json
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from hardware.sim.cell import VirtualCell
from hardware.sim.part import make_part
from inspector.cycle import InspectionCycle
from inspector.demo import REFERENCE_RECIPE, run_lot
from inspector.devices import open_devices
from inspector.events import Alarm, VerdictReady
from inspector.inference.classifier import Classifier
from inspector.inference.detector import Detector
from inspector.recipe import Recipe
from inspector.results.forwarder import Forwarder
from inspector.results.sqlite_store import ResultStore
from inspector.station_config import StationConfig
from tests.test_result_store import SCRATCH, record


def _binary(name):
    return shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)


class Server:
    """A throw-away PostgreSQL server that a test can stop and start again on the same socket."""

    def __init__(self):
        self.initdb, self.pg_ctl = _binary("initdb"), _binary("pg_ctl")
        self.root = tempfile.mkdtemp(prefix="pg-outage-", dir="/tmp")
        self.as_user = []
        if os.geteuid() == 0:  # the server refuses to run as root
            if shutil.which("runuser") is None:
                pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
            try:
                shutil.chown(self.root, "postgres")
            except (LookupError, PermissionError):
                pytest.skip("running as root and there is no 'postgres' user to start the server as")
            self.as_user = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o755)
        self.data = os.path.join(self.root, "data")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        subprocess.run([*self.as_user, self.initdb, "-D", self.data, "-A", "trust", "-U", "inspector"], check=True,
                       capture_output=True, timeout=120)
        self.url = f"postgresql://inspector@/postgres?host={self.root}&port={self.port}"

    def start(self):
        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-w", "-l", os.path.join(self.root, "log"),
                        "-o", f"-k {self.root} -p {self.port} -c listen_addresses=''", "start"], check=True,
                       capture_output=True, timeout=120)

    def stop(self):
        subprocess.run([*self.as_user, self.pg_ctl, "-D", self.data, "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=60)

    def parts(self):
        """(id, part_id) of every part on the server, in id order."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return [(r[0], r[1]) for r in conn.execute("SELECT id, part_id FROM parts ORDER BY id").fetchall()]

    def reset(self):
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS defects, parts, part_keys, meta CASCADE")


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
    if not _binary("initdb") or not _binary("pg_ctl"):
        pytest.skip("no PostgreSQL server binaries here (Debian package 'postgresql')")
    srv = Server()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(srv.root, ignore_errors=True)


@pytest.fixture
def pg(server):
    if not os.path.exists(os.path.join(server.data, "postmaster.pid")):  # a test that failed mid-outage
        server.start()
    server.reset()
    return server


def _named(i, verdict="PASS"):
    r = record(i, verdict, [SCRATCH] if verdict == "FAIL" else [])
    return r


def test_outage_journals_then_forwards_in_order_exactly_once(pg, tmp_path):
    with ResultStore(pg.url, journal=tmp_path / "journal.db", retry_max_s=0.5) as store:
        rows = [store.write(_named(i)) for i in range(1, 4)]
        assert all(r > 0 for r in rows) and store.backlog == 0 and store.forwarding_error is None
        pg.stop()
        t = time.monotonic()
        during = [store.write(_named(i, "FAIL")) for i in range(4, 8)]  # never raises, never waits long
        assert time.monotonic() - t < 10
        assert store.backlog == 4 and store.forwarding_error is not None
        assert all(r < 0 for r in during[1:])  # in the journal, not yet on the server
        pg.start()
        assert store.flush(30), store.forwarding_error
        assert store.forwarding_error is None and store.backlog_peak >= 4
        assert [p for _, p in pg.parts()] == [f"P{i:05d}" for i in range(1, 8)]
        assert store.count() == 7  # reads are back on the server without a restart
        assert store.get(pg.parts()[-1][0]).defects[0].defect_class == "scratch"


def test_backlog_left_by_a_stopped_station_is_forwarded_on_the_next_start(pg, tmp_path):
    journal = tmp_path / "journal.db"
    pg.stop()
    with ResultStore(pg.url, journal=journal, retry_max_s=0.5) as store:  # starts with the server down
        for i in range(1, 4):
            assert store.write(_named(i)) < 0
        assert store.backlog == 3
    pg.start()
    with ResultStore(pg.url, journal=journal) as store:
        assert store.flush(30)
    assert [p for _, p in pg.parts()] == ["P00001", "P00002", "P00003"]


def test_resend_after_an_ambiguous_failure_is_not_duplicated(pg, tmp_path, monkeypatch):
    """The server commits the part, then the station fails before it marks the journal (as if the
    acknowledgement were lost): the re-send finds the record key and skips."""
    real, failed = Forwarder._sent, []

    def lose_ack_once(self, part_row, remote):
        if not failed:
            failed.append(part_row)
            raise ConnectionError("acknowledgement lost")
        return real(self, part_row, remote)

    monkeypatch.setattr(Forwarder, "_sent", lose_ack_once)
    with ResultStore(pg.url, journal=tmp_path / "journal.db", retry_max_s=0.2) as store:
        store.write(_named(1))
        store.write(_named(2))
        assert store.flush(20)
        assert failed and store._forwarder.skipped == 1
    assert [p for _, p in pg.parts()] == ["P00001", "P00002"]


# -- a lot on the virtual cell with the server stopped mid-lot -----------------------------------------
@pytest.fixture
def lot_rig(tmp_path, model_paths, pg):
    data = json.loads(REFERENCE_RECIPE.read_text())
    data["models"] = {"detector": str(model_paths[0]), "classifier": str(model_paths[1])}
    recipe = Recipe.from_dict(data, source=str(tmp_path / "recipe.json"))
    store = ResultStore(pg.url, journal=tmp_path / "journal.db", max_backlog=2, retry_max_s=0.5)
    with VirtualCell(speed_factor=50.0) as cell:
        station = StationConfig.from_dict(cell.station_config_dict())
        devices = open_devices(station, virtual_cell=cell)
        cycle = InspectionCycle(station, devices, recipe, Detector.open(str(model_paths[0])),
                                Classifier.open(str(model_paths[1])), store)
        yield cell, cycle, store
        cycle.close()
        devices.close()
    store.close()


def test_server_stopped_mid_lot_loses_no_part(lot_rig, pg):
    cell, cycle, store = lot_rig
    outage_s = float(os.environ.get("INSPECTOR_OUTAGE_S", "4"))
    parts = int(os.environ.get("INSPECTOR_OUTAGE_PARTS", "7"))
    verdicts, alarms, lines, figures = [], [], [], {}
    stopped = threading.Event()

    def watch(event):
        if isinstance(event, VerdictReady):
            verdicts.append(event.record.part_id)
            if len(verdicts) == 2 and not stopped.is_set():
                stopped.set()
                threading.Thread(target=outage, daemon=True).start()
        elif isinstance(event, Alarm):
            alarms.append(event.message)

    def outage():
        pg.stop()
        time.sleep(outage_s)
        figures["backlog at restart"] = store.backlog
        pg.start()

    cycle.events.subscribe(watch)
    t = time.monotonic()
    tally = run_lot(cycle, parts, cell=cell, first_seed=300, out=lines.append, part_maker=make_part)
    assert store.flush(60), store.forwarding_error
    on_server = [p for _, p in pg.parts()]
    inspected = [r.part_id for r, _ in tally.rows]
    print(f"outage {outage_s:g} s: {len(inspected)} parts inspected, {len(on_server)} on the server, "
          f"{len(on_server) - len(set(on_server))} duplicates, backlog peak {store.backlog_peak}, "
          f"backlog at restart {figures.get('backlog at restart')}, lot {time.monotonic() - t:.1f} s; " + "; ".join(lines[-3:]))
    assert stopped.is_set()
    assert len(inspected) == parts  # the lot paused on the backlog and went on: nothing refused, nothing lost
    assert on_server == inspected  # every part once, in order
    assert any("unreachable" in a for a in alarms), alarms
    assert any(line.startswith("lot paused") for line in lines) or store.backlog_peak <= 2
    assert store.backlog == 0 and store.backlog_peak >= 1
