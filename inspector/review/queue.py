"""The QA review queue: parts the station wants a person to look at, relabelled with an audit trail.

`ReviewQueue` creates items from committed part records (NG, grey-band decisions, ERROR, sampled
PASS) and from operator verdict overrides, lists and filters them, and relabels them: every action
is a row in `review_labels` (who, when, old → new), never an update in place, and a row in the
station's audit log in the same transaction (action `review_<label action>`, target `part:<row>`). It also keeps the
export bookkeeping (`review_exports`) and hands exports to `coco_export` and retraining to `hooks`.
Every changing call takes the session of a logged-in user (issued by `AccessControl.login` on the
same result store) and checks it: 'override' for an override, 'review' for labels, notes and closing;
a forged, logged-out or missing session is refused (AccessDenied) and every label names the
session's user. `SessionReview` (in `session_review`) binds the calls to one session. The tables
live in the result store's database; one transaction per operation.
"""
from __future__ import annotations

import json
import numbers
import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..results.records import VERDICTS, PartRecord
from ..results.sqlite_store import ResultStore
from .coco_export import image_size, resolve_image
from .exports import ReviewExports, _train_side_export
from .hooks import HookResult, LabelHook, RetrainTrigger
from .kinds import KindRegistry
from .records import (KINDS, OK, REVIEW_SCHEMA, STATUSES, UNKNOWN, Label,
                      ReviewItem, kind_name, label_from_row)

from ..access import require
from ..audit_log import append_row
from .session_review import SessionReview

if TYPE_CHECKING:
    from ..access import Session


