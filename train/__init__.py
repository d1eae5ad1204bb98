"""LoRA / QLoRA fine-tuning with Accelerate: data formats, the training loop, adapter + card output, merging.

Run it with `python -m train --config train/configs/demo_smollm2.yaml` (one process),
`accelerate launch -m train ...` (GPUs) or `torchrun --nproc_per_node 2 -m train ...` (CPU data-parallel);
merge an adapter into its base with `python -m train merge --adapter DIR --out DIR`. See train/README.md.

Imports only the shared `core` package; nothing heavy happens at import time.
"""
