"""`python -m scorecard`: measure Base, RAG, Fine-tuned and Hybrid on a keyed QA set.

Loads the same model, index and adapters the app would with the same settings (any app setting,
e.g. `--model`, `--data-dir`, `--top-k`, may follow), answers every question in every mode through
the app's answer path, and writes `scorecard.md`, `scorecard.json` and `scorecard.png` into a run
folder under `<data dir>/scorecards/`. Ctrl-C stops after discarding the answer in progress and
writes a partial scorecard; the same command resumes where it stopped.

    python -m scorecard --docs sample_kb/real_docs/docs --qa sample_kb/real_docs/eval_qa.jsonl

measures on any corpus: the documents go into a throwaway index (`scorecard.corpus`), the app's own
knowledge base is not touched.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import time
from contextlib import ExitStack
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the app: measure what the app runs

from answer.types import Mode
from compose import compose
from core.errors import UserInputError
from core.settings import Settings, SettingsError
from engines.base import GenerationParams
from scorecard import SHIPPED_QA, evaluate, load_qa
from scorecard.corpus import corpus_app


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="python -m scorecard",
        description="Score Base / RAG / Fine-tuned / Hybrid answers on a keyed QA set (JSON Lines).",
        epilog="Any app setting may follow (see `python app.py --help`), e.g. --data-dir, --model, --top-k.",
    )
    parser.add_argument("--qa", type=Path, default=SHIPPED_QA, help="QA file (default: the shipped held-out set).")
    parser.add_argument(
        "--docs",
        type=Path,
        default=None,
        metavar="DIR",
        help="Answer RAG and Hybrid from the documents in DIR, indexed into a throwaway index (the app's own "
        "knowledge base is not touched; the adapter card is not written). Default: the app's knowledge base.",
    )
    parser.add_argument(
        "--modes",
        default=None,
        help="Comma-separated modes (default: all four when an adapter is available, else Base,RAG).",
    )
    parser.add_argument(
        "--adapter",
        default=None,
        help="Adapter for Fine-tuned and Hybrid (default: the only shared one, if there is one).",
    )
    parser.add_argument("--limit", type=int, default=None, help="Only the first N questions.")
    parser.add_argument(
        "--out", type=Path, default=None, help="Folder for run folders (default <data dir>/scorecards/shared)."
    )
    parser.add_argument("--name", default=None, help="Run folder name (default: derived from the settings).")
    parser.add_argument(
        "--max-new-tokens",
        dest="score_max_new",
        type=int,
        default=None,
        help="Cap on each answer's tokens (default: the app's max_new_tokens).",
    )
    parser.add_argument(
        "--sample",
        type=float,
        default=0.0,
        metavar="TEMPERATURE",
        help="Sample at this temperature instead of greedy decoding (default 0 = greedy).",
    )
    parser.add_argument("--no-card", action="store_true", help="Do not write the result into the adapter's card.")
    parser.add_argument("--list-adapters", action="store_true", help="List the usable adapters and exit.")
    return parser.parse_known_args(argv)  # type: ignore[return-value]


def default_adapter(given: str | None, shared: list[str], modes_given: bool) -> tuple[str | None, str]:
    """The adapter to score, and a line to print when the choice is not obvious: the one given, else
    the only shared adapter; with several, none (Base and RAG only) unless modes were given."""
    if given is not None or not shared:
        return given, ""
    if len(shared) == 1:
        return shared[0], ""
    if modes_given:
        return None, ""
    return None, f"Several adapters ({', '.join(shared)}): scoring Base and RAG only; choose one with --adapter."


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args, rest = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        settings = Settings.load(rest)
        qa = load_qa(args.qa, limit=args.limit)
    except (SettingsError, UserInputError) as exc:  # a bad QA file is a UserInputError
        print(exc, file=sys.stderr)
        return 2
    app = compose(settings).start()
    service = app.service
    last = ""
    while not service.ready:
        service.wait_ready(timeout=1.0)
        if service.progress_message != last:
            last = service.progress_message
            print(f"[{service.progress:4.0%}] {last}", file=sys.stderr)
    if service.error or service.engine is None:
        print(service.status_line(), file=sys.stderr)
        return 1
    for warning in service.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    shared = app.adapters.list_adapters(None) if app.adapters else []
    if args.list_adapters:
        for info in shared:
            print(f"{info.name}\t{info.key}\t{info.source}\tr={info.rank}")
        return 0
    adapter, notice = default_adapter(args.adapter, [info.key for info in shared], bool(args.modes))
    if notice:
        print(notice, file=sys.stderr)
    if args.modes:
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    else:
        modes = [m.value for m in Mode] if adapter else [Mode.BASE.value, Mode.RAG.value]
    max_new = args.score_max_new or service.default_params().max_new_tokens
    params = GenerationParams(args.sample, 1.0 if args.sample == 0 else settings.answer.top_p, max_new)

    stop = threading.Event()

    def interrupt(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        print("\nStopping after discarding the answer in progress (Ctrl-C again to quit at once)…", file=sys.stderr)

    signal.signal(signal.SIGINT, interrupt)
    from tqdm import tqdm

    bar = tqdm(total=len(qa.items) * len(modes), unit="answer", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int, message: str) -> None:
        bar.total = total
        bar.n = done
        bar.set_postfix_str(message[:40], refresh=False)
        bar.refresh()

    started = time.perf_counter()
    try:
        with ExitStack() as stack:
            view = app
            if args.docs is not None:
                bar.set_description_str("indexing", refresh=True)
                view, reports = stack.enter_context(corpus_app(app, args.docs))
                bar.set_description_str("", refresh=False)
                for report in reports:
                    if not report.ok:
                        print(f"skipped: {report.message}", file=sys.stderr)
            result = evaluate(
                view,
                qa,
                modes,
                adapter,
                out_dir=args.out,
                name=args.name,
                params=params,
                progress=progress,
                stop=stop,
                write_card=not args.no_card and args.docs is None,
            )
    except UserInputError as exc:
        bar.close()
        print(exc, file=sys.stderr)
        return 2
    bar.close()
    card, outcome = result.scorecard, result.outcome
    print(card.to_markdown(chart_name=None))
    print(f"Run folder: {card.folder}", file=sys.stderr)
    print(
        f"Wrote {result.markdown_path.name}, scorecard.json and scorecard.png; answers in answers.jsonl.",
        file=sys.stderr,
    )
    if outcome.answered:
        overhead = outcome.wall_s / outcome.answer_s if outcome.answer_s else float("nan")
        print(
            f"{outcome.answered} answers in {time.perf_counter() - started:.0f} s "
            f"({outcome.reused} reused); run time / answer time = {overhead:.3f}.",
            file=sys.stderr,
        )
    if result.card_note:
        print(result.card_note, file=sys.stderr)
    if outcome.interrupted:
        print("Interrupted: run the same command again to finish (finished answers are kept).", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
