"""The review queue's exports and retraining hook: COCO exports of the labels, their bookkeeping (which
labels an export covered, what the hook made of it) and the count of labels since the last one.
A mixin of `ReviewQueue` (its store, transaction and reading helpers and its retraining trigger)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..results.sqlite_store import ResultStore
from .coco_export import write_coco
from .hooks import HookResult
from .records import LABEL_ACTIONS, UNKNOWN


def _train_side_export(store: ResultStore, out: Path, coarse_stack: Any = None) -> tuple[Path, int]:
    """The export a retraining hook gets: the train side of the stored split only, so the promotion
    gate's parts are never trained on."""
    from ..promotion.gate_split import GateSplit  # promotion imports the review package: import here

    return write_coco(store, out, keep_serial=GateSplit(store).is_train, coarse_stack=coarse_stack)


class ReviewExports:
    store: ResultStore
    _retrain: Any  # RetrainTrigger | None
    _tx: Any  # the store's transaction() and reading() helpers
    _read: Any

    # -- export ----------------------------------------------------------------------------------
    def pending_labels(self) -> int:
        """Labels (confirm, reject, change_class, add_box) written since the last export; a label
        'unknown' gives training nothing to learn and does not count."""
        marks = ",".join(f"'{a}'" for a in LABEL_ACTIONS)
        with self._read() as ex:
            return int(ex(f"SELECT COUNT(*) FROM review_labels WHERE action IN ({marks}) AND id > ?"
                          " AND (new_value IS NULL OR new_value != ?)", (self._exported_upto(ex), UNKNOWN)).fetchone()[0])

    @staticmethod
    def _exported_upto(ex: Any) -> int:
        # a hook export whose hook failed does not count: its labels fire the hook again
        return int(ex("SELECT COALESCE(MAX(label_upto), 0) FROM review_exports"
                      " WHERE hook_ok IS NULL OR hook_ok = 1").fetchone()[0])

    def export_coco(self, out_dir: str | Path, *, coarse_stack: Any = None) -> Path:
        """Write every labelled part image (an explicit label on it, or a closed item of its part) as
        COCO: boxes [x, y, w, h] in that image's pixels, categories the defect classes, PNGs copied
        under out_dir/images/. Rejected calls (and relabels to 'ok') become no box: the image is kept
        as a negative and the rejected box is listed in the image's `rejected` attribute. An image
        showing a defect of class 'unknown' is left out (listed under info['unknown'], see
        `coco_export`). PNGs are hard-linked when the file system allows, copied otherwise. Returns
        the JSON's path. A capture's extra frames (`<channel>@coarse_<view>`) are never images of
        their own; with `coarse_stack` (a `CoarseStack` of the production recipe and the station), coarse
        images are exported as the detector's channel stack (see `coco_export`)."""
        path, upto = write_coco(self.store, Path(out_dir), coarse_stack=coarse_stack)
        self._record_export(path, upto, None, None)
        return path

    def _record_export(self, path: Path, upto: int, ok: bool | None, message: str | None) -> None:
        with self._tx() as ex:
            ex("INSERT INTO review_exports (at, path, label_upto, hook_ok, hook_message) VALUES (?,?,?,?,?)",
               (time.time(), str(path), upto, None if ok is None else int(ok), message))

    def exports(self) -> list[tuple[float, str, int, bool | None, str | None]]:
        """(time, path, labels up to id, hook ok, hook message) of every export, oldest first."""
        with self._read() as ex:
            return [(r[0], r[1], int(r[2]), None if r[3] is None else bool(r[3]), r[4])
                    for r in ex("SELECT at, path, label_upto, hook_ok, hook_message FROM review_exports ORDER BY id").fetchall()]

    # -- retraining hook -------------------------------------------------------------------------
    def maybe_retrain(self, *, force: bool = False) -> HookResult | None:
        """Export and fire the hook when the new-label count reached its threshold (or `force`).
        Returns what happened (also kept as `last_hook_result`), None when nothing was due."""
        return None if self._retrain is None else self._retrain.maybe_retrain(force=force)
