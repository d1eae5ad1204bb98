"""Settings from defaults, environment variables, a YAML file and flags, on transformers' `HfArgumentParser`.

The app (`core.settings`: groups of settings, defaults < `EXPERT_*` environment variables < flags) and the
training script (`train.config`: defaults < the `--config` YAML file < flags) both load through `load`:

- One flag per field of every dataclass given, `--name` and `--kebab-name`, help from `field.metadata["help"]`
  with the default (HfArgumentParser). Bools take `--flag`, `--flag false` and `--no-flag`.
- A value is read by the field's type: `bool` reads 1/0, true/false, yes/no, on/off (an empty string is false);
  `X | None` reads none, null or an empty string as None; `list[X]` reads comma-separated text or a YAML list.
- A value that does not read, an unknown key of the YAML file, and every problem the dataclasses' own
  `problems()` find are collected and raised once, as the caller's error: "Invalid settings: a; b; c."

What this adds to HfArgumentParser is only that: no parse error exits at the first bad value, and environment
and YAML layers are argparse defaults, so a flag always wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")
NONE_WORDS = ("none", "null", "")


def problems_message(title: str, problems: Sequence[str]) -> str:
    """'<title>: a; b; c.'"""
    return f"{title}: " + "; ".join(problems) + "."


def plain(value: Any) -> Any:
    """A value as YAML / JSON writes it: paths as strings, lists as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True)
class _Type:
    """A field's type as the reader needs it: a scalar, or a list of one, possibly optional."""

    scalar: type
    is_list: bool = False
    optional: bool = False

    @classmethod
    def of(cls, hint: Any) -> _Type:
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            optional, hint = len(args) < len(typing.get_args(hint)), args[0]
        if typing.get_origin(hint) is list:
            return cls(typing.get_args(hint)[0], True, optional)
        return cls(hint, False, optional)

    @property
    def label(self) -> str:
        text = f"list[{self.scalar.__name__}]" if self.is_list else self.scalar.__name__
        return text + " or none" if self.optional else text

    def read(self, raw: str) -> Any:
        """A string (flag, environment, YAML text) in this type; ValueError when it does not read."""
        if self.optional and raw.strip().lower() in NONE_WORDS:
            return None
        if self.is_list:
            return [self._scalar(item.strip()) for item in raw.split(",") if item.strip()]
        return self._scalar(raw)

    def _scalar(self, raw: str) -> Any:
        if self.scalar is str:
            return raw
        text = raw.strip()
        if self.scalar is bool:
            if text.lower() in TRUE_WORDS:
                return True
            if text.lower() in FALSE_WORDS:
                return False
            raise ValueError(text)
        return self.scalar(text)

    def accepts(self, value: Any) -> bool:
        """Whether a typed YAML value already is of this type."""
        if value is None:
            return self.optional
        if self.is_list:
            return isinstance(value, list) and all(_Type(self.scalar).accepts(v) for v in value)
        if self.scalar is float:
            return isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.scalar is int:
            return isinstance(value, int) and not isinstance(value, bool)
        return isinstance(value, self.scalar)


@dataclass(frozen=True)
class _Unread:
    """A value that did not read as its field's type (collected, reported with every other problem)."""

    raw: str


class _Parser(HfArgumentParser):
    """HfArgumentParser whose values never stop the parse: one that does not read becomes `_Unread`."""

    def __init__(self, groups: Sequence[type], **kwargs: Any):
        super().__init__(list(groups), **kwargs)
        self.types: dict[str, _Type] = {}
        for group in groups:
            hints = typing.get_type_hints(group)
            for f in dataclasses.fields(group):
                if f.init:
                    self.types[f.name] = _Type.of(hints[f.name])
        for action in self._actions:
            if action.help and action.dest in self.types:
                action.help = action.help.replace("%", "%%")  # argparse formats help with %
            kind = self.types.get(action.dest)
            if kind is None or isinstance(action, argparse._StoreFalseAction):  # a `--no-flag`
                continue
            action.type = self._reader(kind)
            if kind.is_list:
                action.nargs = None  # comma-separated, as in the environment
        for group in groups:  # `--no-flag` for every bool (HfArgumentParser adds it only to those that default to True)
            for f in dataclasses.fields(group):
                if self.types.get(f.name) == _Type(bool) and f.default is not True:
                    self.add_argument(
                        f"--no_{f.name}",
                        f"--no-{f.name.replace('_', '-')}",
                        action="store_false",
                        dest=f.name,
                        default=argparse.SUPPRESS,
                        help=f"Turn {f.name} off.",
                    )

    @staticmethod
    def _reader(kind: _Type):
        def read(raw: str) -> Any:
            try:
                return kind.read(raw)
            except (TypeError, ValueError):
                return _Unread(raw)

        read.__name__ = kind.label  # argparse names the type in its own messages
        return read

    def flags(self, name: str) -> tuple[str, ...]:
        return tuple(s for a in self._actions if a.dest == name for s in a.option_strings)


