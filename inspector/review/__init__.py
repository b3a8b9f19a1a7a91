"""QA review: the queue of parts a person should look at (`queue`), its tables and records
(`records`), the COCO export of the labels (`coco_export`) and the hooks that start retraining
(`hooks`). Import from here: `from inspector.review import ReviewQueue, LabelHook, …`."""
from .coco_export import COCO_NAME
from .hooks import HookResult, LabelHook, RetrainTrigger
from ..kind_names import KindError, validate_kind_name
from .kinds import DefectKind, KindRegistry
from .queue import ReviewQueue, SessionReview
from .records import (ACTIONS, KINDS, LABEL_ACTIONS, OK, REVIEW_SCHEMA, STATUSES,
                      UNKNOWN, Label, ReviewItem)

__all__ = ["ACTIONS", "COCO_NAME", "DefectKind", "HookResult", "KindError", "KindRegistry", "KINDS", "LABEL_ACTIONS", "Label",
           "LabelHook", "OK", "REVIEW_SCHEMA", "RetrainTrigger", "ReviewItem", "ReviewQueue", "SessionReview", "STATUSES",
           "UNKNOWN", "validate_kind_name"]
