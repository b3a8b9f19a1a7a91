"""The station's journal and its forwarder to PostgreSQL.

Every part is committed first to a local SQLite journal (the same schema as a SQLite result store,
plus an `outbox` row that carries a record key made when the part is journalled). A forwarder thread
sends the outbox to the server in journal order, one server transaction per part that also inserts
the key into `part_keys` (primary key): a re-send after an ambiguous failure (the server committed,
the station never heard) finds the key and skips, so no part is duplicated. On any failure the
connection is dropped and retried with a doubling pause (`retry_min_s` … `retry_max_s`); meanwhile
parts keep being journalled and `backlog` grows. Forwarded parts stay in the journal for
`keep_forwarded_days`, then are pruned from it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from .records import PartRecord
from .sqlite_store import POSTGRES, SCHEMA, SCHEMA_VERSION, ResultStore, _first_line, _safe_url, insert_part

log = logging.getLogger(__name__)

OUTBOX_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    part_row INTEGER PRIMARY KEY REFERENCES parts (id) ON DELETE CASCADE,
    record_key TEXT NOT NULL UNIQUE,
    remote_row INTEGER,
    forwarded_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (part_row) WHERE remote_row IS NULL
"""
KEYS_SCHEMA = """
CREATE TABLE IF NOT EXISTS part_keys (
    record_key TEXT PRIMARY KEY,
    part_row BIGINT NOT NULL,
    forwarded_at DOUBLE PRECISION NOT NULL
)
"""


def default_journal_path(url: str) -> Path:
    """One journal per server URL (its password left out), kept across restarts so that a backlog
    left by a crash or an outage is forwarded on the next start."""
    folder = os.environ.get("INSPECTOR_JOURNAL_DIR") or Path.home() / ".local" / "share" / "inspector" / "journals"
    digest = hashlib.sha1(_safe_url(url).encode()).hexdigest()[:16]
    return Path(folder) / f"journal-{digest}.db"


def record_key(record: PartRecord) -> str:
    """The part's identity on the server: station, part id and a unique suffix (a part inspected twice
    is two records)."""
    return f"{record.station}:{record.part_id}:{uuid.uuid4().hex}"


