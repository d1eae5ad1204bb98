"""Where everything lives under the data directory: the one description of the on-disk layout.

    <data_dir>/
        model_cache/<name>/                    dequantized embedded model (safetensors), built once
        index/                                 the document index (rag/): CURRENT, snapshots/, segments/
        uploads/<doc_id>/<file name>           original of every indexed document (rag/)
        adapters/trained/<name>/               adapters written by the training script (train/)
        adapters/uploads/<owner>/<name>/       adapters uploaded by one person (adapters/)
        adapters/published/<name>/             uploads the operator made public (adapters/)
        runs/<name>/                           training runs: checkpoints, logs (train/)
        scorecards/shared/<run>/               scorecard runs anyone may resume (scorecard/)
        scorecards/private/<owner>/<run>/      runs on one person's own QA file or adapter

The app, the training script, the scorecard and the CLIs all take their paths from `DataLayout`,
so moving a folder is a change in one place. Each part documents the files inside its own folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataLayout:
    root: Path

    def __init__(self, root: str | Path):
        object.__setattr__(self, "root", Path(root))

    @property
    def model_cache(self) -> Path:
        return self.root / "model_cache"

    @property
    def index(self) -> Path:
        return self.root / "index"

    @property
    def document_uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def adapters(self) -> Path:
        return self.root / "adapters"

    @property
    def trained_adapters(self) -> Path:
        return self.adapters / "trained"

    @property
    def uploaded_adapters(self) -> Path:
        return self.adapters / "uploads"

    @property
    def published_adapters(self) -> Path:
        return self.adapters / "published"

    @property
    def training_runs(self) -> Path:
        return self.root / "runs"

    @property
    def scorecards(self) -> Path:
        return self.root / "scorecards"
