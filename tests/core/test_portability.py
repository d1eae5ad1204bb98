"""The llama.cpp build is portable by construction, and a library that faults can never take the app down.

- The installed library holds no instruction above the x86-64-v3 baseline (a disassembly scan), so a build
  on any CI machine proves what every user's machine will run; the scan itself is shown to catch AVX-512 and
  AMX code compiled here for the purpose.
- A fake llama.cpp library whose every function executes an illegal instruction (SIGILL, as AMX code did on a
  VM that advertised AMX) or never returns: the start-up check in a child process fails with one sentence,
  the app starts on transformers and answers, and the verdict is cached per library build.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engines import cpu_check
from engines.llamacpp_lib import library_dir, library_files, library_id

needs_gcc = pytest.mark.skipif(not (shutil.which("gcc") and shutil.which("nm")), reason="needs gcc and nm")
x86 = pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64 instruction scan")


def _compile(tmp_path: Path, name: str, source: str, *flags: str) -> Path:
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    out = tmp_path / f"lib{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-O1", *flags, "-o", str(out), str(c)], check=True)
    return out


@x86
def test_the_installed_llama_cpp_library_uses_nothing_above_the_baseline():
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    problems = cpu_check.check_library()
    assert problems == {}, f"built for more than {cpu_check.BASELINE['x86_64']}: {problems}"
    names = {p.name.split(".so")[0] for p in library_files(library_dir())}
    assert {"libllama", "libggml-cpu"} <= names  # the scan saw the CPU kernels themselves
    assert "OK:" in subprocess.run([sys.executable, "-m", "engines.cpu_check"], capture_output=True, text=True).stdout


@x86
@needs_gcc
def test_the_scan_catches_avx512_and_amx_code(tmp_path):
    avx512 = _compile(tmp_path, "wide", 'void f(void){__asm__ volatile("vpaddd %zmm1, %zmm2, %zmm3");}\n')
    amx = _compile(tmp_path, "tiles", 'void g(void){__asm__ volatile("tilezero %tmm0\\n\\tldtilecfg (%rdi)");}\n')
    vnni = _compile(tmp_path, "vnni", 'void h(void){__asm__ volatile("{vex} vpdpbusd %ymm1, %ymm2, %ymm3");}\n')
    plain = _compile(tmp_path, "plain", 'void p(void){__asm__ volatile("vpaddd %ymm1, %ymm2, %ymm3");}\n')
    assert cpu_check.above_baseline(avx512) == {"zmm-registers": 1}
    assert set(cpu_check.above_baseline(amx)) == {"tilezero", "ldtilecfg"}
    assert set(cpu_check.above_baseline(vnni)) == {"vpdpbusd"}
    assert not cpu_check.above_baseline(plain)  # AVX2 on ymm is the baseline
    folder = tmp_path / "lib"
    folder.mkdir()
    shutil.copy(avx512, folder / "libggml-cpu.so")
    run = subprocess.run(
        [sys.executable, "-m", "engines.cpu_check", "--lib", str(folder)], capture_output=True, text=True
    )
    assert run.returncode == 1 and "ABOVE x86-64-v3" in run.stdout and "make engine" in run.stdout


def fake_library(tmp_path: Path, body: str) -> Path:
    """A copy of the installed llama.cpp library folder whose libllama exports every symbol of the real one,
    each a function that runs `body` (a SIGILL, or an endless loop)."""
    real = library_dir()
    folder = tmp_path / "fake-lib"
    folder.mkdir()
    for path in library_files(real):
        shutil.copy(path, folder / path.name)
    libllama = next(p for p in library_files(real) if p.name.startswith("libllama"))
    symbols = subprocess.run(["nm", "-D", "--defined-only", str(libllama)], capture_output=True, text=True).stdout
    names = sorted({line.split()[-1] for line in symbols.splitlines() if line.split()[1:2] == ["T"]})
    stubs = "".join(f"void {name}(void){{{body}}}\n" for name in names if name.isidentifier())
    built = _compile(tmp_path, "llama", stubs)
    (folder / libllama.name).unlink()
    shutil.copy(built, folder / libllama.name)
    return folder


@pytest.mark.slow
@needs_gcc
def test_a_library_that_crashes_leaves_the_app_answering_on_transformers(embedded_data_dir, tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from compose import compose
    from core.settings import Settings
    from engines.base import GenerationParams

    data = tmp_path / "data"
    shutil.copytree(embedded_data_dir / "model_cache", data / "model_cache")
    (data / "model_cache" / "engine-checks.json").unlink(missing_ok=True)
    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(fake_library(tmp_path, "__builtin_trap();")))

    started = time.perf_counter()
    service = compose(Settings.of(model="embedded", data_dir=data), parts=()).start().service
    assert service.wait_ready(180), service.status_line()
    status = service.status_line()
    assert service.engine.name == "transformers", status
    warning = service.warnings[0]
    assert warning.startswith("llama.cpp crashed in its start-up check on this CPU (SIGILL: an instruction")
    assert "answering with transformers" in warning and "make engine" in warning and warning.count(". ") == 0
    assert "Unavailable: llama.cpp crashed" in status
    params = GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=8)
    answer = list(service.answer("t", "What is the capital of France?", [], "Base", params))[-1]
    assert answer.text.strip() and answer.tokens > 0  # this process lives on and answers
    first = time.perf_counter() - started

    # The verdict is kept for this library build and CPU: the next start does not run the child again.
    import json

    record = json.loads((data / "model_cache" / "engine-checks.json").read_text())
    assert [v["ok"] for v in record.values()] == [False]
    assert any(library_id(Path(str(p))) in k for k in record for p in [tmp_path / "fake-lib"])
    again = compose(Settings.of(model="embedded", data_dir=data), parts=()).start().service
    assert again.wait_ready(180) and again.warnings == [warning]
    assert first < 120


@pytest.mark.slow
@needs_gcc
def test_a_library_that_hangs_fails_its_check_within_the_timeout(embedded_data_dir, tmp_path, monkeypatch):
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from core.settings import Settings
    from engines.embedded import embedded_gguf_path
    from engines.loading import load_model
    from engines.probe import check_engine

    monkeypatch.setenv("LLAMA_CPP_LIB_PATH", str(fake_library(tmp_path, "for(;;){}")))
    skeleton = load_model(Settings.of(model="embedded", data_dir=embedded_data_dir), weights=False)
    assert not skeleton.has_weights
    started = time.perf_counter()
    result = check_engine(skeleton, embedded_gguf_path(), "shipped", tmp_path / "cache", threads=1, timeout_s=4)
    assert not result.ok and "within 4 s (it hung)" in result.reason
    assert time.perf_counter() - started < 30
