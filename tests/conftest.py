import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py: threads of one process share 2 cores
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest

from tests.tiny import build_tiny_phi3


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))


@pytest.fixture(scope="session")
def tiny_settings(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from core.settings import Settings

    return Settings(
        model=str(tiny_model_dir),
        device="cpu",
        dtype="fp32",
        data_dir=tmp_path_factory.mktemp("data"),
        max_message_chars=2000,
    )


@pytest.fixture(scope="session")
def tiny_loaded(tiny_settings):
    from core.models import load_model

    return load_model(tiny_settings)


@pytest.fixture()
def engine(tiny_loaded):
    from core.generation import Engine

    return Engine(tiny_loaded, max_message_chars=2000)
