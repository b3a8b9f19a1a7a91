"""QA review queue: parts the station wants a person to look at, relabelled with an audit trail.

Items come from committed part records (NG, grey-band decisions, ERROR, sampled PASS) and from
operator verdict overrides. Every action on an item is a row in `review_labels` (who, when,
old → new), never an update in place. Labelled items export as plain COCO JSON (the format
`training.data.coco` reads back), and a `LabelHook` can start retraining once enough new labels
have accumulated. The tables live in the result store's SQLite file; one transaction per operation.
"""
from __future__ import annotations

import importlib
import json
import logging
import numbers
import os
import shutil
import struct
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .recipe import DEFECT_CLASSES
from .results.records import VERDICTS, DefectRecord, PartRecord
from .results.sqlite_store import ResultStore

if TYPE_CHECKING:
    from .access import Session

log = logging.getLogger(__name__)

OK = "ok"
LABEL_CLASSES = tuple(DEFECT_CLASSES) + (OK,)
KINDS = ("ng", "grey", "error", "pass_sample", "override")
STATUSES = ("open", "done")
LABEL_ACTIONS = ("confirm", "reject", "change_class", "add_box")  # count towards retraining
ACTIONS = LABEL_ACTIONS + ("note", "close", "override")
COCO_NAME = "review.coco.json"

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


@dataclass(frozen=True)
class HookResult:
    ok: bool
    export_path: Path | None
    message: str
    labels: int  # new labels that triggered it


@dataclass(frozen=True)
class LabelHook:
    """Fires after `threshold` new labels: exports, then runs `command + [path]` or calls
    `entry_point` ('module:function') with the export path."""
    threshold: int
    command: list[str] | None = None
    entry_point: str | None = None
    timeout_s: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.threshold, int) or self.threshold < 1:
            raise ValueError(f"label hook: threshold must be a positive integer, got {self.threshold!r}")
        if (self.command is None) == (self.entry_point is None):
            raise ValueError("label hook: give exactly one of command or entry_point")
        if self.command is not None and (not self.command or not all(isinstance(c, str) for c in self.command)):
            raise ValueError(f"label hook: command must be a non-empty list of strings, got {self.command!r}")
        if self.entry_point is not None:
            module, _, func = self.entry_point.partition(":")
            if not module or not func:
                raise ValueError(f"label hook: entry point {self.entry_point!r} must be 'module:function'")

    def fire(self, path: Path) -> str:
        """Run the hook; raises on failure, returns a short description on success."""
        if self.command is not None:
            done = subprocess.run([*self.command, str(path)], capture_output=True, text=True,
                                  timeout=self.timeout_s, check=False)
            if done.returncode != 0:
                tail = (done.stderr or done.stdout or "").strip()[-500:]
                raise RuntimeError(f"command {self.command[0]!r} exited with {done.returncode}: {tail}")
            return "command exited 0"
        assert self.entry_point is not None
        module_name, _, func_name = self.entry_point.partition(":")
        target: Any = importlib.import_module(module_name)
        for part in func_name.split("."):
            target = getattr(target, part)
        if not callable(target):
            raise TypeError(f"entry point {self.entry_point!r} is not callable")
        result = target(path)
        return f"entry point returned {result!r}"


