"""A run killed with SIGKILL between checkpoints resumes from the newest one and ends where an unbroken run ends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from tests.conftest import REPO as ROOT
from tests.conftest import tiny_config
from train.loop import main, training_function

# Runs the real CLI, but SIGKILLs the process when it is about to write the checkpoint of step 6:
# steps 5 and 6 are trained and lost, the newest complete checkpoint is step 4.
KILL_BEFORE_STEP_6 = """
import os, signal, sys
from train import checkpoints

original = checkpoints.save

def save_or_die(accelerator, output_dir, state, keep):
    if state.step >= 6:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(accelerator, output_dir, state, keep)

checkpoints.save = save_or_die
from train.loop import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=240)


@pytest.mark.slow
def test_killed_run_resumes_from_checkpoint_and_matches_uninterrupted(tiny_model_dir: Path, tmp_path: Path) -> None:
    settings = dict(max_steps=9, save_every=2, keep_checkpoints=2, eval_every=0)
    reference = training_function(tiny_config(tiny_model_dir, tmp_path / "a", **settings))

    cfg = tiny_config(tiny_model_dir, tmp_path / "b", **settings)
    config = tmp_path / "b.yaml"
    config.write_text(yaml.safe_dump({k: v for k, v in cfg.to_dict().items() if v is not None}), encoding="utf-8")

    killed = run_cli([sys.executable, "-c", KILL_BEFORE_STEP_6, "--config", str(config)])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    checkpoints = sorted(p.name for p in (cfg.output_dir / "checkpoints").iterdir())
    assert checkpoints == ["step_2", "step_4"]
    assert not cfg.final_adapter_dir.exists()

    resumed = run_cli([sys.executable, "-m", "train", "--config", str(config)])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "Resuming from" in resumed.stderr and "step_4" in resumed.stderr
    card = json.loads((cfg.final_adapter_dir / "adapter_card.json").read_text())
    assert card["training"]["resumed_from"].endswith("step_4") and card["training"]["steps"] == 9
    assert card["tokens"]["real"] == reference.card["tokens"]["real"]  # every batch counted exactly once

    ours = load_file(str(cfg.final_adapter_dir / "adapter_model.safetensors"))
    theirs = load_file(str(reference.adapter_dir / "adapter_model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert (ours[name] - theirs[name]).abs().max() < 1e-5, name


@pytest.mark.slow
def test_changed_settings_are_named_when_resuming(tiny_model_dir: Path, tmp_path: Path, capsys) -> None:
    cfg = tiny_config(tiny_model_dir, tmp_path, max_steps=3, save_every=1, eval_every=0)
    training_function(cfg)
    args = [
        "--data",
        str(cfg.data),
        "--model",
        cfg.model,
        "--output-dir",
        str(cfg.output_dir),
        "--dtype",
        "fp32",
        "--data-dir",
        str(cfg.data_dir),
    ]
    assert main([*args, "--max-steps", "3", "--save-every", "1", "--lora-r", "8", "--learning-rate", "5e-3"]) == 1
    err = capsys.readouterr().err
    assert "Cannot resume from" in err and "lora_r: 16 != 8" in err and "--no-resume" in err
    # --no-resume starts over: the old checkpoints go, so they can neither be resumed nor outlive new ones.
    assert main([*args, "--max-steps", "2", "--save-every", "5", "--no-resume"]) == 0
    assert not (cfg.output_dir / "checkpoints").exists()
    log = [json.loads(line) for line in (cfg.output_dir / "train_log.jsonl").read_text().splitlines()]
    assert [e["step"] for e in log if "loss" in e] == [2]
