"""Defect kinds as data: the kinds review labels, exports and the QA workspace offer.

A kind is known to a result store when it is registered there (`defect_kinds`): the station
registers the kinds of its recipe and models when it starts; QA creates a new kind (name, colour,
description) from the QA workspace, typically after review items marked `unknown`. The kinds the
station's models have called (the `defects` table) count as known too, so a store written before
this table existed keeps its labels valid. `ok` and `unknown` are not kinds: `ok` says "no defect
here", `unknown` says "a defect of a kind nobody has named yet".
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..access import require
from ..audit_log import append_row
from ..kind_names import KIND_NAME, RESERVED, KindError, validate_kind_name
from ..results.sqlite_store import ResultStore

if TYPE_CHECKING:
    from ..access import Session

COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
MAX_DESCRIPTION_CHARS = 300
DEFAULT_COLOURS = {"scratch": "#e6194b", "dent": "#f58231", "burr": "#911eb4", "stain": "#4363d8"}
ORIGINS = ("recipe", "model", "qa")

KINDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS defect_kinds (
    name TEXT PRIMARY KEY,
    colour TEXT NOT NULL,
    description TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at {real} NOT NULL
);
"""


@dataclass(frozen=True)
class DefectKind:
    name: str
    colour: str
    description: str
    origin: str  # recipe | model | qa
    created_by: str
    created_at: float


class KindRegistry:
    def __init__(self, store: ResultStore):
        self.store = store
        store.create_tables(KINDS_SCHEMA)

    def kinds(self) -> list[DefectKind]:
        """Registered kinds in the order they were registered, then kinds only the records name."""
        with self.store.reading() as ex:
            rows = ex("SELECT name, colour, description, origin, created_by, created_at FROM defect_kinds"
                      " ORDER BY created_at, name").fetchall()
            called = [r[0] for r in ex("SELECT DISTINCT defect_class FROM defects WHERE decision IN ('defect', 'review')"
                                       " ORDER BY defect_class").fetchall()]
        kinds = [DefectKind(*r) for r in rows]
        seen = {k.name for k in kinds}
        for name in called:
            if name not in seen and KIND_NAME.fullmatch(name or "") and name not in RESERVED:
                kinds.append(DefectKind(name, DEFAULT_COLOURS.get(name, "#808080"), "called by the station's models",
                                        "model", "", 0.0))
        return kinds

    def names(self) -> tuple[str, ...]:
        return tuple(k.name for k in self.kinds())

    def get(self, name: str) -> DefectKind | None:
        return next((k for k in self.kinds() if k.name == name), None)

    def register_known(self, names: Iterable[str], origin: str, by: str = "system") -> list[str]:
        """Register kinds a recipe or model knows (no audit row: configuration, not a decision); returns
        the names that were new."""
        if origin not in ORIGINS:
            raise KindError(f"defect kind origin {origin!r}: expected one of {', '.join(ORIGINS)}")
        added = []
        with self.store.transaction() as ex:
            for name in names:
                validate_kind_name(name, f"defect kind from the {origin}")
                if ex("SELECT 1 FROM defect_kinds WHERE name = ?", (name,)).fetchone() is None:
                    ex("INSERT INTO defect_kinds (name, colour, description, origin, created_by, created_at)"
                       " VALUES (?,?,?,?,?,?)", (name, DEFAULT_COLOURS.get(name, "#808080"), "", origin, by, time.time()))
                    added.append(name)
        return added

    def create(self, session: "Session", name: str, colour: str, description: str) -> DefectKind:
        """QA names a new kind (a live QA session issued on this store). Audited (`kind_create`,
        target `kind:<name>`)."""
        require(session, "review", store=self.store)
        validate_kind_name(name, "new defect kind")
        if not isinstance(colour, str) or not COLOUR.fullmatch(colour):
            raise KindError(f"new defect kind {name!r}: colour {colour!r} must be #rrggbb")
        description = (description or "").strip()
        if not description or len(description) > MAX_DESCRIPTION_CHARS or "\n" in description:
            raise KindError(f"new defect kind {name!r}: description must be one line of 1–{MAX_DESCRIPTION_CHARS} "
                            f"characters, got {len(description)}")
        if name in self.names():
            raise KindError(f"new defect kind {name!r}: a kind of that name exists already")
        now = time.time()
        with self.store.transaction() as ex:
            ex("INSERT INTO defect_kinds (name, colour, description, origin, created_by, created_at) VALUES (?,?,?,?,?,?)",
               (name, colour.lower(), description, "qa", session.user, now))
            append_row(ex, self.store, lambda: now, session.user, session.role, "kind_create", f"kind:{name}", None,
                       {"colour": colour.lower(), "description": description}, "new defect kind")
        return DefectKind(name, colour.lower(), description, "qa", session.user, now)

    def example_counts(self) -> dict[str, dict[str, int]]:
        """Per kind: labelled examples in the review queue — `calls` (a station call labelled or confirmed
        as that kind, latest label per call) and `boxes` (missed defects boxed with that kind)."""
        counts = {name: {"calls": 0, "boxes": 0} for name in self.names()}
        with self.store.reading() as ex:
            latest = ex("SELECT l.new_value FROM review_labels l JOIN (SELECT part_row, defect_index, MAX(id) AS id"
                        " FROM review_labels WHERE action IN ('confirm', 'reject', 'change_class')"
                        " GROUP BY part_row, defect_index) m ON l.id = m.id").fetchall()
            boxes = ex("SELECT new_value, COUNT(*) FROM review_labels WHERE action = 'add_box' GROUP BY new_value").fetchall()
        for (value,) in latest:
            if value in counts:
                counts[value]["calls"] += 1
        for value, n in boxes:
            if value in counts:
                counts[value]["boxes"] += int(n)
        return counts
