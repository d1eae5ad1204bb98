"""`python -m train [--config FILE] [--field value ...]` trains; `python -m train merge ...` merges."""

from __future__ import annotations

import os
import sys

# Nothing is downloaded unless asked for (HF_HUB_OFFLINE=0); set before huggingface_hub is imported.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def run(argv: list[str]) -> int:
    """Dispatch to the merge command or the training script; return the process exit code."""
    if argv and argv[0] == "merge":
        from train.merge import main as merge_main

        return merge_main(argv[1:])
    if argv and argv[0] == "train":  # `python -m train train ...` reads the same as the default
        argv = argv[1:]
    from train.loop import main as train_main

    return train_main(argv)


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
