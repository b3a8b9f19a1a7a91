"""Comparing a candidate recipe with production, the regression gate, promotion and rollback.

- `gate_split`: review labels split once, by part, into a train side and a gate side (stored);
- `candidate`: a candidate model pair and the recipe it would run with (pins + its thresholds);
- `archive_replay`: the gate side of the review set judged again from archived images;
- `figures`: part-level figures per set, the held-out report reader, the gate;
- `promote`: a new production recipe version with versioned model files; rollback.
"""
from .archive_replay import LabelledPart, archived_shot_positions, compare_on_review_set, judge_archive, labelled_parts
from .candidate import (CANDIDATE_RECIPE, MODEL_ROLES, ModelPair, candidate_classes, model_version,
                        write_candidate_recipe)
from .figures import (HELDOUT_LOT, REVIEW_SET, SETS, Comparison, GateResult, GateRule, SetFigures, eval_command,
                      figures_from_eval_report, gate)
from .gate_split import GATE, GATE_SHARE, TRAIN, GateSplit, SplitRule, keep_train_side
from .promote import Promotion, PromotionRefused, RecipeChange, promote, rollback, versioned_name

__all__ = ["CANDIDATE_RECIPE", "Comparison", "GATE", "GATE_SHARE", "GateResult", "GateRule", "GateSplit", "HELDOUT_LOT",
           "LabelledPart", "MODEL_ROLES", "ModelPair", "Promotion", "PromotionRefused", "REVIEW_SET", "RecipeChange",
           "SETS", "SetFigures", "SplitRule", "TRAIN", "archived_shot_positions", "candidate_classes",
           "compare_on_review_set", "eval_command", "figures_from_eval_report", "gate", "judge_archive",
           "keep_train_side", "labelled_parts", "model_version", "promote", "rollback", "versioned_name",
           "write_candidate_recipe"]
