"""Decide what is relevant at all, then fuse dense and keyword candidates by reciprocal rank.

The relevance floor makes a question the documents cannot answer get no passages, instead of the
least-bad ones. A chunk is kept when at least one of these holds:

  (a) dense: its cosine similarity to the query is at least `dense` (0.30) and at least
      `dense_margin` (0.15) above the query's *background* similarity: its highest cosine to a
      fixed set of everyday sentences (greetings, weather, food) in several languages. An
      embedding model scores any two texts in the same script as somewhat alike (an English-only
      model gives two unrelated Mongolian sentences ~0.6), so the bar is raised by what off-topic
      text in the query's own language already gets;
  (b) keyword: it contains query terms carrying at least `coverage` (0.5) of the query's IDF mass
      (terms the corpus never saw count with the highest IDF, so an off-topic question whose one
      common word happens to occur does not pass);
  (c) agreement: the dense and the keyword retriever both rank it in their top `agree_rank` (3)
      and it covers at least `agree_coverage` (0.2) of the query's IDF mass. Two different kinds
      of evidence picking the same chunk first is what rescues questions in languages the
      embedding model does not know, where neither score alone is conclusive.

Kept chunks are ranked by RRF: the sum, over the lists a chunk appears in, of 1 / (60 + rank).
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.keyword_index import KeywordHit

RRF_K = 60
FUSION_MODES = ("rrf", "dense", "keyword")

BACKGROUND_TEXTS = (
    "Hello, how are you today?",
    "What time is it?",
    "The weather is nice today.",
    "I would like noodles for dinner.",
    "Where is the nearest train station?",
    "Tell me a funny story.",
    "안녕하세요, 오늘 어떻게 지내세요?",
    "지금 몇 시예요?",
    "오늘 날씨가 좋네요.",
    "저녁으로 국수를 먹고 싶어요.",
    "こんにちは、お元気ですか？",
    "今何時ですか？",
    "今日はいい天気ですね。",
    "夕食に麺を食べたいです。",
    "你好，你今天怎么样？",
    "现在几点了？",
    "今天天气很好。",
    "我晚饭想吃面条。",
    "Bok, kako si danas?",
    "Koliko je sati?",
    "Danas je lijepo vrijeme.",
    "Za večeru želim tjesteninu.",
    "Сайн байна уу, өнөөдөр ямар байна?",
    "Одоо хэдэн цаг болж байна?",
    "Өнөөдөр цаг агаар сайхан байна.",
    "Привет, как дела?",
    "Hola, ¿cómo estás?",
    "Bonjour, comment ça va ?",
    "Hallo, wie geht es dir?",
)
"""Everyday sentences no company document is about; see (a) above."""


LANGUAGE_GROUPS = {"ko": "cjk", "ja": "cjk", "zh": "cjk", "mn": "cyrillic", "ru": "cyrillic", "hr": "hr"}
COVERAGE_BY_GROUP = {"cjk": 0.3, "cyrillic": 0.15, "hr": 0.4}
"""The keyword coverage bar per script, calibrated on `sample_kb/dev_qa.jsonl` by `bench/bench_gate.py`
(the highest bar that still lets at least 95% of the answerable development questions of that group
through). An English-only embedding model says little about Korean, Japanese, Chinese, Mongolian or
Croatian questions, so for them the keyword evidence must carry the decision, and their questions
share fewer terms with the documents (particles, question endings, inflections)."""


@dataclass(frozen=True)
class Floors:
    """Thresholds of the relevance floor; the defaults suit MiniLM-family models. `coverage_by_group`
    replaces `coverage` for questions in a language of that group (see `LANGUAGE_GROUPS`)."""

    dense: float = 0.30
    dense_margin: float = 0.15
    coverage: float = 0.5
    agree_rank: int = 3
    agree_coverage: float = 0.2
    coverage_by_group: tuple[tuple[str, float], ...] = tuple(COVERAGE_BY_GROUP.items())

    @classmethod
    def off(cls) -> Floors:
        """No floor at all: every candidate is kept (for measuring ranking alone)."""
        return cls(dense=-2.0, dense_margin=-9.0, coverage=0.0, agree_rank=0, agree_coverage=0.0, coverage_by_group=())

    def for_query(self, query: str) -> Floors:
        """The floors that apply to `query`, by the language it is written in."""
        from core.language import detect_language

        return self.for_query_language(detect_language(query))

    def for_query_language(self, language: str) -> Floors:
        """The floors that apply to a question in `language` (a `core.language` code)."""
        from dataclasses import replace

        group = LANGUAGE_GROUPS.get(language)
        bars = dict(self.coverage_by_group)
        return replace(self, coverage=bars[group]) if group in bars else self


def fuse(
    dense: list[tuple[int, float]],
    keyword: list[KeywordHit],
    mode: str,
    top_k: int,
    floors: Floors = Floors(),
    background: float = 0.0,
) -> list[tuple[int, float]]:
    """(chunk id, score) pairs, best first, at most `top_k`; empty when nothing passes the floor.

    `dense` is (id, cosine), best first; `background` the query's background similarity. The score
    returned is the cosine for mode "dense", BM25 for "keyword", and the RRF sum for "rrf".
    Raises ValueError for an unknown mode."""
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion must be one of {', '.join(FUSION_MODES)}, not {mode!r}")
    dense_bar = max(floors.dense, background + floors.dense_margin)
    kept = {i for i, score in dense if score >= dense_bar}
    dense_top = {i for i, _ in dense[: floors.agree_rank]}
    for rank, hit in enumerate(keyword):
        agree = rank < floors.agree_rank and hit.id in dense_top and hit.coverage >= floors.agree_coverage
        if hit.coverage >= floors.coverage or agree:
            kept.add(hit.id)
    if mode == "dense":
        return [(i, s) for i, s in dense if i in kept][:top_k]
    if mode == "keyword":
        return [(h.id, h.score) for h in keyword if h.id in kept][:top_k]
    fused: dict[int, float] = {}
    for rank, (i, _) in enumerate(dense, start=1):
        if i in kept:
            fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank)
    for rank, hit in enumerate(keyword, start=1):
        if hit.id in kept:
            fused[hit.id] = fused.get(hit.id, 0.0) + 1.0 / (RRF_K + rank)
    return sorted(fused.items(), key=lambda item: -item[1])[:top_k]
