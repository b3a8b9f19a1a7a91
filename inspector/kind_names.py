"""What may name a defect kind (recipes, models, review labels): 2–32 characters of a–z, 0–9 and
'_', starting with a letter; `ok`, `unknown`, `clean_spot` and `any` are words of the system, not kinds."""
from __future__ import annotations

import re
from typing import Any

KIND_NAME = re.compile(r"[a-z][a-z0-9_]{1,31}")
RESERVED = ("ok", "unknown", "clean_spot", "any")


class KindError(ValueError):
    pass


def kind_name_problem(name: Any) -> str | None:
    """Why `name` cannot name a defect kind, or None when it can."""
    if not isinstance(name, str) or not KIND_NAME.fullmatch(name):
        return f"name {name!r} must be 2–32 characters of a–z, 0–9 and '_', starting with a letter"
    if name in RESERVED:
        return f"{name!r} is reserved ({', '.join(RESERVED)} are not defect kinds)"
    return None


def validate_kind_name(name: Any, where: str = "defect kind") -> str:
    problem = kind_name_problem(name)
    if problem:
        raise KindError(f"{where}: {problem}")
    return name
