"""The industry-expert chat: `python app.py [--setting value ...]` (see `--help`), or a Hugging Face Space.

Launch only: `compose.py` wires the parts, `ui/page.py` builds the page.
"""

from __future__ import annotations

import logging
import os
import sys

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # no calls out to the internet
# Idle OpenMP threads sleep instead of spinning: generation and embedding run on several threads
# of this process, and spinning teams starve each other on a small CPU (bench/bench_streaming.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import gradio as gr
from starlette.middleware import Middleware

from compose import compose
from core.settings import Settings, SettingsError
from ui.guard import Guard
from ui.page import build_page


def serve(page: gr.Blocks, settings: Settings, **launch) -> None:
    """Queue and launch with the limits that hold under abuse: no upload larger than the largest file the
    app accepts (Gradio's own upload endpoint took 1 GiB without them), Gradio's upload route and sign-in
    bounded per address before a byte is read (`ui.guard`), and a bounded queue, beyond which a client is told
    at once that the app is busy."""
    largest_mb = max(settings.uploads.max_upload_mb, settings.uploads.adapter_max_mb)
    accounts = settings.access.accounts()
    if accounts:  # local sign-in: Gradio's login page, then `request.username` names the person
        launch.setdefault("auth", accounts)
        launch.setdefault("auth_message", "Sign in to keep your uploads across reloads and restarts.")
    server = settings.server
    page.queue(default_concurrency_limit=4, max_size=server.queue_max_size).launch(
        max_file_size=int(largest_mb * 1024 * 1024),
        show_error=True,
        app_kwargs={"middleware": [Middleware(Guard, server=server)]},
        **launch,
    )


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.load(sys.argv[1:] if argv is None else argv)
    except SettingsError as exc:
        sys.exit(str(exc))
    app = compose(settings).start()
    serve(build_page(app), settings, server_name=settings.server.host or None, server_port=settings.server.port or None)


if __name__ == "__main__":
    main()
