"""QA review: the queue of parts a person should look at (`queue`), its tables and records
(`records`), the COCO export of the labels (`coco_export`) and the hooks that start retraining
(`hooks`), the detector's channel stacks of exported coarse captures (`coarse_stack`). Import from here: `from inspector.review import ReviewQueue, LabelHook, …`."""
from .coarse_stack import CoarseStack, stacked_channels
from .coco_export import COCO_NAME
from .hooks import HookResult, LabelHook, RetrainTrigger
from ..kind_names import KindError, validate_kind_name
from .kinds import DefectKind, KindRegistry
from .queue import ReviewQueue, SessionReview
from .records import (ACTIONS, KINDS, LABEL_ACTIONS, OK, REVIEW_SCHEMA, STATUSES,
                      UNKNOWN, Label, ReviewItem)

__all__ = ["ACTIONS", "CoarseStack", "COCO_NAME", "DefectKind", "HookResult", "KindError", "KindRegistry", "KINDS", "LABEL_ACTIONS", "Label",
           "LabelHook", "OK", "REVIEW_SCHEMA", "RetrainTrigger", "ReviewItem", "ReviewQueue", "SessionReview", "STATUSES",
           "stacked_channels", "UNKNOWN", "validate_kind_name"]
