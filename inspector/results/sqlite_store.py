"""Result store: SQLite by default (WAL journal, `synchronous=FULL`), PostgreSQL by URL, one schema.

One transaction per part, committed before the verdict is shown: a kill mid-lot loses nothing
committed and leaves the store consistent (the database's journal guarantees it).

With a PostgreSQL URL a part is first committed to a local SQLite journal on the station and then
forwarded, in order and idempotently, by a forwarder thread (`forwarder.py`): an outage of the
server costs nothing but a growing `backlog`. Reads and the other modules' tables (review queue,
access) stay on the server, which is reconnected to after an outage. The schema, the mapping of a
part record to rows and the CSV export: `tables.py`."""
from __future__ import annotations

import json
import logging
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .records import DefectRecord, PartRecord
from .space import free_space_problem
from .tables import SCHEMA, SCHEMA_VERSION, _part, insert_part, write_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dialect:
    param: str
    id_column: str
    real: str
    begin: str
    hour: str  # SQL expression: 'YYYY-MM-DD HH:00' (UTC) of finished_at


SQLITE = Dialect("?", "INTEGER PRIMARY KEY", "REAL", "BEGIN IMMEDIATE",
                 "strftime('%Y-%m-%d %H:00', finished_at, 'unixepoch')")
POSTGRES = Dialect("%s", "BIGSERIAL PRIMARY KEY", "DOUBLE PRECISION", "BEGIN",
                   "to_char(to_timestamp(finished_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:00')")


class StoreWriteError(RuntimeError):
    """A part record could not be committed (disk full, journal unwritable): one line, naming the store."""


class _Guard:
    """The store's lock; on a PostgreSQL store entering it first reconnects a connection an outage broke."""

    def __init__(self, store: "ResultStore"):
        self.raw = threading.Lock()
        self._store = store

    def __enter__(self) -> None:
        self.raw.acquire()
        try:
            self._store._revive()
        except BaseException:
            self.raw.release()
            raise

    def __exit__(self, *exc_info) -> None:
        self.raw.release()


DEFAULT_MIN_FREE_MB = 500.0
DEFAULT_MAX_BACKLOG = 200


