"""Reading human-edited files into typed objects with errors that name the file, the field and
what was expected. Used by the station config and recipes; pure Python, no third-party schema lib."""
from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any, Iterable, Sequence


class ConfigError(ValueError):
    """A config or recipe file is invalid; the message names the file, the field and the fix."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field, self.problem = source, field, problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


def load_document(path: str | Path) -> dict[str, Any]:
    """Parse a .toml or .json file into a dict; syntax errors become ConfigError naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(str(path), "", f"not valid {path.suffix.lstrip('.').upper() or 'TOML'}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(str(path), "", "expected a table/object at the top level")
    return data


class Section:
    """A view on one table of a document that knows its dotted path, for precise messages."""

    def __init__(self, data: Any, source: str, path: str = ""):
        if not isinstance(data, dict):
            raise ConfigError(source, path or "(top)", f"expected a table, got {_describe(data)}")
        self.data, self.source, self.path = data, source, path
        self._used: set[str] = set()

    def _field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(self.source, self._field(key), problem)

    def has(self, key: str) -> bool:
        return key in self.data

    def section(self, key: str, *, optional: bool = False) -> "Section | None":
        self._used.add(key)
        if key not in self.data:
            if optional:
                return None
            raise self.error(key, "missing table")
        return Section(self.data[key], self.source, self._field(key))

    def sections(self, key: str) -> dict[str, "Section"]:
        """A table of named tables, e.g. [cameras.coarse], [cameras.fine]."""
        parent = self.section(key)
        assert parent is not None
        return {name: Section(value, self.source, parent._field(name)) for name, value in parent.data.items()}

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = ..., *,
            choices: Iterable[Any] | None = None, min_value: float | None = None,
            max_value: float | None = None, positive: bool = False) -> Any:
        self._used.add(key)
        if key not in self.data:
            if default is ...:
                raise self.error(key, f"missing; expected {_kind_name(kind)}")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.error(key, f"expected {_kind_name(kind)}, got {_describe(value)}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self.error(key, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        if positive and not value > 0:
            raise self.error(key, f"expected a positive number, got {value!r}")
        if min_value is not None and value < min_value:
            raise self.error(key, f"expected ≥ {min_value}, got {value!r}")
        if max_value is not None and value > max_value:
            raise self.error(key, f"expected ≤ {max_value}, got {value!r}")
        return value

    def get_vector(self, key: str, length: int, default: Sequence[float] | None = None) -> tuple[float, ...]:
        self._used.add(key)
        if key not in self.data:
            if default is None:
                raise self.error(key, f"missing; expected a list of {length} numbers")
            return tuple(float(v) for v in default)
        value = self.data[key]
        if (not isinstance(value, list) or len(value) != length
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
            raise self.error(key, f"expected a list of {length} numbers, got {_describe(value)}")
        return tuple(float(v) for v in value)

    def reject_unknown(self) -> None:
        """Typos must not pass silently: a key nobody read is an error."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], f"unknown field (known here: {', '.join(sorted(self._used)) or 'none'})")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true/false",
             list: "a list", dict: "a table"}
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}"


def dump_toml(data: dict[str, Any]) -> str:
    """TOML for the nested tables of scalars and lists that configs and recipes use."""
    lines: list[str] = []
    _toml_table(data, [], lines)
    return "\n".join(lines).strip() + "\n"


def _toml_table(table: dict[str, Any], path: list[str], lines: list[str]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, dict)}
    tables = {k: v for k, v in table.items() if isinstance(v, dict)}
    if path and (scalars or not tables):
        lines.append("")
        lines.append("[" + ".".join(_toml_key(p) for p in path) + "]")
    for key, value in scalars.items():
        lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for key, value in tables.items():
        _toml_table(value, [*path, key], lines)


def _toml_key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")
