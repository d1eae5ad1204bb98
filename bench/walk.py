"""The walk of one RAG question from the chat handler to the evidence shown: which rooms (modules) it stays in,
in order, and how often it comes back to a room it already left.

    python bench/walk.py [--data-dir DIR] [--question "..."] [--depth 1]

It starts the app on the embedded model (its sample documents), finds the page's own chat handler (`respond`
in ui/chat_tab.py), and runs one RAG question through it under a profiler that records every call into the
app's own code (not the libraries'). A *stay* is a run of consecutive calls in one module, counted on the
calls the walk's steps make: the handler, and the functions it reaches through at most `--depth` levels of
calls below each step of the answer's own path (`ExpertService.answer`, `AnswerPipeline.answer` and its
stages). Calls into shared helpers deeper than that (a tokenizer, a sentence splitter) are the room's own
business and do not move the walk. A *return* is a stay in a room the walk already stayed in.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

QUESTION = "How often is the CP-D vent valve changed?"
PATH = {
    ("ui.chat_tab", "respond"),
    ("answer.service", "answer"),
    ("answer.service", "request"),
    *(("answer.pipeline", stage) for stage in ("answer", "retrieve", "gate", "prompt", "decode", "judge")),
}
"""The walk's own steps: the functions whose calls are the walk (everything else is inside a room)."""


def module_of(code) -> str | None:
    try:
        relative = Path(code.co_filename).resolve().relative_to(ROOT)
    except ValueError:
        return None
    if relative.parts[0] in ("tests", "bench", ".venv") or relative.suffix != ".py":
        return None
    return ".".join(relative.with_suffix("").parts)


def trace(run, depth: int) -> list[tuple[str, str]]:
    """The (module, function) of every app call made by a walk step, or at most `depth` levels below one."""
    calls: list[tuple[str, str]] = []
    stack: list[tuple[str | None, str, int]] = []  # (module, function, levels below the nearest walk step)

    def profile(frame, event, arg):
        if event == "call":
            module = module_of(frame.f_code)
            name = frame.f_code.co_name
            below = stack[-1][2] + 1 if stack else 0
            if (module, name) in PATH:
                below = 0
            if module is not None and (below <= depth or (module, name) in PATH) and not name.startswith("<"):
                calls.append((module, name))
            stack.append((module, name, below if module is not None else (stack[-1][2] if stack else 0)))
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def stays(calls: list[tuple[str, str]]) -> list[tuple[str, list[str]]]:
    out: list[tuple[str, list[str]]] = []
    for module, name in calls:
        if out and out[-1][0] == module:
            if name not in out[-1][1]:
                out[-1][1].append(name)
        else:
            out.append((module, [name]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="data directory (default: a fresh temporary one)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--depth", type=int, default=1)
    args = parser.parse_args()

    from compose import compose
    from core.settings import Settings
    from ui.page import build_page

    data = Path(args.data_dir or tempfile.mkdtemp(prefix="walk-"))
    app = compose(Settings.of(data_dir=data)).start()
    if not app.wait_ready(600):
        sys.exit(app.service.status_line())
    page = build_page(app)
    respond = next(f.fn for f in page.fns.values() if getattr(f.fn, "__name__", "") == "respond")
    request = SimpleNamespace(session_hash="walk", username=None)
    shown = []

    def run() -> None:
        for _, chat, _, _ in respond(args.question, [], [], "RAG", "", "", 0.0, 1.0, 64, request, None):
            shown.append(chat[-1]["content"])

    calls = trace(run, args.depth)
    walk = stays(calls)
    seen: set[str] = set()
    returns = 0
    for i, (module, names) in enumerate(walk, 1):
        again = module in seen
        returns += again
        seen.add(module)
        print(f"{i:2d}. {module:22s} {'(return) ' if again else ''}{', '.join(names)[:110]}")
    print(f"\n{len(walk)} stays in {len(seen)} rooms, {returns} returns (depth {args.depth} below each walk step)")
    print(f"\nShown:\n{shown[-1] if shown else '(nothing)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