def load(
    groups: Sequence[type],
    argv: Sequence[str] | None,
    *,
    env: Mapping[str, str] | None = None,
    env_prefix: str = "",
    config_file: bool = False,
    error: type[Exception] = ValueError,
    title: str = "Invalid settings",
    prog: str | None = None,
    description: str | None = None,
) -> list[Any]:
    """One instance per dataclass in `groups`, from defaults < `env_prefix` + NAME environment variables (when
    `env` is given) < the `--config` YAML file (when `config_file`) < flags. Each instance's `problems()` (when it
    has one) is checked. Raises `error` naming every problem at once; `--help` prints the flags and exits."""
    argv = [] if argv is None else list(argv)
    parser = build_parser(groups, config_file=config_file, prog=prog, description=description)
    problems: list[tuple[int, str]] = []  # (layer, sentence): the environment's, the file's, then the flags'
    sources: dict[str, tuple[int, str]] = {}
    if env is not None:
        for name in parser.types:
            key = env_prefix + name.upper()
            if key in env:
                parser.set_defaults(**{name: env[key]})
                sources[name] = (0, f"from {key}")
    if config_file:
        path = parser.parse_known_args(argv)[0].config
        if path is not None:
            for name, value in read_yaml(path, error).items():
                kind = parser.types.get(name)
                if kind is None:
                    problems.append((1, f"unknown setting {name!r} in {path}"))
                elif isinstance(value, str) or kind.accepts(value):
                    if kind.scalar is float and not kind.is_list and isinstance(value, int):
                        value = float(value)
                    parser.set_defaults(**{name: value})
                    sources[name] = (1, f"in {path}")
                else:
                    problems.append((1, f"{name} cannot be {value!r} (expected {kind.label}, in {path})"))
    namespace, unknown = parser.parse_known_args(argv)
    problems += [(2, f"unknown flag {arg}") for arg in unknown if arg.startswith("-")]
    given = {a.split("=", 1)[0] for a in argv if a.startswith("--")}
    for name, kind in parser.types.items():
        value = getattr(namespace, name, None)
        if isinstance(value, _Unread):
            flag = next((f for f in parser.flags(name) if f in given), None)
            layer, where = (2, f"from {flag}") if flag else sources.get(name, (2, ""))
            problems.append((layer, f"{name} cannot be {value.raw!r} (expected {kind.label}, {where})"))
            delattr(namespace, name)  # checked below at its default, so the checks still see every other value
    instances = [
        group(
            **{
                f.name: getattr(namespace, f.name)
                for f in dataclasses.fields(group)
                if f.init and hasattr(namespace, f.name)
            }
        )
        for group in groups
    ]
    found = [text for _, text in sorted(problems, key=lambda p: p[0])]
    found += [text for instance in instances for text in (instance.problems() if hasattr(instance, "problems") else [])]
    if found:
        raise error(problems_message(title, found))
    return instances


def build_parser(
    groups: Sequence[type], config_file: bool = False, prog: str | None = None, description: str | None = None
) -> _Parser:
    """The parser: one flag per field (help and default shown), plus `--config FILE` when `config_file`."""
    parser = _Parser(groups, prog=prog, description=description)
    if config_file:
        parser.add_argument("--config", metavar="FILE", default=None, help="YAML file of settings; flags override it.")
    return parser


def read_yaml(path: str | os.PathLike, error: type[Exception] = ValueError) -> dict[str, Any]:
    """The settings in a YAML file (a mapping of setting: value). Raises `error` naming the file when it cannot
    be read, is not YAML, or holds no mapping."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"Cannot read the config file {path}: {exc.strerror or exc}.") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise error(f"The config file {path} is not valid YAML: {exc}.") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise error(f"The config file {path} must hold a mapping of setting: value, not {type(data).__name__}.")
    return data
