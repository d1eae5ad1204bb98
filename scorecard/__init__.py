"""The scorecard: what each answer mode really knows, measured on a keyed QA set.

    python -m scorecard                                   # the shipped eval set, every mode, the demo adapter
    python -m scorecard --qa my_qa.jsonl --modes Base,RAG --limit 20

    from scorecard import evaluate
    result = evaluate(app, "sample_kb/eval_qa.jsonl", ["RAG", "Hybrid"], adapter="smollm2-sample-kb")
    result.scorecard.to_markdown(); result.scorecard.recommendation.text

Every question runs through `ExpertService.answer`, the chat's own answer path (`runner`); only the
model's own text is scored (`metrics`, `matching`); figures are given overall and per language with
their counts (`report`), with a recommendation drawn from them (`recommend`). An adapter's result is
written into its card, where the Adapters tab shows it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adapters.cards import CardWriteError, Evaluation, record_evaluation
from answer.types import Mode
from core.errors import UserInputError
from core.identity import owner_id
from engines.base import GenerationParams
from scorecard.qa import QAFileError, QASet, load_qa
from scorecard.report import Scorecard, build
from scorecard.runner import SESSION, Outcome, RunProgress, ScorecardError, ScorecardRun

if TYPE_CHECKING:
    from compose import App

SHIPPED_QA = Path(__file__).resolve().parent.parent / "sample_kb" / "eval_qa.jsonl"
HEADLINE_METRIC = "key_facts_all"

__all__ = [
    "SHIPPED_QA",
    "QAFileError",
    "ScorecardError",
    "ScorecardResult",
    "card_evaluation",
    "evaluate",
    "evaluate_for_session",
    "load_qa",
    "runs_folder",
]


@dataclass
class ScorecardResult:
    scorecard: Scorecard
    outcome: Outcome
    markdown_path: Path
    card_note: str | None  # what happened to the adapter card, in one sentence (None: no adapter)

    @property
    def chart_path(self) -> Path:
        return self.scorecard.folder / "scorecard.png"


def runs_folder(data_dir: Path) -> Path:
    """Where runs live unless told otherwise: `<data_dir>/scorecards/`."""
    return Path(data_dir) / "scorecards"


def card_evaluation(card: Scorecard) -> Evaluation | None:
    """The block written into an adapter's card: headline key-fact recall of the adapter's modes, plus
    every overall figure per mode; None when no adapter mode was run."""
    adapter_modes = [m for m in (Mode.HYBRID.value, Mode.FINETUNED.value) if m in card.modes]
    if not adapter_modes:
        return None
    head = adapter_modes[0]
    headline = card.overall[head][HEADLINE_METRIC]
    parts = [
        f"{m} {card.overall[m][HEADLINE_METRIC].value:.2f}"
        for m in card.modes
        if card.overall[m][HEADLINE_METRIC].value is not None
    ]
    return Evaluation(
        score=None if headline.value is None else round(headline.value, 4),
        metric=HEADLINE_METRIC,
        mode=head,
        summary=f"key facts: {' · '.join(parts)} ({card.qa_file}, {headline.n} q)",
        qa_file=card.qa_file,
        qa_sha256=card.config["qa_sha256"],
        questions=card.questions,
        model=card.config["model"],
        run=card.name,
        date=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
        recommendation=card.recommendation.text,
        modes={m: {name: fig.to_json() for name, fig in card.overall[m].items()} for m in card.modes},
    )


def evaluate(
    app: App,
    qa: str | Path | QASet,
    modes: Sequence[Mode | str],
    adapter: str | None = None,
    *,
    out_dir: Path | None = None,
    name: str | None = None,
    params: GenerationParams | None = None,
    session: str = SESSION,
    limit: int | None = None,
    progress: RunProgress | None = None,
    stop: threading.Event | None = None,
    write_card: bool = True,
) -> ScorecardResult:
    """Answer (or resume), score, and write the scorecard; record it in the adapter's card if asked.

    Raises ScorecardError / QAFileError (one sentence) when the run cannot start. An interrupted run
    (`stop` set) still writes a partial scorecard, marked as such, and never touches the card.
    """
    qa_set = qa if isinstance(qa, QASet) else load_qa(qa, limit=limit)
    root = Path(out_dir) if out_dir else runs_folder(app.settings.shared_dir) / "shared"
    args = (app, qa_set, modes)
    kwargs: dict[str, Any] = {"adapter": adapter, "params": params, "session": session}
    run = ScorecardRun(*args, folder=root / name, **kwargs) if name else ScorecardRun.in_folder(root, *args, **kwargs)
    outcome = run.run(progress, stop)
    card = build(run)
    markdown = card.write()
    note = None
    if run.adapter_info is not None:
        evaluation = card_evaluation(card)
        if not card.complete:
            note = "The run is not finished, so the adapter's card was left as it was."
        elif qa_set.limited:
            note = (
                f"Only {len(qa_set.items)} of the {qa_set.total} questions were asked, so the adapter's card "
                "was left as it was."
            )
        elif not write_card or evaluation is None:
            note = "The result was not written into the adapter's card."
        else:
            try:
                record_evaluation(run.adapter_info.folder, evaluation)
                note = f"Recorded in the card of {run.adapter_info.name}: {evaluation.summary}."
            except CardWriteError as exc:
                note = str(exc)
    return ScorecardResult(card, outcome, markdown, note)


def evaluate_for_session(
    app: App,
    owner: str,
    qa_upload: str | Path | None,
    modes: Sequence[Mode | str],
    adapter: str | None,
    *,
    limit: int | None = None,
    progress: RunProgress | None = None,
    stop: threading.Event | None = None,
    documents: Sequence[str | Path] = (),
) -> ScorecardResult:
    """`evaluate` as one person of a public app runs it, keeping what is theirs to themselves.

    With `documents` (files the person uploaded), RAG and Hybrid answer from those documents only, indexed
    into a throwaway index (`scorecard.corpus.corpus_app`); the app's knowledge base and what anyone else sees
    are not touched, and no adapter card is written. Their own documents need their own QA file.

    Runs on the shipped QA set with shared adapters go to `scorecards/shared/` (greedy answers are
    the same for everyone, so a second visitor resumes the first one's run) and may update the shared
    adapter's card. A run on the person's own QA file or own uploaded adapter goes to a folder of their
    own, and only their own adapter's card is updated; a shared adapter's card never shows a result on
    someone's private questions.
    """
    if documents and not qa_upload:
        raise UserInputError("To measure on your own documents, upload a QA file with questions about them too.")
    qa_path = Path(qa_upload) if qa_upload else SHIPPED_QA
    uses_adapter = any(Mode.parse(m).uses_adapter for m in modes)
    info = app.adapters.resolve_handle(adapter, owner) if uses_adapter and adapter and app.adapters else None
    own_adapter = info is not None and info.source == "uploaded"  # resolve_handle only gives a person their own
    private = qa_upload is not None or own_adapter
    root = runs_folder(app.settings.shared_dir)
    out_dir = root / "private" / owner_id(owner) if private else root / "shared"
    write_card = (own_adapter or qa_upload is None) and not documents
    with ExitStack() as stack:
        view = app
        if documents:
            from scorecard.corpus import corpus_app

            def indexing(fraction: float, message: str) -> None:
                if progress is not None:
                    progress(0, 1, f"indexing your documents: {message}")

            view, _reports = stack.enter_context(corpus_app(app, [Path(d) for d in documents], indexing))
            out_dir = out_dir / "own-documents"
        # a shared run answers as nobody in particular (the shared documents only), so anyone may resume it
        result = evaluate(
            view,
            qa_path,
            modes,
            info.key if info else None,
            out_dir=out_dir,
            session=owner if private else SESSION,
            limit=limit,
            progress=progress,
            stop=stop,
            write_card=write_card,
        )
    if info is not None and qa_upload is not None and not own_adapter and result.scorecard.complete:
        result.card_note = (
            f"{info.name} is shared, so a result on your own questions is shown to you but not written into its card."
        )
    return result
