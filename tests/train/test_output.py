"""Atomic adapter output (`train.output.write_atomically` over `core.files`): the old folder stays readable."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from core import files
from train.output import write_atomically

# -- write_atomically (train/output.py) -------------------------------------------------------------


def _old_adapter(tmp_path: Path) -> Path:
    final = tmp_path / "adapters" / "mine"
    final.mkdir(parents=True)
    (final / "adapter_config.json").write_text("old", encoding="utf-8")
    return final


def test_old_folder_stays_readable_until_the_switch(tmp_path: Path, monkeypatch):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    if not files._exchange(a, b):  # core.files then renames the old folder aside for a moment
        pytest.skip("this file system cannot exchange two folders atomically")
    final = _old_adapter(tmp_path)
    seen: list[str] = []
    stop = threading.Event()
    # A reader thread looks all the time; and, deterministically, the folder must be there after every rename.
    for name in ("rename", "replace"):
        original = getattr(os, name)

        def renamed(src, dst, *args, _original=original, **kwargs):
            result = _original(src, dst, *args, **kwargs)
            if not final.is_dir():
                seen.append("missing")
            return result

        monkeypatch.setattr(os, name, renamed)

    def reader() -> None:
        while not stop.is_set():
            if final.name not in os.listdir(final.parent):
                seen.append("missing")
                continue
            try:
                seen.append((final / "adapter_config.json").read_text(encoding="utf-8"))
            except FileNotFoundError:
                seen.append("missing")

    def fill(staging: Path) -> None:
        assert staging.parent == final.parent and staging != final
        (staging / "adapter_config.json").write_text("new", encoding="utf-8")
        (staging / "adapter_model.safetensors").write_bytes(b"w")
        (staging / "adapter_model.safetensors").chmod(0o600)
        time.sleep(0.2)  # the reader runs while the new folder is filled

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        assert write_atomically(final, fill) == final
        time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
    assert "missing" not in seen
    assert seen[0] == "old" and seen[-1] == "new" and set(seen) == {"old", "new"}
    assert (final / "adapter_model.safetensors").stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in final.parent.iterdir()) == ["mine"]  # no staging or old folder left


def test_failing_fill_leaves_the_old_folder_untouched(tmp_path: Path):
    final = _old_adapter(tmp_path)

    def fill(staging: Path) -> None:
        (staging / "adapter_config.json").write_text("half", encoding="utf-8")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomically(final, fill)
    assert (final / "adapter_config.json").read_text(encoding="utf-8") == "old"
    assert sorted(p.name for p in final.parent.iterdir()) == ["mine"]


def test_first_write_creates_the_folder(tmp_path: Path):
    final = tmp_path / "new" / "adapter"
    write_atomically(final, lambda staging: (staging / "adapter_config.json").write_text("{}", encoding="utf-8"))
    assert (final / "adapter_config.json").read_text(encoding="utf-8") == "{}"
    assert [p.name for p in final.parent.iterdir()] == ["adapter"]
