"""The walk of one RAG question from the chat handler to the evidence shown: which rooms (modules) it stays in,
in order, and how often it comes back to a room it already left.

    python bench/walk.py [--data-dir DIR] [--question "..."] [--depth 1]

It starts the app on the embedded model (its sample documents), finds the page's own chat handler (`respond`
in ui/chat_tab.py), and runs one RAG question through it under a profiler that records every call into the
app's own code (not the libraries'). A *room* is a module. A *stay* begins each time a call crosses into
another room (coming back from a call is not a stay, and a room calling its own functions stays put); a
*return* is a stay in a room the walk already stayed in. Counted are the calls the walk's own steps make (the
handler, `ExpertService.answer` and `request`, `AnswerPipeline.answer` and its stages) and at most `--depth`
levels below them, each function at its first call (a streamed answer makes the same calls for every token);
deeper calls into shared helpers (a tokenizer, a sentence splitter) are the room's own business.
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
    # the same steps before the renovation (commit 0cc1b7c), so the walk can be measured there too
    ("app", "respond"),
    ("core.service", "answer"),
    ("core.service", "request"),
    *(("core.pipeline", step) for step in ("answer", "evidence_for", "_fit")),
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


def trace(run, depth: int) -> list[tuple[str, str, str | None]]:
    """(module, function, calling module) of each app function called by a walk step, or at most `depth` levels
    below one, at its first call (a streamed answer calls the same functions again for every token)."""
    calls: list[tuple[str, str, str | None]] = []
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[str | None, int]] = []  # (nearest app module, levels below the nearest walk step)

    def profile(frame, event, arg):
        if event == "call":
            module, name = module_of(frame.f_code), frame.f_code.co_name
            caller, below = stack[-1] if stack else (None, 0)
            if module is not None:
                below = 0 if (module, name) in PATH else below + 1
                if below <= depth and not name.startswith("<") and (module, name) not in seen:
                    seen.add((module, name))
                    calls.append((module, name, caller))
            stack.append((module or caller, below))
        elif event == "return" and stack:
            stack.pop()

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return calls


def stays(calls: list[tuple[str, str, str | None]]) -> list[tuple[str, list[str]]]:
    """The walk: a new stay each time a call crosses into another room (coming back from a call is not a stay)."""
    out: list[tuple[str, list[str]]] = []
    for module, name, caller in calls:
        if out and (caller == module or out[-1][0] == module):
            room = out[-1] if out[-1][0] == module else next(o for o in reversed(out) if o[0] == module)
            room[1].append(name) if name not in room[1] else None
        else:
            out.append((module, [name]))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", default=None, help="data directory (default: a fresh temporary one)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--depth", type=int, default=1)
    args = parser.parse_args()

    from core.settings import Settings

    data = Path(args.data_dir or tempfile.mkdtemp(prefix="walk-"))
    try:
        from compose import compose
        from ui.page import build_page

        app = compose(Settings.of(data_dir=data)).start()
        if not app.wait_ready(600):
            sys.exit(app.service.status_line())
        page = build_page(app)
    except ImportError:  # before the renovation: app.build_service / build_demo
        import app as old

        service = old.build_service(Settings(data_dir=data)).start()
        if not service.wait_ready(600):
            sys.exit(service.status_line())
        page = old.build_demo(service)
    respond = next(f.fn for f in page.fns.values() if getattr(f.fn, "__name__", "") == "respond")
    request = SimpleNamespace(session_hash="walk", username=None)
    shown = []

    def run() -> None:
        for _, chat, *_ in respond(args.question, [], [], "RAG", "", "", 0.0, 1.0, 64, request, None):
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
