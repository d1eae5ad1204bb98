"""`python -m rag`: bulk ingest of a folder, then list, search and delete from the command line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rag.cli import main
from tests.conftest import FORMAT_DOCS, REPO, write_docs

pytestmark = pytest.mark.usefixtures("single_torch_thread")


@pytest.mark.slow
def test_the_cli_ingests_a_folder_lists_searches_and_deletes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    write_docs(folder, FORMAT_DOCS)
    write_docs(folder / "sub", {"deep.md": "# Deep\n\nThe nested folder holds the pelicanite manual.\n"})
    write_docs(folder, {"table.key": b"PK\x03\x04", ".hidden.md": "# Hidden\n"})
    data = ["--data-dir", str(tmp_path / "data")]

    assert main(["ingest", str(folder), *data, "--chunk-size", "128"]) == 1  # one file refused
    out, err = capsys.readouterr()
    assert "6 of 7 files in the index; 1 refused." in out
    assert "ERR table.key: table.key: '.key' files are not supported" in out
    assert "[100%] Done" in err  # progress goes to stderr

    listed = subprocess.run(
        [sys.executable, "-m", "rag", "list", *data],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=True,
    ).stdout
    assert "6 documents" in listed and "deep.md" in listed and "hidden" not in listed
    doc_id = next(line.split()[0] for line in listed.splitlines() if line.endswith("deep.md"))

    assert main(["search", "Where is the pelicanite manual?", *data]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("1. deep.md, section Deep")

    assert main(["delete", doc_id, *data]) == 0
    assert main(["search", "pelicanite", *data, "--fusion", "keyword"]) == 0
    out, _ = capsys.readouterr()
    assert "Nothing relevant in the index." in out
    assert main(["stats", *data]) == 0
    assert "effective_chunk_size   128" in capsys.readouterr().out

    assert main(["delete", "no-such-id", *data]) == 1
    assert "No document with id 'no-such-id'" in capsys.readouterr().err
    assert main(["list", *data, "--fusion", "magic"]) == 2
