"""The scorecard of a run: figures per mode, overall and per language, as Markdown, JSON and a chart.

Built from the answers stored in the run folder, so scoring can be redone without generating
again. Files written into the run folder: `scorecard.md`, `scorecard.json`, `scorecard.png`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from answer.types import Mode
from core.files import atomic_write_bytes, atomic_write_json, atomic_write_text
from core.language import LANGUAGE_NAMES
from scorecard.metrics import METRICS, Figure, Scored, figures, score
from scorecard.recommend import Recommendation, recommend
from scorecard.runner import ScorecardRun

MARKDOWN_FILE, JSON_FILE, CHART_FILE = "scorecard.md", "scorecard.json", "scorecard.png"


@dataclass
class Scorecard:
    name: str
    folder: Path
    config: dict[str, Any]
    qa_file: str
    questions: int
    answerable: int
    languages: list[str]
    language_counts: dict[str, int]
    modes: list[str]
    k: int
    overall: dict[str, dict[str, Figure]]
    by_language: dict[str, dict[str, dict[str, Figure]]]
    answered: dict[str, int]
    recommendation: Recommendation
    scored: dict[str, list[Scored]]
    created_at: str

    @property
    def complete(self) -> bool:
        return all(n == self.questions for n in self.answered.values())

    def figure(self, mode: str, metric: str, language: str | None = None) -> Figure:
        table = self.overall[mode] if language is None else self.by_language[mode][language]
        return table[metric]

    # -- output ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        def table(t: dict[str, Figure]) -> dict[str, Any]:
            return {name: fig.to_json() for name, fig in t.items()}

        return {
            "format": "industry-expert-chat/scorecard@1",
            "name": self.name,
            "created_at": self.created_at,
            "qa_file": self.qa_file,
            "questions": self.questions,
            "answerable": self.answerable,
            "languages": self.language_counts,
            "complete": self.complete,
            "answered": self.answered,
            "k": self.k,
            "config": self.config,
            "modes": {
                m: {
                    "overall": table(self.overall[m]),
                    "by_language": {lang: table(t) for lang, t in self.by_language[m].items()},
                }
                for m in self.modes
            },
            "recommendation": asdict(self.recommendation),
        }

    def to_markdown(self, chart_name: str | None = CHART_FILE) -> str:
        cfg = self.config
        adapter = f", adapter `{cfg['adapter']}`" if cfg.get("adapter") else ""
        decoding = "greedy" if cfg["temperature"] == 0 else f"temperature {cfg['temperature']}, top-p {cfg['top_p']}"
        engine = cfg.get("engine") or "transformers"
        langs = ", ".join(f"{lang} {n}" for lang, n in self.language_counts.items())
        lines = [
            f"# Scorecard: {self.qa_file}",
            "",
            f"Model `{cfg['model']}`{adapter} on {engine}; {decoding}, at most {cfg['max_new_tokens']} new tokens; "
            f"RAG and Hybrid read the top {self.k} passages. {self.questions} questions "
            f"({self.answerable} answerable, {self.questions - self.answerable} with no answer in the documents); "
            f"by language: {langs}. Run `{self.name}`, {self.created_at[:16].replace('T', ' ')} UTC.",
            "",
        ]
        if not self.complete:
            done = ", ".join(f"{m} {n}/{self.questions}" for m, n in self.answered.items())
            lines += [f"**Partial run** (answers so far: {done}); run the command again to finish it.", ""]
        lines += [f"**Recommendation.** {self.recommendation.text}", ""]
        if chart_name:
            lines += [f"![scorecard]({chart_name})", ""]
        lines += ["## Overall", "", "Each cell: the figure, and in brackets the number of answers behind it.", ""]
        lines += _table(self.overall, self.modes)
        lines += ["", "## Key-fact recall (all keys) by language", ""]
        header = "| language | " + " | ".join(self.modes) + " |"
        lines += [header, "|" + "---|" * (len(self.modes) + 1)]
        for lang in self.languages:
            cells = [_cell(self.by_language[m][lang]["key_facts_all"], "key_facts_all") for m in self.modes]
            lines.append(f"| {LANGUAGE_NAMES.get(lang, lang)} ({lang}) | " + " | ".join(cells) + " |")
        lines += ["", "## Every figure by language", ""]
        for lang in self.languages:
            lines += [
                f"<details><summary>{html.escape(LANGUAGE_NAMES.get(lang, lang))} ({lang}), "
                f"{self.language_counts[lang]} questions</summary>",
                "",
            ]
            lines += _table({m: self.by_language[m][lang] for m in self.modes}, self.modes)
            lines += ["", "</details>", ""]
        lines += [
            "Key facts: an answer counts when it contains every key fact of the question (all) or at least one (any), "
            "matched after normalizing digits, case, width, separators, dates and units. Only the model's own "
            "answer text is scored, never the sources list or notes the app adds. hit@k and MRR: the rank of the "
            "question's source document among the retrieved passages. Right source cited: the answer cites [n] "
            "of a passage from that document. Grounding: the share of answer sentences a retrieved passage "
            "supports. Latency: the whole answer call.",
        ]
        return "\n".join(lines) + "\n"

    def write(self) -> Path:
        """Write Markdown, JSON and the chart into the run folder; returns the Markdown path."""
        chart = self.folder / CHART_FILE
        atomic_write_bytes(chart, render_chart(self))
        atomic_write_json(self.folder / JSON_FILE, self.to_json())
        return atomic_write_text(self.folder / MARKDOWN_FILE, self.to_markdown())


def _cell(fig: Figure, metric: str) -> str:
    if fig.value is None:
        return "–"
    value = (
        f"{fig.value:.2f}"
        if "latency" in metric
        else (f"{fig.value:.1f}" if metric == "tokens_per_s" else f"{fig.value:.2f}")
    )
    return f"{value} ({fig.n})"


def _table(tables: dict[str, dict[str, Figure]], modes: Sequence[str]) -> list[str]:
    lines = ["| metric | " + " | ".join(modes) + " |", "|" + "---|" * (len(modes) + 1)]
    for spec in METRICS:
        cells = [_cell(tables[m][spec.name], spec.name) for m in modes]
        if all(c == "–" for c in cells):
            continue
        lines.append(f"| {spec.label} | " + " | ".join(cells) + " |")
    return lines


def build(run: ScorecardRun) -> Scorecard:
    """Score every stored answer of `run` (only the questions of its QA set and its modes)."""
    stored = run.stored()
    modes = [m.value for m in run.modes]
    k = run.app.settings.retrieval.top_k
    items = run.qa.items
    languages = run.qa.languages
    scored: dict[str, list[Scored]] = {}
    overall: dict[str, dict[str, Figure]] = {}
    by_language: dict[str, dict[str, dict[str, Figure]]] = {}
    answered: dict[str, int] = {}
    for mode in run.modes:
        uses_documents = mode.uses_documents
        rows = [
            score(item, stored[(item.id, mode.value)], uses_documents)
            for item in items
            if (item.id, mode.value) in stored
        ]
        scored[mode.value] = rows
        answered[mode.value] = len(rows)
        overall[mode.value] = figures(rows, k, uses_documents)
        by_language[mode.value] = {
            lang: figures([r for r in rows if r.item.language == lang], k, uses_documents) for lang in languages
        }
    counts = {lang: sum(1 for i in items if i.language == lang) for lang in languages}
    return Scorecard(
        name=run.folder.name,
        folder=run.folder,
        config=asdict(run.config),
        qa_file=run.qa.name,
        questions=len(items),
        answerable=sum(1 for i in items if i.answerable),
        languages=languages,
        language_counts=counts,
        modes=modes,
        k=k,
        overall=overall,
        by_language=by_language,
        answered=answered,
        recommendation=recommend(overall, by_language, scored),
        scored=scored,
        created_at=datetime.now(timezone.utc).replace(microsecond=0).isoformat(),
    )


def render_chart(card: Scorecard) -> bytes:
    """A grouped bar chart (PNG): one group per metric, one bar per mode, values 0-1."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    specs = [s for s in METRICS if s.chart and any(card.overall[m][s.name].value is not None for m in card.modes)]
    colors = {
        Mode.BASE.value: "#9e9e9e",
        Mode.RAG.value: "#1f77b4",
        Mode.FINETUNED.value: "#ff7f0e",
        Mode.HYBRID.value: "#2ca02c",
    }
    fig, ax = plt.subplots(figsize=(max(7.0, 1.25 * len(specs) + 2), 4.2), dpi=110)
    width = 0.8 / max(len(card.modes), 1)
    for j, mode in enumerate(card.modes):
        xs = [i + (j - (len(card.modes) - 1) / 2) * width for i in range(len(specs))]
        values = [card.overall[mode][s.name].value for s in specs]
        bars = ax.bar(xs, [v or 0 for v in values], width, label=mode, color=colors.get(mode))
        for bar, value in zip(bars, values, strict=True):
            label = "n/a" if value is None else f"{value:.2f}"
            ax.annotate(
                label,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=6.5,
                xytext=(0, 1),
                textcoords="offset points",
            )
    ax.set_xticks(range(len(specs)), [s.label for s in specs], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.08)
    ax.set_ylabel("share of answers")
    no_answer = card.questions - card.answerable
    ax.set_title(f"{card.qa_file}: {card.answerable} answerable, {no_answer} no-answer questions", fontsize=9)
    ax.legend(fontsize=8, ncol=len(card.modes), loc="upper right")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()
