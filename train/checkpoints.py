"""Checkpoints a killed run resumes from: `<output_dir>/checkpoints/step_N`, the newest K kept.

A checkpoint is `accelerator.save_state` (adapter weights, optimizer, LR scheduler, RNG states
of every process, Accelerate's step counter) plus `trainer_state.json` (where in which epoch,
loss history, token counts, and the settings it was trained with). Only the trainable
(adapter) weights are written: the frozen base is the same on every run, and writing it would
make each checkpoint as big as the model.

Every process writes into `.step_N.tmp`; after all of them are done the main process writes
`trainer_state.json` last (atomically), fsyncs the folder's files and renames it to `step_N`
(`core.files.replace_dir`), so a kill or a power cut mid-save never leaves a directory that
looks complete. Old checkpoints are renamed aside before they are deleted, so a kill mid-delete
never leaves a `step_N` with some of its files gone.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from core.files import atomic_write_text, fsync_dir, replace_dir

STATE_FILE = "trainer_state.json"
WEIGHTS_FILE = "model.safetensors"  # the name accelerate.save_state gives the first model's weights
_STEP_DIR = re.compile(r"^step_(\d+)$")
_LEFTOVER = re.compile(r"^\.step_\d+\.(tmp|old-.*)$")
_counter = itertools.count()


class CheckpointError(RuntimeError):
    """A checkpoint cannot be resumed from; the message names the folder and the reason."""


@dataclass
class TrainState:
    """Everything about the run's progress that Accelerate does not save itself."""

    step: int = 0
    """Optimizer steps done."""
    epoch: int = 0
    batches_in_epoch: int = 0
    """Batches of `epoch` this process has consumed; a resumed run skips that many."""
    real_tokens: int = 0
    """Non-padding tokens trained on, all processes together."""
    assistant_tokens: int = 0
    padded_tokens: int = 0
    """Tokens of the padded batches, padding included (the padding share is 1 - real / padded)."""
    tokens_per_process: list[int] = field(default_factory=list)
    """Real tokens each process trained on: proof that every rank of a data-parallel run did its share."""
    train_seconds: float = 0.0
    train_history: list[list[float]] = field(default_factory=list)
    """[step, mean training loss since the previous entry]."""
    val_history: list[list[float]] = field(default_factory=list)
    """[step, validation loss]; step 0 is the base model before training."""
    settings: dict[str, Any] = field(default_factory=dict)


def checkpoint_root(output_dir: Path) -> Path:
    return Path(output_dir) / "checkpoints"


def latest(output_dir: Path) -> Path | None:
    """The newest complete checkpoint folder, or None when there is none."""
    found = []
    root = checkpoint_root(output_dir)
    if root.is_dir():
        for child in root.iterdir():
            match = _STEP_DIR.match(child.name)
            if match and (child / STATE_FILE).is_file():
                found.append((int(match.group(1)), child))
    return max(found)[1] if found else None


def clear(output_dir: Path) -> None:
    """Delete every checkpoint of `output_dir` (a run that starts over).

    The folder is renamed aside first, so a kill mid-delete leaves no checkpoint to resume from.
    """
    _remove(checkpoint_root(output_dir))


def _remove(folder: Path) -> None:
    """Rename `folder` to a hidden sibling (one atomic, durable step), then delete it."""
    if not folder.exists():
        return
    doomed = folder.with_name(f".{folder.name.lstrip('.')}.old-{os.getpid()}-{next(_counter)}")
    os.rename(folder, doomed)
    fsync_dir(folder.parent)
    shutil.rmtree(doomed, ignore_errors=True)


def read_state(folder: Path) -> TrainState:
    """The TrainState saved in a checkpoint; raises CheckpointError when it is unreadable."""
    try:
        data = json.loads((Path(folder) / STATE_FILE).read_text(encoding="utf-8"))
        return TrainState(**data)
    except (OSError, ValueError, TypeError) as exc:
        raise CheckpointError(f"The checkpoint {folder} is unreadable ({exc}); delete it to start over.") from exc


def check_compatible(folder: Path, saved: dict[str, Any], current: dict[str, Any], neutral: frozenset[str]) -> None:
    """Raise CheckpointError naming every setting that differs between the checkpoint and this run.

    Settings in `neutral` (logging, checkpoint cadence, ...) may differ.
    """
    keys = sorted((set(saved) | set(current)) - neutral)
    diffs = [f"{k}: {saved.get(k)!r} != {current.get(k)!r}" for k in keys if saved.get(k) != current.get(k)]
    if diffs:
        raise CheckpointError(
            f"Cannot resume from {folder}: it was trained with other settings ({'; '.join(diffs)}). "
            "Use another output_dir, or --no-resume to start over in this one."
        )


def save(accelerator: Any, output_dir: Path, state: TrainState, keep: int) -> Path:
    """Write checkpoint `step_<state.step>` (all processes call this) and prune to the newest `keep`."""
    root = checkpoint_root(output_dir)
    final = root / f"step_{state.step}"
    staging = root / f".step_{state.step}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(staging))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        atomic_write_text(staging / STATE_FILE, json.dumps(asdict(state), indent=1))
        replace_dir(staging, final)  # fsyncs every file first; an existing step_N is swapped out whole
        steps = sorted(int(m.group(1)) for c in root.iterdir() if (m := _STEP_DIR.match(c.name)))
        for old in steps[:-keep]:
            _remove(root / f"step_{old}")
        for child in root.iterdir():  # staging and deleting leftovers of killed runs
            if _LEFTOVER.match(child.name):
                shutil.rmtree(child, ignore_errors=True)
    accelerator.wait_for_everyone()
    return final


def register_adapter_only_hooks(accelerator: Any, model: torch.nn.Module) -> None:
    """Make save_state/load_state write and read only `model`'s trainable parameters.

    Loading raises CheckpointError when the checkpoint's weights are not exactly the
    trainable parameters of this model (another rank, target list or base).
    """
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}

    def save_hook(models: list[torch.nn.Module], weights: list[dict[str, torch.Tensor]], output_dir: str) -> None:
        for i, state_dict in enumerate(weights):
            weights[i] = {k: v for k, v in state_dict.items() if k in trainable}

    def load_hook(models: list[torch.nn.Module], input_dir: str) -> None:
        from safetensors.torch import load_file

        if not models:
            return
        target = models.pop(0)  # loaded here; Accelerate must not load a partial state dict strictly
        path = Path(input_dir) / WEIGHTS_FILE
        try:
            weights = load_file(str(path))
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"The checkpoint weights {path} are unreadable ({exc}).") from exc
        missing, unexpected = sorted(trainable - set(weights)), sorted(set(weights) - trainable)
        if missing or unexpected:
            raise CheckpointError(
                f"The checkpoint {input_dir} does not fit this model: "
                f"missing {missing[:5]}, unexpected {unexpected[:5]}."
            )
        target.load_state_dict(weights, strict=False)

    accelerator.register_save_state_pre_hook(save_hook)
    accelerator.register_load_state_pre_hook(load_hook)
