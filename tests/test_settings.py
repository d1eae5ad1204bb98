from pathlib import Path

import pytest

from core.settings import Settings, SettingsError


def test_defaults_are_valid():
    s = Settings.load([], env={})
    assert s.model == "auto" and s.max_new_tokens == 256 and s.data_dir == Path("data")


def test_cli_flag_beats_environment_beats_default():
    env = {"EXPERT_TEMPERATURE": "0.2", "EXPERT_TOP_K": "7", "EXPERT_LOAD_IN_4BIT": "true"}
    s = Settings.load(["--temperature", "0.5", "--no-load-in-4bit"], env=env)
    assert s.temperature == 0.5  # CLI wins
    assert s.top_k == 7  # environment wins over default
    assert s.load_in_4bit is False


def test_every_problem_is_reported_at_once():
    with pytest.raises(SettingsError) as err:
        Settings.load(["--temperature", "9", "--top-p", "0", "--device", "tpu"], env={"EXPERT_PORT": "http"})
    # A value that does not parse is reported first, alone; fix it and the rest come together.
    assert "port cannot be 'http'" in str(err.value)
    with pytest.raises(SettingsError) as err:
        Settings.load(["--temperature", "9", "--top-p", "0", "--device", "tpu"], env={})
    message = str(err.value)
    for name in ("temperature", "top_p", "device"):
        assert name in message
