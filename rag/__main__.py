"""`python -m rag ...`: see rag/cli.py."""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# Spinning OpenMP threads make torch 30x slower on busy shared cores (a query: 0.74 s vs 0.02 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # the default embedding model ships in a package: no downloads

from rag.cli import main

sys.exit(main())
