"""One settings mechanism: a dataclass becomes CLI flags, and layers of raw values become a checked instance.

Used by the app's `core.settings.Settings` (defaults < `EXPERT_*` environment variables < flags) and
the training script's `train.config.TrainConfig` (defaults < the `--config` YAML file < flags).

- `build_parser(cls)`: one `--kebab-case` flag per field, help from `field.metadata["help"]` plus the
  default, `--flag/--no-flag` for bools, and `--config FILE` when the caller reads a YAML layer.
- `parse_value(field_type, raw)`: a raw value (a CLI or environment string, or a YAML value) in the
  field's type. Supported annotations: `bool`, `int`, `float`, `str`, `Path`, `list[X]` of those, and
  `X | None` of any of them. Bools read 1/0, true/false, yes/no, on/off (an empty string is false); an
  optional field reads `none`, `null`, an empty string or a YAML null as None; a list is a YAML list
  or comma-separated text (blank items dropped).
- `load(cls, argv, layers=..., error=...)`: defaults < each `Layer` in order < the YAML file (when
  `config_file`) < flags, then the dataclass's own `problems()`. Every problem (unknown keys of a
  file, values that do not parse, then the check's) is collected and raised once, as the caller's
  error class: "Invalid settings: a; b; c."

The annotations are resolved with `typing.get_type_hints`, so modules may use
`from __future__ import annotations`.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
NONE_WORDS = ("none", "null", "")
"""What an optional field reads as None (compared stripped and lower-cased)."""

_SCALARS: tuple[type, ...] = (bool, int, float, str, Path)
_CONFIG_DEST = "config"


@dataclass(frozen=True)
class FieldType:
    """A dataclass field's resolved type: a scalar, or a list of one, possibly optional."""

    name: str
    scalar: type
    is_list: bool = False
    optional: bool = False

    @property
    def label(self) -> str:
        """The type as a user reads it in a problem: 'int', 'list[str]', 'Path or none'."""
        text = f"list[{self.scalar.__name__}]" if self.is_list else self.scalar.__name__
        return text + " or none" if self.optional else text


class ParseProblem(ValueError):
    """A raw value that is not of its field's type; `describe(where)` is the sentence for the user."""

    def __init__(self, field_type: FieldType, raw: Any):
        self.field_type, self.raw = field_type, raw
        super().__init__(self.describe())

    def describe(self, where: str = "") -> str:
        value = "empty" if self.raw is None else repr(self.raw)
        detail = f"expected {self.field_type.label}" + (f", {where}" if where else "")
        return f"{self.field_type.name} cannot be {value} ({detail})"


@functools.cache
def field_types(cls: type) -> dict[str, FieldType]:
    """Every init field of the dataclass `cls`, by name, with its resolved type.

    Raises TypeError for an annotation this module cannot parse (a programming error, found at once).
    """
    hints = typing.get_type_hints(cls)
    return {f.name: _resolve(cls, f.name, hints[f.name]) for f in dataclasses.fields(cls) if f.init}


def _resolve(cls: type, name: str, hint: Any) -> FieldType:
    unsupported = TypeError(f"{cls.__name__}.{name}: the settings parser cannot read the type {hint!r}")
    optional = False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        members = typing.get_args(hint)
        rest = [m for m in members if m is not type(None)]
        if len(rest) != 1 or len(members) != 2:
            raise unsupported
        optional, hint = True, rest[0]
    if typing.get_origin(hint) is list:
        args = typing.get_args(hint)
        if len(args) != 1 or args[0] not in _SCALARS:
            raise unsupported
        return FieldType(name, args[0], is_list=True, optional=optional)
    if hint not in _SCALARS:
        raise unsupported
    return FieldType(name, hint, optional=optional)


def parse_value(field_type: FieldType, raw: Any) -> Any:
    """`raw` (a string from the CLI or the environment, or a YAML value) as the field's type.

    Raises ParseProblem naming the field, the value and the type expected.
    """
    if raw is None or (field_type.optional and isinstance(raw, str) and raw.strip().lower() in NONE_WORDS):
        if field_type.optional:
            return None
        raise ParseProblem(field_type, raw)
    try:
        if not field_type.is_list:
            return _scalar(field_type.scalar, raw)
        if isinstance(raw, str):
            items: list[Any] = raw.split(",")
        elif isinstance(raw, (list, tuple)):
            items = list(raw)
        else:
            raise ValueError(raw)
        parsed = []
        for item in items:
            if isinstance(item, str):
                item = item.strip()
                if not item:
                    continue  # "a,,b" and "a," read as two items
            parsed.append(_scalar(field_type.scalar, item))
        return parsed
    except (TypeError, ValueError):
        raise ParseProblem(field_type, raw) from None


def _scalar(kind: type, raw: Any) -> Any:
    """One value of a scalar type; raises ValueError when `raw` is not one."""
    if isinstance(raw, (list, tuple, dict, set)) or raw is None:
        raise ValueError(raw)
    if kind is bool:
        if isinstance(raw, bool):
            return raw
        lowered = str(raw).strip().lower()
        if lowered in TRUE_WORDS:
            return True
        if lowered in FALSE_WORDS:
            return False
        raise ValueError(raw)
    if isinstance(raw, bool):  # YAML's yes/no/on/off are bools: never a number, a text or a path
        raise ValueError(raw)
    if kind is int:
        if isinstance(raw, float):
            if not raw.is_integer():
                raise ValueError(raw)
            return int(raw)
        return int(raw) if isinstance(raw, int) else int(str(raw).strip())
    if kind is float:
        return float(raw) if isinstance(raw, (int, float)) else float(str(raw).strip())
    if kind is Path:
        text = os.fspath(raw) if isinstance(raw, os.PathLike) else str(raw)
        if not text.strip():
            raise ValueError(raw)
        return Path(text)
    if isinstance(raw, (str, int, float)):
        return str(raw)
    raise ValueError(raw)


