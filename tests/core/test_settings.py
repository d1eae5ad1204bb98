from dataclasses import fields
from pathlib import Path

import pytest

from core.settings import GROUPS, Settings, SettingsError


def test_defaults_are_valid():
    s = Settings.load([], env={})
    assert s.model.model == "auto" and s.answer.max_new_tokens == 256 and s.data_dir == Path("data")


def test_cli_flag_beats_environment_beats_default():
    env = {"EXPERT_TEMPERATURE": "0.2", "EXPERT_TOP_K": "7", "EXPERT_LOAD_IN_4BIT": "true"}
    s = Settings.load(["--temperature", "0.5", "--no-load-in-4bit"], env=env)
    assert s.answer.temperature == 0.5  # CLI wins
    assert s.retrieval.top_k == 7  # environment wins over default
    assert s.model.load_in_4bit is False


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as err:
        Settings.load(
            ["--temperature", "9", "--top-p", "0", "--device", "tpu", "--top-k", "many"], env={"EXPERT_PORT": "http"}
        )
    # Values that do not parse come first, each naming where it came from, then every bad value, in one message.
    message = str(err.value)
    assert message.startswith("Invalid settings: port cannot be 'http' (expected int, from EXPERT_PORT); ")
    assert "top_k cannot be 'many' (expected int, from --top-k)" in message
    for part in ("temperature must be between 0 and 2", "top_p must be in (0, 1]", "device must be 'auto'"):
        assert part in message
    assert message.endswith(".")


def test_check_and_replace_report_every_problem():
    settings = Settings.load([], env={})
    with pytest.raises(SettingsError) as err:
        settings.replace(temperature=5, port=-1, fusion="max")
    message = str(err.value)
    assert message.startswith("Invalid settings: ")
    for name in ("temperature", "port", "fusion"):
        assert name in message
    assert settings.replace(top_k=2).retrieval.top_k == 2 and settings.problems() == []


def test_environment_reads_bools_paths_and_ignores_other_variables():
    env = {"EXPERT_PUBLISH_UPLOADS": "yes", "EXPERT_DATA_DIR": "/srv/data", "EXPERT_NOT_A_SETTING": "x", "HOME": "/"}
    s = Settings.load([], env=env)
    assert s.access.publish_uploads is True and s.data_dir == Path("/srv/data")
    assert Settings.load(["--no-publish-uploads"], env=env).access.publish_uploads is False
    assert Settings.load([], env={"EXPERT_PUBLISH_UPLOADS": "off"}).access.publish_uploads is False


def test_help_lists_every_setting(capsys):
    with pytest.raises(SystemExit):
        Settings.load(["--help"], env={})
    out = capsys.readouterr().out
    for f in (f for group in GROUPS.values() for f in fields(group)):
        assert f.metadata.get("help"), f.name
        assert "--" + f.name.replace("_", "-") in out
    assert "--no-load-in-4bit" in out


def test_each_setting_lives_in_one_group_with_one_default():
    names = [f.name for group in GROUPS.values() for f in fields(group)]
    assert len(names) == len(set(names)), "a flag or EXPERT_ variable would name two settings"
    assert Settings().answer.evidence_floor == 0.28 and Settings().answer.copy_bias == 3.0
    with pytest.raises(SettingsError, match="'top_kk' is not a setting"):
        Settings().replace(top_kk=3)
