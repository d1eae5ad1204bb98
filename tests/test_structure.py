"""The house rules the code's layout keeps: imports go one way, no engine inherits another, the answer has one
home that the scorecard fingerprints, and every setting has one group and one default."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

from tests.conftest import REPO

PACKAGES = ("adapters", "answer", "core", "engines", "rag", "scorecard", "train", "ui")
ALLOWED = {
    "core": set(),
    "adapters": {"core"},
    "engines": {"core", "adapters"},
    "answer": {"core", "adapters", "engines"},
    "rag": {"core", "answer.ports"},  # rag implements the answer's Retriever port, nothing else of it
    "scorecard": {"core", "adapters", "engines", "answer", "rag", "compose"},
    "train": {"core", "adapters", "engines", "answer", "rag"},
    "compose": {"core", "adapters", "engines", "answer", "rag"},
    "ui": {"core", "adapters", "engines", "answer", "rag", "scorecard", "compose"},
    "app": {"core", "compose", "ui"},
}


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_imports_go_one_way():
    wrong = []
    files = [REPO / "app.py", REPO / "compose.py"] + [p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")]
    for path in files:
        rel = path.relative_to(REPO)
        room = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for name in _imports(path):
            top = name.split(".")[0]
            if top == room or (top not in PACKAGES and top not in ("compose", "app")):
                continue
            allowed = ALLOWED[room]
            if top not in allowed and name not in allowed and not any(name.startswith(a + ".") for a in allowed):
                wrong.append(f"{rel} imports {name}")
    assert not wrong, wrong


def test_no_engine_inherits_another_and_each_is_an_engine():
    from engines.base import Engine
    from engines.llamacpp import LlamaCppEngine
    from engines.openai_client import OpenAIEngine
    from engines.transformers_engine import TransformersEngine

    for cls in (TransformersEngine, LlamaCppEngine, OpenAIEngine):
        assert cls.__bases__ == (object,), cls
        for member in ("tokenizer", "context_window", "spec", "resident", "describe", "unload", "close", "stream"):
            assert hasattr(cls, member), (cls, member)
    assert getattr(Engine, "_is_protocol", False)  # a protocol: nothing to inherit, no state
    for cls in (TransformersEngine, LlamaCppEngine, OpenAIEngine):
        assert not hasattr(cls, "build_prompt") and not hasattr(cls, "check_message")  # the answer's job


def test_the_scorecard_fingerprints_the_answer_package_alone(tmp_path, monkeypatch):
    from scorecard import runner

    before = runner._answer_path_fingerprint()
    copy = tmp_path / "answer"
    copy.mkdir()
    for path in runner.ANSWER_PACKAGE.glob("*.py"):
        (copy / path.name).write_bytes(path.read_bytes())
    monkeypatch.setattr(runner, "ANSWER_PACKAGE", copy)
    assert runner._answer_path_fingerprint() == before
    (copy / "prompts.py").write_text((copy / "prompts.py").read_text() + "\n# changed\n")
    assert runner._answer_path_fingerprint() != before


def test_every_setting_has_one_group_and_parts_take_their_group():
    import inspect

    from adapters import AdapterCatalog
    from answer.service import ExpertService
    from core.settings import GROUPS
    from rag import KnowledgeBase
    from rag.ingestion import Ingestion
    from rag.search import Searcher

    names = [f.name for group in GROUPS.values() for f in dataclasses.fields(group)]
    assert len(names) == len(set(names))
    for part in (KnowledgeBase, Ingestion, Searcher, AdapterCatalog, ExpertService):
        annotations = [str(p.annotation) for p in inspect.signature(part).parameters.values()]
        assert "Settings" not in annotations, part  # a group (RetrievalSettings, UploadSettings), never the whole