class ResultStore:
    """`location`: a file path or `sqlite:///path` for SQLite, `postgresql://…` for PostgreSQL.

    PostgreSQL only: `journal` is the station's local SQLite journal (default: one per URL under
    $INSPECTOR_JOURNAL_DIR or ~/.local/share/inspector/journals), `max_backlog` how many parts may
    wait there before a lot pauses, `confirm_s` how long `write` waits for a healthy server to take
    the part (then it returns the server's row id; a negative id is a part still in the journal),
    `retry_max_s` the longest pause between reconnects. `min_free_mb`: the free space a part needs
    on the journal's (SQLite: the store's) filesystem before it starts. `read_only`: a reader
    (`inspector results`, `inspector audit verify`) that writes no parts: PostgreSQL is connected at
    once, without a journal, and an unreachable server is the caller's error."""

    def __init__(self, location: str | Path, *, journal: str | Path | None = None,
                 max_backlog: int = DEFAULT_MAX_BACKLOG, min_free_mb: float = DEFAULT_MIN_FREE_MB,
                 confirm_s: float = 2.0, retry_max_s: float = 5.0, read_only: bool = False):
        location = str(location)
        self._lock = _Guard(self)
        self.max_backlog, self.min_free_mb, self.confirm_s = int(max_backlog), float(min_free_mb), float(confirm_s)
        self._forwarder: Any = None
        self._journal: ResultStore | None = None
        self._url: str | None = None
        if location.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError as exc:
                raise RuntimeError("result store: PostgreSQL needs psycopg (pip install 'psycopg[binary]')") from exc
            from .forwarder import Forwarder, default_journal_path

            self.path, self.dialect, self._url = location, POSTGRES, location
            self._db: Any = None
            if read_only:
                with self._lock:
                    pass  # connects now: OperationalError for the caller
                return
            self._journal = ResultStore(journal if journal is not None else default_journal_path(location),
                                        min_free_mb=min_free_mb)
            try:
                with self._lock:
                    pass  # connects and prepares the schema
            except psycopg.OperationalError as exc:  # the station starts anyway: parts go to the journal
                log.warning("result store %s: server not reachable now (%s); parts are journalled in %s",
                            _safe_url(location), _first_line(exc), self._journal.path)
            self._forwarder = Forwarder(self._journal, location, retry_max_s=retry_max_s)
            self._forwarder.start()
            return
        self.path = location[len("sqlite:///"):] if location.startswith("sqlite:///") else location
        self.dialect = SQLITE
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            self._prepare()

    def _prepare(self) -> None:
        """Create the schema and check its version (callers hold the lock)."""
        for statement in SCHEMA.format(id=self.dialect.id_column, real=self.dialect.real).split(";"):
            if statement.strip():
                self._db.execute(statement)
        found = self._execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if found is None:
            self._execute("INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", (str(SCHEMA_VERSION),))
        elif int(found[0]) != SCHEMA_VERSION:
            raise RuntimeError(f"{self.path}: result store schema {found[0]}, this station writes {SCHEMA_VERSION}")

    def _revive(self) -> None:
        """PostgreSQL: (re)connect when there is no connection or an outage broke it (callers hold the lock)."""
        if self._url is None:
            return
        import psycopg

        if self._db is not None and not self._db.broken and not self._db.closed:
            return

        if self._db is not None:
            try:
                self._db.close()
            except Exception:  # noqa: BLE001 - it is broken already
                pass
            self._db = None
        db = psycopg.connect(self._url, autocommit=True, connect_timeout=5)
        self._db = db
        try:
            self._prepare()
        except BaseException:
            self._db = None
            db.close()
            raise

    # -- durability (PostgreSQL: journal + forwarder; SQLite: the store is its own journal) --------
    @property
    def journal_path(self) -> str:
        """The local SQLite file every part is committed to first."""
        return self._journal.path if self._journal is not None else self.path

    @property
    def backlog(self) -> int:
        """Parts committed on the station and not yet in PostgreSQL (always 0 on SQLite)."""
        return self._forwarder.backlog if self._forwarder is not None else 0

    @property
    def forwarding_error(self) -> str | None:
        """Why the last attempt to forward to PostgreSQL failed (one line), None while it is healthy."""
        return self._forwarder.error if self._forwarder is not None else None

    @property
    def backlog_peak(self) -> int:
        return self._forwarder.peak if self._forwarder is not None else 0

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the backlog is forwarded; True when it is empty (always on SQLite)."""
        return self._forwarder.flush(timeout) if self._forwarder is not None else True

    def space_problem(self, need_bytes: int = 0) -> str | None:
        """Why a part must not start for lack of space on the journal's filesystem, or None."""
        return free_space_problem(self.journal_path, self.min_free_mb * 1e6 + need_bytes, "result journal")

    def _execute(self, sql: str, args: tuple | list = ()) -> Any:
        """Run SQL written with `?` placeholders in this store's dialect (callers hold the lock). PostgreSQL:
        a statement outside a transaction on a connection that a server restart broke (it learns so only
        when used) runs again on a new one."""
        sql = sql.replace("?", self.dialect.param)
        if self._url is None:
            return self._db.execute(sql, args)
        import psycopg
        from psycopg.pq import TransactionStatus

        idle = self._db.info.transaction_status == TransactionStatus.IDLE
        try:
            return self._db.execute(sql, args)
        except psycopg.OperationalError:
            if not idle or not self._db.broken:
                raise
        self._revive()
        return self._db.execute(sql, args)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on this store; yields an `execute(sql, args)` that takes `?` placeholders.
        Commits when the block ends, rolls back (and re-raises) when it raises."""
        with self._lock:
            self._execute(self.dialect.begin)
            try:
                yield self._execute
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        """Roll back after an error without hiding it: SQLite has already rolled back after a full disk
        ('cannot rollback - no transaction is active'), a PostgreSQL connection may be gone."""
        try:
            self._db.execute("ROLLBACK")
        except Exception as exc:  # noqa: BLE001
            log.debug("result store %s: rollback after an error: %s", self.path, exc)

    @contextmanager
    def reading(self) -> Iterator[Any]:
        """Read under the store's lock; yields the same `execute` as `transaction`."""
        with self._lock:
            yield self._execute

    def create_tables(self, schema: str) -> None:
        """Create the tables of a module that keeps its data in this store (review queue, access, audit).
        `schema` uses `{id}` and `{real}` for the dialect's id column and float type."""
        with self._lock:
            for statement in schema.format(id=self.dialect.id_column, real=self.dialect.real).split(";"):
                if statement.strip():
                    self._db.execute(statement)

    def close(self) -> None:
        """Stop forwarding (what is left stays in the journal and goes on the next start) and close."""
        if self._forwarder is not None:
            self._forwarder.stop()
        if self._journal is not None:
            self._journal.close()
        with self._lock.raw:
            if self._db is not None:
                self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------
    def write(self, record: PartRecord) -> int:
        """Commit one part and its defects in a single transaction; returns its row id.

        PostgreSQL: committed to the station's journal first, then forwarded; the id is the server's
        when it took the part within `confirm_s`, else minus the journal's (the part is safe there and
        follows). Raises StoreWriteError (one line) when the record could not be committed."""
        if self._url is not None and self._journal is None:
            raise RuntimeError(f"result store {_safe_url(self.path)}: opened read-only, it takes no parts")
        if self._journal is not None:
            entry = self._forwarder.append(record)  # committed from here on: nothing below may undo that
            try:
                return self._forwarder.confirm(entry, self.confirm_s if self._forwarder.error is None else 0.0)
            except Exception as exc:  # noqa: BLE001
                log.warning("part %s: journalled, not confirmed (%s)", record.part_id, _first_line(exc))
                return -entry
        return self.commit(record)

    def commit(self, record: PartRecord, extra_statements: Any = None) -> int:
        """This store's own transaction for one part (`extra_statements(execute, row)` runs in it)."""
        try:
            with self.transaction() as execute:
                row = insert_part(execute, record)
                if extra_statements is not None:
                    extra_statements(execute, row)
        except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
            raise StoreWriteError(f"result store {self.path}: part {record.part_id} not written: "
                                  f"{_first_line(exc)}") from exc
        return row

    # -- reading -------------------------------------------------------------------------------
    def get(self, row: int) -> PartRecord:
        records = self.query(row=row)
        if not records:
            raise KeyError(f"{self.path}: no part record {row}")
        return records[0][1]

    def query(self, *, row: int | None = None, verdict: str | None = None, since: float | None = None,
              until: float | None = None, recipe_id: str | None = None, serial: str | None = None,
              defect_class: str | None = None, limit: int | None = None) -> list[tuple[int, PartRecord]]:
        where, args = [], []
        for column, value in (("id", row), ("verdict", verdict), ("recipe_id", recipe_id), ("serial", serial)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if since is not None:
            where.append("finished_at >= ?")
            args.append(since)
        if until is not None:
            where.append("finished_at < ?")
            args.append(until)
        if defect_class is not None:
            where.append("id IN (SELECT part_row FROM defects WHERE defect_class = ? AND decision = 'defect')")
            args.append(defect_class)
        sql = "SELECT * FROM parts" + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._lock:
            parts = self._execute(sql, args).fetchall()
            ids = [p[0] for p in parts]
            defects: dict[int, list[DefectRecord]] = {i: [] for i in ids}
            for chunk in _chunks(ids, 500):
                marks = ",".join("?" * len(chunk))
                for d in self._execute(f"SELECT * FROM defects WHERE part_row IN ({marks}) ORDER BY id", chunk).fetchall():
                    defects[d[1]].append(DefectRecord(
                        defect_class=d[2], score=d[3], view=d[4], box_px=(d[5], d[6], d[7], d[8]), stage=d[9],
                        face=d[10], position_mm=(d[11], d[12]), size_mm=d[13], decision=d[14], image_path=d[15]))
        return [(p[0], _part(p, defects[p[0]])) for p in parts]

    def count(self) -> int:
        with self._lock:
            return self._execute("SELECT COUNT(*) FROM parts").fetchone()[0]

    def yield_by_hour(self, since: float | None = None) -> list[tuple[str, int, int, int]]:
        """(hour 'YYYY-MM-DD HH:00' UTC, pass, fail, error) per hour with parts."""
        counts = ", ".join(f"SUM(CASE WHEN verdict = '{v}' THEN 1 ELSE 0 END)" for v in ("PASS", "FAIL", "ERROR"))
        sql = (f"SELECT {self.dialect.hour} AS hour, {counts} FROM parts"
               + (" WHERE finished_at >= ?" if since is not None else "") + " GROUP BY hour ORDER BY hour")
        with self._lock:
            return [(r[0], int(r[1]), int(r[2]), int(r[3]))
                    for r in self._execute(sql, [] if since is None else [since]).fetchall()]

    def defects_by_class(self, since: float | None = None, until: float | None = None, *,
                         skip_part_prefix: str | None = None) -> list[tuple[str, int, int]]:
        """(class, defects, parts failed with it), most frequent first — the shift's Pareto.
        `skip_part_prefix`: leave out parts whose part id starts with it (e.g. master inspections)."""
        skip = _like_prefix(skip_part_prefix) if skip_part_prefix else None
        bounds = [(" AND p.finished_at >= ?", since), (" AND p.finished_at < ?", until),
                  (" AND p.part_id NOT LIKE ? ESCAPE '\\'", skip)]
        sql = ("SELECT d.defect_class, COUNT(*), COUNT(DISTINCT d.part_row) FROM defects d JOIN parts p ON p.id = d.part_row"
               " WHERE d.decision = 'defect'" + "".join(text for text, value in bounds if value is not None)
               + " GROUP BY d.defect_class ORDER BY COUNT(*) DESC, d.defect_class")
        args = [value for _text, value in bounds if value is not None]
        with self._lock:
            return [(r[0], int(r[1]), int(r[2])) for r in self._execute(sql, args).fetchall()]

    def verdict_rows(self, since: float, until: float, *,
                     skip_part_prefix: str | None = None) -> list[tuple[str, str, str, float]]:
        """(serial, verdict, reason, total cycle s) of the parts finished in [since, until), oldest first."""
        sql = "SELECT serial, verdict, reason, timings FROM parts WHERE finished_at >= ? AND finished_at < ?"
        args: list = [since, until]
        if skip_part_prefix:
            sql += " AND part_id NOT LIKE ? ESCAPE '\\'"
            args.append(_like_prefix(skip_part_prefix))
        with self._lock:
            rows = self._execute(sql + " ORDER BY id", args).fetchall()
        return [(r[0], r[1], r[2], float(json.loads(r[3]).get("total", 0.0))) for r in rows]

    def highest_serial(self, prefix: str) -> str | None:
        """The highest serial starting with `prefix`, longer ones higher (SIM-1000000 > SIM-999999)."""
        sql = "SELECT serial FROM parts WHERE serial LIKE ? ESCAPE '\\' ORDER BY LENGTH(serial) DESC, serial DESC LIMIT 1"
        with self._lock:
            found = self._execute(sql, [_like_prefix(prefix)]).fetchone()
        return found[0] if found else None

    def export_csv(self, path: str | Path, rows: list[tuple[int, PartRecord]]) -> int:
        """One line per part. A text cell that a spreadsheet would take for a formula (it starts with
        = + - @, a tab or a carriage return; serials and reasons come from outside) is written with a
        leading single quote, so it shows as text and never runs."""
        return write_csv(path, rows)


def _like_prefix(prefix: str) -> str:
    """A LIKE pattern (ESCAPE '\\') for text that starts with `prefix`, its wildcards taken literally."""
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _safe_url(url: str) -> str:
    """The URL without a password, for messages."""
    head, sep, tail = url.partition("@")
    if not sep or "://" not in head:
        return url
    scheme, _, user = head.partition("://")
    return f"{scheme}://{user.split(':')[0]}@{tail}"


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
