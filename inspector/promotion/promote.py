"""Promotion and rollback: the production recipe moves to a new version, never edited in place.

`promote` puts a candidate recipe into production only when the gate passed for exactly that recipe
(its hash) and its model files are still the ones pinned (sha256). The candidate models are copied
beside the production models under versioned names (`detector-1.1.0.onnx`, never overwritten with
other content); the candidate recipe, with those file names, becomes the production recipe's next
version — same thresholds, grey band and pins the gate scored. The previous version is kept as
`<name>.v<N>.json` (recipe_edit's history), the new file replaces the old atomically, and one audit
row holds old → new models, the changed fields and the reason. `rollback` restores the previous
version's content as a new version number, audited the same way.
"""
from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..access import AccessControl, Session
from ..recipe import Recipe, file_sha256_hex
from ..recipe_edit import FieldChange, backup_path, field_changes, write_atomic
from ..schema import ConfigError
from .candidate import MODEL_ROLES, relative_name, encode_recipe, model_version
from .figures import Comparison, GateRule, gate

_VERSION_NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z._+-]*")


class PromotionRefused(ValueError):
    """The gate failed, the comparison is stale, a file conflicts, or the request is incomplete."""


@dataclass(frozen=True)
class RecipeChange:
    """A promotion or a rollback: the production recipe as written, and what changed."""
    recipe: Recipe
    previous_version: int
    backup: Path  # where the previous version is kept
    models: dict[str, tuple[str, str]]  # role → (old "file@version", new "file@version")
    changes: tuple[FieldChange, ...]
    message: str


Promotion = RecipeChange


def versioned_name(role: str, version: str) -> str:
    """detector + 1.1.0 → detector-1.1.0.onnx"""
    if not _VERSION_NAME.fullmatch(version or ""):
        raise PromotionRefused(f"the candidate {role} carries no usable version in its metadata ({version!r}); "
                               f"a promoted model is named by its version")
    return f"{role}-{version}.onnx"


def promote(session: Session, access: AccessControl, candidate_recipe: str | Path, comparison: Comparison, *,
            recipe_path: str | Path, reason: str, rule: GateRule = GateRule()) -> RecipeChange:
    access.check(session, "promote_model")  # a live session issued by `access`, allowed to promote
    reason = _reason(reason)
    result = gate(comparison, rule)
    if not result.passed:
        raise PromotionRefused(f"promotion refused, {result.message()}")
    candidate = _load(candidate_recipe, "the candidate recipe")
    if not comparison.candidate_recipe_hash or candidate.hash != comparison.candidate_recipe_hash:
        scored = comparison.candidate_recipe_hash or "(none)"
        raise PromotionRefused(f"promotion refused: the gate scored recipe {scored}, {candidate_recipe} is "
                               f"{candidate.hash}; compare this candidate recipe first")
    pins = {}
    for role in MODEL_ROLES:
        pin = candidate.model_sha256(role)
        if pin is None:
            raise PromotionRefused(f"promotion refused: the candidate recipe does not pin its {role} by sha256")
        _load_model_path(candidate, role)  # refuses a changed or missing file
        pins[role] = pin
    if comparison.candidate_models and comparison.candidate_models != pins:
        raise PromotionRefused("promotion refused: the candidate models differ from those compared; compare again")
    recipe_path = Path(recipe_path)
    production = _load(recipe_path, "the production recipe")
    if production.hash != comparison.production_recipe_hash:
        raise PromotionRefused(f"promotion refused: the production recipe changed since the comparison "
                               f"({comparison.production_recipe_hash or '(not recorded)'} → {production.hash}); "
                               f"compare again")
    if candidate.id != production.id:
        raise PromotionRefused(f"promotion refused: the candidate recipe is {candidate.id!r}, production is "
                               f"{production.id!r}")

    # plan every file before writing any
    entries: dict[str, dict[str, str]] = {}
    copies: list[tuple[Path, Path]] = []
    for role in MODEL_ROLES:
        src = candidate.model_path(role, verify=False)
        if pins[role] == _production_digest(production, role):  # this model does not change
            entries[role] = {"file": production.models[role], "sha256": pins[role]}
            continue
        dst = production.model_path(role, verify=False).resolve().parent / versioned_name(role, model_version(src))
        if dst.exists() and file_sha256_hex(dst) != pins[role]:
            raise PromotionRefused(f"promotion refused: {dst} exists with other content (sha256 "
                                   f"{file_sha256_hex(dst)[:16]}…, the candidate {role} is {pins[role][:16]}…); "
                                   f"give the candidate a new version")
        entries[role] = {"file": relative_name(dst, recipe_path.parent), "sha256": pins[role]}
        if not dst.exists():
            copies.append((src, dst))
    data = candidate.to_dict()
    data["recipe"]["version"] = production.version + 1
    data["models"] = entries
    new = Recipe.from_dict(data, source=str(recipe_path))

    for src, dst in copies:
        _copy_atomic(src, dst)
        for card in _cards(src):
            _copy_atomic(card, dst.with_name(dst.stem + card.name[len(src.stem):]))
    return _write_version(session, access, recipe_path, production, new, data,
                          f"{reason} [{'; '.join(result.checks)}]", action="promotion",
                          extra={"candidate_recipe": str(candidate_recipe), "candidate_hash": candidate.hash})