def plain(value: Any) -> Any:
    """A value as YAML / JSON writes it: paths as strings, lists as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flag(name: str) -> str:
    """The CLI flag of a field: `--max-new-tokens` for `max_new_tokens`."""
    return "--" + name.replace("_", "-")


def build_parser(
    cls: type,
    *,
    prog: str | None = None,
    description: str | None = None,
    config_file: bool = False,
) -> argparse.ArgumentParser:
    """One flag per field of `cls` (help text and default shown), plus `--config FILE` when `config_file`.

    A flag not given parses to None, so `load` can tell it from a value that was given.
    """
    types_ = field_types(cls)
    parser = argparse.ArgumentParser(prog=prog, description=description)
    if config_file:
        if _CONFIG_DEST in types_:
            raise TypeError(f"{cls.__name__} has a field named {_CONFIG_DEST!r}, which --config would shadow")
        parser.add_argument(
            "--config", dest=_CONFIG_DEST, metavar="FILE", help="YAML file of settings; flags override it."
        )
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        text = f.metadata.get("help", "")
        if f.default is not dataclasses.MISSING:
            text += f" (default: {plain(f.default)!r})"
        text = text.replace("%", "%%")  # argparse formats help with %
        if types_[f.name].scalar is bool and not types_[f.name].is_list:
            parser.add_argument(
                flag(f.name), dest=f.name, action=argparse.BooleanOptionalAction, default=None, help=text
            )
        else:
            metavar = "A,B,..." if types_[f.name].is_list else None
            parser.add_argument(flag(f.name), dest=f.name, default=None, metavar=metavar, help=text)
    return parser


def _nowhere(key: str) -> str:
    return ""


@dataclass(frozen=True)
class Layer:
    """Raw values of some fields from one source, e.g. the environment or a YAML file.

    `where(key)` names the source in a problem ("in c.yaml", "from EXPERT_PORT"); with `strict`, a key
    that is no field is a problem (a file), otherwise it is ignored.
    """

    values: Mapping[str, Any]
    where: Callable[[str], str] = _nowhere
    strict: bool = False


def env_layer(cls: type, env: Mapping[str, str], prefix: str) -> Layer:
    """The fields of `cls` set by `<prefix><NAME>` variables of `env` (other variables are ignored)."""
    values = {name: env[prefix + name.upper()] for name in field_types(cls) if prefix + name.upper() in env}
    return Layer(values, where=lambda key: f"from {prefix}{key.upper()}")


def yaml_layer(path: str | os.PathLike, error: type[Exception] = ValueError) -> Layer:
    """The settings in a YAML file (a mapping of setting: value); unknown keys are problems.

    Raises `error` naming the file when it cannot be read, is not YAML, or holds no mapping.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"Cannot read the config file {path}: {exc.strerror or exc}.") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"The config file {path} is not valid YAML: {exc}.") from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"The config file {path} must hold a mapping of setting: value, not {type(data).__name__}.")
    return Layer({str(k): v for k, v in data.items()}, where=lambda key: f"in {path}", strict=True)


def problems_message(title: str, problems: Sequence[str]) -> str:
    """'<title>: a; b; c.'"""
    return f"{title}: " + "; ".join(problems) + "."


def load(
    cls: type[T],
    argv: Sequence[str] | None,
    *,
    layers: Sequence[Layer] = (),
    error: type[Exception] = ValueError,
    title: str = "Invalid settings",
    config_file: bool = False,
    parser: argparse.ArgumentParser | None = None,
    prog: str | None = None,
    description: str | None = None,
) -> T:
    """An instance of the dataclass `cls` from its defaults, `layers`, the `--config` file and `argv`.

    Lowest to highest: the defaults, each of `layers` in order, the YAML file named by `--config`
    (only with `config_file`), the flags in `argv` (None: `sys.argv[1:]`). The instance's
    `problems()` (a method returning one sentence per bad value), when it has one, is checked too.
    Raises `error("<title>: unknown keys; values that do not parse; check problems.")` once with
    every problem. `--help` and malformed command lines exit through argparse as usual.
    """
    if parser is None:
        parser = build_parser(cls, prog=prog, description=description, config_file=config_file)
    args = parser.parse_args(None if argv is None else list(argv))
    layers = list(layers)
    if config_file and getattr(args, _CONFIG_DEST, None) is not None:
        layers.append(yaml_layer(getattr(args, _CONFIG_DEST), error))
    cli = {name: getattr(args, name) for name in field_types(cls) if getattr(args, name, None) is not None}
    layers.append(Layer(cli, where=lambda key: f"from {flag(key)}"))

    known = field_types(cls)
    values: dict[str, Any] = {}
    unknown: list[str] = []
    bad: list[str] = []
    for layer in layers:
        for key, raw in layer.values.items():
            where = layer.where(key)
            if key not in known:
                if layer.strict:
                    unknown.append(f"unknown setting {key!r}" + (f" {where}" if where else ""))
                continue
            try:
                values[key] = parse_value(known[key], raw)
            except ParseProblem as exc:
                bad.append(exc.describe(where))
    instance = cls(**values)
    check = getattr(instance, "problems", None)
    problems = unknown + bad + (list(check()) if callable(check) else [])
    if problems:
        raise error(problems_message(title, problems))
    return instance
