"""The shared settings mechanism (every type, layers in order, every problem in one error); atomic adapter output."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from core import config_fields, files
from core.config_fields import FieldType, Layer, ParseProblem, build_parser, env_layer, field_types, load, parse_value
from train.output import write_atomically


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
    out: Path | None = field(default=None, metadata={"help": "An optional folder."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Tags."})
    layers: list[str] | None = field(default=None, metadata={"help": "Optional layer names."})

    def problems(self) -> list[str]:
        problems = []
        if self.count < 1:
            problems.append(f"count must be at least 1, not {self.count}")
        if not 0 <= self.rate <= 1:
            problems.append(f"rate must be in [0, 1], not {self.rate}")
        return problems


def demo(argv=(), layers=(), config_file=False) -> Demo:
    return load(
        Demo, list(argv), layers=layers, error=DemoError, title="Invalid demo settings", config_file=config_file
    )


def test_annotations_are_resolved_under_future_annotations():
    types = field_types(Demo)
    assert types["flag"] == FieldType("flag", bool)
    assert types["folder"] == FieldType("folder", Path)
    assert types["limit"] == FieldType("limit", int, optional=True)
    assert types["out"] == FieldType("out", Path, optional=True)
    assert types["tags"] == FieldType("tags", str, is_list=True)
    assert types["layers"] == FieldType("layers", str, is_list=True, optional=True)
    assert types["layers"].label == "list[str] or none"


def test_unsupported_annotation_is_a_type_error():
    @dataclass
    class Odd:
        mapping: dict = field(default_factory=dict)

    with pytest.raises(TypeError, match=r"Odd\.mapping"):
        field_types(Odd)


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("flag", "1", True),
        ("flag", "YES", True),
        ("flag", "on", True),
        ("flag", "true", True),
        ("flag", "0", False),
        ("flag", "no", False),
        ("flag", "Off", False),
        ("flag", "false", False),
        ("flag", "", False),
        ("flag", True, True),
        ("count", " 7 ", 7),
        ("count", 7, 7),
        ("count", 7.0, 7),
        ("rate", "1e-3", 1e-3),
        ("rate", 2, 2.0),
        ("name", "hello, world", "hello, world"),
        ("name", "", ""),
        ("name", "none", "none"),  # not optional: 'none' is a value like any other
        ("name", 12, "12"),
        ("folder", "/srv/x", Path("/srv/x")),
        ("limit", "none", None),
        ("limit", "NULL", None),
        ("limit", "", None),
        ("limit", None, None),
        ("limit", "5", 5),
        ("note", "Be brief.", "Be brief."),
        ("note", "null", None),
        ("out", "a/b", Path("a/b")),
        ("out", "None", None),
        ("tags", "a, b,,c ", ["a", "b", "c"]),
        ("tags", ["a", " b "], ["a", "b"]),
        ("tags", "", []),
        ("layers", "qkv_proj,o_proj", ["qkv_proj", "o_proj"]),
        ("layers", ["qkv_proj"], ["qkv_proj"]),
        ("layers", "none", None),
        ("layers", None, None),
    ],
)
def test_every_field_type_parses(name, raw, expected):
    value = parse_value(field_types(Demo)[name], raw)
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("flag", "maybe"),
        ("flag", 2),
        ("count", "many"),
        ("count", "1.5"),
        ("count", 1.5),
        ("count", True),  # YAML `yes` is no number
        ("count", None),  # YAML null for a required value
        ("rate", "fast"),
        ("rate", False),
        ("name", ["a"]),
        ("name", True),
        ("folder", ""),
        ("folder", None),
        ("limit", "lots"),
        ("tags", {"a": 1}),
        ("tags", 3),
    ],
)
def test_bad_values_name_field_value_and_type(name, raw):
    with pytest.raises(ParseProblem) as caught:
        parse_value(field_types(Demo)[name], raw)
    assert str(caught.value).startswith(f"{name} cannot be ")
    assert "(expected " in str(caught.value)


def test_defaults_when_nothing_is_given():
    assert demo() == Demo()


def test_layers_apply_in_order_and_flags_win():
    env = Layer({"count": "5", "rate": "0.1", "name": "env"})
    file = Layer({"count": 6, "tags": ["a", "b"]})
    cfg = demo(["--count", "7", "--no-flag"], layers=[Layer({"flag": "yes"}), env, file])
    assert cfg.count == 7  # flag > file > env
    assert cfg.rate == 0.1 and cfg.name == "env"  # env > default
    assert cfg.tags == ["a", "b"]  # file > default
    assert cfg.flag is False  # --no-flag beats the lower layer's yes
    assert demo(layers=[env, file]).count == 6  # the later layer wins


def test_list_and_optional_from_cli_env_and_yaml(tmp_path: Path):
    cli = demo(["--tags", "a,b", "--layers", "x", "--limit", "none", "--out", "o"])
    assert (cli.tags, cli.layers, cli.limit, cli.out) == (["a", "b"], ["x"], None, Path("o"))
    env = env_layer(Demo, {"DEMO_TAGS": "c, d", "DEMO_LAYERS": "null", "DEMO_LIMIT": "4", "OTHER": "1"}, "DEMO_")
    from_env = demo(layers=[env])
    assert (from_env.tags, from_env.layers, from_env.limit) == (["c", "d"], None, 4)
    config = tmp_path / "c.yaml"
    config.write_text("tags: [e, f]\nlayers: g,h\nlimit: ~\nnote: none\nout: p/q\n", encoding="utf-8")
    from_file = demo(["--config", str(config)], config_file=True)
    assert (from_file.tags, from_file.layers, from_file.limit, from_file.note) == (["e", "f"], ["g", "h"], None, None)
    assert from_file.out == Path("p/q")
    # a flag beats the file, and "none" on the command line clears a list the file set
    assert demo(["--config", str(config), "--layers", "none"], config_file=True).layers is None


def test_every_problem_at_once_in_order(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("colour: red\nrate: 7\n", encoding="utf-8")
    env = env_layer(Demo, {"DEMO_LIMIT": "lots"}, "DEMO_")
    with pytest.raises(DemoError) as caught:
        demo(["--config", str(config), "--count", "0", "--flag", "--name", "n", "--tags", "a"], [env], True)
    message = str(caught.value)
    # unknown keys of the file, then values that do not parse, then the check, all in one message
    assert message.startswith(f"Invalid demo settings: unknown setting 'colour' in {config}; ")
    assert "limit cannot be 'lots' (expected int or none, from DEMO_LIMIT)" in message
    assert message.index("limit cannot be") < message.index("count must be at least 1, not 0")
    assert "rate must be in [0, 1], not 7.0" in message and message.endswith(".")


def test_two_bad_values_and_a_failing_check_in_one_message():
    with pytest.raises(DemoError) as caught:
        demo(["--count", "many", "--rate", "fast", "--limit", "2"], [Layer({"count": "-3"})])
    assert str(caught.value) == (
        "Invalid demo settings: count cannot be 'many' (expected int, from --count); "
        "rate cannot be 'fast' (expected float, from --rate); "
        "count must be at least 1, not -3."  # the check sees the value of the highest layer that parsed
    )


def test_unknown_keys_of_a_loose_layer_are_ignored():
    assert demo(layers=[Layer({"colour": "red"})]) == Demo()


def test_parser_has_a_flag_per_field_with_help_and_default():
    parser = build_parser(Demo, prog="demo", config_file=True)
    text = parser.format_help()
    for name in field_types(Demo):
        assert "--" + name.replace("_", "-") in text
    assert "--no-flag" in text and "--config FILE" in text and "100% is 1" in text
    assert "(default: 3)" in text and "(default: 'data')" in text
    assert "--config" not in build_parser(Demo).format_help()


def test_yaml_problems_raise_the_callers_error(tmp_path: Path):
    config = tmp_path / "c.yaml"
    config.write_text("- a\n", encoding="utf-8")
    with pytest.raises(DemoError, match="must hold a mapping"):
        demo(["--config", str(config)], config_file=True)
    with pytest.raises(DemoError, match="Cannot read the config file"):
        config_fields.yaml_layer(tmp_path / "missing.yaml", DemoError)


# -- write_atomically (train/output.py) -------------------------------------------------------------


def _old_adapter(tmp_path: Path) -> Path:
    final = tmp_path / "adapters" / "mine"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text("old", encoding="utf-8")
    return final


def test_old_folder_stays_readable_until_the_switch(tmp_path: Path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    if not files._exchange(a, b):  # core.files then renames the old folder aside for a moment
        pytest.skip("this file system cannot exchange two folders atomically")
    final = _old_adapter(tmp_path)
    seen: list[str] = []
    stop = threading.Event()
    # A reader thread looks all the time; and, deterministically, the folder must be there after every rename.
    for name in ("rename", "replace"):
        original = getattr(os, name)

        def renamed(src, dst, *args, _original=original, **kwargs):
            result = _original(src, dst, *args, **kwargs)
            if not final.is_dir():
                seen.append("missing")
            return result

        monkeypatch.setattr(os, name, renamed)

    def reader() -> None:
        while not stop.is_set():
            if final.name not in os.listdir(final.parent):
                seen.append("missing")
                continue
            try:
                seen.append((final / "adapter_config.json").read_text(encoding="utf-8"))
            except FileNotFoundError:
                seen.append("missing")

    def fill(staging: Path) -> None:
        assert staging.parent == final.parent and staging != final
        (staging / "adapter_config.json").write_text("new", encoding="utf-8")
        (staging / "adapter_model.safetensors").write_bytes(b"w")
        (staging / "adapter_model.safetensors").chmod(0o600)
        time.sleep(0.2)  # the reader runs while the new folder is filled

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert write_atomically(final, fill) == final
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert "missing" not in seen
    assert seen[0] == "old" and seen[-1] == "new" and set(seen) == {"old", "new"}
    assert (final / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in final.parent.iterdir()) == ["mine"]  # no staging or old folder left


def test_failing_fill_leaves_the_old_folder_untouched(tmp_path: Path):
    final = _old_adapter(tmp_path)

    def fill(staging: Path) -> None:
        (staging / "adapter_config.json").write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(final, fill)
    assert (final / "adapter_config.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == ["mine"]


def test_first_write_creates_the_folder(tmp_path: Path):
    final = tmp_path / "new" / "adapter"
    write_atomically(final, lambda staging: (staging / "adapter_config.json").write_text("{}", encoding="utf-8"))
    assert (final / "adapter_config.json").read_text(encoding="utf-8") == "{}"
    assert [p.name for p in final.parent.iterdir()] == ["adapter"]