def rollback(session: Session, access: AccessControl, recipe_path: str | Path, reason: str) -> RecipeChange:
    """Write the previous version's content (kept as `<name>.v<N-1>.json`) as a new version."""
    access.check(session, "promote_model")
    reason = _reason(reason)
    recipe_path = Path(recipe_path)
    current = _load(recipe_path, "the production recipe")
    previous_path = backup_path(recipe_path, current.version - 1)
    if current.version < 2 or not previous_path.is_file():
        raise PromotionRefused(f"rollback refused: no previous version of {recipe_path} ({previous_path.name} missing)")
    previous = _load(previous_path, "the previous version")
    data = previous.to_dict()
    data["recipe"]["version"] = current.version + 1
    new = Recipe.from_dict(data, source=str(recipe_path))  # model paths resolve beside the production file
    for role in MODEL_ROLES:
        _load_model_path(new, role)
    return _write_version(session, access, recipe_path, current, new, data, reason, action="rollback",
                          extra={"restores_version": previous.version})


# -- helpers -----------------------------------------------------------------------------------------
def _reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise PromotionRefused("a promotion or rollback needs a reason (it goes into the audit log)")
    return reason.strip()


def _load(path: str | Path, what: str) -> Recipe:
    try:
        return Recipe.load(path)
    except (OSError, ValueError) as exc:
        raise PromotionRefused(f"cannot read {what}: {exc}") from None


def _load_model_path(recipe: Recipe, role: str) -> Path:
    try:
        path = recipe.model_path(role)
    except ConfigError as exc:
        raise PromotionRefused(f"refused: {exc}") from None
    if not path.is_file():
        raise PromotionRefused(f"refused: {role} model {path} is missing")
    return path


def _production_digest(recipe: Recipe, role: str) -> str | None:
    pin = recipe.model_sha256(role)
    if pin is not None:
        return pin
    path = recipe.model_path(role, verify=False)
    return file_sha256_hex(path) if path.is_file() else None


def _models_text(recipe: Recipe) -> dict[str, dict[str, Any]]:
    out = {}
    for role in MODEL_ROLES:
        path = recipe.model_path(role, verify=False)
        out[role] = {"file": recipe.models[role], "sha256": _production_digest(recipe, role),
                     "version": model_version(path)}
    return out


def _write_version(session: Session, access: AccessControl, path: Path, old: Recipe, new: Recipe,
                   data: dict[str, Any], reason: str, *, action: str, extra: dict[str, Any]) -> RecipeChange:
    """Keep the old file as its version backup, replace the recipe atomically, audit; put the old
    file back when the audit row cannot be written."""
    changes = tuple(field_changes(old, new))
    previous = path.read_bytes()
    backup = backup_path(path, old.version)
    write_atomic(backup, previous)
    write_atomic(path, encode_recipe(data))
    old_models, new_models = _models_text(old), _models_text(new)
    try:
        access.record(session, "promote_model", f"recipe:{new.id}",
                      {"version": old.version, "hash": old.hash, "models": old_models,
                       "fields": {c.path: c.old for c in changes}},
                      {"version": new.version, "hash": new.hash, "models": new_models, "action": action, **extra,
                       "fields": {c.path: c.new for c in changes}},
                      reason=reason)
    except BaseException:
        write_atomic(path, previous)
        raise
    models = {role: (f"{old_models[role]['file']}@{old_models[role]['version']}",
                     f"{new_models[role]['file']}@{new_models[role]['version']}")
              for role in MODEL_ROLES if old_models[role] != new_models[role]}
    moved = ", ".join(f"{role} {a} → {b}" for role, (a, b) in models.items()) or "models unchanged"
    message = f"{action}: recipe {new.id} v{old.version} → v{new.version} ({moved}; {len(changes)} field(s) changed)"
    return RecipeChange(Recipe.load(path), old.version, backup, models, changes, message)


def _copy_atomic(src: Path, dst: Path) -> None:
    tmp = dst.with_name(f".{dst.name}.promote.tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)


def _cards(model: Path) -> list[Path]:
    return [p for p in (model.with_name(model.stem + ".card.json"), model.with_name(model.stem + ".card.md"))
            if p.is_file()]
