"""What a run measures and records: loss and token counts across processes, and `train_log.jsonl`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator

from train.checkpoints import TrainState
from train.masking import IGNORE_INDEX

JOURNAL_FILE = "train_log.jsonl"


class RunningWindow:
    """Loss and token counts since the last flush, on this process; flushed across all processes."""

    def __init__(self, accelerator: Accelerator):
        self.accelerator = accelerator
        self.loss = torch.zeros((), dtype=torch.float64)
        self.batches = 0
        self.tokens = torch.zeros(3, dtype=torch.long)  # [real, assistant, padded]

    def add(self, loss: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        """Count one batch: its loss and its real, assistant and padded tokens (local, no communication)."""
        self.loss += loss.detach().double().cpu()
        self.batches += 1
        mask = batch["attention_mask"]
        self.tokens += torch.stack(
            [mask.sum(), (batch["labels"] != IGNORE_INDEX).sum(), torch.tensor(mask.numel())]
        ).cpu()

    def flush_tokens(self, state: TrainState) -> None:
        """Add every process's token counts to `state` (a collective: all processes must call it together)."""
        counts = self.accelerator.gather(self.tokens.to(self.accelerator.device).unsqueeze(0)).cpu()  # (procs, 3)
        state.real_tokens += int(counts[:, 0].sum())
        state.assistant_tokens += int(counts[:, 1].sum())
        state.padded_tokens += int(counts[:, 2].sum())
        per_process = state.tokens_per_process or [0] * counts.shape[0]
        state.tokens_per_process = [a + int(b) for a, b in zip(per_process, counts[:, 0], strict=True)]
        self.tokens.zero_()

    def flush(self, state: TrainState) -> float:
        """Add the token counts to `state`; return the mean training loss over all processes (collective)."""
        self.flush_tokens(state)
        mean = self.loss / max(self.batches, 1)
        mean = self.accelerator.reduce(mean.to(self.accelerator.device), reduction="mean")
        self.loss.zero_()
        self.batches = 0
        return float(mean)


class Journal:
    """`train_log.jsonl` in the run folder: one JSON line per log or validation event (main process)."""

    def __init__(self, path: Path, enabled: bool, fresh: bool):
        self.path, self.enabled = path, enabled
        if enabled:
            path.parent.mkdir(parents=True, exist_ok=True)
            if fresh:  # a run from step 0 starts a new log; a resumed one appends to its own
                path.write_text("", encoding="utf-8")

    def write(self, **event: Any) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps({"time": round(time.time(), 3), **event}) + "\n")
