"""Result store: SQLite by default (WAL journal, `synchronous=FULL`), PostgreSQL by URL, one schema.

One transaction per part, committed before the verdict is shown: a kill mid-lot loses nothing
committed and leaves the store consistent (the database's journal guarantees it)."""
from __future__ import annotations

import csv
import json
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from .records import DefectRecord, PartRecord

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS parts (
    id {id},
    part_id TEXT NOT NULL,
    serial TEXT NOT NULL,
    started_at {real} NOT NULL,
    finished_at {real} NOT NULL,
    station TEXT NOT NULL,
    recipe_id TEXT NOT NULL,
    recipe_version INTEGER NOT NULL,
    recipe_hash TEXT NOT NULL,
    model_versions TEXT NOT NULL,
    provider TEXT NOT NULL,
    verdict TEXT NOT NULL CHECK (verdict IN ('PASS', 'FAIL', 'ERROR')),
    reason TEXT NOT NULL,
    timings TEXT NOT NULL,
    image_paths TEXT NOT NULL,
    extra TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS parts_time ON parts (finished_at);
CREATE INDEX IF NOT EXISTS parts_serial ON parts (serial);
CREATE TABLE IF NOT EXISTS defects (
    id {id},
    part_row INTEGER NOT NULL REFERENCES parts (id) ON DELETE CASCADE,
    defect_class TEXT NOT NULL,
    score {real} NOT NULL,
    view TEXT NOT NULL,
    x0 INTEGER NOT NULL, y0 INTEGER NOT NULL, x1 INTEGER NOT NULL, y1 INTEGER NOT NULL,
    stage TEXT NOT NULL,
    face TEXT NOT NULL,
    u_mm {real} NOT NULL, v_mm {real} NOT NULL,
    size_mm {real} NOT NULL,
    decision TEXT NOT NULL,
    image_path TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS defects_part ON defects (part_row);
"""

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

CSV_COLUMNS = ("row", "part_id", "serial", "finished_at", "station", "recipe_id", "recipe_version", "verdict",
               "reason", "defect_count", "defect_classes", "provider", "models", "total_s")


class ResultStore:
    """`location`: a file path or `sqlite:///path` for SQLite, `postgresql://…` for PostgreSQL."""

    def __init__(self, location: str | Path):
        location = str(location)
        self._lock = threading.Lock()
        if location.startswith(("postgresql://", "postgres://")):
            try:
                import psycopg
            except ImportError as exc:
                raise RuntimeError("result store: PostgreSQL needs psycopg (pip install 'psycopg[binary]')") from exc
            self.path, self.dialect = location, POSTGRES
            self._db: Any = psycopg.connect(location, autocommit=True)
        else:
            self.path = location[len("sqlite:///"):] if location.startswith("sqlite:///") else location
            self.dialect = SQLITE
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA foreign_keys=ON")
        with self._lock:
            for statement in SCHEMA.format(id=self.dialect.id_column, real=self.dialect.real).split(";"):
                if statement.strip():
                    self._db.execute(statement)
            found = self._execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            if found is None:
                self._execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(found[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: result store schema {found[0]}, this station writes {SCHEMA_VERSION}")

    def _execute(self, sql: str, args: tuple | list = ()) -> Any:
        """Run SQL written with `?` placeholders in this store's dialect (callers hold the lock)."""
        return self._db.execute(sql.replace("?", self.dialect.param), args)

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction on this store; yields an `execute(sql, args)` that takes `?` placeholders.
        Commits when the block ends, rolls back (and re-raises) when it raises."""
        with self._lock:
            self._db.execute(self.dialect.begin)
            try:
                yield self._execute
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

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
        with self._lock:
            self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------------
    def write(self, record: PartRecord) -> int:
        """Insert one part and its defects in a single transaction; returns the row id."""
        with self._lock:
            self._db.execute(self.dialect.begin)
            try:
                cursor = self._execute(
                    "INSERT INTO parts (part_id, serial, started_at, finished_at, station, recipe_id, recipe_version,"
                    " recipe_hash, model_versions, provider, verdict, reason, timings, image_paths, extra)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
                    (record.part_id, record.serial, record.started_at, record.finished_at, record.station,
                     record.recipe_id, record.recipe_version, record.recipe_hash, json.dumps(record.model_versions),
                     record.provider, record.verdict, record.reason, json.dumps(record.timings_s),
                     json.dumps(list(record.image_paths)), json.dumps(record.extra)))
                row = cursor.fetchone()[0]
                for d in record.defects:
                    self._execute(
                        "INSERT INTO defects (part_row, defect_class, score, view, x0, y0, x1, y1, stage, face, u_mm,"
                        " v_mm, size_mm, decision, image_path) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                        (row, d.defect_class, d.score, d.view, *d.box_px, d.stage, d.face, *d.position_mm, d.size_mm,
                         d.decision, d.image_path))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return int(row)

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

    def defects_by_class(self, since: float | None = None) -> list[tuple[str, int, int]]:
        """(class, defects, parts failed with it), most frequent first — the shift's Pareto."""
        sql = ("SELECT d.defect_class, COUNT(*), COUNT(DISTINCT d.part_row) FROM defects d JOIN parts p ON p.id = d.part_row"
               " WHERE d.decision = 'defect'" + (" AND p.finished_at >= ?" if since is not None else "")
               + " GROUP BY d.defect_class ORDER BY COUNT(*) DESC, d.defect_class")
        with self._lock:
            return [(r[0], int(r[1]), int(r[2])) for r in self._execute(sql, [] if since is None else [since]).fetchall()]

    def export_csv(self, path: str | Path, rows: list[tuple[int, PartRecord]]) -> int:
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(CSV_COLUMNS)
            for row, r in rows:
                found = [d for d in r.defects if d.decision == "defect"]
                writer.writerow([row, r.part_id, r.serial, f"{r.finished_at:.3f}", r.station, r.recipe_id,
                                 r.recipe_version, r.verdict, r.reason, len(found),
                                 ";".join(sorted({d.defect_class for d in found})), r.provider,
                                 ";".join(f"{k}={v}" for k, v in sorted(r.model_versions.items())),
                                 f"{r.timings_s.get('total', 0.0):.3f}"])
        return len(rows)


def _part(p: tuple, defects: list[DefectRecord]) -> PartRecord:
    return PartRecord(part_id=p[1], serial=p[2], started_at=p[3], finished_at=p[4], station=p[5], recipe_id=p[6],
                      recipe_version=p[7], recipe_hash=p[8], model_versions=json.loads(p[9]), provider=p[10],
                      verdict=p[11], reason=p[12], defects=tuple(defects), timings_s=json.loads(p[13]),
                      image_paths=tuple(json.loads(p[14])), extra=json.loads(p[15]))


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]
