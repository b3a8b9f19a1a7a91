"""The model files a recipe names: where they may lie and whether they are the files meant.

A model path, relative to the recipe's folder or absolute, must resolve ('..' and symbolic links
followed) into one of the allowed model folders: the recipe's own folder, the project's models/ and
those named in $INSPECTOR_MODEL_ROOTS. Before a model is loaded its sha256 is checked against the
recipe's pin or, for an unpinned model, against its model card (<stem>.card.json); a swapped or
tampered file is refused with a ConfigError naming the file and both digests."""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

from .schema import MAX_DOCUMENT_BYTES, ConfigError, parse_document

MODEL_ROOTS_ENV = "INSPECTOR_MODEL_ROOTS"  # extra folders (os.pathsep-separated) models may be loaded from
PROJECT_MODELS = Path(__file__).resolve().parents[1] / "models"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def verified_model_path(name: str, pin: str | None, source: str, role: str, *, verify: bool = True) -> Path:
    """Where the role's model file lies. A pinned model is checked against its sha256 first: a
    swapped or tampered file is refused (ConfigError naming the file and both digests)."""
    path = confined_model_path(name, source, f"models.{role}")
    if not verify:
        return path
    field_name = f"models.{role}.file" if pin is not None else f"models.{role}"
    if not path.is_file():
        if pin is None and not path.exists():
            return path  # nothing to verify; the model loader says the file is missing
        raise ConfigError(source, field_name, f"{path}: no such model file" if not path.exists()
                          else f"{path} is not a regular file")
    try:
        found = file_sha256_hex(path)
    except OSError as exc:
        raise ConfigError(source, field_name, f"cannot read {path}: {exc.strerror or exc}") from None
    if pin is not None:
        if found != pin:
            raise ConfigError(source, f"models.{role}.sha256",
                              f"{path} has sha256 {found}, the recipe pins {pin}: "
                              f"the model file was changed or swapped; refusing to load it")
        return path
    card, expected = card_sha256(path)
    if expected is not None and found != expected:
        raise ConfigError(source, f"models.{role}",
                          f"{path} has sha256 {found}, its model card {card.name} says {expected}: "
                          f"the model file was changed or swapped; refusing to load it")
    return path


def file_sha256_hex(path: str | Path) -> str:
    """The full sha256 of a file (64 hex digits), read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_roots(source: str) -> list[Path]:
    """Folders a recipe's models may lie in: the recipe's own folder (and below it), the project's
    models/, and those named in $INSPECTOR_MODEL_ROOTS. A recipe held only in memory resolves its
    relative names against the working directory, so that is its own folder."""
    own = Path(source).parent if source not in ("<memory>", "") else Path.cwd()
    roots = [own, PROJECT_MODELS]
    roots += [Path(p) for p in os.environ.get(MODEL_ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return [root.resolve() for root in roots]


def confined_model_path(name: str, source: str, field_name: str) -> Path:
    """The model file `name` (relative to the recipe's folder, or absolute) as a path that lies in one of
    `model_roots` once '..' and symbolic links are resolved; ConfigError naming the field otherwise."""
    path = Path(name)
    if not path.is_absolute() and source not in ("<memory>", ""):
        path = Path(source).parent / path
    try:
        real = path.resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise ConfigError(source, field_name, f"cannot resolve model path {name!r}: {exc}") from None
    roots = model_roots(source)
    if not any(real == root or real.is_relative_to(root) for root in roots):
        raise ConfigError(source, field_name,
                          f"model path {name!r} lies outside the allowed model folders "
                          f"({', '.join(str(r) for r in roots)}; add one with ${MODEL_ROOTS_ENV})")
    return path


def card_sha256(model: Path) -> tuple[Path, str | None]:
    """The sha256 the model card beside `model` (<stem>.card.json) records, if it has one."""
    card = model.with_name(model.stem + ".card.json")
    try:
        with open(card, "rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
        data = parse_document(raw, str(card), "json")
    except (OSError, ConfigError):
        return card, None
    digest = data.get("sha256")
    return card, digest if isinstance(digest, str) and _SHA256.fullmatch(digest) else None

