"""A recommendation derived from a scorecard's own numbers, naming the numbers it rests on.

- RAG where it carries more key facts than the model alone and the adapter, and cites its sources;
- fine-tuning where it writes closest to the reference wording (ROUGE-L, token F1): vocabulary and style;
- Hybrid where retrieval and the adapter add up: more key facts than either alone;
- "none is good enough yet" when the best mode's key-fact recall is below `GOOD_ENOUGH`.

A difference in key-fact recall counts as a win only when it holds on the same questions: an exact
McNemar test on the questions one mode gets right and the other wrong (p < 0.05). Otherwise the text
says the two are not distinguishable on this many questions. It always names the weakest language.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scorecard.metrics import Figure, Scored

GOOD_ENOUGH = 0.5
STYLE_MARGIN = 0.03
SIGNIFICANCE = 0.05


@dataclass(frozen=True)
class Recommendation:
    text: str
    best_mode: str | None
    weakest_language: str | None


def mcnemar_p(a: Sequence[bool], b: Sequence[bool]) -> float:
    """Two-sided exact McNemar p-value for paired right/wrong outcomes of two modes."""
    only_a = sum(1 for x, y in zip(a, b, strict=True) if x and not y)
    only_b = sum(1 for x, y in zip(a, b, strict=True) if y and not x)
    n = only_a + only_b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_a, only_b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _paired(scored: Mapping[str, list[Scored]], a: str, b: str) -> tuple[list[bool], list[bool]]:
    left = {s.item.id: bool(s.keys_all) for s in scored[a] if s.keys_all is not None}
    right = {s.item.id: bool(s.keys_all) for s in scored[b] if s.keys_all is not None}
    common = [i for i in left if i in right]
    return [left[i] for i in common], [right[i] for i in common]


def recommend(
    overall: Mapping[str, Mapping[str, Figure]],
    by_language: Mapping[str, Mapping[str, Mapping[str, Figure]]],
    scored: Mapping[str, list[Scored]],
) -> Recommendation:
    """`overall[mode][metric]`, `by_language[mode][language][metric]`, `scored[mode]` per answer."""
    facts = {m: f["key_facts_all"].value for m, f in overall.items() if f["key_facts_all"].value is not None}
    if not facts:
        return Recommendation(
            "The QA set has no answerable questions, so there is no key-fact recall to compare.", None, None
        )
    ranked = sorted(facts, key=lambda m: -facts[m])
    best = ranked[0]
    n_best = overall[best]["key_facts_all"].n

    def beats(a: str, b: str) -> tuple[bool, float]:
        x, y = _paired(scored, a, b)
        p = mcnemar_p(x, y)
        return facts[a] > facts[b] and p < SIGNIFICANCE, p

    sentences: list[str] = []
    if facts[best] < GOOD_ENOUGH:
        sentences.append(
            f"None is good enough yet: the best mode, {best}, carries every key fact in {_pct(facts[best])} of "
            f"{n_best} answerable questions (key-fact recall below {GOOD_ENOUGH:.0%})."
        )
    others = [m for m in ranked[1:]]
    wins = {m: beats(best, m) for m in others}
    clear = [m for m in others if wins[m][0]]
    unclear = [m for m in others if not wins[m][0]]
    figures = ", ".join(f"{m} {_pct(facts[m])}" for m in ranked)
    if best == "Hybrid" and {"RAG", "Fine-tuned"} <= set(clear):
        verdict = f"Use Hybrid: retrieval and the adapter add up (key-fact recall {figures})."
    elif best == "RAG" and clear:
        cited = overall["RAG"]["cited_right_source"]
        verdict = (
            f"Use RAG for facts: key-fact recall {figures}; it cites the right source in "
            f"{_pct(cited.value)} of {cited.n} answers."
        )
    elif best == "Hybrid" and clear:
        verdict = f"Hybrid carries the most key facts ({figures})."
    elif best == "Fine-tuned" and clear:
        verdict = f"The adapter alone carries the most key facts ({figures}): its training data covers these questions."
    elif best == "Base" and clear:
        verdict = f"The model alone carries the most key facts ({figures}); retrieval and the adapter do not help yet."
    elif all(facts[m] == facts[best] for m in others):
        verdict = f"No mode carries more key facts than another (key-fact recall {figures})."
        unclear = []
    else:
        verdict = f"{best} carries the most key facts ({figures})."
    if unclear:
        ps = ", ".join(f"{m} (p={wins[m][1]:.2f})" for m in unclear)
        verdict += f" On {n_best} questions it is not clearly ahead of {ps}."
    sentences.append(verdict)

    style = {m: overall[m]["rouge_l"].value for m in overall if overall[m]["rouge_l"].value is not None}
    if "Fine-tuned" in style and len(style) > 1:
        rivals = {m: v for m, v in style.items() if m not in ("Fine-tuned", "Hybrid")}
        if rivals and style["Fine-tuned"] >= max(rivals.values()) + STYLE_MARGIN:
            sentences.append(
                f"Fine-tuning wins on vocabulary and style: its wording is closest to the references "
                f"(ROUGE-L {style['Fine-tuned']:.2f} vs {max(rivals, key=rivals.get)} {max(rivals.values()):.2f})."
            )
    declined = overall[best]["declined_no_answer"]
    if declined.value is not None and declined.value < 0.9:
        sentences.append(
            f"{best} declines only {_pct(declined.value)} of the {declined.n} questions the documents do not answer."
        )
    languages = {lang: f["key_facts_all"] for lang, f in by_language.get(best, {}).items() if f["key_facts_all"].n > 0}
    weakest = None
    if len(languages) > 1:
        weakest = min(languages, key=lambda lang: (languages[lang].value, -languages[lang].n))
        fig = languages[weakest]
        sentences.append(f"Weakest language for {best}: {weakest} ({_pct(fig.value)} of {fig.n} questions).")
    return Recommendation(" ".join(sentences), best, weakest)
