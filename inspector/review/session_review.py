"""`SessionReview`: the review queue's changing calls bound to one logged-in session
(`ReviewQueue.for_session`), so a caller passes the session once instead of with every call."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..access import require
from .records import ReviewItem

if TYPE_CHECKING:
    from ..access import Session
    from .coarse_stack import CoarseStack
    from .queue import ReviewQueue


class SessionReview:
    """`ReviewQueue`'s changing calls bound to a session: relabels and notes need the 'review'
    permission, exports 'export_labels'; every label names `session.user`. The check is in the
    queue itself (the core), so a UI that forgets to disable a button still cannot relabel."""

    def __init__(self, queue: ReviewQueue, session: "Session"):
        self.queue, self.session = queue, session

    def confirm(self, item: int | ReviewItem, defect_index: int) -> int:
        return self.queue.confirm(item, defect_index, self.session)

    def reject(self, item: int | ReviewItem, defect_index: int) -> int:
        return self.queue.reject(item, defect_index, self.session)

    def change_class(self, item: int | ReviewItem, defect_index: int, new_class: str, *,
                     name: str | None = None) -> int:
        return self.queue.change_class(item, defect_index, new_class, self.session, name=name)

    def add_box(self, item: int | ReviewItem, image_path: str, box_px: Sequence[int], defect_class: str, *,
                name: str | None = None) -> int:
        return self.queue.add_box(item, image_path, box_px, defect_class, self.session, name=name)

    def note(self, item: int | ReviewItem, text: str) -> int:
        return self.queue.note(item, text, self.session)

    def close(self, item: int | ReviewItem) -> int:
        return self.queue.close(item, self.session)

    def export_coco(self, out_dir: str | Path, *, coarse_stack: CoarseStack | None = None) -> Path:
        require(self.session, "export_labels", store=self.queue.store)
        return self.queue.export_coco(out_dir, coarse_stack=coarse_stack)
