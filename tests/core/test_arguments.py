"""The shared settings mechanism (`core.arguments` over transformers' HfArgumentParser): every type, layers in
order, every problem in one error."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core.arguments import build_parser, load


class DemoError(ValueError):
    pass


@dataclass
class Demo:
    flag: bool = field(default=False, metadata={"help": "A switch."})
    count: int = field(default=3, metadata={"help": "A count, at least 1."})
    rate: float = field(default=0.5, metadata={"help": "A rate in [0, 1] (100% is 1)."})
    name: str = field(default="x", metadata={"help": "A name."})
    folder: Path = field(default=Path("data"), metadata={"help": "A folder."})
    limit: int | None = field(default=None, metadata={"help": "An optional limit."})
    note: str | None = field(default=None, metadata={"help": "An optional note."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Tags."})
    layers: list[str] | None = field(default=None, metadata={"help": "Optional layer names."})

    def problems(self) -> list[str]:
        problems = []
        if self.count < 1:
            problems.append(f"count must be at least 1, not {self.count}")
        if not 0 <= self.rate <= 1:
            problems.append(f"rate must be in [0, 1], not {self.rate}")
        return problems


@dataclass
class Other:
    colour: str = field(default="blue", metadata={"help": "A second group's setting."})


def demo(argv=(), env=None, config_file=False) -> Demo:
    return load([Demo], list(argv), env=env, env_prefix="DEMO_", config_file=config_file, error=DemoError,
                title="Invalid demo settings")[0]  # fmt: skip


def test_defaults_when_nothing_is_given():
    assert demo() == Demo()


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("flag", "YES", True), ("flag", "on", True), ("flag", "0", False), ("flag", "Off", False), ("flag", "", False),
        ("count", " 7 ", 7), ("rate", "1e-3", 1e-3), ("name", " spaced ", " spaced "), ("name", "none", "none"),
        ("folder", "/srv/x", Path("/srv/x")), ("limit", "none", None), ("limit", "NULL", None), ("limit", "5", 5),
        ("note", "null", None), ("tags", "a, b,,c ", ["a", "b", "c"]), ("layers", "none", None),
    ],
)  # fmt: skip
def test_every_field_type_reads_from_the_environment_and_flags(name, raw, expected):
    from_env = getattr(demo(env={f"DEMO_{name.upper()}": raw}), name)
    assert from_env == expected and type(from_env) is type(expected)
    from_flag = getattr(demo([f"--{name}={raw}"]), name)
    assert from_flag == expected and type(from_flag) is type(expected)


def test_layers_apply_in_order_and_flags_win(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("count: 6\ntags: [a, b]\nrate: 1\n", encoding="utf-8")
    env = {"DEMO_COUNT": "5", "DEMO_NAME": "env", "DEMO_FLAG": "yes", "OTHER": "1"}
    cfg = load([Demo], ["--config", str(config), "--count", "7", "--no-flag"], env=env, env_prefix="DEMO_",
               config_file=True)[0]  # fmt: skip
    assert cfg.count == 7  # flag > file > env
    assert cfg.name == "env" and cfg.tags == ["a", "b"] and cfg.rate == 1.0 and type(cfg.rate) is float
    assert cfg.flag is False  # --no-flag beats the environment's yes
    assert demo(["--flag"]).flag is True and demo(["--flag", "false"]).flag is False
    assert demo(["--config", str(config), "--layers", "x,y"], config_file=True).layers == ["x", "y"]


def test_every_problem_at_once_in_layer_order(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("colour: red\nrate: 7\ncount: [1]\n", encoding="utf-8")
    with pytest.raises(DemoError) as caught:
        demo(["--config", str(config), "--name", "n", "--rate", "fast"], {"DEMO_LIMIT": "lots"}, True)
    message = str(caught.value)
    # the environment's problems, the file's, the flags', then the checks, all in one message
    assert message.startswith("Invalid demo settings: limit cannot be 'lots' (expected int or none, from DEMO_LIMIT); ")
    assert f"unknown setting 'colour' in {config}" in message
    assert f"count cannot be [1] (expected int, in {config})" in message
    assert message.index("colour") < message.index("rate cannot be 'fast' (expected float, from --rate)")
    assert message.endswith(".")
    with pytest.raises(DemoError) as caught:
        demo(["--count", "0", "--rate", "2"])
    assert (
        str(caught.value) == "Invalid demo settings: count must be at least 1, not 0; rate must be in [0, 1], not 2.0."
    )


def test_groups_share_one_flat_parser_with_help_and_defaults():
    parser = build_parser([Demo, Other], config_file=True)
    text = parser.format_help()
    for name in ("flag", "count", "rate", "name", "folder", "limit", "tags", "colour"):
        assert "--" + name in text
    assert "--no-flag" in text and "--config FILE" in text and "100% is 1" in text and "(default: 3)" in text
    demo_cfg, other = load([Demo, Other], ["--colour", "red", "--count", "2"])
    assert (demo_cfg.count, other.colour) == (2, "red")
    with pytest.raises(ValueError, match="unknown flag --colour"):
        load([Demo], ["--colour", "red"])


def test_yaml_problems_raise_the_callers_error(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("- a\n", encoding="utf-8")
    with pytest.raises(DemoError, match="must hold a mapping"):
        demo(["--config", str(config)], config_file=True)
    with pytest.raises(DemoError, match="Cannot read the config file"):
        demo(["--config", str(tmp_path / "missing.yaml")], config_file=True)