class ReviewQueue:
    def __init__(self, store: ResultStore, *, hook: LabelHook | None = None,
                 export_root: str | Path | None = None):
        self.store = store
        self.hook = hook
        self.export_root = Path(export_root) if export_root is not None else Path(store.path).parent / "review_exports"
        self.last_hook_result: HookResult | None = None
        self._hook_lock = threading.Lock()
        store.create_tables(REVIEW_SCHEMA)
        self._tx = store.transaction
        self._read = store.reading

    # -- creating items --------------------------------------------------------------------------
    def enqueue_from_record(self, row: int, record: PartRecord, *, sample_pass: bool = False) -> list[int]:
        """Items for a committed part: one for NG (FAIL), one per grey-band ('review') decision,
        one for ERROR, one for PASS when `sample_pass`. Idempotent: returns the items' ids."""
        wanted: list[tuple[str, int]] = []
        if record.verdict == "FAIL":
            wanted.append(("ng", -1))
        elif record.verdict == "ERROR":
            wanted.append(("error", -1))
        elif record.verdict == "PASS" and sample_pass:
            wanted.append(("pass_sample", -1))
        wanted += [("grey", i) for i, d in enumerate(record.defects) if d.decision == "review"]
        now = time.time()
        ids = []
        with self._tx() as ex:
            found = ex("SELECT part_id, serial FROM parts WHERE id = ?", (row,)).fetchone()
            if found is None:
                raise ValueError(f"part row {row}: no such part in {self.store.path}")
            if (found[0], found[1]) != (record.part_id, record.serial):
                raise ValueError(f"part row {row}: holds part {found[0]} (serial {found[1]}), "
                                 f"not {record.part_id} (serial {record.serial})")
            for kind, index in wanted:
                dedup = f"{row}:{kind}:{index}"
                ex("INSERT INTO review_items (part_row, kind, defect_index, dedup, created_at, status)"
                   " VALUES (?,?,?,?,?, 'open') ON CONFLICT DO NOTHING", (row, kind, index, dedup, now))
                ids.append(int(ex("SELECT id FROM review_items WHERE dedup = ?", (dedup,)).fetchone()[0]))
        return ids

    def add_override(self, row: int, who: str, new_verdict: str, reason: str) -> int:
        """Record an operator's verdict override of part `row`; returns the new item's id."""
        who = _who(f"part row {row}", who)
        if new_verdict not in VERDICTS:
            raise ValueError(f"part row {row}: override verdict {new_verdict!r} is not one of {', '.join(VERDICTS)}")
        if not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"part row {row}: an override needs a reason")
        now = time.time()
        with self._tx() as ex:
            found = ex("SELECT verdict FROM parts WHERE id = ?", (row,)).fetchone()
            if found is None:
                raise ValueError(f"part row {row}: no such part in {self.store.path}")
            current = self._effective_verdict(ex, row, found[0])
            if current == new_verdict:
                raise ValueError(f"part row {row}: verdict is already {new_verdict}")
            item = int(ex("INSERT INTO review_items (part_row, kind, defect_index, created_at, status, override_verdict)"
                          " VALUES (?, 'override', -1, ?, 'open', ?) RETURNING id", (row, now, new_verdict)).fetchone()[0])
            ex("INSERT INTO review_labels (item_id, part_row, action, who, at, old_value, new_value, text)"
               " VALUES (?,?, 'override', ?,?,?,?,?)", (item, row, who, now, current, new_verdict, reason.strip()))
        return item

    def effective_verdict(self, row: int) -> str:
        """The part's verdict after the latest operator override, if any."""
        with self._read() as ex:
            found = ex("SELECT verdict FROM parts WHERE id = ?", (row,)).fetchone()
            if found is None:
                raise ValueError(f"part row {row}: no such part in {self.store.path}")
            return self._effective_verdict(ex, row, found[0])

    @staticmethod
    def _effective_verdict(ex: Any, row: int, verdict: str) -> str:
        last = ex("SELECT new_value FROM review_labels WHERE part_row = ? AND action = 'override'"
                  " ORDER BY id DESC LIMIT 1", (row,)).fetchone()
        return last[0] if last else verdict

    def enqueue_committed(self, *, after_row: int = 0) -> tuple[list[int], int]:
        """Enqueue every committed part with row id above `after_row` (the station writes parts while
        QA works): NG, grey-band and ERROR parts, and PASS parts whose images the archive sampled.
        Idempotent. Returns (the items' ids, the highest row seen) — pass the latter next time."""
        with self._read() as ex:
            rows = [int(r[0]) for r in ex("SELECT id FROM parts WHERE id > ? ORDER BY id", (int(after_row),)).fetchall()]
        ids: list[int] = []
        for row in rows:
            record = self.store.get(row)
            ids += self.enqueue_from_record(row, record, sample_pass=record.verdict == "PASS" and bool(record.image_paths))
        return ids, max(rows, default=int(after_row))

    def recipe_ids(self) -> list[str]:
        """Recipes of the parts that have review items, for a filter list."""
        with self._read() as ex:
            return [r[0] for r in ex("SELECT DISTINCT p.recipe_id FROM review_items i JOIN parts p ON p.id = i.part_row"
                                     " ORDER BY p.recipe_id").fetchall()]

    def for_session(self, session: "Session") -> "SessionReview":
        """The labelling calls for a logged-in user: each checks the role, and labels as that user."""
        return SessionReview(self, session)

    # -- listing ---------------------------------------------------------------------------------
    def items(self, *, verdict: str | None = None, defect_class: str | None = None, grey_only: bool = False,
              since: float | None = None, until: float | None = None, recipe_id: str | None = None,
              status: str | None = None, kind: str | None = None, limit: int | None = None) -> list[ReviewItem]:
        """Items, oldest first. `verdict`: the part's committed verdict; `defect_class`: the part has a
        defect of that class or a label gave it one; `since`/`until`: the part's finish time
        (unix seconds, until exclusive); `status`: open | done; `grey_only`: grey-band items."""
        if verdict is not None and verdict not in VERDICTS:
            raise ValueError(f"review filter: verdict {verdict!r} is not one of {', '.join(VERDICTS)}")
        if status is not None and status not in STATUSES:
            raise ValueError(f"review filter: status {status!r} is not one of {', '.join(STATUSES)}")
        if kind is not None and kind not in KINDS:
            raise ValueError(f"review filter: kind {kind!r} is not one of {', '.join(KINDS)}")
        where, args = [], []
        for column, value in (("p.verdict", verdict), ("p.recipe_id", recipe_id), ("i.status", status), ("i.kind", kind)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if grey_only:
            where.append("i.kind = 'grey'")
        if since is not None:
            where.append("p.finished_at >= ?")
            args.append(since)
        if until is not None:
            where.append("p.finished_at < ?")
            args.append(until)
        if defect_class is not None:
            where.append("(p.id IN (SELECT part_row FROM defects WHERE defect_class = ?)"
                         " OR p.id IN (SELECT part_row FROM review_labels WHERE new_value = ?"
                         " AND action IN ('confirm', 'change_class', 'add_box')))")
            args += [defect_class, defect_class]
        sql = ("SELECT i.id FROM review_items i JOIN parts p ON p.id = i.part_row"
               + (f" WHERE {' AND '.join(where)}" if where else "") + " ORDER BY i.id")
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as ex:
            ids = [r[0] for r in ex(sql, args).fetchall()]
        return self._load(ids)

    def get(self, item: int | ReviewItem) -> ReviewItem:
        item_id = _item_id(item)
        found = self._load([item_id])
        if not found:
            raise ValueError(f"review item {item_id}: no such item")
        return found[0]

    def _load(self, ids: Sequence[int]) -> list[ReviewItem]:
        if not ids:
            return []
        rows = []
        with self._read() as ex:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start:start + 500])
                marks = ",".join("?" * len(chunk))
                rows += ex("SELECT id, part_row, kind, defect_index, created_at, status, closed_by, closed_at,"
                           f" override_verdict FROM review_items WHERE id IN ({marks}) ORDER BY id", chunk).fetchall()
        parts = {r: p for r, p in self._parts({r[1] for r in rows}).items()}
        return [ReviewItem(id=r[0], part_row=r[1], part_id=parts[r[1]].part_id, serial=parts[r[1]].serial,
                           verdict=parts[r[1]].verdict, reason=parts[r[1]].reason, recipe_id=parts[r[1]].recipe_id,
                           recipe_version=parts[r[1]].recipe_version, kind=r[2],
                           defect_index=None if r[3] < 0 else r[3], created_at=r[4], status=r[5],
                           image_paths=parts[r[1]].image_paths, defects=parts[r[1]].defects,
                           finished_at=parts[r[1]].finished_at, override_verdict=r[8], closed_by=r[6], closed_at=r[7])
                for r in rows]

    def _parts(self, rows: set[int]) -> dict[int, PartRecord]:
        found: dict[int, PartRecord] = {}
        for row in rows:  # a screenful of items at a time; the store reads a part with its defects
            found[row] = self.store.get(row)
        return found

    def labels(self, item: int | ReviewItem | None = None, *, part_row: int | None = None) -> list[Label]:
        """The audit trail, oldest first: of one item, of one part, or everything."""
        sql, args = "SELECT * FROM review_labels", []
        if item is not None:
            sql += " WHERE item_id = ?"
            args.append(_item_id(item))
        elif part_row is not None:
            sql += " WHERE part_row = ?"
            args.append(part_row)
        with self._read() as ex:
            rows = ex(sql + " ORDER BY id", args).fetchall()
        return [_label(r) for r in rows]

    # -- relabelling -----------------------------------------------------------------------------
    def confirm(self, item: int | ReviewItem, defect_index: int, who: str) -> int:
        """The defect is real, of its current class. Returns the label's id."""
        return self._relabel(item, defect_index, who, "confirm", None)

    def reject(self, item: int | ReviewItem, defect_index: int, who: str) -> int:
        """A false call: nothing there (class 'ok')."""
        return self._relabel(item, defect_index, who, "reject", OK)

    def change_class(self, item: int | ReviewItem, defect_index: int, new_class: str, who: str) -> int:
        return self._relabel(item, defect_index, who, "change_class", new_class)

    def _relabel(self, item: int | ReviewItem, defect_index: int, who: str, action: str, new: str | None) -> int:
        item_id = _item_id(item)
        who = _who(f"review item {item_id}", who)
        if new is not None and new not in LABEL_CLASSES:
            raise ValueError(f"review item {item_id}: unknown class {new!r}, expected one of {', '.join(LABEL_CLASSES)}")
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            defects = ex("SELECT defect_class, decision FROM defects WHERE part_row = ? ORDER BY id", (part_row,)).fetchall()
            if not isinstance(defect_index, int) or isinstance(defect_index, bool) \
                    or not 0 <= defect_index < len(defects):
                raise ValueError(f"review item {item_id}: defect index {defect_index!r} out of range "
                                 f"(the part has {len(defects)} defect(s))")
            station_class, decision = defects[defect_index]
            last = ex("SELECT new_value FROM review_labels WHERE part_row = ? AND defect_index = ? AND action IN"
                      " ('confirm', 'reject', 'change_class') ORDER BY id DESC LIMIT 1", (part_row, defect_index)).fetchone()
            old = last[0] if last else f"{station_class} ({decision})"
            if action == "confirm":
                new = last[0] if last and last[0] != OK else station_class
                if new not in DEFECT_CLASSES:
                    raise ValueError(f"review item {item_id}: defect {defect_index} is {new!r}, not a defect class; "
                                     f"use change_class")
            elif action == "change_class" and last is not None and last[0] == new:
                raise ValueError(f"review item {item_id}: defect {defect_index} is already labelled {new!r}")
            label = ex("INSERT INTO review_labels (item_id, part_row, action, defect_index, who, at, old_value, new_value)"
                       " VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                       (item_id, part_row, action, defect_index, who, time.time(), old, new)).fetchone()[0]
        self._after_label()
        return int(label)

    def add_box(self, item: int | ReviewItem, image_path: str, box_px: Sequence[int], defect_class: str,
                who: str) -> int:
        """A defect the station missed: box (x0, y0, x1, y1) in `image_path`'s pixels (the archived
        image's full path, or its stem such as 'fine_03_top')."""
        item_id = _item_id(item)
        who = _who(f"review item {item_id}", who)
        if defect_class not in DEFECT_CLASSES:
            raise ValueError(f"review item {item_id}: unknown class {defect_class!r} for a missed defect, "
                             f"expected one of {', '.join(DEFECT_CLASSES)}")
        try:
            box = tuple(int(v) for v in box_px)
        except (TypeError, ValueError):
            raise ValueError(f"review item {item_id}: box {box_px!r} must be four integers x0, y0, x1, y1") from None
        if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"review item {item_id}: box {box_px!r} must be x0, y0, x1, y1 with 0 <= x0 < x1, 0 <= y0 < y1")
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            paths = json.loads(ex("SELECT image_paths FROM parts WHERE id = ?", (part_row,)).fetchone()[0])
            path = _resolve(paths, image_path)
            if path is None:
                raise ValueError(f"review item {item_id}: image {image_path!r} is not one of the part's archived "
                                 f"images ({', '.join(Path(p).stem for p in paths) or 'none'})")
            size = _image_size(path)
            if size is None:
                raise ValueError(f"review item {item_id}: cannot read archived image {path}")
            if box[2] > size[0] or box[3] > size[1]:
                raise ValueError(f"review item {item_id}: box {box} lies outside the {size[0]}×{size[1]} image {path}")
            label = ex("INSERT INTO review_labels (item_id, part_row, action, image_path, x0, y0, x1, y1, who, at,"
                       " old_value, new_value) VALUES (?,?, 'add_box', ?,?,?,?,?,?,?, NULL, ?) RETURNING id",
                       (item_id, part_row, path, *box, who, time.time(), defect_class)).fetchone()[0]
        self._after_label()
        return int(label)

    def note(self, item: int | ReviewItem, text: str, who: str) -> int:
        item_id = _item_id(item)
        who = _who(f"review item {item_id}", who)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"review item {item_id}: a note needs text")
        with self._tx() as ex:
            part_row = self._part_row(ex, item_id)
            label = ex("INSERT INTO review_labels (item_id, part_row, action, who, at, text) VALUES (?,?, 'note', ?,?,?)"
                       " RETURNING id", (item_id, part_row, who, time.time(), text.strip())).fetchone()[0]
        return int(label)

    def close(self, item: int | ReviewItem, who: str) -> int:
        item_id = _item_id(item)
        who = _who(f"review item {item_id}", who)
        now = time.time()
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            ex("UPDATE review_items SET status = 'done', closed_by = ?, closed_at = ? WHERE id = ?", (who, now, item_id))
            label = ex("INSERT INTO review_labels (item_id, part_row, action, who, at, old_value, new_value)"
                       " VALUES (?,?, 'close', ?,?, 'open', 'done') RETURNING id", (item_id, part_row, who, now)).fetchone()[0]
        return int(label)

    def _part_row(self, ex: Any, item_id: int) -> int:
        found = ex("SELECT part_row, status FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if found is None:
            raise ValueError(f"review item {item_id}: no such item")
        return int(found[0])

    def _open_item(self, ex: Any, item_id: int) -> int:
        found = ex("SELECT part_row, status FROM review_items WHERE id = ?", (item_id,)).fetchone()
        if found is None:
            raise ValueError(f"review item {item_id}: no such item")
        if found[1] != "open":
            raise ValueError(f"review item {item_id}: is closed")
        return int(found[0])

    # -- export ----------------------------------------------------------------------------------
    def pending_labels(self) -> int:
        """Labels (confirm, reject, change_class, add_box) written since the last export."""
        marks = ",".join(f"'{a}'" for a in LABEL_ACTIONS)
        with self._read() as ex:
            return int(ex(f"SELECT COUNT(*) FROM review_labels WHERE action IN ({marks}) AND id > ?",
                          (self._exported_upto(ex),)).fetchone()[0])

    @staticmethod
    def _exported_upto(ex: Any) -> int:
        # a hook export whose hook failed does not count: its labels fire the hook again
        return int(ex("SELECT COALESCE(MAX(label_upto), 0) FROM review_exports"
                      " WHERE hook_ok IS NULL OR hook_ok = 1").fetchone()[0])

    def export_coco(self, out_dir: str | Path) -> Path:
        """Write every labelled part image (an explicit label on it, or a closed item of its part) as
        COCO: boxes [x, y, w, h] in that image's pixels, categories the defect classes, PNGs copied
        under out_dir/images/. Rejected calls (and relabels to 'ok') become no box: the image is kept
        as a negative and the rejected box is listed in the image's `rejected` attribute. PNGs are
        hard-linked when the file system allows, copied otherwise. Returns the JSON's path."""
        path, upto = self._export(Path(out_dir))
        self._record_export(path, upto, None, None)
        return path

    def _export(self, out: Path) -> tuple[Path, int]:
        with self._read() as ex:
            upto = int(ex("SELECT COALESCE(MAX(id), 0) FROM review_labels").fetchone()[0])
            labels = [_label(r) for r in ex("SELECT * FROM review_labels WHERE id <= ? ORDER BY id", (upto,)).fetchall()]
            closed = {r[0]: (r[1], r[2]) for r in ex(
                "SELECT part_row, closed_by, closed_at FROM review_items WHERE status = 'done' ORDER BY closed_at").fetchall()}
        labelled_rows = {lb.part_row for lb in labels if lb.action in LABEL_ACTIONS} | set(closed)
        cat_ids = {name: i + 1 for i, name in enumerate(DEFECT_CLASSES)}
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        (out / "images").mkdir(parents=True, exist_ok=True)
        for row in sorted(labelled_rows):
            record = self.store.get(row)
            part_labels = [lb for lb in labels if lb.part_row == row]
            latest: dict[int, Label] = {}
            for lb in part_labels:
                if lb.action in ("confirm", "reject", "change_class") and lb.defect_index is not None:
                    latest[lb.defect_index] = lb
            per_image: dict[str, dict[str, list]] = {}

            def slot(path: str, per_image: dict[str, dict[str, list]] = per_image) -> dict[str, list]:
                return per_image.setdefault(path, {"boxes": [], "rejected": [], "unresolved": []})

            explicit_images: set[str] = set()
            for index, d in enumerate(record.defects):
                path = _defect_image(record, d)
                if path is None:
                    continue
                lb = latest.get(index)
                if lb is not None:
                    explicit_images.add(path)
                    if lb.new == OK:
                        slot(path)["rejected"].append({"defect_index": index, "box_px": list(d.box_px),
                                                       "station_class": d.defect_class, "who": lb.who})
                    else:
                        slot(path)["boxes"].append((lb.new, d.box_px, {"source": "review", "who": lb.who,
                                                                        "action": lb.action, "defect_index": index}))
                elif row in closed and d.decision == "defect" and d.defect_class in cat_ids:
                    slot(path)["boxes"].append((d.defect_class, d.box_px, {"source": "review", "who": closed[row][0],
                                                                           "action": "closed", "defect_index": index}))
                elif d.decision == "review" or (d.decision == "defect" and row not in closed):
                    slot(path)["unresolved"].append({"defect_index": index, "box_px": list(d.box_px),
                                                     "station_class": d.defect_class, "decision": d.decision})
            for lb in part_labels:
                if lb.action == "add_box" and lb.image_path and lb.box_px:
                    explicit_images.add(lb.image_path)
                    slot(lb.image_path)["boxes"].append((lb.new, lb.box_px, {"source": "review", "who": lb.who,
                                                                            "action": "add_box"}))
            wanted = set(explicit_images)
            if row in closed:  # a closed item vouches for every archived image of the part
                wanted |= {p for p in record.image_paths if Path(p).is_file()}
            for path in sorted(wanted):
                size = _image_size(path)
                if size is None:
                    log.warning("review export: archived image %s of part row %d is missing; skipped", path, row)
                    continue
                width, height = size
                name = f"images/r{row:06d}_{Path(path).name}"
                _link_or_copy(Path(path), out / name)
                entry = per_image.get(path, {"boxes": [], "rejected": [], "unresolved": []})
                image_id = len(images) + 1
                images.append({"id": image_id, "file_name": name, "width": width, "height": height,
                               "attributes": {"source": "review", "part_row": row, "part_id": record.part_id,
                                              "serial": record.serial, "verdict": record.verdict,
                                              "recipe_id": record.recipe_id, "archived_path": path,
                                              "rejected": entry["rejected"], "unresolved": entry["unresolved"]}})
                for cls, box, attrs in entry["boxes"]:
                    x0, y0 = max(0, min(box[0], width)), max(0, min(box[1], height))
                    x1, y1 = max(x0, min(box[2], width)), max(y0, min(box[3], height))
                    w, h = x1 - x0, y1 - y0
                    annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cat_ids[cls],
                                        "bbox": [x0, y0, w, h], "area": w * h, "iscrowd": 0,
                                        "attributes": {**attrs, "serial": record.serial, "part_row": row}})
        doc = {"info": {"description": "station QA review labels", "source": "review", "exported_at": time.time(),
                        "label_upto": upto, "split": "review"},
               "images": images, "annotations": annotations,
               "categories": [{"id": i, "name": n, "supercategory": "defect"} for n, i in cat_ids.items()]}
        path = out / COCO_NAME
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path, upto

    def _record_export(self, path: Path, upto: int, ok: bool | None, message: str | None) -> None:
        with self._tx() as ex:
            ex("INSERT INTO review_exports (at, path, label_upto, hook_ok, hook_message) VALUES (?,?,?,?,?)",
               (time.time(), str(path), upto, None if ok is None else int(ok), message))

    # -- retraining hook -------------------------------------------------------------------------
    def _after_label(self) -> None:
        if self.hook is None:
            return
        try:
            self.maybe_retrain()
        except Exception:  # noqa: BLE001 - the hook never takes the station down
            log.exception("review: retraining hook failed")

    def maybe_retrain(self, *, force: bool = False) -> HookResult | None:
        """Export and fire the hook when the new-label count reached its threshold (or `force`).
        Returns what happened (also kept as `last_hook_result`), None when nothing was due."""
        if self.hook is None or not self._hook_lock.acquire(blocking=False):
            return None
        try:
            pending = self.pending_labels()
            if pending < self.hook.threshold and not (force and pending):
                return None
            stamp = time.strftime("%Y%m%d_%H%M%S")
            out = self.export_root / f"review_{stamp}"
            n = 1
            while out.exists():
                n += 1
                out = self.export_root / f"review_{stamp}_{n}"
            try:
                path, upto = self._export(out)
            except Exception as exc:  # noqa: BLE001
                result = HookResult(False, None, f"export failed: {type(exc).__name__}: {exc}", pending)
                log.error("review: %s; the labels stay in the store and are exported next time", result.message)
                self.last_hook_result = result
                return result
            try:
                message = self.hook.fire(path)
                result = HookResult(True, path, message, pending)
                log.info("review: %d new labels exported to %s; hook: %s", pending, path, message)
            except Exception as exc:  # noqa: BLE001
                result = HookResult(False, path, f"hook failed: {type(exc).__name__}: {exc}", pending)
                log.error("review: %s (export %s kept)", result.message, path)
            self._record_export(path, upto, result.ok, result.message[:2000])
            self.last_hook_result = result
            return result
        finally:
            self._hook_lock.release()

    def exports(self) -> list[tuple[float, str, int, bool | None, str | None]]:
        """(time, path, labels up to id, hook ok, hook message) of every export, oldest first."""
        with self._read() as ex:
            return [(r[0], r[1], int(r[2]), None if r[3] is None else bool(r[3]), r[4])
                    for r in ex("SELECT at, path, label_upto, hook_ok, hook_message FROM review_exports ORDER BY id").fetchall()]


