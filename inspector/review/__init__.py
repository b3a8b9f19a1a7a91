"""QA review: the queue of parts a person should look at (`queue`), its tables and records
(`records`), the COCO export of the labels (`coco_export`) and the hooks that start retraining
(`hooks`). Import from here: `from inspector.review import ReviewQueue, LabelHook, …`."""
from .coco_export import COCO_NAME
from .hooks import HookResult, LabelHook, RetrainTrigger
from .queue import ReviewQueue, SessionReview
from .records import (ACTIONS, DEFECT_LABELS, KINDS, LABEL_ACTIONS, LABEL_CLASSES, OK, REVIEW_SCHEMA, STATUSES,
                      UNKNOWN, Label, ReviewItem)

__all__ = ["ACTIONS", "COCO_NAME", "DEFECT_LABELS", "HookResult", "KINDS", "LABEL_ACTIONS", "LABEL_CLASSES", "Label",
           "LabelHook", "OK", "REVIEW_SCHEMA", "RetrainTrigger", "ReviewItem", "ReviewQueue", "SessionReview", "STATUSES",
           "UNKNOWN"]