class Forwarder:
    def __init__(self, journal: ResultStore, url: str, *, retry_min_s: float = 0.2, retry_max_s: float = 5.0,
                 batch: int = 50, keep_forwarded_days: float = 7.0, connect: Callable[[], Any] | None = None):
        self.journal, self.url = journal, url
        self.retry_min_s, self.retry_max_s = retry_min_s, max(retry_min_s, retry_max_s)
        self.batch, self.keep_forwarded_days = batch, keep_forwarded_days
        self._connect = connect or self._default_connect
        journal.create_tables(OUTBOX_SCHEMA)
        self.error: str | None = None
        self.peak = self.backlog
        self.forwarded = 0  # parts the server took from this forwarder
        self.skipped = 0  # re-sends the server already had (ambiguous failures recovered)
        self.outages = 0
        self._conn: Any = None
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_prune = 0.0
        self._down_since = 0.0
        self._thread = threading.Thread(target=self._run, name="result-forwarder", daemon=True)

    # -- the cycle's side ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def append(self, record: PartRecord) -> int:
        """Commit the part to the journal with its outbox row (one transaction); returns the journal row."""
        key = record_key(record)
        row = self.journal.commit(record, lambda execute, row: execute(
            "INSERT INTO outbox (part_row, record_key) VALUES (?, ?)", (row, key)))
        self._wake.set()
        try:
            self.peak = max(self.peak, self.backlog)
        except Exception:  # noqa: BLE001 - a figure only: the part is committed
            pass
        return row

    def confirm(self, entry: int, timeout: float) -> int:
        """The server's row of journal row `entry` once forwarded within `timeout`, else `-entry`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                remote = self.remote_row(entry)
                left = deadline - time.monotonic()
                if remote is not None:
                    return remote
                if left <= 0 or self.error is not None or self._stop.is_set():
                    return -entry
                self._cond.wait(min(left, 0.5))

    def remote_row(self, entry: int) -> int | None:
        with self.journal.reading() as execute:
            found = execute("SELECT remote_row FROM outbox WHERE part_row = ?", (entry,)).fetchone()
        return None if found is None or found[0] is None else int(found[0])

    @property
    def backlog(self) -> int:
        with self.journal.reading() as execute:
            return int(execute("SELECT COUNT(*) FROM outbox WHERE remote_row IS NULL").fetchone()[0])

    def flush(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.backlog:
            if not self._thread.is_alive() or (deadline is not None and time.monotonic() >= deadline):
                return False
            self._wake.set()
            with self._cond:
                self._cond.wait(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)
        self._drop_connection()

    # -- the forwarder thread -----------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.retry_min_s
        while not self._stop.is_set():
            self._wake.clear()
            try:
                sent = self._forward_batch()
            except Exception as exc:  # noqa: BLE001 - any failure: drop the connection, retry with backoff
                self._failed(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.retry_max_s)
                continue
            self._healthy()
            delay = self.retry_min_s
            if not sent:
                self._prune_journal()
                self._wake.wait(1.0)

    def _healthy(self) -> None:
        if self.error is not None:
            log.warning("result store %s reachable again after %.0f s: forwarding the station's backlog "
                        "(%d parts)", _safe_url(self.url), time.monotonic() - self._down_since, self.backlog)
            self.error = None

    def _failed(self, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {_first_line(exc)}"
        if self.error is None:
            self.outages += 1
            self._down_since = time.monotonic()
            log.warning("result store %s unreachable (%s): parts are journalled on the station in %s "
                        "and forwarded when it is back", _safe_url(self.url), reason, self.journal.path)
        self.error = reason
        self._drop_connection()
        with self._cond:
            self._cond.notify_all()

    def _forward_batch(self) -> int:
        with self.journal.reading() as execute:
            pending = execute("SELECT part_row, record_key FROM outbox WHERE remote_row IS NULL"
                              " ORDER BY part_row LIMIT ?", (self.batch,)).fetchall()
        if not pending:
            return 0
        conn = self._connection()
        for part_row, key in pending:
            if self._stop.is_set():
                break
            remote = self._send(conn, key, self.journal.get(part_row))
            self._sent(part_row, remote)
        return len(pending)

    def _send(self, conn: Any, key: str, record: PartRecord) -> int:
        """One server transaction: the part, its defects and its key; a key already there is a re-send."""
        def execute(sql: str, args: tuple | list = ()) -> Any:
            return conn.execute(sql.replace("?", POSTGRES.param), args)

        from psycopg.errors import UniqueViolation

        try:
            with conn.transaction():
                found = execute("SELECT part_row FROM part_keys WHERE record_key = ?", (key,)).fetchone()
                if found is not None:
                    self.skipped += 1
                    return int(found[0])
                row = insert_part(execute, record)
                execute("INSERT INTO part_keys (record_key, part_row, forwarded_at) VALUES (?, ?, ?)",
                        (key, row, time.time()))
        except UniqueViolation:  # another forwarder on the same journal sent it meanwhile: ours rolled back
            self.skipped += 1
            return int(execute("SELECT part_row FROM part_keys WHERE record_key = ?", (key,)).fetchone()[0])
        self.forwarded += 1
        return row

    def _sent(self, part_row: int, remote: int) -> None:
        """Mark the journal row forwarded. Should this fail, the part is sent again and skipped there."""
        with self.journal.transaction() as execute:
            execute("UPDATE outbox SET remote_row = ?, forwarded_at = ? WHERE part_row = ?",
                    (remote, time.time(), part_row))
        self._healthy()
        with self._cond:
            self._cond.notify_all()

    def _connection(self) -> Any:
        conn = self._conn
        if conn is not None and not conn.broken and not conn.closed:
            return conn
        self._drop_connection()
        conn = self._connect()
        try:
            for statement in (SCHEMA.format(id=POSTGRES.id_column, real=POSTGRES.real) + ";" + KEYS_SCHEMA).split(";"):
                if statement.strip():
                    conn.execute(statement)
            found = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is None:
                conn.execute("INSERT INTO meta VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                             (str(SCHEMA_VERSION),))
            elif int(found[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{_safe_url(self.url)}: result store schema {found[0]}, "
                                   f"this station writes {SCHEMA_VERSION}")
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        return conn

    def _default_connect(self) -> Any:
        import psycopg

        return psycopg.connect(self.url, autocommit=True, connect_timeout=5)

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - broken already
                pass

    def _prune_journal(self) -> None:
        """Forwarded parts older than `keep_forwarded_days` leave the journal (hourly)."""
        now = time.time()
        if now - self._last_prune < 3600:
            return
        self._last_prune = now
        cutoff = now - self.keep_forwarded_days * 86400
        try:
            with self.journal.transaction() as execute:
                execute("DELETE FROM parts WHERE id IN (SELECT part_row FROM outbox"
                        " WHERE remote_row IS NOT NULL AND forwarded_at < ?)", (cutoff,))
        except Exception as exc:  # noqa: BLE001 - pruning can wait; forwarding must not stop for it
            log.warning("result journal %s: not pruned now (%s)", self.journal.path, _first_line(exc))
