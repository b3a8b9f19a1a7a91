"""The review tables and their vocabulary: SQL schema, item kinds, label actions and classes, and the
`ReviewItem` / `Label` records read back from them. Shared by the queue and the COCO export."""
from __future__ import annotations

from dataclasses import dataclass

from ..results.records import DefectRecord

OK = "ok"
# A real defect of a kind the models do not know: the station sends such crops to review with this
# class, and QA labels a call with it (optionally naming the new kind in the label's `text`). No
# training export feeds it to the models as one of their classes (see `coco_export`).
UNKNOWN = "unknown"
MAX_NAME_CHARS = 80  # a name QA gives an unknown kind: one short line
KINDS = ("ng", "grey", "error", "pass_sample", "override")
STATUSES = ("open", "done")
LABEL_ACTIONS = ("confirm", "reject", "change_class", "add_box")  # count towards retraining
ACTIONS = LABEL_ACTIONS + ("note", "close", "override")

REVIEW_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    id {id},
    part_row INTEGER NOT NULL REFERENCES parts (id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    defect_index INTEGER NOT NULL,
    dedup TEXT UNIQUE,
    created_at {real} NOT NULL,
    status TEXT NOT NULL,
    closed_by TEXT,
    closed_at {real},
    override_verdict TEXT
);
CREATE INDEX IF NOT EXISTS review_items_part ON review_items (part_row);
CREATE TABLE IF NOT EXISTS review_labels (
    id {id},
    item_id INTEGER NOT NULL REFERENCES review_items (id) ON DELETE CASCADE,
    part_row INTEGER NOT NULL,
    action TEXT NOT NULL,
    defect_index INTEGER,
    image_path TEXT,
    x0 INTEGER, y0 INTEGER, x1 INTEGER, y1 INTEGER,
    who TEXT NOT NULL,
    at {real} NOT NULL,
    old_value TEXT,
    new_value TEXT,
    text TEXT
);
CREATE INDEX IF NOT EXISTS review_labels_item ON review_labels (item_id);
CREATE INDEX IF NOT EXISTS review_labels_part ON review_labels (part_row);
CREATE TABLE IF NOT EXISTS review_exports (
    id {id},
    at {real} NOT NULL,
    path TEXT NOT NULL,
    label_upto INTEGER NOT NULL,
    hook_ok INTEGER,
    hook_message TEXT
);
"""


@dataclass(frozen=True)
class ReviewItem:
    id: int
    part_row: int
    part_id: str
    serial: str
    verdict: str  # the part's verdict as committed
    reason: str
    recipe_id: str
    recipe_version: int
    kind: str  # ng | grey | error | pass_sample | override
    defect_index: int | None  # the grey-band defect this item is about (kind 'grey')
    created_at: float
    status: str  # open | done
    image_paths: tuple[str, ...]
    defects: tuple[DefectRecord, ...]
    finished_at: float
    override_verdict: str | None = None
    closed_by: str | None = None
    closed_at: float | None = None


@dataclass(frozen=True)
class Label:
    """One audit row: who did what to which item, when, and the value before and after."""
    id: int
    item_id: int
    part_row: int
    action: str
    defect_index: int | None
    image_path: str | None
    box_px: tuple[int, int, int, int] | None
    who: str
    at: float
    old: str | None
    new: str | None
    text: str | None


def label_from_row(r: tuple) -> Label:
    """A `Label` from a `SELECT * FROM review_labels` row."""
    box = None if r[6] is None else (int(r[6]), int(r[7]), int(r[8]), int(r[9]))
    return Label(id=r[0], item_id=r[1], part_row=r[2], action=r[3], defect_index=r[4], image_path=r[5], box_px=box,
                 who=r[10], at=r[11], old=r[12], new=r[13], text=r[14])


def kind_name(where: str, label: str | None, name: str | None) -> str | None:
    """The name QA gives an unknown kind: one short line, and only with the label 'unknown'."""
    if name is None:
        return None
    if label != UNKNOWN:
        raise ValueError(f"{where}: a kind name ({name!r}) goes only with class {UNKNOWN!r}, not {label!r}")
    if not isinstance(name, str) or not name.strip() or "\n" in name or len(name.strip()) > MAX_NAME_CHARS:
        raise ValueError(f"{where}: kind name {name!r} must be one line of 1–{MAX_NAME_CHARS} characters")
    return name.strip()
