"""How many threads each llama.cpp decoding step uses (`ThreadTuner`), from what steps have cost lately."""

from __future__ import annotations


class ThreadTuner:
    """Picks llama.cpp's thread count for each decoding step from what steps have cost lately.

    llama.cpp's threads meet at a spinning barrier after every layer. On an idle machine more threads decode
    faster (2 threads: 1.4x one, on 2 cores here); when another process holds one of the cores, the thread
    that shares it stalls every barrier, and 2 threads decode 3.6x slower than one (bench/bench_busy.py). The
    tuner keeps an exponential average of the step time for each candidate count (1 and `most`) and each
    batch size, uses the faster one, and tries the other on one step in `explore_every`, so it moves to one
    thread within a few steps of a neighbour getting busy, and back once the neighbour is gone."""

    def __init__(self, most: int, explore_every: int = 48, weight: float = 0.3):
        self.choices = sorted({1, max(1, most)})
        self.explore_every, self.weight = explore_every, weight
        self.cost: dict[tuple[int, int], float] = {}
        self.steps: dict[int, int] = {}

    def pick(self, rows: int) -> int:
        """Threads for the next step of `rows` sequences."""
        if len(self.choices) == 1:
            return self.choices[0]
        known = {n: self.cost.get((n, rows)) for n in self.choices}
        unknown = [n for n, c in known.items() if c is None]
        if unknown:
            return unknown[-1]
        best = min(self.choices, key=lambda n: known[n])
        self.steps[rows] = self.steps.get(rows, 0) + 1
        if self.steps[rows] % self.explore_every == 0:
            return next(n for n in self.choices if n != best)
        return best

    def record(self, threads: int, rows: int, seconds: float) -> None:
        """What one decoding step (one new token for each of `rows` sequences) cost with `threads`."""
        key = (threads, rows)
        old = self.cost.get(key)
        self.cost[key] = seconds if old is None else old + self.weight * (seconds - old)

    def describe(self) -> str:
        if len(self.choices) == 1:
            return f"{self.choices[0]} thread{'s' if self.choices[0] > 1 else ''}"
        return f"{self.choices[0]}-{self.choices[-1]} threads (whichever decodes faster now)"
