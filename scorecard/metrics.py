"""Scores for one answer, and figures over many: every figure carries the number of answers behind it.

Only the model's own answer text is scored (`AnswerRecord.text`, which is `AnswerUpdate.text`):
the sources footer and the notes the UI adds are never part of it. Per answer:

- key facts: whether *all* keys, *any* key, and what share of keys occur (`scorecard.matching`);
- token F1 (SQuAD-style bag of tokens) and ROUGE-L F-measure (Google's `rouge-score`) against the
  reference answer, both on `tokenize`: normalized words, with Chinese, Japanese and Korean split
  into single characters, so those languages are scored per character;
- quoted instead: the model's answer was only markers, markup or a copied code line, so the app quoted the
  best source sentence ("The documents say: …"); counted apart, and the quote is never scored as the model's
  answer (its key facts count as missing);
- declined: the pipeline refused to guess, or the text says it does not know (`answer.evidence`);
  right for a no-answer question, wrong ("wrongly declined") for an answerable one with no key;
- for answers built on retrieved passages (RAG, Hybrid): the 1-based rank of the first passage from
  the question's source document (hit@1, hit@k, reciprocal rank); whether the answer cites that
  document, meaning its content is supported by one of that document's sentences (`answer.evidence`;
  a printed "[n]" alone does not count); grounding: the share of its sentences a source sentence
  supports (the pipeline's own judgement, the one the chat shows); and, reported apart and never
  blended with the answer's figures, whether the source sentences quoted under the answer hold the keys;
- latency (the whole answer call: retrieval, prompt, generation) and tokens per second of generation.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

from answer.evidence import grounding, is_decline
from scorecard.matching import keys_found, normalize
from scorecard.qa import QAItem

_CJK_CHAR = (
    r"[\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    r"\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0002fa1f]"
)
_TOKEN = re.compile(rf"{_CJK_CHAR}|(?:(?!{_CJK_CHAR})[^\W_])+(?:[-./:](?:(?!{_CJK_CHAR})[^\W_])+)*")
_ARTICLES = frozenset({"a", "an", "the"})


def tokenize(text: str) -> list[str]:
    """Normalized tokens: words and numbers-with-units ("12kg", "e-pw-131"), CJK one character each;
    punctuation and English articles dropped."""
    return [t for t in _TOKEN.findall(normalize(text)) if t not in _ARTICLES]


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = tokenize(prediction), tokenize(reference)
    if not pred or not ref:
        return float(pred == ref)
    common: dict[str, int] = {}
    counts: dict[str, int] = {}
    for t in ref:
        counts[t] = counts.get(t, 0) + 1
    for t in pred:
        if counts.get(t, 0) > common.get(t, 0):
            common[t] = common.get(t, 0) + 1
    overlap = sum(common.values())
    if not overlap:
        return 0.0
    precision, recall = overlap / len(pred), overlap / len(ref)
    return 2 * precision * recall / (precision + recall)


class _Tokenizer:
    """`rouge_score` tokenizer interface over `tokenize`."""

    def tokenize(self, text: str) -> list[str]:
        return tokenize(text)


@lru_cache(maxsize=1)
def _rouge() -> Any:
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(["rougeL"], tokenizer=_Tokenizer())


def rouge_l(prediction: str, reference: str) -> float:
    if not tokenize(prediction) or not tokenize(reference):
        return 0.0
    return float(_rouge().score(reference, prediction)["rougeL"].fmeasure)


@dataclass
class AnswerRecord:
    """One answer as the runner stored it (a line of answers.jsonl)."""

    id: str
    mode: str
    text: str
    status: str = "answer"  # AnswerUpdate.status ("quoted": the documents quoted instead), or "error"
    sources: list[dict[str, Any]] = field(default_factory=list)  # {source, location, score, text}
    cited: list[int] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    tokens: int = 0
    generation_s: float = 0.0
    total_s: float = 0.0
    first_token_s: float | None = None
    evidence: list[str] = field(default_factory=list)  # source sentences quoted under the answer
    evidence_supports: bool = False  # whether they support the answer (else: what the sources say)
    judged: int | None = None  # answer sentences the pipeline judged; None for answers recorded before it did
    supported: int | None = None  # of those, supported by a source sentence

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> AnswerRecord:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in value.items() if k in known})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Scored:
    """The scores of one answer; None where a figure does not apply to it."""

    item: QAItem
    mode: str
    keys_all: bool | None
    keys_any: bool | None
    keys_share: float | None
    f1: float | None
    rouge_l: float | None
    declined: bool
    declined_right: bool | None  # no-answer questions only
    declined_wrongly: bool | None  # answerable questions only
    rank: int | None  # 1-based rank of the first passage from the right document; 0 = not retrieved
    cited_right: bool | None
    grounding: float | None
    evidence_keys_all: bool | None  # every key found in the quoted evidence (never blended with keys_all)
    total_s: float
    tokens: int
    generation_s: float
    error: bool
    quoted: bool = False  # the model's answer was unusable and the documents were quoted instead


def score(item: QAItem, record: AnswerRecord, uses_documents: bool) -> Scored:
    """Score one answer. Only `record.text` (the model's own words) is read, never notes or sources' text
    except to judge grounding and retrieval."""
    text = record.text if record.status == "answer" else ""
    declined = record.status == "nothing_found" or is_decline(text)
    keys_all = keys_any = keys_share = f1 = rl = None
    declined_right = declined_wrongly = None
    if item.answerable:
        found = keys_found(text, item.keys)
        keys_all, keys_any, keys_share = all(found), any(found), sum(found) / len(found)
        f1, rl = token_f1(text, item.answer), rouge_l(text, item.answer)
        declined_wrongly = declined and not keys_any
    else:
        declined_right = declined
    rank = cited_right = ground = evidence_all = None
    if uses_documents and record.status in ("answer", "nothing_found", "quoted"):
        if item.answerable and item.source:
            names = [s.get("source") for s in record.sources]
            rank = next((i for i, name in enumerate(names, 1) if name == item.source), 0)
            # a quote the app put in place of the model's answer cites for the app, not for the model
            cited = record.cited if record.status == "answer" else []
            cited_right = any(1 <= n <= len(names) and names[n - 1] == item.source for n in cited)
            evidence_all = all(keys_found(" ".join(record.evidence), item.keys)) if record.evidence else False
        if text and not declined:
            if record.judged is not None:  # the pipeline's own judgement, the one the chat showed
                ground = record.supported / record.judged if record.judged else None
            else:
                ground = grounding(text, [s.get("text", "") for s in record.sources])
    return Scored(
        item=item,
        mode=record.mode,
        keys_all=keys_all,
        keys_any=keys_any,
        keys_share=keys_share,
        f1=f1,
        rouge_l=rl,
        declined=declined,
        declined_right=declined_right,
        declined_wrongly=declined_wrongly,
        rank=rank,
        cited_right=cited_right,
        grounding=ground,
        evidence_keys_all=evidence_all,
        total_s=record.total_s,
        tokens=record.tokens,
        generation_s=record.generation_s,
        error=record.status == "error",
        quoted=record.status == "quoted",
    )


# -- figures over many answers -------------------------------------------------------------------
@dataclass(frozen=True)
class Figure:
    value: float | None
    n: int

    def to_json(self) -> dict[str, Any]:
        return {"value": None if self.value is None else round(self.value, 4), "n": self.n}


def _mean(values: Iterable[float | bool | None]) -> Figure:
    present = [float(v) for v in values if v is not None]
    return Figure(sum(present) / len(present) if present else None, len(present))


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (as numpy's default); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    label: str
    compute: Callable[[list[Scored], int], Figure]
    documents_only: bool = False
    chart: bool = True
    higher_is_better: bool = True


def _latency(q: float) -> Callable[[list[Scored], int], Figure]:
    def compute(rows: list[Scored], k: int) -> Figure:
        times = [r.total_s for r in rows if not r.error]
        return Figure(percentile(times, q), len(times))

    return compute


def _tokens_per_s(rows: list[Scored], k: int) -> Figure:
    timed = [r for r in rows if r.generation_s > 0 and r.tokens > 0]
    seconds = sum(r.generation_s for r in timed)
    return Figure(sum(r.tokens for r in timed) / seconds if seconds else None, len(timed))


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("key_facts_all", "key facts (all)", lambda rows, k: _mean(r.keys_all for r in rows)),
    MetricSpec("key_facts_any", "key facts (any)", lambda rows, k: _mean(r.keys_any for r in rows)),
    MetricSpec("token_f1", "token F1", lambda rows, k: _mean(r.f1 for r in rows)),
    MetricSpec("rouge_l", "ROUGE-L", lambda rows, k: _mean(r.rouge_l for r in rows)),
    MetricSpec("declined_no_answer", "declined (no-answer)", lambda rows, k: _mean(r.declined_right for r in rows)),
    MetricSpec(
        "declined_wrongly",
        "wrongly declined",
        lambda rows, k: _mean(r.declined_wrongly for r in rows),
        chart=False,
        higher_is_better=False,
    ),
    MetricSpec(
        "hit_at_1",
        "hit@1",
        lambda rows, k: _mean(None if r.rank is None else r.rank == 1 for r in rows),
        documents_only=True,
    ),
    MetricSpec(
        "hit_at_k",
        "hit@k",
        lambda rows, k: _mean(None if r.rank is None else 0 < r.rank <= k for r in rows),
        documents_only=True,
    ),
    MetricSpec(
        "mrr",
        "MRR",
        lambda rows, k: _mean(None if r.rank is None else (1 / r.rank if r.rank else 0.0) for r in rows),
        documents_only=True,
    ),
    MetricSpec(
        "cited_right_source",
        "right source cited",
        lambda rows, k: _mean(r.cited_right for r in rows),
        documents_only=True,
    ),
    MetricSpec("grounding", "grounding", lambda rows, k: _mean(r.grounding for r in rows), documents_only=True),
    MetricSpec(
        "evidence_key_facts_all",
        "key facts in the quoted evidence",
        lambda rows, k: _mean(r.evidence_keys_all for r in rows),
        documents_only=True,
    ),
    MetricSpec(
        "quoted_instead",
        "unusable answer, documents quoted",
        lambda rows, k: _mean(r.quoted for r in rows),
        documents_only=True,
        chart=False,
        higher_is_better=False,
    ),
    MetricSpec(
        "errors",
        "refused by the app",
        lambda rows, k: _mean(r.error for r in rows),
        chart=False,
        higher_is_better=False,
    ),
    MetricSpec("latency_p50_s", "latency p50 (s)", _latency(50), chart=False, higher_is_better=False),
    MetricSpec("latency_p95_s", "latency p95 (s)", _latency(95), chart=False, higher_is_better=False),
    MetricSpec("tokens_per_s", "tokens/s", _tokens_per_s, chart=False),
)
METRIC_BY_NAME = {m.name: m for m in METRICS}


def figures(rows: list[Scored], k: int, uses_documents: bool) -> dict[str, Figure]:
    """Every metric over `rows` (`k`: how many passages the prompt carries, for hit@k)."""
    return {
        m.name: (m.compute(rows, k) if uses_documents or not m.documents_only else Figure(None, 0)) for m in METRICS
    }
