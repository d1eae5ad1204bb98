"""Training settings: YAML file, CLI overrides of any field, every problem reported at once."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from tests.conftest import REPO
from train.config import ConfigError, TrainConfig, build_parser, load_config


@pytest.fixture()
def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "d.jsonl"
    path.write_text('{"prompt": "q", "response": "a"}\n', encoding="utf-8")
    return path


def test_yaml_then_flags_override_any_field(tmp_path: Path, data_file: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"data: {data_file}\nlora_r: 4\nlearning_rate: 1.0e-3\nresume: true\ntarget_modules: [q_proj, v_proj]\n",
        encoding="utf-8",
    )
    cfg = load_config(["--config", str(config), "--lora-r", "8", "--no-resume", "--system-prompt", "House style."])
    assert (cfg.lora_r, cfg.learning_rate, cfg.resume, cfg.system_prompt) == (8, 1e-3, False, "House style.")
    assert cfg.target_modules == ["q_proj", "v_proj"]
    assert load_config(["--data", str(data_file), "--target-modules", "qkv_proj,o_proj"]).target_modules == [
        "qkv_proj",
        "o_proj",
    ]
    assert cfg.final_adapter_dir == Path("data/adapters/trained/my-adapter")  # where the app lists it


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("data: missing.jsonl\nlora_rank: 8\nmethod: full\nval_fraction: 1.5\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(["--config", str(config), "--batch-size", "many", "--lr-scheduler", "step", "--epochs", "0"])
    message = str(caught.value)
    assert message.startswith("Invalid training settings: unknown setting 'lora_rank' in ")
    for part in (
        "unknown setting 'lora_rank'",
        "batch_size cannot be 'many' (expected int, from --batch-size)",
        "data file missing.jsonl does not exist",
        "method must be one of lora, qlora, not 'full'",
        "val_fraction must be in [0, 1), not 1.5",
        "lr_scheduler must be one of cosine, linear, constant, not 'step'",
        "epochs must be at least 1",
    ):
        assert part in message


def test_bad_yaml_is_named(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("- just\n- a list\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml must hold a mapping"):
        load_config(["--config", str(config)])


def test_every_setting_has_help_and_a_flag() -> None:
    help_text = build_parser().format_help()
    for f in fields(TrainConfig):
        assert f.metadata.get("help"), f.name
        assert "--" + f.name.replace("_", "-") in help_text


def test_shipped_configs_load() -> None:
    root = REPO
    cfg = load_config(["--config", str(root / "train/configs/demo_smollm2.yaml"), "--data", __file__])
    assert cfg.model == "embedded" and cfg.final_adapter_dir == Path("adapters/demo/smollm2-sample-kb")


def test_check_collects_every_problem(tmp_path: Path, data_file: Path) -> None:
    cfg = TrainConfig(data=data_file)
    assert cfg.check() is cfg and cfg.problems() == []
    with pytest.raises(ConfigError) as caught:
        cfg.replace(lora_r=0, method="full", target_modules=[])
    message = str(caught.value)
    assert message.startswith("Invalid training settings: ") and message.endswith(".")
    for name in ("lora_r", "method", "target_modules"):
        assert name in message


def test_optional_and_list_settings_read_none(tmp_path: Path, data_file: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("target_modules: qkv_proj, o_proj\nsystem_prompt: Be brief.\nadapter_dir: out/a\n")
    cfg = load_config(["--config", str(config), "--data", str(data_file)])
    assert cfg.target_modules == ["qkv_proj", "o_proj"] and cfg.system_prompt == "Be brief."
    assert cfg.final_adapter_dir == Path("out/a")
    cfg = load_config(
        ["--config", str(config), "--data", str(data_file), "--target-modules", "none", "--system-prompt", "null"]
    )
    assert cfg.target_modules is None and cfg.system_prompt is None
    cfg = load_config(["--config", str(config), "--data", str(data_file), "--adapter-dir", "none"])
    assert cfg.final_adapter_dir == Path("data/adapters/trained/my-adapter")


def test_unreadable_yaml_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Cannot read the config file .*nope\.yaml"):
        load_config(["--config", str(tmp_path / "nope.yaml")])
    config = tmp_path / "c.yaml"
    config.write_text("a: [unclosed\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c\.yaml is not valid YAML"):
        load_config(["--config", str(config)])


def test_to_dict_round_trips_through_yaml(tmp_path: Path, data_file: Path) -> None:
    import yaml

    cfg = TrainConfig(data=data_file, target_modules=["qkv_proj"], system_prompt="S.")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(cfg.to_dict()), encoding="utf-8")
    assert load_config(["--config", str(config)]) == cfg
