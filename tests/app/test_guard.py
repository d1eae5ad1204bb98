"""What the server refuses before Gradio reads a byte (`ui.guard`), on a real Gradio server launched by
`app.serve`: sign-in guessing slows down per user name and per address without locking the real user out, and
Gradio's upload route is bounded per address (requests, files, bytes) and in total."""

from __future__ import annotations

import time
from pathlib import Path

import gradio as gr
import httpx
import pytest

import app as launcher
from core.settings import Settings
from tests.conftest import free_port


def _serve(*flags: str) -> tuple[str, gr.Blocks]:
    settings = Settings.load(["--max-upload-mb", "1", "--adapter-max-mb", "1", *flags], env={})
    with gr.Blocks() as page:
        files = gr.File(file_count="multiple")
        shown = gr.Textbox()
        files.upload(lambda f: str(len(f or [])), files, shown)
    port = free_port()
    launcher.serve(page, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/", page


@pytest.fixture()
def signin_server():
    url, page = _serve("--users", "alice:right-horse", "--signin-free-tries", "3", "--signin-max-wait-s", "2")
    yield url
    page.close()


@pytest.fixture()
def upload_server():
    url, page = _serve(
        "--upload-requests-per-minute", "4", "--upload-files-per-hour", "5", "--upload-mb-per-hour", "1.5"
    )
    yield url
    page.close()


def _login(url: str, user: str, password: str) -> httpx.Response:
    return httpx.post(url + "login", data={"username": user, "password": password}, timeout=30)


def _timed_login(url: str, user: str, password: str) -> tuple[int, float]:
    started = time.perf_counter()
    status = _login(url, user, password).status_code
    return status, time.perf_counter() - started


def test_wrong_passwords_slow_down_per_user_and_per_address_and_the_real_user_gets_back_in(signin_server) -> None:
    import threading

    url = signin_server
    assert [_login(url, "alice", "guess").status_code for _ in range(3)] == [400, 400, 400]
    status, took = _timed_login(url, "alice", "right-horse")  # held back a second, then let in: never locked out
    assert status == 200 and took >= 0.9
    status, took = _timed_login(url, "alice", "guess")  # the right password reset the count
    assert status == 400 and took < 0.5

    # one address guessing many names is slowed down too, and the wait doubles, up to its cap (2 s here)
    for name in ("bob", "carol"):
        assert _login(url, name, "guess").status_code == 400
    status, took = _timed_login(url, "dave", "guess")
    assert status == 400 and took >= 0.9
    results: list[tuple[int, float]] = []
    held = threading.Thread(target=lambda: results.append(_timed_login(url, "erin", "guess")))
    held.start()
    time.sleep(0.5)
    meanwhile = _login(url, "frank", "guess")  # a second connection from the same address, during the wait
    held.join()
    assert meanwhile.status_code == 429 and "under way" in meanwhile.json()["detail"]
    assert results[0][0] == 400 and results[0][1] >= 1.9


def _upload(url: str, *names: str, size: int = 10) -> httpx.Response:
    files = [("files", (name, b"x" * size, "text/plain")) for name in names]
    return httpx.post(url + "gradio_api/upload", files=files, timeout=30)


def test_gradios_upload_route_is_bounded_per_address_before_the_bytes_are_read(upload_server) -> None:
    url = upload_server
    folder = Path(gr.utils.get_upload_folder())

    def chunked():
        yield b"--x\r\n"

    unsized = httpx.post(
        url + "gradio_api/upload", content=chunked(), headers={"content-type": "multipart/form-data; boundary=x"}
    )
    assert unsized.status_code == 411 and "Content-Length" in unsized.json()["detail"]

    first = _upload(url, "guard-a.txt", "guard-b.txt")
    assert first.status_code == 200 and len(first.json()) == 2
    # past the files an address may send an hour: that request's files are deleted at once
    many = _upload(url, "guard-c.txt", "guard-d.txt", "guard-e.txt", "guard-f.txt", size=11)
    assert many.status_code == 429 and "files" in many.json()["detail"]
    assert not [p for p in folder.rglob("guard-[cdef].txt") if p.read_bytes() == b"x" * 11]

    # past the bytes an address may send an hour: refused on its declared length, nothing stored
    big = _upload(url, "guard-big.txt", size=1024 * 1024)
    assert big.status_code == 200
    bigger = _upload(url, "guard-bigger.txt", size=700 * 1024)
    assert bigger.status_code == 429 and "MB this hour" in bigger.json()["detail"]
    assert not list(folder.rglob("guard-bigger.txt"))

    # past the requests an address may make a minute: 4 (the refusal on its length above did not count)
    assert _upload(url, "guard-g.txt", size=12).status_code == 200
    fifth = _upload(url, "guard-h.txt", size=12)
    assert fifth.status_code == 429 and "in a minute" in fifth.json()["detail"]