class ReviewQueue(ReviewExports):
    def __init__(self, store: ResultStore, *, hook: LabelHook | None = None,
                 export_root: str | Path | None = None, kinds: Iterable[str] = (), coarse_stack: Any = None):
        """`kinds`: the defect kinds of the recipe and models the caller runs (registered if new);
        labels may name those, the kinds QA created, and the kinds the records hold. `coarse_stack`
        (a CoarseStack): the hook's exports hold the detector's channel stacks, as QA's do."""
        self.store = store
        self.export_root = Path(export_root) if export_root is not None else Path(store.path).parent / "review_exports"
        self._retrain = None if hook is None else RetrainTrigger(
            hook, self.export_root, pending=self.pending_labels, export=partial(_train_side_export, store, coarse_stack=coarse_stack),
            record=self._record_export)
        store.create_tables(REVIEW_SCHEMA)
        self.kinds = KindRegistry(store)
        if kinds:
            self.kinds.register_known(kinds, "recipe")
        self._tx = store.transaction
        self._read = store.reading

    def defect_labels(self) -> tuple[str, ...]:
        """Labels that say "a real defect here": the known kinds and `unknown`."""
        return self.kinds.names() + (UNKNOWN,)

    @property
    def hook(self) -> LabelHook | None:
        return None if self._retrain is None else self._retrain.hook

    @property
    def last_hook_result(self) -> HookResult | None:
        """What the retraining hook did last time it was due; None before."""
        return None if self._retrain is None else self._retrain.last_result

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

    def add_override(self, row: int, session: "Session", new_verdict: str, reason: str) -> int:
        """Record an operator's verdict override of part `row`; returns the new item's id."""
        who = self._who(session, "override")
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
        return [label_from_row(r) for r in rows]

    # -- relabelling -----------------------------------------------------------------------------
    def _who(self, session: "Session", action: str) -> str:
        """The user of a live session allowed to `action`, issued on this store; AccessDenied otherwise."""
        require(session, action, store=self.store)
        return session.user

    def confirm(self, item: int | ReviewItem, defect_index: int, session: "Session") -> int:
        """The defect is real, of its current class. Returns the label's id."""
        return self._relabel(item, defect_index, session, "confirm", None)

    def reject(self, item: int | ReviewItem, defect_index: int, session: "Session") -> int:
        """A false call: nothing there (class 'ok')."""
        return self._relabel(item, defect_index, session, "reject", OK)

    def change_class(self, item: int | ReviewItem, defect_index: int, new_class: str, session: "Session", *,
                     name: str | None = None) -> int:
        """Relabel a call. `new_class` 'unknown' says: a real defect, of a kind the models do not know;
        `name` (optional, only with 'unknown') names that kind, kept in the label's text."""
        return self._relabel(item, defect_index, session, "change_class", new_class, name)

    def _relabel(self, item: int | ReviewItem, defect_index: int, session: "Session", action: str,
                 new: str | None, name: str | None = None) -> int:
        who = self._who(session, "review")
        item_id = _item_id(item)
        defect_labels = self.defect_labels()  # read before the transaction: the store's lock is not re-entrant
        label_classes = defect_labels + (OK,)
        if new is not None and new not in label_classes:
            raise ValueError(f"review item {item_id}: unknown class {new!r}, expected one of {', '.join(label_classes)}")
        name = kind_name(f"review item {item_id}", new, name)
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            defects = ex("SELECT defect_class, decision FROM defects WHERE part_row = ? ORDER BY id", (part_row,)).fetchall()
            if not isinstance(defect_index, int) or isinstance(defect_index, bool) \
                    or not 0 <= defect_index < len(defects):
                raise ValueError(f"review item {item_id}: defect index {defect_index!r} out of range "
                                 f"(the part has {len(defects)} defect(s))")
            station_class, decision = defects[defect_index]
            last = ex("SELECT new_value, text FROM review_labels WHERE part_row = ? AND defect_index = ? AND action IN"
                      " ('confirm', 'reject', 'change_class') ORDER BY id DESC LIMIT 1", (part_row, defect_index)).fetchone()
            old = last[0] if last else f"{station_class} ({decision})"
            if action == "confirm":
                new = last[0] if last and last[0] != OK else station_class
                if new not in defect_labels:
                    raise ValueError(f"review item {item_id}: defect {defect_index} is {new!r}, not a defect class; "
                                     f"use change_class")
                if new == UNKNOWN and last is not None:
                    name = last[1]  # confirming keeps the name QA gave the kind
            elif action == "change_class" and last is not None and (last[0], last[1]) == (new, name):
                raise ValueError(f"review item {item_id}: defect {defect_index} is already labelled {new!r}"
                                 + (f" named {name!r}" if name else ""))
            now = time.time()
            label = ex("INSERT INTO review_labels (item_id, part_row, action, defect_index, who, at, old_value, new_value,"
                       " text) VALUES (?,?,?,?,?,?,?,?,?) RETURNING id",
                       (item_id, part_row, action, defect_index, who, now, old, new, name)).fetchone()[0]
            self._audit(ex, session, now, action, item_id, part_row, {"defect": defect_index, "label": old},
                        {"defect": defect_index, "label": new, **({"name": name} if name else {})})
        if self._retrain is not None:
            self._retrain.after_label()
        return int(label)

    def add_box(self, item: int | ReviewItem, image_path: str, box_px: Sequence[int], defect_class: str,
                session: "Session", *, name: str | None = None) -> int:
        """A defect the station missed: box (x0, y0, x1, y1) in `image_path`'s pixels (the archived
        image's full path, or its stem such as 'fine_03_top'); class 'unknown' may carry a `name`."""
        who = self._who(session, "review")
        item_id = _item_id(item)
        if defect_class not in self.defect_labels():
            raise ValueError(f"review item {item_id}: unknown class {defect_class!r} for a missed defect, "
                             f"expected one of {', '.join(self.defect_labels())}")
        name = kind_name(f"review item {item_id}", defect_class, name)
        try:
            box = tuple(int(v) for v in box_px)
        except (TypeError, ValueError):
            raise ValueError(f"review item {item_id}: box {box_px!r} must be four integers x0, y0, x1, y1") from None
        if len(box) != 4 or box[0] < 0 or box[1] < 0 or box[2] <= box[0] or box[3] <= box[1]:
            raise ValueError(f"review item {item_id}: box {box_px!r} must be x0, y0, x1, y1 with 0 <= x0 < x1, 0 <= y0 < y1")
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            paths = json.loads(ex("SELECT image_paths FROM parts WHERE id = ?", (part_row,)).fetchone()[0])
            path = resolve_image(paths, image_path)
            if path is None:
                raise ValueError(f"review item {item_id}: image {image_path!r} is not one of the part's archived "
                                 f"images ({', '.join(Path(p).stem for p in paths) or 'none'})")
            size = image_size(path)
            if size is None:
                raise ValueError(f"review item {item_id}: cannot read archived image {path}")
            if box[2] > size[0] or box[3] > size[1]:
                raise ValueError(f"review item {item_id}: box {box} lies outside the {size[0]}×{size[1]} image {path}")
            now = time.time()
            label = ex("INSERT INTO review_labels (item_id, part_row, action, image_path, x0, y0, x1, y1, who, at,"
                       " old_value, new_value, text) VALUES (?,?, 'add_box', ?,?,?,?,?,?,?, NULL, ?, ?) RETURNING id",
                       (item_id, part_row, path, *box, who, now, defect_class, name)).fetchone()[0]
            self._audit(ex, session, now, "add_box", item_id, part_row, None,
                        {"label": defect_class, "image": Path(path).stem, "box_px": list(box),
                         **({"name": name} if name else {})})
        if self._retrain is not None:
            self._retrain.after_label()
        return int(label)

    def note(self, item: int | ReviewItem, text: str, session: "Session") -> int:
        who = self._who(session, "review")
        item_id = _item_id(item)
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"review item {item_id}: a note needs text")
        now = time.time()
        with self._tx() as ex:
            part_row = self._part_row(ex, item_id)
            label = ex("INSERT INTO review_labels (item_id, part_row, action, who, at, text) VALUES (?,?, 'note', ?,?,?)"
                       " RETURNING id", (item_id, part_row, who, now, text.strip())).fetchone()[0]
            self._audit(ex, session, now, "note", item_id, part_row, None, None, text.strip())
        return int(label)

    def close(self, item: int | ReviewItem, session: "Session") -> int:
        who = self._who(session, "review")
        item_id = _item_id(item)
        now = time.time()
        with self._tx() as ex:
            part_row = self._open_item(ex, item_id)
            ex("UPDATE review_items SET status = 'done', closed_by = ?, closed_at = ? WHERE id = ?", (who, now, item_id))
            label = ex("INSERT INTO review_labels (item_id, part_row, action, who, at, old_value, new_value)"
                       " VALUES (?,?, 'close', ?,?, 'open', 'done') RETURNING id", (item_id, part_row, who, now)).fetchone()[0]
            self._audit(ex, session, now, "close", item_id, part_row, "open", "done")
        return int(label)

    def _audit(self, ex: Any, session: "Session", at: float, action: str, item_id: int, part_row: int, old: Any,
               new: Any, text: str | None = None) -> None:
        """The label's row in the station's audit log, inside the label's own transaction: both or neither."""
        append_row(ex, self.store, lambda: at, session.user, session.role, f"review_{action}", f"part:{part_row}",
                   old, new, text if text is not None else f"review item {item_id}")

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


# -- helpers ---------------------------------------------------------------------------------------
def _item_id(item: int | ReviewItem) -> int:
    if isinstance(item, ReviewItem):
        return item.id
    if isinstance(item, bool) or not isinstance(item, numbers.Integral):
        raise ValueError(f"review item {item!r}: expected an item id or a ReviewItem")
    return int(item)
