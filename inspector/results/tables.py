"""The result store's tables and how a part record maps onto them: the schema text (with `{id}` and
`{real}` filled in per dialect) and its version, inserting a part with its defects inside a caller's
transaction, reading a part row back into a `PartRecord`, and the CSV export of parts."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

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

CSV_COLUMNS = ("row", "part_id", "serial", "finished_at", "station", "recipe_id", "recipe_version", "verdict",
               "reason", "defect_count", "defect_classes", "provider", "models", "total_s")


def insert_part(execute: Any, record: PartRecord) -> int:
    """Insert a part and its defects with `execute(sql with ?, args)` inside the caller's transaction."""
    row = execute(
        "INSERT INTO parts (part_id, serial, started_at, finished_at, station, recipe_id, recipe_version,"
        " recipe_hash, model_versions, provider, verdict, reason, timings, image_paths, extra)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (record.part_id, record.serial, record.started_at, record.finished_at, record.station,
         record.recipe_id, record.recipe_version, record.recipe_hash, json.dumps(record.model_versions),
         record.provider, record.verdict, record.reason, json.dumps(record.timings_s),
         json.dumps(list(record.image_paths)), json.dumps(record.extra))).fetchone()[0]
    for d in record.defects:
        execute(
            "INSERT INTO defects (part_row, defect_class, score, view, x0, y0, x1, y1, stage, face, u_mm,"
            " v_mm, size_mm, decision, image_path) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (row, d.defect_class, d.score, d.view, *d.box_px, d.stage, d.face, *d.position_mm, d.size_mm,
             d.decision, d.image_path))
    return int(row)


def _part(p: tuple, defects: list[DefectRecord]) -> PartRecord:
    return PartRecord(part_id=p[1], serial=p[2], started_at=p[3], finished_at=p[4], station=p[5], recipe_id=p[6],
                      recipe_version=p[7], recipe_hash=p[8], model_versions=json.loads(p[9]), provider=p[10],
                      verdict=p[11], reason=p[12], defects=tuple(defects), timings_s=json.loads(p[13]),
                      image_paths=tuple(json.loads(p[14])), extra=json.loads(p[15]))


def write_csv(path: str | Path, rows: list[tuple[int, PartRecord]]) -> int:
    """One line per part. A text cell that a spreadsheet would take for a formula (it starts with
    = + - @, a tab or a carriage return; serials and reasons come from outside) is written with a
    leading single quote, so it shows as text and never runs."""
    def cell(value: Any) -> Any:
        if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
            return "'" + value
        return value

    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_COLUMNS)
        for row, r in rows:
            found = [d for d in r.defects if d.decision == "defect"]
            writer.writerow([cell(v) for v in (
                row, r.part_id, r.serial, f"{r.finished_at:.3f}", r.station, r.recipe_id,
                r.recipe_version, r.verdict, r.reason, len(found),
                ";".join(sorted({d.defect_class for d in found})), r.provider,
                ";".join(f"{k}={v}" for k, v in sorted(r.model_versions.items())),
                f"{r.timings_s.get('total', 0.0):.3f}")])
    return len(rows)