class SessionReview:
    """`ReviewQueue`'s changing calls bound to a session: relabels and notes need the 'review'
    permission, exports 'export_labels', retraining 'retrain'; every label names `session.user`.
    The check is here, in the core, so a UI that forgets to disable a button still cannot relabel."""

    def __init__(self, queue: ReviewQueue, session: "Session"):
        self.queue, self.session = queue, session

    def _who(self, action: str) -> str:
        self.session.require(action)
        return self.session.user

    def confirm(self, item: int | ReviewItem, defect_index: int) -> int:
        return self.queue.confirm(item, defect_index, self._who("review"))

    def reject(self, item: int | ReviewItem, defect_index: int) -> int:
        return self.queue.reject(item, defect_index, self._who("review"))

    def change_class(self, item: int | ReviewItem, defect_index: int, new_class: str) -> int:
        return self.queue.change_class(item, defect_index, new_class, self._who("review"))

    def add_box(self, item: int | ReviewItem, image_path: str, box_px: Sequence[int], defect_class: str) -> int:
        return self.queue.add_box(item, image_path, box_px, defect_class, self._who("review"))

    def note(self, item: int | ReviewItem, text: str) -> int:
        return self.queue.note(item, text, self._who("review"))

    def close(self, item: int | ReviewItem) -> int:
        return self.queue.close(item, self._who("review"))

    def export_coco(self, out_dir: str | Path) -> Path:
        self._who("export_labels")
        return self.queue.export_coco(out_dir)


