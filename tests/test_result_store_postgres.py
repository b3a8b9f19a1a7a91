"""The same result store on PostgreSQL: a throw-away local server (Debian's postgresql binaries),
skipped with the reason when they are not installed."""
import glob
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from inspector.results.sqlite_store import ResultStore
from tests.test_result_store import DUST, SCRATCH, record


def _binary(name):
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))), None)
    return found


@pytest.fixture(scope="module")
def pg_url():
    pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
    initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("no PostgreSQL server binaries here (Debian package 'postgresql')")
    as_user = []
    root = tempfile.mkdtemp(prefix="pg-", dir="/tmp")
    if os.geteuid() == 0:  # the server refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        try:
            shutil.chown(root, "postgres")
        except (LookupError, PermissionError):
            pytest.skip("running as root and there is no 'postgres' user to start the server as")
        as_user = ["runuser", "-u", "postgres", "--"]
    os.chmod(root, 0o755)
    data = os.path.join(root, "data")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    subprocess.run([*as_user, initdb, "-D", data, "-A", "trust", "-U", "inspector"], check=True,
                   capture_output=True, timeout=120)
    subprocess.run([*as_user, pg_ctl, "-D", data, "-w", "-l", os.path.join(root, "log"),
                    "-o", f"-k {root} -p {port} -c listen_addresses=''", "start"], check=True,
                   capture_output=True, timeout=120)
    try:
        yield f"postgresql://inspector@/postgres?host={root}&port={port}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", data, "-m", "fast", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_store_has_the_same_behaviour(pg_url):
    with ResultStore(pg_url) as store:
        store._execute("TRUNCATE parts, defects RESTART IDENTITY")
        row = store.write(record(1, "FAIL", [SCRATCH, DUST]))
        assert store.get(row) == record(1, "FAIL", [SCRATCH, DUST])
        for i in range(2, 8):
            store.write(record(i, "PASS" if i % 2 else "FAIL", [DUST] if i % 2 else [SCRATCH]))
        assert store.count() == 7
        assert len(store.query(verdict="FAIL")) == 4 and len(store.query(defect_class="scratch")) == 4
        assert store.defects_by_class() == [("scratch", 4, 4)]
        assert sum(p for _, p, _, _ in store.yield_by_hour()) == 3
        started = record(99).started_at
        assert store.get(store.write(record(99))).started_at == started  # no float4 rounding of times


def test_failed_transaction_rolls_back(pg_url):
    from inspector.results.records import DefectRecord
    with ResultStore(pg_url) as store:
        before = store.count()
        with pytest.raises(Exception):
            store.write(record(1, "FAIL", [DefectRecord("scratch", 0.9, "top", (1, 2, 3), "fine")]))
        assert store.count() == before
