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


@pytest.fixture()
def service(engine, tiny_settings):
    """A ready service over the shared tiny engine (no index, no adapters unless a test attaches them)."""
    from core.service import ExpertService

    return ExpertService.over(tiny_settings.replace(system_prompt="sys"), engine)


def ask(service, message, mode="Base", params=None, history=(), adapter=None, stop=None, session="tester"):
    """Every update of one answer through the service (the chat's path), each as it was when yielded."""
    import copy

    from core.generation import GenerationParams

    params = params or GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=12)
    updates = service.answer(session, message, list(history), mode, params, None, adapter, stop=stop)
    return [copy.copy(update) for update in updates]


class AdapterRig:
    """A model of its own (adapters change a model in place) with the adapter catalog over it: what the
    app wires together, exposed for tests. `answer` and `logits` run through the engine, the only thing
    that loads adapters."""

    PROMPT = "Tidal turbines need"

    def __init__(self, settings, demo_dir=None):
        from adapters import AdapterCatalog
        from core.generation import Engine
        from core.models import load_model

        self.settings = settings
        self.engine = Engine(load_model(settings), 2000, max_resident_adapters=settings.max_resident_adapters)
        self.catalog = AdapterCatalog(self.engine.spec, settings, demo_dir=demo_dir, unload=self.engine.unload)

    @property
    def spec(self):
        return self.engine.spec

    @property
    def store(self):
        return self.catalog.store

    @property
    def resident(self):
        return self.engine.resident

    def handle(self, name, session=None):
        return None if name is None else self.catalog.resolve_handle(name, session)

    def answer(self, name=None, session=None, max_new_tokens=8):
        from core.generation import GenerationParams

        ids = self.engine.tokenizer(self.PROMPT)["input_ids"]
        params = GenerationParams(temperature=0, max_new_tokens=max_new_tokens)
        return "".join(self.engine.stream(ids, params, adapter=self.handle(name, session)))

    def logits(self, name=None, session=None, text="Part number KX-4471"):
        import torch

        ids = torch.tensor([self.engine.tokenizer(text)["input_ids"]])
        with self.engine.using(self.handle(name, session)) as model, torch.inference_mode():
            return model(input_ids=ids).logits.clone()

    def load(self, name, session=None):
        with self.engine.using(self.handle(name, session)):
            pass