# -- helpers ---------------------------------------------------------------------------------------
def _item_id(item: int | ReviewItem) -> int:
    if isinstance(item, ReviewItem):
        return item.id
    if isinstance(item, bool) or not isinstance(item, numbers.Integral):
        raise ValueError(f"review item {item!r}: expected an item id or a ReviewItem")
    return int(item)


def _who(where: str, who: str) -> str:
    if not isinstance(who, str) or not who.strip():
        raise ValueError(f"{where}: who is empty; every label names the person")
    return who.strip()


def _label(r: tuple) -> Label:
    box = None if r[6] is None else (int(r[6]), int(r[7]), int(r[8]), int(r[9]))
    return Label(id=r[0], item_id=r[1], part_row=r[2], action=r[3], defect_index=r[4], image_path=r[5], box_px=box,
                 who=r[10], at=r[11], old=r[12], new=r[13], text=r[14])


def _resolve(paths: Sequence[str], name: str) -> str | None:
    """A part's archived image by full path, file name or stem."""
    for p in paths:
        if name in (p, Path(p).name, Path(p).stem):
            return p
    return None


def _defect_image(record: PartRecord, defect: DefectRecord) -> str | None:
    name = defect.image_path or (f"coarse_{defect.view}" if defect.stage == "coarse" else "")
    return _resolve(record.image_paths, name) if name else None


def _image_size(path: str | Path) -> tuple[int, int] | None:
    """(width, height) of an image: PNG from its header, anything else via OpenCV."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(24)
    except OSError:
        return None
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        width, height = struct.unpack(">II", head[16:24])
        return int(width), int(height)
    import cv2
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    return None if image is None else (int(image.shape[1]), int(image.shape[0]))


def _link_or_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
