"""Reading human-edited files into typed objects with errors that name the file, the field and
what was expected. Used by the station config and recipes; pure Python, no third-party schema lib."""
from __future__ import annotations

import json
import math
import re
import tomllib
from pathlib import Path
from typing import Any, Iterable, Sequence

MAX_DOCUMENT_BYTES = 1_000_000  # a recipe or station config is a few kB; refuse anything near a megabyte
MAX_DEPTH = 32  # nesting of tables/lists; the deepest real recipe is about 6
MAX_INT = 2 ** 53  # integers beyond this are no quantity a recipe or config means (and overflow SQLite)


class ConfigError(ValueError):
    """A config or recipe file is invalid; the message names the file, the field and the fix."""

    def __init__(self, source: str, field: str, problem: str):
        self.source, self.field, self.problem = source, field, problem
        field = _printable(field, 120)
        where = f"{_printable(source, 300)}: {field}" if field else _printable(source, 300)
        super().__init__(f"{where}: {_printable(problem, 2000)}")


def _printable(text: str, limit: int) -> str:
    """`text` on one line: control characters escaped, cut to `limit` characters (a key or value from
    a hostile file must not make a message span lines or pages)."""
    text = str(text)
    if any(ord(c) < 32 or ord(c) == 127 for c in text):
        text = "".join(c if ord(c) >= 32 and ord(c) != 127 else repr(c)[1:-1] for c in text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def load_document(path: str | Path) -> dict[str, Any]:
    """Parse a .toml or .json file into a dict. Everything wrong with it — unreadable, too large, not
    UTF-8, nested too deeply, a syntax error — becomes one ConfigError naming the file. Size and depth
    are checked before the parser runs, so no input makes it recurse or allocate without bound."""
    path = Path(path)
    source = str(path)
    try:
        if not path.is_file():
            problem = "is a directory, expected a file" if path.is_dir() else (
                "no such file" if not path.exists() else "not a regular file")
            raise ConfigError(source, "", problem)
        with open(path, "rb") as handle:
            raw = handle.read(MAX_DOCUMENT_BYTES + 1)
    except OSError as exc:
        raise ConfigError(source, "", f"cannot read: {exc.strerror or exc}") from None
    return parse_document(raw, source, "json" if path.suffix.lower() == ".json" else "toml")


def parse_document(raw: bytes | str, source: str, kind: str = "toml") -> dict[str, Any]:
    """`load_document` on bytes or text already in memory (`kind` "json" or "toml")."""
    if len(raw) > MAX_DOCUMENT_BYTES:
        raise ConfigError(source, "", f"larger than {MAX_DOCUMENT_BYTES // 1_000_000} MB; "
                                      f"a recipe or station config is a few kB")
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ConfigError(source, "", f"not UTF-8 text (byte {exc.start}); is it a binary file?") from None
    else:
        text = raw
    if "\x00" in text:
        raise ConfigError(source, "", "contains NUL characters; is it a binary file?")
    label = "JSON" if kind == "json" else "TOML"
    depth = _bracket_depth(text, _JSON_TOKENS if kind == "json" else _TOML_TOKENS)
    if depth > MAX_DEPTH:
        raise ConfigError(source, "", f"nested {depth} levels deep, at most {MAX_DEPTH} allowed")
    try:
        data = json.loads(text, parse_constant=_no_constant) if kind == "json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(source, "", f"not valid {label}: {exc}") from None
    except ValueError as exc:  # _no_constant, and int() of a huge digit string
        raise ConfigError(source, "", f"not valid {label}: {exc}") from None
    except RecursionError:
        raise ConfigError(source, "", f"nested too deeply (at most {MAX_DEPTH} levels)") from None
    if not isinstance(data, dict):
        raise ConfigError(source, "", "expected a table/object at the top level")
    depth = data_depth(data)
    if depth > MAX_DEPTH:  # TOML dotted keys and [a.b.c] headers nest without brackets
        raise ConfigError(source, "", f"nested {depth} levels deep, at most {MAX_DEPTH} allowed")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number a recipe or config may hold")


# Strings are skipped (brackets inside them do not nest), brackets are counted. Each pattern tokenises
# a valid document exactly as its parser does up to the first syntax error, so the depth found is the
# depth the parser would reach before it stops.
_JSON_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_TOML_TOKENS = re.compile(r'#[^\n]*|"""[\s\S]*?"""|\'\'\'[\s\S]*?\'\'\'|"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|[\[\]{}]')


def _bracket_depth(text: str, tokens: re.Pattern[str]) -> int:
    depth = deepest = 0
    for match in tokens.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > MAX_DEPTH:
                    return deepest
        elif token in "]}":
            depth = max(0, depth - 1)
    return deepest


def data_depth(data: Any) -> int:
    """Nesting depth of parsed data, without recursion (1 for a flat table)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


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
            if abs(value) > 1e300:
                raise self.error(key, f"expected a finite number, got {_short(value)}")
            value = float(value)
        if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
            raise self.error(key, f"expected {_kind_name(kind)}, got {_describe(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(key, f"expected a finite number, got {value!r}")
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT and max_value is None:
            raise self.error(key, f"expected an integer within ±2^53, got {_short(value)}")
        if choices is not None:
            allowed = list(choices)
            if value not in allowed:
                raise self.error(key, f"expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        if positive and not value > 0:
            raise self.error(key, f"expected a positive number, got {value!r}")
        both = min_value is not None and max_value is not None
        span = f" (range {_number(min_value)} to {_number(max_value)})" if both else ""  # type: ignore[arg-type]
        if min_value is not None and value < min_value:
            raise self.error(key, f"expected ≥ {_number(min_value)}{span}, got {_short(value)}")
        if max_value is not None and value > max_value:
            raise self.error(key, f"expected ≤ {_number(max_value)}{span}, got {_short(value)}")
        return value

    def get_list(self, key: str, max_items: int, default: Any = ...) -> list[Any]:
        """A list of at most `max_items` entries."""
        value = self.get(key, list, default)
        if len(value) > max_items:
            raise self.error(key, f"{len(value)} entries, at most {max_items} allowed")
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
        try:
            numbers = tuple(float(v) for v in value)
        except OverflowError:
            numbers = (math.inf,)
        if not all(math.isfinite(v) for v in numbers):
            raise self.error(key, f"expected {length} finite numbers, got {_describe(value)}")
        return numbers

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
    return f"{type(value).__name__} {_short(value)}"


def _short(value: Any) -> str:
    """repr of a value, cut to 60 characters (a 10^5-digit integer is not printed whole)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_INT:
        return f"an integer of about {int(abs(value).bit_length() * 0.30103) + 1} digits"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _number(value: float) -> str:
    return f"{value:g}" if isinstance(value, float) and abs(value) >= 1e6 else str(value)


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
